#include "ge-model-file.h"
#include "ge-safetensors.h"

#include <stdlib.h>
#include <math.h>
#include <string.h>

struct _GeModelFile {
  gint refcount;
  char *path;                   /* what the user gave */
  GeSafetensors *st;
  JsonParser *parser;           /* owns the config */
  JsonObject *config;
  char *class_name;
  GHashTable *aliases;          /* current name -> name in the file */
  GHashTable *converted;        /* name -> float* we own */
  GSList *derived;              /* ge_model_file_alloc () blocks */
  gsize derived_bytes;
  GMutex lock;                  /* derived: bf16 copies are made at run time */
};

#define WEIGHTS_NAME "diffusion_pytorch_model.safetensors"
#define TRANSFORMERS_WEIGHTS_NAME "model.safetensors"

/* diffusers' _convert_deprecated_attention_blocks, as a lookup table. */
static const char *legacy[][2] = {
  { ".query.", ".to_q." }, { ".key.", ".to_k." }, { ".value.", ".to_v." },
  { ".proj_attn.", ".to_out.0." },
};

static void
add_aliases (GeModelFile * mf)
{
  mf->aliases = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  for (guint i = 0; i < ge_safetensors_n_tensors (mf->st); i++) {
    const char *name = ge_safetensors_nth (mf->st, i)->name;
    for (guint k = 0; k < G_N_ELEMENTS (legacy); k++) {
      const char *hit = strstr (name, legacy[k][0]);
      if (!hit || !strstr (name, "attention"))
        continue;
      char *cur = g_strdup_printf ("%.*s%s%s", (int) (hit - name), name,
          legacy[k][1], hit + strlen (legacy[k][0]));
      g_hash_table_insert (mf->aliases, cur, (gpointer) name);
    }
  }
}

static gboolean
parse_config (GeModelFile * mf, const char *text, gssize len, const char *where,
    GError ** error)
{
  GError *jerr = NULL;
  mf->parser = json_parser_new ();
  if (!json_parser_load_from_data (mf->parser, text, len, &jerr)) {
    ge_fail (error, GE_ERROR_CORRUPT, mf->path, "%s is not valid JSON: %s", where,
        jerr->message);
    g_error_free (jerr);
    return FALSE;
  }
  JsonNode *root = json_parser_get_root (mf->parser);
  if (!root || !JSON_NODE_HOLDS_OBJECT (root)) {
    g_set_error (error, GE_ERROR, GE_ERROR_CORRUPT, "%s: %s is not a JSON object",
        mf->path, where);
    return FALSE;
  }
  mf->config = json_node_get_object (root);
  return TRUE;
}

static const char *
string_member (JsonObject * o, const char *key)
{
  JsonNode *n = json_object_get_member (o, key);
  if (n && JSON_NODE_HOLDS_VALUE (n) && json_node_get_value_type (n) == G_TYPE_STRING)
    return json_node_get_string (n);
  return NULL;
}

/* Sets the class of a folder's config.json and returns the weights file
 * name: diffusers names its class in "_class_name"; transformers lists it
 * first in "architectures", or (configs saved from a bare config object)
 * only gives "model_type". */
static const char *
folder_class (GeModelFile * mf)
{
  const char *cls = string_member (mf->config, "_class_name");
  if (cls) {
    mf->class_name = g_strdup (cls);
    return WEIGHTS_NAME;
  }
  JsonNode *an = json_object_get_member (mf->config, "architectures");
  if (an && JSON_NODE_HOLDS_ARRAY (an) && json_array_get_length (json_node_get_array (an)) > 0) {
    JsonNode *a0 = json_array_get_element (json_node_get_array (an), 0);
    if (JSON_NODE_HOLDS_VALUE (a0) && json_node_get_value_type (a0) == G_TYPE_STRING)
      mf->class_name = g_strdup (json_node_get_string (a0));
  } else if (g_strcmp0 (string_member (mf->config, "model_type"), "clip_text_model") == 0)
    mf->class_name = g_strdup ("CLIPTextModel");
  return mf->class_name ? TRANSFORMERS_WEIGHTS_NAME : NULL;
}

GeModelFile *
ge_model_file_open (const char *path, GError ** error)
{
  GeModelFile *mf = g_new0 (GeModelFile, 1);
  mf->refcount = 1;
  g_mutex_init (&mf->lock);
  mf->path = g_strdup (path);
  mf->converted = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, g_free);

  if (g_file_test (path, G_FILE_TEST_IS_DIR)) {
    char *cfg = g_build_filename (path, "config.json", NULL);
    char *wts = NULL;
    char *text = NULL;
    gsize len = 0;
    GError *ferr = NULL;
    gboolean ok = g_file_get_contents (cfg, &text, &len, &ferr);
    if (!ok) {
      g_set_error (error, GE_ERROR, GE_ERROR_NOT_FOUND,
          "%s: not a model: a diffusers folder needs config.json (%s)", path,
          ferr->message);
      g_error_free (ferr);
    } else
      ok = parse_config (mf, text, (gssize) len, "config.json", error);
    g_free (text);
    const char *weights = ok ? folder_class (mf) : NULL;
    if (ok && !weights) {
      g_set_error (error, GE_ERROR, GE_ERROR_UNSUPPORTED, "%s: config.json does not say the "
          "model's architecture (no \"_class_name\" nor \"architectures\")", path);
      ok = FALSE;
    }
    if (ok) {
      wts = g_build_filename (path, weights, NULL);
      if (!g_file_test (wts, G_FILE_TEST_EXISTS)) {
        /* Hub repositories may carry only the half-precision variant. */
        char *base = g_strndup (weights, strlen (weights) - strlen (".safetensors"));
        char *fp16 = g_strdup_printf ("%s%c%s.fp16.safetensors", path, G_DIR_SEPARATOR, base);
        g_free (base);
        if (g_file_test (fp16, G_FILE_TEST_EXISTS)) {
          g_free (wts);
          wts = fp16;
        } else
          g_free (fp16);
      }
      ok = (mf->st = ge_safetensors_open (wts, error)) != NULL;
    }
    g_free (cfg);
    g_free (wts);
    if (!ok)
      goto fail;
  } else {
    if (!(mf->st = ge_safetensors_open (path, error)))
      goto fail;
    const char *arch = ge_safetensors_metadata (mf->st, "architecture");
    const char *cfg = ge_safetensors_metadata (mf->st, "config");
    if (!cfg) {
      g_set_error (error, GE_ERROR, GE_ERROR_UNSUPPORTED,
          "%s: not a gst-generative model: its __metadata__ has no \"config\" "
          "(a diffusers checkpoint loads as a folder with config.json)", path);
      goto fail;
    }
    if (!parse_config (mf, cfg, -1, "__metadata__ config", error))
      goto fail;
    if (arch)
      mf->class_name = g_strdup (arch);
    else {
      JsonNode *cn = json_object_get_member (mf->config, "_class_name");
      if (cn && JSON_NODE_HOLDS_VALUE (cn) && json_node_get_value_type (cn) == G_TYPE_STRING)
        mf->class_name = g_strdup (json_node_get_string (cn));
    }
  }
  if (!mf->class_name) {
    g_set_error (error, GE_ERROR, GE_ERROR_UNSUPPORTED,
        "%s: the model does not say its architecture (no \"_class_name\")", path);
    goto fail;
  }
  add_aliases (mf);
  return mf;

fail:
  ge_model_file_unref (mf);
  return NULL;
}

GeModelFile *
ge_model_file_ref (GeModelFile * mf)
{
  g_atomic_int_inc (&mf->refcount);
  return mf;
}

void
ge_model_file_unref (GeModelFile * mf)
{
  if (!mf || !g_atomic_int_dec_and_test (&mf->refcount))
    return;
  g_clear_pointer (&mf->aliases, g_hash_table_unref);
  g_clear_pointer (&mf->converted, g_hash_table_unref);
  g_slist_free_full (mf->derived, free);
  g_mutex_clear (&mf->lock);
  g_clear_object (&mf->parser);
  ge_safetensors_free (mf->st);
  g_free (mf->class_name);
  g_free (mf->path);
  g_free (mf);
}

const char *
ge_model_file_path (const GeModelFile * mf)
{
  return mf->path;
}

const char *
ge_model_file_class (const GeModelFile * mf)
{
  return mf->class_name;
}

JsonObject *
ge_model_file_config (const GeModelFile * mf)
{
  return mf->config;
}

const char *
ge_model_file_metadata (const GeModelFile * mf, const char *key)
{
  return ge_safetensors_metadata (mf->st, key);
}

static const GeStTensor *
lookup (GeModelFile * mf, const char *name)
{
  const GeStTensor *t = ge_safetensors_find (mf->st, name);
  if (!t) {
    const char *old = g_hash_table_lookup (mf->aliases, name);
    if (old)
      t = ge_safetensors_find (mf->st, old);
  }
  return t;
}

gboolean
ge_model_file_has (GeModelFile * mf, const char *name)
{
  return lookup (mf, name) != NULL;
}

float *
ge_model_file_alloc (GeModelFile * mf, gsize n_floats)
{
  void *p = NULL;
  if (posix_memalign (&p, 64, MAX (n_floats, 1) * sizeof (float)) != 0)
    g_error ("out of memory allocating %" G_GSIZE_FORMAT " floats", n_floats);
  g_mutex_lock (&mf->lock);
  mf->derived = g_slist_prepend (mf->derived, p);
  mf->derived_bytes += MAX (n_floats, 1) * sizeof (float);
  g_mutex_unlock (&mf->lock);
  return p;
}

gsize
ge_model_file_derived_bytes (GeModelFile * mf)
{
  g_mutex_lock (&mf->lock);
  const gsize n = mf->derived_bytes;
  g_mutex_unlock (&mf->lock);
  return n;
}

static char *
shape_str (int ndim, const gint64 * shape)
{
  GString *s = g_string_new ("[");
  for (int i = 0; i < ndim; i++)
    g_string_append_printf (s, "%s%" G_GINT64_FORMAT, i ? ", " : "", shape[i]);
  g_string_append_c (s, ']');
  return g_string_free (s, FALSE);
}

/* The tensor @name, checked to have @ndim dims of @shape and a float dtype
 * the models take. */
static const GeStTensor *
checked_tensor (GeModelFile * mf, const char *name, int ndim, const gint64 * shape,
    GError ** error)
{
  const GeStTensor *t = lookup (mf, name);
  if (!t) {
    g_set_error (error, GE_ERROR, GE_ERROR_NOT_FOUND,
        "%s: tensor \"%s\" is missing (a %s needs it: wrong or incomplete model?)",
        mf->path, name, mf->class_name);
    return NULL;
  }
  int a = t->ndim, b = ndim;
  while (a > 0 && t->shape[a - 1] == 1)
    a--;
  while (b > 0 && shape[b - 1] == 1)
    b--;
  gboolean same = a == b;
  for (int i = 0; same && i < a; i++)
    same = t->shape[i] == shape[i];
  if (!same) {
    char *want = shape_str (ndim, shape), *got = shape_str (t->ndim, t->shape);
    g_set_error (error, GE_ERROR, GE_ERROR_SHAPE,
        "%s: tensor \"%s\" has shape %s, the config implies %s", mf->path, name, got, want);
    g_free (want);
    g_free (got);
    return NULL;
  }
  if (t->dtype != GE_DTYPE_F32 && t->dtype != GE_DTYPE_F16 && t->dtype != GE_DTYPE_BF16) {
    g_set_error (error, GE_ERROR, GE_ERROR_UNSUPPORTED,
        "%s: tensor \"%s\" is %s; weights must be F32, F16 or BF16", mf->path, name,
        ge_dtype_name (t->dtype));
    return NULL;
  }
  return t;
}

static const float *
as_f32 (GeModelFile * mf, const GeStTensor * t)
{
  if (t->dtype == GE_DTYPE_F32 && ((guintptr) t->data % sizeof (float)) == 0)
    return t->data;
  float *f = g_hash_table_lookup (mf->converted, t->name);
  if (!f) {
    f = g_new (float, MAX (t->n_elements, 1));
    ge_st_tensor_to_f32 (t, f);
    g_hash_table_insert (mf->converted, (gpointer) t->name, f);
  }
  return f;
}

const float *
ge_model_file_weight (GeModelFile * mf, const char *name, int ndim,
    const gint64 * shape, GError ** error)
{
  const GeStTensor *t = checked_tensor (mf, name, ndim, shape, error);
  return t ? as_f32 (mf, t) : NULL;
}

gboolean
ge_model_file_weight_view (GeModelFile * mf, const char *name, int ndim,
    const gint64 * shape, GeWeightView * out, GError ** error)
{
  const GeStTensor *t = checked_tensor (mf, name, ndim, shape, error);
  if (!t)
    return FALSE;
  /* Unaligned F32 is converted (into an aligned copy) as by
   * ge_model_file_weight; 16-bit data is read with unaligned loads. */
  if (t->dtype == GE_DTYPE_F32) {
    out->data = as_f32 (mf, t);
    out->dtype = GE_DTYPE_F32;
  } else {
    out->data = t->data;
    out->dtype = t->dtype;
  }
  return TRUE;
}

/* ---- config ------------------------------------------------------------ */

static JsonNode *
member (GeModelFile * mf, const char *key)
{
  JsonNode *n = json_object_get_member (mf->config, key);
  return n && !JSON_NODE_HOLDS_NULL (n) ? n : NULL;
}

gboolean
ge_config_has (GeModelFile * mf, const char *key)
{
  return member (mf, key) != NULL;
}

static gboolean
type_error (GeModelFile * mf, const char *key, const char *want, GError ** error)
{
  g_set_error (error, GE_ERROR, GE_ERROR_CORRUPT,
      "%s: config key \"%s\" should be %s", mf->path, key, want);
  return FALSE;
}

static gboolean
is_number (JsonNode * n)
{
  if (!JSON_NODE_HOLDS_VALUE (n))
    return FALSE;
  GType t = json_node_get_value_type (n);
  return t == G_TYPE_INT64 || t == G_TYPE_DOUBLE;
}

gboolean
ge_config_node_int (JsonNode * n, gint64 * out)
{
  if (!is_number (n))
    return FALSE;
  if (json_node_get_value_type (n) == G_TYPE_INT64) {
    *out = json_node_get_int (n);
    return TRUE;
  }
  const double d = json_node_get_double (n);
  if (!(d >= -0x1p63 && d < 0x1p63) || d != floor (d))
    return FALSE;
  *out = (gint64) d;
  return TRUE;
}

gboolean
ge_config_int (GeModelFile * mf, const char *key, gint64 def, gint64 * out, GError ** error)
{
  JsonNode *n = member (mf, key);
  *out = def;
  if (n && !ge_config_node_int (n, out))
    return type_error (mf, key, "an integer", error);
  return TRUE;
}

gboolean
ge_config_double (GeModelFile * mf, const char *key, double def, double *out, GError ** error)
{
  JsonNode *n = member (mf, key);
  *out = def;
  if (!n)
    return TRUE;
  if (!is_number (n))
    return type_error (mf, key, "a number", error);
  *out = json_node_get_double (n);
  return TRUE;
}

gboolean
ge_config_bool (GeModelFile * mf, const char *key, gboolean def, gboolean * out, GError ** error)
{
  JsonNode *n = member (mf, key);
  *out = def;
  if (!n)
    return TRUE;
  if (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_BOOLEAN)
    return type_error (mf, key, "true or false", error);
  *out = json_node_get_boolean (n);
  return TRUE;
}

gboolean
ge_config_string (GeModelFile * mf, const char *key, const char *def, const char **out,
    GError ** error)
{
  JsonNode *n = member (mf, key);
  *out = def;
  if (!n)
    return TRUE;
  if (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_STRING)
    return type_error (mf, key, "a string", error);
  *out = json_node_get_string (n);
  return TRUE;
}

gboolean
ge_config_int_array (GeModelFile * mf, const char *key, gint64 ** out, int *n_out,
    GError ** error)
{
  JsonNode *n = member (mf, key);
  *out = NULL;
  *n_out = 0;
  if (!n)
    return TRUE;
  if (!JSON_NODE_HOLDS_ARRAY (n))
    return type_error (mf, key, "an array of integers", error);
  JsonArray *a = json_node_get_array (n);
  int len = (int) json_array_get_length (a);
  gint64 *v = g_new0 (gint64, MAX (len, 1));
  for (int i = 0; i < len; i++) {
    if (!ge_config_node_int (json_array_get_element (a, i), &v[i])) {
      g_free (v);
      return type_error (mf, key, "an array of integers", error);
    }
  }
  *out = v;
  *n_out = len;
  return TRUE;
}

gboolean
ge_config_string_array (GeModelFile * mf, const char *key, const char ***out, int *n_out,
    GError ** error)
{
  JsonNode *n = member (mf, key);
  *out = NULL;
  *n_out = 0;
  if (!n)
    return TRUE;
  if (!JSON_NODE_HOLDS_ARRAY (n))
    return type_error (mf, key, "an array of strings", error);
  JsonArray *a = json_node_get_array (n);
  int len = (int) json_array_get_length (a);
  const char **v = g_new0 (const char *, len + 1);
  for (int i = 0; i < len; i++) {
    JsonNode *e = json_array_get_element (a, i);
    if (!JSON_NODE_HOLDS_VALUE (e) || json_node_get_value_type (e) != G_TYPE_STRING) {
      g_free (v);
      return type_error (mf, key, "an array of strings", error);
    }
    v[i] = json_node_get_string (e);
  }
  *out = v;
  *n_out = len;
  return TRUE;
}

JsonParser *
ge_model_file_metadata_json (GeModelFile * mf, const char *key, const char *what,
    JsonObject ** obj, GError ** error)
{
  const char *text = ge_model_file_metadata (mf, key);
  if (!text) {
    ge_fail (error, GE_ERROR_UNSUPPORTED, ge_model_file_path (mf),
        "not a %s model: no \"%s\" in its metadata", what, key);
    return NULL;
  }
  JsonParser *p = json_parser_new ();
  GError *jerr = NULL;
  /* An empty text parses, to no root at all. */
  if (!json_parser_load_from_data (p, text, -1, &jerr) || !json_parser_get_root (p)
      || !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (p))) {
    ge_fail (error, GE_ERROR_CORRUPT, ge_model_file_path (mf), "metadata \"%s\" is not a JSON "
        "object%s%s", key, jerr ? ": " : "", jerr ? jerr->message : "");
    g_clear_error (&jerr);
    g_object_unref (p);
    return NULL;
  }
  *obj = json_node_get_object (json_parser_get_root (p));
  return p;
}
