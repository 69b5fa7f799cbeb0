/* test-pipeline.c: reading diffusers pipeline folders (model_index.json).
 *
 * Each broken folder must fail with the expected GE_ERROR code and a
 * message naming the file and the field, never crash; a good folder gives
 * its class, its parts and their classes, and opens its models.
 */
#include <glib.h>
#include <glib/gstdio.h>
#include <string.h>

#include "ge-pipeline.h"

static char *tmpdir;

static char *
make_folder (const char *name, const char *index)
{
  char *dir = g_build_filename (tmpdir, name, NULL);
  g_assert_cmpint (g_mkdir_with_parents (dir, 0755), ==, 0);
  if (index) {
    char *path = g_build_filename (dir, "model_index.json", NULL);
    g_assert_true (g_file_set_contents (path, index, -1, NULL));
    g_free (path);
  }
  return dir;
}

static void
write_file (const char *dir, const char *sub, const char *name, const char *text)
{
  char *d = g_build_filename (dir, sub, NULL);
  g_assert_cmpint (g_mkdir_with_parents (d, 0755), ==, 0);
  char *path = g_build_filename (d, name, NULL);
  g_assert_true (g_file_set_contents (path, text, -1, NULL));
  g_free (path);
  g_free (d);
}

/* The fixture's UNet folder, copied as the "unet" part. */
static void
copy_unet (const char *dir, const char *class_override)
{
  const char *fx = g_getenv ("GE_TEST_FIXTURES");
  g_assert_nonnull (fx);
  char *src = g_build_filename (fx, "diffusers", "unet_ddpm_small", NULL);
  char *cfg = g_build_filename (src, "config.json", NULL);
  char *wts = g_build_filename (src, "diffusion_pytorch_model.safetensors", NULL);
  char *text, *bytes;
  gsize n;
  g_assert_true (g_file_get_contents (cfg, &text, NULL, NULL));
  if (class_override) {
    char **parts = g_strsplit (text, "\"UNet2DModel\"", 2);
    g_assert_nonnull (parts[1]);
    g_free (text);
    text = g_strjoin (class_override, parts[0], parts[1], NULL);
    g_strfreev (parts);
  }
  write_file (dir, "unet", "config.json", text);
  g_assert_true (g_file_get_contents (wts, &bytes, &n, NULL));
  char *d = g_build_filename (dir, "unet", "diffusion_pytorch_model.safetensors", NULL);
  g_assert_true (g_file_set_contents (d, bytes, (gssize) n, NULL));
  g_free (d);
  g_free (bytes);
  g_free (text);
  g_free (cfg);
  g_free (wts);
  g_free (src);
}

static const char *good_index =
    "{\"_class_name\": \"DDPMPipeline\", \"_diffusers_version\": \"0.35.2\","
    " \"unet\": [\"diffusers\", \"UNet2DModel\"],"
    " \"scheduler\": [\"diffusers\", \"DDPMScheduler\"],"
    " \"safety_checker\": [null, null], \"requires_safety_checker\": false}";

static void
test_good (void)
{
  char *dir = make_folder ("good", good_index);
  copy_unet (dir, NULL);
  write_file (dir, "scheduler", "scheduler_config.json",
      "{\"_class_name\": \"DDPMScheduler\", \"num_train_timesteps\": 1000}");
  GError *err = NULL;
  g_assert_true (ge_pipeline_is_folder (dir));
  GePipeline *p = ge_pipeline_open (dir, &err);
  g_assert_no_error (err);
  g_assert_cmpstr (ge_pipeline_class_name (p), ==, "DDPMPipeline");
  g_assert_true (ge_pipeline_has_part (p, "unet"));
  g_assert_cmpstr (ge_pipeline_part_class (p, "unet"), ==, "UNet2DModel");
  g_assert_false (ge_pipeline_has_part (p, "safety_checker"));
  g_assert_false (ge_pipeline_has_part (p, "requires_safety_checker"));
  GeModelFile *mf = ge_pipeline_open_model (p, "unet", &err);
  g_assert_no_error (err);
  g_assert_cmpstr (ge_model_file_class (mf), ==, "UNet2DModel");
  ge_model_file_unref (mf);
  JsonObject *s = ge_pipeline_scheduler_config (p, &err);
  g_assert_no_error (err);
  g_assert_cmpint (json_object_get_int_member (s, "num_train_timesteps"), ==, 1000);
  g_assert_true (ge_pipeline_scheduler_config (p, &err) == s);

  /* A part the index does not name, or gives as [null, null]. */
  g_assert_null (ge_pipeline_open_model (p, "vae", &err));
  g_assert_error (err, GE_ERROR, GE_ERROR_NOT_FOUND);
  g_assert_nonnull (strstr (err->message, "has no vae part"));
  g_clear_error (&err);
  g_assert_null (ge_pipeline_open_model (p, "safety_checker", &err));
  g_assert_error (err, GE_ERROR, GE_ERROR_NOT_FOUND);
  g_assert_nonnull (strstr (err->message, "[null, null]"));
  g_clear_error (&err);
  ge_pipeline_free (p);
  g_free (dir);
}

typedef struct {
  const char *name, *index;
  GeErrorCode code;
  const char *needle;           /* in the message */
} Broken;

static const Broken broken[] = {
  { "no-index", NULL, GE_ERROR_NOT_FOUND, "no model_index.json" },
  { "not-json", "{\"_class_name\": ", GE_ERROR_CORRUPT, "not valid JSON" },
  { "not-object", "[1, 2]", GE_ERROR_CORRUPT, "not a JSON object" },
  { "no-class", "{\"unet\": [\"diffusers\", \"UNet2DModel\"]}", GE_ERROR_CORRUPT,
      "_class_name" },
  { "class-not-string", "{\"_class_name\": 3}", GE_ERROR_CORRUPT, "_class_name" },
  { "part-one", "{\"_class_name\": \"X\", \"unet\": [\"diffusers\"]}",
      GE_ERROR_CORRUPT, "\"unet\" must be a [library, class] pair" },
  { "part-types", "{\"_class_name\": \"X\", \"unet\": [\"diffusers\", 4]}",
      GE_ERROR_CORRUPT, "\"unet\" must be a pair of strings" },
};

static void
test_broken (gconstpointer data)
{
  const Broken *b = data;
  char *dir = make_folder (b->name, b->index);
  GError *err = NULL;
  g_assert_null (ge_pipeline_open (dir, &err));
  g_assert_error (err, GE_ERROR, (gint) b->code);
  g_assert_nonnull (strstr (err->message, b->name));      /* the path */
  g_assert_nonnull (strstr (err->message, b->needle));
  g_error_free (err);
  g_free (dir);
}

/* Parts that are missing on disk or not what the index says they are. */
static void
test_inconsistent (void)
{
  GError *err = NULL;
  char *dir = make_folder ("missing-part", good_index);
  GePipeline *p = ge_pipeline_open (dir, &err);
  g_assert_no_error (err);
  g_assert_null (ge_pipeline_open_model (p, "unet", &err));
  g_assert_error (err, GE_ERROR, GE_ERROR_NOT_FOUND);
  g_assert_nonnull (strstr (err->message, "unet"));
  g_clear_error (&err);
  g_assert_null (ge_pipeline_scheduler_config (p, &err));
  g_assert_error (err, GE_ERROR, GE_ERROR_NOT_FOUND);
  g_assert_nonnull (strstr (err->message, "scheduler"));
  g_clear_error (&err);
  ge_pipeline_free (p);
  g_free (dir);

  dir = make_folder ("wrong-class", good_index);
  copy_unet (dir, "\"UNet2DConditionModel\"");
  write_file (dir, "scheduler", "scheduler_config.json", "{\"_class_name\": ");
  p = ge_pipeline_open (dir, &err);
  g_assert_no_error (err);
  g_assert_null (ge_pipeline_open_model (p, "unet", &err));
  g_assert_error (err, GE_ERROR, GE_ERROR_CORRUPT);
  g_assert_nonnull (strstr (err->message, "gives the unet part as UNet2DModel"));
  g_clear_error (&err);
  g_assert_null (ge_pipeline_scheduler_config (p, &err));
  g_assert_error (err, GE_ERROR, GE_ERROR_CORRUPT);
  g_assert_nonnull (strstr (err->message, "scheduler_config.json"));
  g_clear_error (&err);
  ge_pipeline_free (p);
  g_free (dir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  tmpdir = g_dir_make_tmp ("ge-pipeline-XXXXXX", NULL);
  g_assert_nonnull (tmpdir);
  g_test_add_func ("/pipeline/good", test_good);
  for (guint i = 0; i < G_N_ELEMENTS (broken); i++) {
    char *path = g_strdup_printf ("/pipeline/broken/%s", broken[i].name);
    g_test_add_data_func (path, &broken[i], test_broken);
    g_free (path);
  }
  g_test_add_func ("/pipeline/inconsistent", test_inconsistent);
  int rc = g_test_run ();
  /* The folders are small; leave nothing behind. */
  char *argv_rm[] = { (char *) "rm", (char *) "-rf", tmpdir, NULL };
  g_spawn_sync (NULL, argv_rm, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, NULL, NULL, NULL);
  g_free (tmpdir);
  return rc;
}
