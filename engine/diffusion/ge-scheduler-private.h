/* ge-scheduler-private.h: pieces of ge-scheduler.c that the samplers of
 * ge-sampler.c share (config value readers, torch's float32 linspace, the
 * timestep spacings).  Not installed; not API. */
#pragma once

#include "ge-scheduler.h"

G_BEGIN_DECLS

/* JSON value readers for scheduler configs.  On a wrong type they fail with
 * GE_ERROR_CORRUPT, on a value we do not run (unknown enum name, out of
 * range) with GE_ERROR_UNSUPPORTED; messages are "<source>: ..." and name
 * @key. */
gboolean ge_sched_json_is_type (JsonNode *node, GType type);
gboolean ge_sched_json_get_bool (JsonNode *node, const char *key,
    const char *source, gboolean *out, GError **error);
gboolean ge_sched_json_get_double (JsonNode *node, const char *key,
    const char *source, double *out, GError **error);
gboolean ge_sched_json_get_int (JsonNode *node, const char *key,
    const char *source, int *out, GError **error);
/* @names: NULL-terminated; *out = the index of the match */
gboolean ge_sched_json_get_enum (JsonNode *node, const char *key,
    const char *source, const char *const *names, int *out, GError **error);

/* torch.linspace (start, end, n, dtype=float32) as torch's CPU kernel
 * computes it (see ge-scheduler.c). */
void ge_sched_torch_linspace_f32 (float start, float end, int n, float *out);

/* The N integer timesteps (descending) of DDIM/DDPM/PNDM's "leading",
 * "trailing" and "linspace" spacings over [0, T); GE_ERROR_INVALID when one
 * falls outside [0, T). */
gboolean ge_sched_spacing_timesteps (GeTimestepSpacing spacing, int T, int N,
    int steps_offset, gint64 *ts, GError **error);

G_END_DECLS
