/* conf.h: shared pieces of the diffusers-conformance program.
 *
 * A case folder holds io.safetensors (inputs, reference outputs) plus
 * config files.  Each check compares an engine result with a reference
 * tensor and reports max|got - ref| / max|ref| (the "relative error" of the
 * issue), failing above CONF_TOL.
 */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>
#include "ge-pipeline.h"
#include "ge-safetensors.h"

#define CONF_TOL 1e-4

typedef struct {
  char *dir;
  GeSafetensors *io;
  double worst;                 /* largest relative error seen */
  int n_checked;
  int n_failed;
  GHashTable *used;             /* keys of io read as inputs or checked */
} Conf;

/* Looks up @key in io.safetensors; returns a g_malloc'd f32 copy, or NULL
 * (and counts a failure) when it is missing.  @n receives the element count. */
float *conf_load_f32 (Conf * c, const char *key, gsize * n);
/* Same, but returns NULL without complaint when the key is absent. */
float *conf_try_load_f32 (Conf * c, const char *key, gsize * n);
/* Compares @n floats with reference @key and prints one line. */
double conf_check (Conf * c, const char *key, const float *got, gsize n);
/* Exact comparison of integers (timesteps, indices). */
void conf_check_ints (Conf * c, const char *key, const gint64 * got, gsize n);
/* Checks @key and, when the case stores it, the float64 reference of the
 * same output, @key + "_f64", against the same float32 result. */
void conf_check_out (Conf * c, const char *key, const float *got, gsize n);

/* Inputs and aliases.  conf_use: the tensor @key (NULL if absent), marked
 * as used.  conf_pick: the first of the NULL-terminated @names that the
 * case stores (NULL if none), for outputs named differently by different
 * generators (our golden cases and diffusers' own names). */
const GeStTensor *conf_use (Conf * c, const char *key);
const char *conf_pick (Conf * c, const char *const *names);
/* Fails the case once for each stored tensor that nothing used or checked
 * ("unchecked output: KEY"), so a renamed or new output is never skipped
 * in silence. */
void conf_fail_unchecked (Conf * c);

/* Reads <dir>/<file> as a JSON object (caller unrefs the parser). */
JsonObject *conf_read_json (Conf * c, const char *file, JsonParser ** parser);

/* Case kinds, each in its own file. */
void conf_scheduler_case (Conf * c);     /* scheduler_config.json, no model */
void conf_unet_case (Conf * c, const char *model_dir);
void conf_vae_case (Conf * c, const char *model_dir);
void conf_vq_case (Conf * c, const char *model_dir);
void conf_tiny_case (Conf * c, const char *model_dir);   /* AutoencoderTiny */
void conf_clip_text_case (Conf * c, const char *model_dir);   /* transformers CLIPTextModel */
/* Sampling loops: meta.json names a pipeline folder, or its parts, by
 * relative paths (conf-pipeline.c reads both into a GePipeline). */
GePipeline *conf_loop_pipeline (Conf * c, JsonObject * meta);
gboolean conf_is_loop (Conf * c, JsonObject * meta);
void conf_pipeline_case (Conf * c, JsonObject * meta);  /* dispatches on the class */
void conf_loop_case (Conf * c, GePipeline * p, JsonObject * meta);     /* DDIM/DDPM */
/* The latent diffusion pipelines of ge-sd.h. */
void conf_sd_case (Conf * c, GePipeline * p, JsonObject * meta);
/* The pixel-space pipelines of ge-pixel-diffusion.h: RePaintPipeline, and
 * DDPM/DDIMPipeline as SDEdit priors (meta.json "task": "sdedit"). */
void conf_pixel_case (Conf * c, GePipeline * p, JsonObject * meta);
void conf_tokenizer_case (Conf * c);     /* vocab.json + merges.txt, no model */
