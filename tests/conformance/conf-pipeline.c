/* conf-pipeline.c: the parts of a loop case, from its meta.json.
 *
 * One reader for every shape a loop case comes in:
 *  - a value that is the relative path of a pipeline folder
 *    (model_index.json) gives the pipeline and its parts;
 *  - part keys ("unet", "vae", "vqvae", "text_encoder", "tokenizer",
 *    "scheduler") whose value is a path that exists add or replace parts,
 *    relative to the case folder;
 *  - the case's own scheduler_config.json is the scheduler when nothing
 *    else names one;
 *  - "pipeline" (when it is not a path) names the class; without it the
 *    loop is a plain UNet2DModel sampling loop.
 */
#include "conf.h"

#include <stdio.h>
#include <string.h>

static const char *const part_keys[] = {
  "unet", "vae", "vqvae", "text_encoder", "tokenizer", "scheduler",
};

/* @v as a path relative to the case folder, when it is a string naming
 * something that exists. */
static char *
existing_path (Conf * c, JsonNode * v)
{
  if (!v || !JSON_NODE_HOLDS_VALUE (v) || json_node_get_value_type (v) != G_TYPE_STRING
      || !*json_node_get_string (v))
    return NULL;
  char *rel = g_build_filename (c->dir, json_node_get_string (v), NULL);
  char *path = g_canonicalize_filename (rel, NULL);     /* parts resolve as given */
  g_free (rel);
  if (g_file_test (path, G_FILE_TEST_EXISTS))
    return path;
  g_free (path);
  return NULL;
}

GePipeline *
conf_loop_pipeline (Conf * c, JsonObject * meta)
{
  GePipeline *p = NULL;
  GList *keys = json_object_get_members (meta);
  for (GList * l = keys; l && !p; l = l->next) {
    char *path = existing_path (c, json_object_get_member (meta, l->data));
    if (path && ge_pipeline_is_folder (path)) {
      GError *err = NULL;
      if (!(p = ge_pipeline_open (path, &err))) {
        printf ("%s\n", err->message);
        g_error_free (err);
        c->n_failed++;
        g_free (path);
        g_list_free (keys);
        return NULL;
      }
    }
    g_free (path);
  }
  g_list_free (keys);

  if (!p) {
    JsonNode *cls = json_object_get_member (meta, "pipeline");
    const char *name = cls && JSON_NODE_HOLDS_VALUE (cls)
        && json_node_get_value_type (cls) == G_TYPE_STRING
        ? json_node_get_string (cls) : "UNet2DModel sampling loop";
    p = ge_pipeline_new (name, c->dir);
  }
  for (guint i = 0; i < G_N_ELEMENTS (part_keys); i++) {
    char *path = existing_path (c, json_object_get_member (meta, part_keys[i]));
    if (path)
      ge_pipeline_set_part (p, part_keys[i], path, NULL);
    g_free (path);
  }
  if (!ge_pipeline_has_part (p, "scheduler")) {
    char *rel = g_build_filename (c->dir, "scheduler_config.json", NULL);
    char *sched = g_canonicalize_filename (rel, NULL);
    g_free (rel);
    if (g_file_test (sched, G_FILE_TEST_IS_REGULAR))
      ge_pipeline_set_part (p, "scheduler", sched, NULL);
    g_free (sched);
  }
  return p;
}

/* TRUE when meta.json describes a loop: it names a pipeline class, a
 * pipeline folder, or the U-Net that is sampled.  (A model case may name
 * a companion, such as the text encoder's tokenizer: not a loop.) */
gboolean
conf_is_loop (Conf * c, JsonObject * meta)
{
  if (json_object_has_member (meta, "pipeline"))
    return TRUE;
  gboolean loop = FALSE;
  GList *keys = json_object_get_members (meta);
  for (GList * l = keys; l && !loop; l = l->next) {
    char *path = existing_path (c, json_object_get_member (meta, l->data));
    loop = path && (ge_pipeline_is_folder (path) || strcmp (l->data, "unet") == 0);
    g_free (path);
  }
  g_list_free (keys);
  return loop;
}

void
conf_pipeline_case (Conf * c, JsonObject * meta)
{
  GePipeline *p = conf_loop_pipeline (c, meta);
  if (!p)
    return;
  const char *cls = ge_pipeline_class_name (p);
  JsonNode *task = json_object_get_member (meta, "task");
  const gboolean sdedit = task && JSON_NODE_HOLDS_VALUE (task)
      && g_strcmp0 (json_node_get_string (task), "sdedit") == 0;
  if (g_strcmp0 (cls, "RePaintPipeline") == 0 || sdedit)
    conf_pixel_case (c, p, meta);
  else if (g_str_has_prefix (cls, "StableDiffusion")
      || g_strcmp0 (cls, "LDMSuperResolutionPipeline") == 0)
    conf_sd_case (c, p, meta);
  else if (g_strcmp0 (cls, "UNet2DModel sampling loop") == 0
      || g_strcmp0 (cls, "DDIMPipeline") == 0 || g_strcmp0 (cls, "DDPMPipeline") == 0)
    conf_loop_case (c, p, meta);
  else {
    printf ("%s: a loop of the pipeline class %s is not supported\n", c->dir, cls);
    c->n_failed++;
  }
  ge_pipeline_free (p);
}
