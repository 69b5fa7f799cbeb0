/* elementcheck.h: what the element tests share (included by the test files
 * that use it; static functions, no library). */
#pragma once

#include <gst/check/gstcheck.h>
#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

/* @name in the folder the environment variable @env names (meson sets
 * them: GE_TEST_MODELS, GE_TEST_SAMPLES ...). */
static inline gchar *
test_path (const gchar * env, const gchar * name)
{
  const gchar *dir = g_getenv (env);

  fail_unless (dir != NULL, "%s not set (run through meson test)", env);
  return g_build_filename (dir, name, NULL);
}

/* Takes @e to PAUSED: the state change must fail with one ERROR of
 * @domain/@code whose message names @name and which has debug text, and the
 * model load must be announced as failed (a PROGRESS ERROR). */
static inline void
expect_element_start_error (GstElement * e, GQuark domain, gint code,
    const gchar * name)
{
  GstBus *bus = gst_bus_new ();
  GstMessage *msg;
  GError *err = NULL;
  gchar *debug = NULL;
  gboolean progress_error = FALSE;

  gst_element_set_bus (e, bus);
  fail_unless_equals_int (gst_element_set_state (e, GST_STATE_PAUSED),
      GST_STATE_CHANGE_FAILURE);
  msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  fail_unless (msg != NULL, "%s: no ERROR message", name);
  gst_message_parse_error (msg, &err, &debug);
  GST_INFO ("error: %s (%s)", err->message, debug);
  fail_unless (err->domain == domain, "domain %s, expected %s",
      g_quark_to_string (err->domain), g_quark_to_string (domain));
  fail_unless_equals_int (err->code, code);
  fail_unless (strstr (err->message, name) != NULL, "message \"%s\" does not "
      "name %s", err->message, name);
  fail_unless (debug != NULL && debug[0]);
  g_clear_error (&err);
  g_free (debug);
  gst_message_unref (msg);
  while ((msg = gst_bus_pop_filtered (bus, GST_MESSAGE_PROGRESS))) {
    GstProgressType type;

    gst_message_parse_progress (msg, &type, NULL, NULL);
    progress_error |= type == GST_PROGRESS_TYPE_ERROR;
    gst_message_unref (msg);
  }
  fail_unless (progress_error, "%s: the load was not announced as failed",
      name);
  gst_element_set_state (e, GST_STATE_NULL);
  gst_element_set_bus (e, NULL);
  gst_object_unref (bus);
}

/* A @factory element with model-file=@file (of GE_TEST_MODELS): as
 * expect_element_start_error, the message naming @file. */
static inline void
expect_start_error (const gchar * factory, const gchar * file, GQuark domain,
    gint code)
{
  GstElement *e = gst_element_factory_make (factory, NULL);
  gchar *path = test_path ("GE_TEST_MODELS", file);

  g_object_set (e, "model-file", path, NULL);
  expect_element_start_error (e, domain, code, file);
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

/* ---- diffusers pipeline folders of test parts ------------------------- */

typedef struct
{
  const gchar *part;            /* "unet" */
  const gchar *library, *cls;   /* ["diffusers", "UNet2DConditionModel"] */
  const gchar *env, *path;      /* the part's folder: env var + relative */
} PipelinePart;

/* A pipeline folder of @cls in a new temporary folder: the parts linked,
 * model_index.json written.  @parts ends with a NULL part. */
static inline gchar *
make_pipeline_folder (const gchar * cls, const PipelinePart * const *parts)
{
  GError *err = NULL;
  gchar *dir = g_dir_make_tmp ("ge-pipeline-XXXXXX", &err);
  GString *index = g_string_new (NULL);
  gchar *file;

  fail_unless (dir != NULL, "%s", err ? err->message : "");
  g_string_append_printf (index, "{\n  \"_class_name\": \"%s\",\n"
      "  \"_diffusers_version\": \"0.35.2\",\n"
      "  \"safety_checker\": [null, null]", cls);
  for (gint i = 0; parts[i]; i++) {
    const PipelinePart *p = parts[i];
    gchar *target = test_path (p->env, p->path);
    gchar *link = g_build_filename (dir, p->part, NULL);

    fail_unless (symlink (target, link) == 0, "symlink %s", link);
    g_string_append_printf (index, ",\n  \"%s\": [\"%s\", \"%s\"]", p->part,
        p->library, p->cls);
    g_free (target);
    g_free (link);
  }
  g_string_append (index, "\n}\n");
  file = g_build_filename (dir, "model_index.json", NULL);
  fail_unless (g_file_set_contents (file, index->str, -1, NULL));
  g_free (file);
  g_string_free (index, TRUE);
  return dir;
}

static inline void
remove_folder (gchar * dir)
{
  GDir *d = g_dir_open (dir, 0, NULL);
  const gchar *name;

  while (d && (name = g_dir_read_name (d))) {
    gchar *p = g_build_filename (dir, name, NULL);
    g_unlink (p);
    g_free (p);
  }
  if (d)
    g_dir_close (d);
  g_rmdir (dir);
  g_free (dir);
}
