/* test-model-search: where the elements find their default models.
 *
 * The search path is the installed data folder (GST_GENERATIVE_MODEL_DIR
 * replaces it), then each folder of GST_GENERATIVE_MODEL_PATH in order; the
 * first folder holding the file wins.  An element that finds its model
 * nowhere fails to start with a RESOURCE/NOT_FOUND error naming the folders
 * it searched.  The folders here are made in a temporary directory and hold
 * links to the tiny test models (GE_TEST_MODELS). */
#include "elementcheck.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <gst/check/gstharness.h>
#include <unistd.h>

static gchar *tmp;

/* @dir/@name as a link to the test model @model; returns @dir/@name. */
static gchar *
put (const gchar * dir, const gchar * name, const gchar * model)
{
  gchar *d = g_build_filename (tmp, dir, NULL);
  gchar *target = test_path ("GE_TEST_MODELS", model);
  gchar *link = g_build_filename (d, name, NULL);

  fail_unless (g_mkdir_with_parents (d, 0755) == 0);
  fail_unless (symlink (target, link) == 0, "symlink %s: %s", link,
      g_strerror (errno));
  g_free (d);
  g_free (target);
  return link;
}

static gchar *
dir_of (const gchar * dir)
{
  gchar *d = g_build_filename (tmp, dir, NULL);

  g_mkdir_with_parents (d, 0755);
  return d;
}

static gchar *
model_file_of (const gchar * factory)
{
  GstElement *e = gst_element_factory_make (factory, NULL);
  gchar *file = NULL;

  fail_unless (e != NULL);
  g_object_get (e, "model-file", &file, NULL);
  gst_object_unref (e);
  return file;
}

static void
setup (void)
{
  tmp = g_dir_make_tmp ("ge-model-search-XXXXXX", NULL);
  fail_unless (tmp != NULL);
}

static void
remove_tree (const gchar * path)
{
  GDir *dir = g_dir_open (path, 0, NULL);
  const gchar *name;

  if (dir) {
    while ((name = g_dir_read_name (dir))) {
      gchar *p = g_build_filename (path, name, NULL);

      if (g_file_test (p, G_FILE_TEST_IS_DIR)
          && !g_file_test (p, G_FILE_TEST_IS_SYMLINK))
        remove_tree (p);
      else
        g_unlink (p);
      g_free (p);
    }
    g_dir_close (dir);
  }
  g_rmdir (path);
}

static void
teardown (void)
{
  remove_tree (tmp);
  g_clear_pointer (&tmp, g_free);
  g_unsetenv ("GST_GENERATIVE_MODEL_PATH");
}

/* Each element's model from the folder that has it; the first folder of
 * the list wins; empty entries are skipped. */
GST_START_TEST (test_path_order)
{
  gchar *installed = dir_of ("installed");
  gchar *sr_a = put ("a", "diffusionsr-x2.safetensors",
      "diffusionsr-x2.safetensors");
  gchar *sr_b = put ("b", "diffusionsr-x2.safetensors",
      "diffusionsr-x2.safetensors");
  gchar *gs = put ("b", "vae.safetensors", "vae.safetensors");
  gchar *da = g_path_get_dirname (sr_a), *db = g_path_get_dirname (sr_b);
  gchar *list = g_strjoin (G_SEARCHPATH_SEPARATOR_S, "",
      "/nonexistent/folder", da, db, NULL);
  gchar *file;

  g_setenv ("GST_GENERATIVE_MODEL_DIR", installed, TRUE);
  g_setenv ("GST_GENERATIVE_MODEL_PATH", list, TRUE);

  file = model_file_of ("diffusionsr");
  fail_unless_equals_string (file, sr_a);
  g_free (file);
  file = model_file_of ("vaeencode");
  fail_unless_equals_string (file, gs);
  g_free (file);

  /* the installed folder comes first */
  {
    gchar *mine = put ("installed", "vae.safetensors",
        "vae.safetensors");

    file = model_file_of ("vaeencode");
    fail_unless_equals_string (file, mine);
    g_free (file);
    g_free (mine);
  }

  /* and the element runs with what it found */
  {
    GstHarness *h = gst_harness_new ("diffusionsr");
    GstBuffer *out;

    gst_harness_set_src_caps_str (h,
        "video/x-raw,format=RGB,width=8,height=8,framerate=30/1");
    out = gst_harness_push_and_pull (h, gst_buffer_new_allocate (NULL,
            8 * 8 * 3, NULL));
    fail_unless (out != NULL);
    gst_buffer_unref (out);
    gst_harness_teardown (h);
  }

  g_free (installed);
  g_free (sr_a);
  g_free (sr_b);
  g_free (gs);
  g_free (da);
  g_free (db);
  g_free (list);
}

GST_END_TEST;

/* Found nowhere: model-file and the error say where the element looked. */
GST_START_TEST (test_not_found_says_where)
{
  gchar *installed = dir_of ("installed");
  gchar *other = dir_of ("other");
  GstElement *e;
  gchar *file;

  g_setenv ("GST_GENERATIVE_MODEL_DIR", installed, TRUE);
  g_unsetenv ("GST_GENERATIVE_MODEL_PATH");
  file = model_file_of ("diffusionimg2img");
  fail_unless (strstr (file, "diffusionimg2img.safetensors") != NULL, "%s",
      file);
  fail_unless (strstr (file, installed) != NULL, "%s", file);
  fail_unless (strstr (file, "GST_GENERATIVE_MODEL_PATH is not set") != NULL,
      "%s", file);
  g_free (file);

  g_setenv ("GST_GENERATIVE_MODEL_PATH", other, TRUE);
  e = gst_element_factory_make ("diffusionimg2img", NULL);
  /* the error names the file and every folder searched */
  expect_element_start_error (e, GST_RESOURCE_ERROR,
      GST_RESOURCE_ERROR_NOT_FOUND, "diffusionimg2img.safetensors");
  expect_element_start_error (e, GST_RESOURCE_ERROR,
      GST_RESOURCE_ERROR_NOT_FOUND, installed);
  expect_element_start_error (e, GST_RESOURCE_ERROR,
      GST_RESOURCE_ERROR_NOT_FOUND, other);
  gst_object_unref (e);

  /* model-file set: taken as it is, never searched */
  e = gst_element_factory_make ("diffusionimg2img", NULL);
  g_object_set (e, "model-file", "mine.safetensors", NULL);
  g_object_get (e, "model-file", &file, NULL);
  fail_unless_equals_string (file, "mine.safetensors");
  g_free (file);
  gst_object_unref (e);

  g_free (installed);
  g_free (other);
}

GST_END_TEST;

static Suite *
model_search_suite (void)
{
  Suite *s = suite_create ("model-search");
  TCase *tc = tcase_create ("general");

  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_add_test (tc, test_path_order);
  tcase_add_test (tc, test_not_found_says_where);
  suite_add_tcase (s, tc);
  return s;
}

GST_CHECK_MAIN (model_search);
