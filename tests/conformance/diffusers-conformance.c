/* diffusers-conformance: checks the engine against reference outputs that
 * diffusers itself produced.
 *
 *   diffusers-conformance CASE_DIR
 *
 * CASE_DIR holds io.safetensors (inputs, outputs, debug taps) and either a
 * diffusers model (config.json + diffusion_pytorch_model.safetensors), a
 * scheduler_config.json, or a sampling loop whose meta.json names its model
 * folder.  Every output present is recomputed and compared; the program
 * prints the largest relative error (max|got - ref| / max|ref|) of each and
 * exits non-zero if any exceeds 1e-4 or nothing could be checked.
 */
#include "conf.h"

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
  else {
    printf ("%s: model class \"%s\" is not supported by the engine\n", dir,
        cls ? cls : "(none)");
    c->n_failed++;
  }
}

int
main (int argc, char **argv)
{
  if (argc != 2) {
    fprintf (stderr, "usage: %s CASE_DIR\n", argv[0]);
    return 2;
  }
  Conf c = { .dir = argv[1] };
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

  char *cls = model_class (&c, c.dir);
  char *sched = g_build_filename (c.dir, "scheduler_config.json", NULL);
  if (cls)
    run_model_case (&c, c.dir, cls);
  else if (g_file_test (sched, G_FILE_TEST_EXISTS)) {
    /* A loop names its model in meta.json; a bare scheduler case does not. */
    JsonParser *mp;
    JsonObject *meta = conf_read_json (&c, "meta.json", &mp);
    gboolean loop = FALSE;
    if (meta) {
      GList *keys = json_object_get_members (meta);
      for (GList * l = keys; l; l = l->next) {
        JsonNode *v = json_object_get_member (meta, l->data);
        if (JSON_NODE_HOLDS_VALUE (v) && json_node_get_value_type (v) == G_TYPE_STRING
            && g_str_has_prefix (json_node_get_string (v), "../"))
          loop = TRUE;
      }
      g_list_free (keys);
      g_object_unref (mp);
    }
    if (loop)
      conf_loop_case (&c);
    else
      conf_scheduler_case (&c);
  } else {
    printf ("%s: neither config.json nor scheduler_config.json\n", c.dir);
    c.n_failed++;
  }
  g_free (sched);
  g_free (cls);

  if (c.n_checked == 0 && c.n_failed == 0) {
    printf ("nothing was checked\n");
    c.n_failed++;
  }
  printf ("%d checks, %d failed, largest relative error %.3e (tolerance %.0e)\n",
      c.n_checked, c.n_failed, c.worst, CONF_TOL);
  ge_safetensors_free (c.io);
  return c.n_failed ? 1 : 0;
}
