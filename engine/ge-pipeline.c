/* ge-pipeline.c: see ge-pipeline.h. */
#include "ge-pipeline.h"
#include "ge-sampler.h"

#include <string.h>

typedef struct {
  char *path;                   /* resolved; NULL for [null, null] */
  char *class_name;             /* from the index, or NULL */
} Part;

struct _GePipeline {
  char *folder;
  char *class_name;
  GHashTable *parts;            /* name -> Part */
  JsonObject *index;            /* model_index.json (NULL: made by ge_pipeline_new) */
  JsonParser *scheduler_parser;
};

#define INDEX_NAME "model_index.json"

static void
part_free (gpointer data)
{
  Part *part = data;
  g_free (part->path);
  g_free (part->class_name);
  g_free (part);
}

gboolean
ge_pipeline_is_folder (const char *path)
{
  char *index = g_build_filename (path, INDEX_NAME, NULL);
  gboolean yes = g_file_test (path, G_FILE_TEST_IS_DIR)
      && g_file_test (index, G_FILE_TEST_IS_REGULAR);
  g_free (index);
  return yes;
}

GePipeline *
ge_pipeline_new (const char *class_name, const char *base_dir)
{
  GePipeline *p = g_new0 (GePipeline, 1);
  p->folder = g_strdup (base_dir);
  p->class_name = g_strdup (class_name);
  p->parts = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, part_free);
  return p;
}

void
ge_pipeline_free (GePipeline * p)
{
  if (!p)
    return;
  g_hash_table_unref (p->parts);
  g_clear_object (&p->scheduler_parser);
  g_free (p->folder);
  g_free (p->class_name);
  g_clear_pointer (&p->index, json_object_unref);
  g_free (p);
}

const char *
ge_pipeline_class_name (const GePipeline * p)
{
  return p->class_name;
}

const char *
ge_pipeline_folder (const GePipeline * p)
{
  return p->folder;
}

const char *
ge_pipeline_classes_joined (const char *const *classes, gsize * cache)
{
  if (g_once_init_enter (cache))
    g_once_init_leave (cache, (gsize) g_strjoinv (", ", (char **) classes));
  return (const char *) *cache;
}

int
ge_pipeline_find_class (const GePipeline * p, const char *const *classes, GError ** error)
{
  for (int i = 0; classes[i]; i++)
    if (g_strcmp0 (p->class_name, classes[i]) == 0)
      return i;
  char *list = g_strjoinv (", ", (char **) classes);
  ge_fail (error, GE_ERROR_UNSUPPORTED, p->folder,
      "the pipeline class %s is not one this task runs (supported: %s)",
      p->class_name, list);
  g_free (list);
  return -1;
}

static void
add_part (GePipeline * p, const char *part, char *path, const char *class_name)
{
  Part *pt = g_new0 (Part, 1);
  pt->path = path;
  pt->class_name = g_strdup (class_name);
  g_hash_table_replace (p->parts, g_strdup (part), pt);
}

void
ge_pipeline_set_part (GePipeline * p, const char *part, const char *path,
    const char *class_name)
{
  char *resolved = g_path_is_absolute (path) ? g_strdup (path)
      : g_build_filename (p->folder, path, NULL);
  add_part (p, part, resolved, class_name);
}

/* "part": [library, class], both strings, or both null. */
static gboolean
read_part (GePipeline * p, const char *index, const char *name, JsonNode * node,
    GError ** error)
{
  JsonArray *a = JSON_NODE_HOLDS_ARRAY (node) ? json_node_get_array (node) : NULL;
  if (!a || json_array_get_length (a) != 2)
    return ge_fail (error, GE_ERROR_CORRUPT, index,
        "\"%s\" must be a [library, class] pair", name);
  JsonNode *lib = json_array_get_element (a, 0), *cls = json_array_get_element (a, 1);
  if (JSON_NODE_HOLDS_NULL (lib) && JSON_NODE_HOLDS_NULL (cls)) {
    add_part (p, name, NULL, NULL);
    return TRUE;
  }
  if (!JSON_NODE_HOLDS_VALUE (lib) || json_node_get_value_type (lib) != G_TYPE_STRING
      || !JSON_NODE_HOLDS_VALUE (cls) || json_node_get_value_type (cls) != G_TYPE_STRING)
    return ge_fail (error, GE_ERROR_CORRUPT, index,
        "\"%s\" must be a pair of strings (or [null, null])", name);
  add_part (p, name, g_build_filename (p->folder, name, NULL),
      json_node_get_string (cls));
  return TRUE;
}

GePipeline *
ge_pipeline_open (const char *folder, GError ** error)
{
  char *index = g_build_filename (folder, INDEX_NAME, NULL);
  JsonParser *parser = json_parser_new ();
  GePipeline *p = NULL;
  GError *jerr = NULL;

  if (!g_file_test (index, G_FILE_TEST_IS_REGULAR)) {
    ge_fail (error, GE_ERROR_NOT_FOUND, folder,
        "not a diffusers pipeline folder: no " INDEX_NAME);
    goto out;
  }
  if (!json_parser_load_from_file (parser, index, &jerr)) {
    ge_fail (error, GE_ERROR_CORRUPT, index, "not valid JSON: %s", jerr->message);
    g_error_free (jerr);
    goto out;
  }
  JsonNode *root = json_parser_get_root (parser);
  if (!root || !JSON_NODE_HOLDS_OBJECT (root)) {
    ge_fail (error, GE_ERROR_CORRUPT, index, "not a JSON object");
    goto out;
  }
  JsonObject *o = json_node_get_object (root);
  JsonNode *cn = json_object_get_member (o, "_class_name");
  if (!cn || !JSON_NODE_HOLDS_VALUE (cn) || json_node_get_value_type (cn) != G_TYPE_STRING) {
    ge_fail (error, GE_ERROR_CORRUPT, index, "\"_class_name\" is missing or not a string");
    goto out;
  }
  p = ge_pipeline_new (json_node_get_string (cn), folder);
  p->index = json_object_ref (o);
  /* Keys starting with '_' are metadata; plain values (booleans such as
   * requires_safety_checker, or strings) are pipeline options, not parts. */
  GList *members = json_object_get_members (o);
  for (GList * l = members; l; l = l->next) {
    const char *name = l->data;
    JsonNode *v = json_object_get_member (o, name);
    if (name[0] == '_' || !JSON_NODE_HOLDS_ARRAY (v))
      continue;
    if (!read_part (p, index, name, v, error)) {
      g_clear_pointer (&p, ge_pipeline_free);
      break;
    }
  }
  g_list_free (members);

out:
  g_object_unref (parser);
  g_free (index);
  return p;
}

gboolean
ge_pipeline_option_int (const GePipeline * p, const char *key, gint64 fallback,
    gint64 * value, GError ** error)
{
  JsonNode *v = p->index ? json_object_get_member (p->index, key) : NULL;
  *value = fallback;
  if (!v || JSON_NODE_HOLDS_NULL (v))
    return TRUE;
  if (!JSON_NODE_HOLDS_VALUE (v) || json_node_get_value_type (v) != G_TYPE_INT64) {
    char *index = g_build_filename (p->folder, INDEX_NAME, NULL);
    ge_fail (error, GE_ERROR_CORRUPT, index, "\"%s\" is not an integer", key);
    g_free (index);
    return FALSE;
  }
  *value = json_node_get_int (v);
  return TRUE;
}

static const Part *
find (const GePipeline * p, const char *part)
{
  return g_hash_table_lookup (p->parts, part);
}

gboolean
ge_pipeline_has_part (const GePipeline * p, const char *part)
{
  const Part *pt = find (p, part);
  return pt && pt->path;
}

const char *
ge_pipeline_part_class (const GePipeline * p, const char *part)
{
  const Part *pt = find (p, part);
  return pt ? pt->class_name : NULL;
}

const char *
ge_pipeline_part_path (const GePipeline * p, const char *part)
{
  const Part *pt = find (p, part);
  return pt ? pt->path : NULL;
}

static gboolean
need_part (const GePipeline * p, const char *part, GError ** error)
{
  const Part *pt = find (p, part);
  if (!pt || !pt->path)
    return ge_fail (error, GE_ERROR_NOT_FOUND, p->folder,
        "the %s has no %s part%s", p->class_name, part,
        pt ? " (model_index.json gives it as [null, null])" : "");
  if (!g_file_test (pt->path, G_FILE_TEST_EXISTS))
    return ge_fail (error, GE_ERROR_NOT_FOUND, pt->path,
        "the %s part of the %s is missing", part, p->class_name);
  return TRUE;
}

GeModelFile *
ge_pipeline_open_model (GePipeline * p, const char *part, GError ** error)
{
  if (!need_part (p, part, error))
    return NULL;
  const Part *pt = find (p, part);
  GeModelFile *mf = ge_model_file_open (pt->path, error);
  if (mf && pt->class_name
      && g_strcmp0 (pt->class_name, ge_model_file_class (mf)) != 0) {
    ge_fail (error, GE_ERROR_CORRUPT, pt->path,
        "model_index.json gives the %s part as %s but its config says %s",
        part, pt->class_name, ge_model_file_class (mf));
    g_clear_pointer (&mf, ge_model_file_unref);
  }
  return mf;
}

JsonObject *
ge_pipeline_scheduler_config (GePipeline * p, GError ** error)
{
  if (p->scheduler_parser)
    return json_node_get_object (json_parser_get_root (p->scheduler_parser));
  if (!need_part (p, "scheduler", error))
    return NULL;
  const char *path = ge_pipeline_part_path (p, "scheduler");
  char *file = g_file_test (path, G_FILE_TEST_IS_DIR)
      ? g_build_filename (path, "scheduler_config.json", NULL) : g_strdup (path);
  JsonParser *parser = NULL;
  JsonObject *o = ge_sampler_config_load (file, &parser, error);
  if (o)
    p->scheduler_parser = g_steal_pointer (&parser);
  g_clear_object (&parser);
  g_free (file);
  return o;
}
