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
#include "ge-safetensors.h"

#define CONF_TOL 1e-4

typedef struct {
  char *dir;
  GeSafetensors *io;
  double worst;                 /* largest relative error seen */
  int n_checked;
  int n_failed;
  GHashTable *used;             /* io.safetensors keys read or checked; NULL: not tracked */
} Conf;

/* Records @key as read or checked (cases that track their keys report every
 * other stored tensor with conf_report_unused). */
void conf_mark (Conf * c, const char *key);
/* Fails the case once per stored tensor that no check or input used:
 * "unchecked output: KEY". */
void conf_report_unused (Conf * c);

/* Looks up @key in io.safetensors; returns a g_malloc'd f32 copy, or NULL
 * (and counts a failure) when it is missing.  @n receives the element count. */
float *conf_load_f32 (Conf * c, const char *key, gsize * n);
/* Same, but returns NULL without complaint when the key is absent. */
float *conf_try_load_f32 (Conf * c, const char *key, gsize * n);
/* Compares @n floats with reference @key and prints one line. */
double conf_check (Conf * c, const char *key, const float *got, gsize n);
/* Exact comparison of integers (timesteps, indices). */
void conf_check_ints (Conf * c, const char *key, const gint64 * got, gsize n);
/* Reads <dir>/<file> as a JSON object (caller unrefs the parser). */
JsonObject *conf_read_json (Conf * c, const char *file, JsonParser ** parser);

/* Case kinds, each in its own file. */
void conf_scheduler_case (Conf * c);     /* scheduler_config.json, no model */
void conf_unet_case (Conf * c, const char *model_dir);
void conf_vae_case (Conf * c, const char *model_dir);
void conf_vq_case (Conf * c, const char *model_dir);
void conf_loop_case (Conf * c);          /* sampling loop over a model */
