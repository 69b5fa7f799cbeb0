/* ge-pipeline.h: a diffusers pipeline folder, read into its parts.
 *
 * A pipeline folder is model_index.json plus one subfolder per part:
 *
 *   model_index.json   {"_class_name": "StableDiffusionInpaintPipeline",
 *                       "unet": ["diffusers", "UNet2DConditionModel"],
 *                       "vae": ["diffusers", "AutoencoderKL"],
 *                       "text_encoder": ["transformers", "CLIPTextModel"],
 *                       "tokenizer": ["transformers", "CLIPTokenizer"],
 *                       "scheduler": ["diffusers", "PNDMScheduler"],
 *                       "safety_checker": [null, null], ...}
 *   unet/config.json + diffusion_pytorch_model.safetensors
 *   text_encoder/config.json + model.safetensors
 *   tokenizer/vocab.json + merges.txt ...
 *   scheduler/scheduler_config.json
 *
 * GePipeline only reads the index and checks that each part it is asked
 * for is there and is what the index says it is; the tasks load the parts
 * they need (ge_pipeline_open_model ()) and say which part is missing.  A
 * part given as [null, null] is absent, as in diffusers.  Parts that the
 * engine never loads (safety_checker, feature_extractor, image_encoder)
 * are not checked.
 *
 * A pipeline can also be put together part by part (ge_pipeline_new () +
 * ge_pipeline_set_part ()), with parts in any folder: the conformance
 * cases do that.
 */
#pragma once

#include "ge-model-file.h"

G_BEGIN_DECLS

typedef struct _GePipeline GePipeline;

/* TRUE when @path is a folder holding model_index.json. */
gboolean ge_pipeline_is_folder (const char *path);

/* Reads @folder/model_index.json.  A missing or malformed index is
 * GE_ERROR_NOT_FOUND / GE_ERROR_CORRUPT naming the file and the field. */
GePipeline *ge_pipeline_open (const char *folder, GError ** error);
/* An empty pipeline of @class_name whose relative part paths resolve
 * against @base_dir. */
GePipeline *ge_pipeline_new (const char *class_name, const char *base_dir);
void ge_pipeline_free (GePipeline * p);

/* "StableDiffusionInpaintPipeline", ... */
const char *ge_pipeline_class_name (const GePipeline * p);
const char *ge_pipeline_folder (const GePipeline * p);

/* A task's pipeline classes: @classes is a NULL-terminated list.
 * ge_pipeline_find_class gives the index of @p's class in it, or -1 with
 * GE_ERROR_UNSUPPORTED naming the folder, its class and the list.
 * ge_pipeline_classes_joined is the list as "A, B, C", made once in *@cache
 * (a zeroed static) and kept. */
int ge_pipeline_find_class (const GePipeline * p, const char *const *classes,
    GError ** error);
const char *ge_pipeline_classes_joined (const char *const *classes, gsize * cache);

/* The pipeline option @key of model_index.json (a plain value beside the
 * parts, e.g. the upscaler's "max_noise_level"): @fallback when absent or
 * null; GE_ERROR_CORRUPT naming the file and the key when not an integer. */
gboolean ge_pipeline_option_int (const GePipeline * p, const char *key, gint64 fallback,
    gint64 * value, GError ** error);

/* Adds or replaces @part: @path relative to the base folder (or absolute);
 * @class_name may be NULL (not checked). */
void ge_pipeline_set_part (GePipeline * p, const char *part, const char *path,
    const char *class_name);
/* Whether the index names @part (and not as [null, null]). */
gboolean ge_pipeline_has_part (const GePipeline * p, const char *part);
/* The class the index gives @part ("UNet2DConditionModel"), or NULL. */
const char *ge_pipeline_part_class (const GePipeline * p, const char *part);
/* The part's folder (or file), or NULL when it has none. */
const char *ge_pipeline_part_path (const GePipeline * p, const char *part);

/* Opens @part as a model (ge_model_file_open () on its folder).  A part
 * the index does not name is GE_ERROR_NOT_FOUND ("the pipeline has no
 * unet"); a part whose config names another class than the index is
 * GE_ERROR_CORRUPT. */
GeModelFile *ge_pipeline_open_model (GePipeline * p, const char *part, GError ** error);

/* The scheduler part's scheduler_config.json as a JSON object (owned by
 * @p).  The part path may be the folder or the JSON file itself. */
JsonObject *ge_pipeline_scheduler_config (GePipeline * p, GError ** error);

G_END_DECLS
