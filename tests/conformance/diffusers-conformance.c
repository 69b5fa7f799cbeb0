/* diffusers-conformance: checks the engine against reference outputs that
 * diffusers itself produced.
 *
 *   diffusers-conformance CASE_DIR
 *
 * CASE_DIR holds io.safetensors (inputs, outputs, debug taps) and either a
 * diffusers model (config.json + diffusion_pytorch_model.safetensors), a
 * scheduler_config.json, a sampling loop whose meta.json names its pipeline
 * or its parts, or a tokenizer folder (vocab.json + merges.txt, no
 * config.json).  Every output present is recomputed and compared; the
 * program prints the largest relative error (max|got - ref| / max|ref|) of
 * each and exits non-zero if any exceeds 1e-4 or nothing could be checked.
 * A case also fails on every stored tensor it neither read as an input nor
 * checked ("unchecked output: KEY"); a float64 reference KEY_f64 is
 * checked against the same float32 result as KEY.
 */
#include "conf.h"
#include "ge-model-file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *
model_class (Conf * c, const char *dir)
{
  char *path = g_build_filename (dir, "config.json", NULL);
  char *cls = NULL;
  JsonParser *p = json_parser_new ();
  if (json_parser_load_from_file (p, path, NULL)
      && JSON_NODE_HOLDS_OBJECT (json_parser_get_root (p))) {
    JsonObject *o = json_node_get_object (json_parser_get_root (p));
    if (json_object_has_member (o, "_class_name"))
      cls = g_strdup (json_object_get_string_member (o, "_class_name"));
    else if (json_object_has_member (o, "architectures")
        || json_object_has_member (o, "model_type")) {
      /* A transformers model: the engine's loader says which. */
      GeModelFile *mf = ge_model_file_open (dir, NULL);
      cls = g_strdup (mf ? ge_model_file_class (mf) : "(unreadable transformers model)");
      ge_model_file_unref (mf);
    }
  }
  g_object_unref (p);
  g_free (path);
  return cls;
}

static void
run_model_case (Conf * c, const char *dir, const char *cls)
{
  if (g_strcmp0 (cls, "UNet2DModel") == 0 || g_strcmp0 (cls, "UNet2DConditionModel") == 0)
    conf_unet_case (c, dir);
  else if (g_strcmp0 (cls, "AutoencoderKL") == 0)
    conf_vae_case (c, dir);
  else if (g_strcmp0 (cls, "VQModel") == 0)
    conf_vq_case (c, dir);
  else if (g_strcmp0 (cls, "CLIPTextModel") == 0
      || g_strcmp0 (cls, "CLIPTextModelWithProjection") == 0)
    conf_clip_text_case (c, dir);
  else if (g_strcmp0 (cls, "AutoencoderTiny") == 0)
    conf_tiny_case (c, dir);
  else {
    printf ("%s: model class \"%s\" is not supported by the engine\n", dir,
        cls ? cls : "(none)");
    c->n_failed++;
    return;
  }
  /* Whatever the case stores, it checks: an output the reader does not
   * know (a new or renamed key) fails instead of going unchecked. */
  conf_fail_unchecked (c);
}

int
main (int argc, char **argv)
{
  if (argc != 2) {
    fprintf (stderr, "usage: %s CASE_DIR\n", argv[0]);
    return 2;
  }
  Conf c = { .dir = argv[1] };
  c.used = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  char *io = g_build_filename (c.dir, "io.safetensors", NULL);
  GError *err = NULL;
  c.io = ge_safetensors_open (io, &err);
  g_free (io);
  if (!c.io) {
    fprintf (stderr, "%s\n", err->message);
    g_error_free (err);
    return 1;
  }
  printf ("case %s\n", c.dir);

  /* A loop names its pipeline or its parts in meta.json; a model case
   * has config.json; a bare scheduler case only scheduler_config.json. */
  char *cls = model_class (&c, c.dir);
  char *sched = g_build_filename (c.dir, "scheduler_config.json", NULL);
  char *vocab = g_build_filename (c.dir, "vocab.json", NULL);
  char *merges = g_build_filename (c.dir, "merges.txt", NULL);
  char *meta_path = g_build_filename (c.dir, "meta.json", NULL);
  JsonParser *mp = NULL;
  JsonObject *meta = g_file_test (meta_path, G_FILE_TEST_EXISTS)
      ? conf_read_json (&c, "meta.json", &mp) : NULL;
  if (meta && conf_is_loop (&c, meta))
    conf_pipeline_case (&c, meta);
  else if (cls)
    run_model_case (&c, c.dir, cls);
  else if (g_file_test (sched, G_FILE_TEST_EXISTS))
    conf_scheduler_case (&c);
  else if (g_file_test (vocab, G_FILE_TEST_EXISTS)
      && g_file_test (merges, G_FILE_TEST_EXISTS))
    conf_tokenizer_case (&c);
  else {
    printf ("%s: neither a loop (meta.json), config.json, scheduler_config.json"
        " nor vocab.json + merges.txt\n", c.dir);
    c.n_failed++;
  }
  g_clear_object (&mp);
  g_free (meta_path);
  g_free (sched);
  g_free (vocab);
  g_free (merges);
  g_free (cls);

  if (c.n_checked == 0 && c.n_failed == 0) {
    printf ("nothing was checked\n");
    c.n_failed++;
  }
  printf ("%d checks, %d failed, largest relative error %.3e (tolerance %.0e)\n",
      c.n_checked, c.n_failed, c.worst, CONF_TOL);
  ge_safetensors_free (c.io);
  g_hash_table_unref (c.used);
  return c.n_failed ? 1 : 0;
}
