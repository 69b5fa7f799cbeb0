/* elementcheck.h: what the element tests share (included by the test files
 * that use it; static functions, no library). */
#pragma once

#include <gst/check/gstcheck.h>
#include <string.h>

/* @name in the folder the environment variable @env names (meson sets
 * them: GE_TEST_MODELS, GE_TEST_SAMPLES ...). */
static inline gchar *
test_path (const gchar * env, const gchar * name)
{
  const gchar *dir = g_getenv (env);

  fail_unless (dir != NULL, "%s not set (run through meson test)", env);
  return g_build_filename (dir, name, NULL);
}

/* A @factory element with model-file=@file (of GE_TEST_MODELS) going to
 * PAUSED: the state change must fail with one ERROR of @domain/@code whose
 * message names @file. */
static inline void
expect_start_error (const gchar * factory, const gchar * file, GQuark domain,
    gint code)
{
  GstElement *e = gst_element_factory_make (factory, NULL);
  gchar *path = test_path ("GE_TEST_MODELS", file);
  GstBus *bus = gst_bus_new ();
  GstMessage *msg;
  GError *err = NULL;

  g_object_set (e, "model-file", path, NULL);
  gst_element_set_bus (e, bus);
  fail_unless_equals_int (gst_element_set_state (e, GST_STATE_PAUSED),
      GST_STATE_CHANGE_FAILURE);
  msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  fail_unless (msg != NULL, "%s %s: no ERROR", factory, file);
  gst_message_parse_error (msg, &err, NULL);
  fail_unless (err->domain == domain && err->code == code, "%s %s: %s",
      factory, file, err->message);
  fail_unless (strstr (err->message, file) != NULL, "%s", err->message);
  g_clear_error (&err);
  gst_message_unref (msg);
  gst_element_set_state (e, GST_STATE_NULL);
  gst_element_set_bus (e, NULL);
  gst_object_unref (bus);
  gst_object_unref (e);
  g_free (path);
}

/* Plays @pipe until EOS (within 120 s); an ERROR fails the test.  The
 * pipeline is left in PLAYING for the caller to inspect. */
static inline void
run_to_eos (GstElement * pipe)
{
  GstBus *bus = gst_element_get_bus (pipe);
  GstMessage *msg;

  fail_unless (gst_element_set_state (pipe, GST_STATE_PLAYING) !=
      GST_STATE_CHANGE_FAILURE);
  msg = gst_bus_timed_pop_filtered (bus, 120 * GST_SECOND,
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  fail_unless (msg != NULL, "timeout");
  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
    GError *err = NULL;
    gchar *dbg = NULL;

    gst_message_parse_error (msg, &err, &dbg);
    fail ("pipeline error: %s (%s)", err->message, dbg);
  }
  gst_message_unref (msg);
  gst_object_unref (bus);
}
