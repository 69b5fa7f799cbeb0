/* ge-model-file.h: a model on disk, as weights plus a diffusers config.
 *
 * Two layouts load:
 *  - one .safetensors file whose __metadata__ holds "architecture" (the
 *    diffusers class name, e.g. "UNet2DModel") and "config" (the diffusers
 *    config as a JSON string): what models/ exports;
 *  - a diffusers folder: config.json (with "_class_name") next to
 *    diffusion_pytorch_model.safetensors;
 *  - a transformers folder: config.json with "architectures" (its first
 *    entry is the class, e.g. "CLIPTextModel"), or with only "model_type"
 *    "clip_text_model" (class CLIPTextModel), next to model.safetensors.
 *  In a folder, a missing weights file falls back to its ".fp16" variant
 *  (model.fp16.safetensors, as hub repositories name it).
 *
 * Weights are used in place from the mapping when they are F32 and aligned;
 * through ge_model_file_weight, F16 and BF16 (and unaligned F32) are
 * converted once at load.  ge_model_file_weight_view hands F16 and BF16
 * out as they are in the mapping, for the layers that convert them on the
 * fly (the convolutions and linear layers: nearly all of a model's bytes).  Old hub
 * attention names (query/key/value/proj_attn) answer to their current
 * names (to_q/to_k/to_v/to_out.0), as diffusers renames them at load time.
 */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>
#include "ge-error.h"
#include "ge-safetensors.h"

G_BEGIN_DECLS

typedef struct _GeModelFile GeModelFile;

/* Debugging hook of the models: called with the output of each diffusers
 * module (its path, e.g. "down_blocks.0", and NCHW data) during a forward. */
typedef void (*GeModelTap) (const char *name, const float *data, int n, int c,
    int h, int w, void *user_data);

GeModelFile *ge_model_file_open (const char *path, GError ** error);
GeModelFile *ge_model_file_ref (GeModelFile * mf);
void ge_model_file_unref (GeModelFile * mf);

const char *ge_model_file_path (const GeModelFile * mf);
/* The diffusers or transformers class name ("UNet2DModel", "AutoencoderKL",
 * "VQModel", "CLIPTextModel", ...). */
const char *ge_model_file_class (const GeModelFile * mf);
JsonObject *ge_model_file_config (const GeModelFile * mf);
/* A value of the weights file's __metadata__ (NULL if absent). */
const char *ge_model_file_metadata (const GeModelFile * mf, const char *key);

/* The metadata value @key parsed as a JSON object into *@obj, which lives
 * as long as the returned parser.  Absent: GE_ERROR_UNSUPPORTED, "not a
 * @what model"; not a JSON object: GE_ERROR_CORRUPT. */
JsonParser *ge_model_file_metadata_json (GeModelFile * mf, const char *key, const char *what,
    JsonObject ** obj, GError ** error);

/* The weight @name as f32, checked to have @ndim dims of @shape (trailing
 * size-1 dims are ignored on both sides, so a 1x1 conv weight serves as a
 * linear one).  A missing tensor or a wrong shape is an error naming the
 * file, the tensor and both shapes. */
const float *ge_model_file_weight (GeModelFile * mf, const char *name, int ndim,
    const gint64 * shape, GError ** error);

/* A weight as stored: F32 (aligned, converted if the mapping's copy is
 * not), F16 or BF16 straight from the mapping (any alignment: read it with
 * unaligned loads).  Lives as long as @mf. */
typedef struct {
  const void *data;
  GeDType dtype;                /* GE_DTYPE_F32, GE_DTYPE_F16 or GE_DTYPE_BF16 */
} GeWeightView;

/* ge_model_file_weight without the conversion: the same shape checks and
 * errors. */
gboolean ge_model_file_weight_view (GeModelFile * mf, const char *name, int ndim,
    const gint64 * shape, GeWeightView * out, GError ** error);
gboolean ge_model_file_has (GeModelFile * mf, const char *name);
/* Memory for derived forms of the weights (packed copies), owned by @mf
 * and freed with it; 64-byte aligned.  Thread-safe: the bf16 copies are
 * made by the first forward that runs in bf16. */
float *ge_model_file_alloc (GeModelFile * mf, gsize n_floats);
/* Bytes ge_model_file_alloc () has handed out so far (the memory a model
 * adds to its file's mapping). */
gsize ge_model_file_derived_bytes (GeModelFile * mf);

/* Typed config readers: the default when the key is absent or null, an
 * error naming the file and key when it has the wrong type. */
gboolean ge_config_int (GeModelFile * mf, const char *key, gint64 def, gint64 * out, GError ** error);
gboolean ge_config_double (GeModelFile * mf, const char *key, double def, double *out, GError ** error);
gboolean ge_config_bool (GeModelFile * mf, const char *key, gboolean def, gboolean * out, GError ** error);
/* Returns the string (owned by the config) or @def. */
gboolean ge_config_string (GeModelFile * mf, const char *key, const char *def, const char **out, GError ** error);
/* @n as an integer: an integer number, or a double with an integer value
 * that a gint64 holds (casting 1e300 is undefined); FALSE otherwise. */
gboolean ge_config_node_int (JsonNode * n, gint64 * out);
/* Arrays: *out is g_malloc'd (NULL and 0 when absent); strings are owned by the config. */
gboolean ge_config_int_array (GeModelFile * mf, const char *key, gint64 ** out, int *n, GError ** error);
gboolean ge_config_string_array (GeModelFile * mf, const char *key, const char ***out, int *n, GError ** error);
/* TRUE when the key is present and not null. */
gboolean ge_config_has (GeModelFile * mf, const char *key);

G_END_DECLS
