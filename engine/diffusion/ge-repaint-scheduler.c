/* ge-repaint-scheduler.c: see ge-repaint-scheduler.h. */
#include "ge-repaint-scheduler.h"
#include "ge-scheduler.h"
#include "ge-scheduler-private.h"

#include <math.h>
#include <string.h>

/* Longest walk we build (N = 1000 with 10 x 10 jumps is about 10^4). */
#define MAX_ENTRIES (1 << 24)

struct _GeRePaintScheduler {
  char *source;                 /* the config's file, for messages */
  GeScheduler *base;            /* betas, alphas_cumprod */
  int T;
  gboolean clip_sample;
  float eta;
  int N;                        /* after clamping; 0 before set_timesteps */
  int n_entries, n_steps;
  gint64 *timesteps;
};

static const char *const beta_names[] =
    { "linear", "scaled_linear", "squaredcos_cap_v2", NULL };

GeRePaintScheduler *
ge_repaint_scheduler_new_from_json (JsonObject * config, const char *source,
    GError ** error)
{
  g_return_val_if_fail (config != NULL, NULL);
  if (!source)
    source = "scheduler config";
  /* RePaintScheduler.__init__'s defaults are DDPMScheduler's for the keys
   * they share. */
  GeSchedulerConfig cfg;
  ge_scheduler_config_init_defaults (&cfg, GE_SCHEDULER_DDPM);
  double eta = 0.0;
  gboolean ok = TRUE;
  GList *members = json_object_get_members (config);
  for (GList * l = members; l && ok; l = l->next) {
    const char *key = l->data;
    JsonNode *node = json_object_get_member (config, key);
    int e = 0;
    if (strcmp (key, "num_train_timesteps") == 0)
      ok = ge_sched_json_get_int (node, key, source, &cfg.num_train_timesteps, error);
    else if (strcmp (key, "beta_start") == 0)
      ok = ge_sched_json_get_double (node, key, source, &cfg.beta_start, error);
    else if (strcmp (key, "beta_end") == 0)
      ok = ge_sched_json_get_double (node, key, source, &cfg.beta_end, error);
    else if (strcmp (key, "beta_schedule") == 0) {
      ok = ge_sched_json_get_enum (node, key, source, beta_names, &e, error);
      cfg.beta_schedule = e;
    } else if (strcmp (key, "eta") == 0)
      ok = ge_sched_json_get_double (node, key, source, &eta, error);
    else if (strcmp (key, "clip_sample") == 0)
      ok = ge_sched_json_get_bool (node, key, source, &cfg.clip_sample, error);
    else if (strcmp (key, "trained_betas") == 0 && !JSON_NODE_HOLDS_NULL (node)) {
      g_set_error (error, GE_ERROR, GE_ERROR_UNSUPPORTED,
          "%s: trained_betas is not supported (only null)", source);
      ok = FALSE;
    }
  }
  g_list_free (members);
  if (!ok)
    return NULL;

  GError *e = NULL;
  GeScheduler *base = ge_scheduler_new (&cfg, &e);
  if (!base) {
    g_set_error (error, GE_ERROR, e->code, "%s: %s", source, e->message);
    g_error_free (e);
    return NULL;
  }
  GeRePaintScheduler *s = g_new0 (GeRePaintScheduler, 1);
  s->source = g_strdup (source);
  s->base = base;
  s->T = cfg.num_train_timesteps;
  s->clip_sample = cfg.clip_sample;
  s->eta = (float) eta;
  return s;
}

void
ge_repaint_scheduler_free (GeRePaintScheduler * s)
{
  if (!s)
    return;
  ge_scheduler_free (s->base);
  g_free (s->source);
  g_free (s->timesteps);
  g_free (s);
}

int
ge_repaint_scheduler_num_train_timesteps (const GeRePaintScheduler * s)
{
  return s->T;
}

const float *
ge_repaint_scheduler_betas (const GeRePaintScheduler * s)
{
  return ge_scheduler_betas (s->base);
}

const float *
ge_repaint_scheduler_alphas_cumprod (const GeRePaintScheduler * s)
{
  return ge_scheduler_alphas_cumprod (s->base);
}

gboolean
ge_repaint_scheduler_clip_sample (const GeRePaintScheduler * s)
{
  return s->clip_sample;
}

float
ge_repaint_scheduler_eta (const GeRePaintScheduler * s)
{
  return s->eta;
}

void
ge_repaint_scheduler_set_eta (GeRePaintScheduler * s, float eta)
{
  s->eta = eta;
}

gboolean
ge_repaint_scheduler_set_timesteps (GeRePaintScheduler * s, int num_inference_steps,
    int jump_length, int jump_n_sample, GError ** error)
{
  if (num_inference_steps < 1 || jump_length < 1 || jump_n_sample < 1) {
    g_set_error (error, GE_ERROR, GE_ERROR_INVALID,
        "%s: RePaint needs num_inference_steps, jump_length and jump_n_sample >= 1 "
        "(got %d, %d, %d)", s->source, num_inference_steps, jump_length, jump_n_sample);
    return FALSE;
  }
  const int N = MIN (num_inference_steps, s->T);
  /* jumps[j] = jump_n_sample - 1 for j in range (0, N - jump_length,
   * jump_length): each costs jump_length more entries of each kind. */
  gint64 n_jumps = N > jump_length ? (N - jump_length + jump_length - 1) / jump_length : 0;
  const gint64 total = N + 2 * n_jumps * (gint64) (jump_n_sample - 1) * jump_length;
  if (total > MAX_ENTRIES) {
    g_set_error (error, GE_ERROR, GE_ERROR_INVALID,
        "%s: RePaint with %d steps and jumps of %d x %d would take %" G_GINT64_FORMAT
        " entries (at most %d)", s->source, N, jump_length, jump_n_sample, total, MAX_ENTRIES);
    return FALSE;
  }
  int *jumps = g_new0 (int, N);
  for (int j = 0; j < N - jump_length; j += jump_length)
    jumps[j] = jump_n_sample - 1;
  g_free (s->timesteps);
  s->timesteps = g_new (gint64, total);
  const gint64 stride = s->T / N;
  int n = 0, t = N;
  while (t >= 1) {
    t--;
    s->timesteps[n++] = t;
    if (jumps[t] > 0) {
      jumps[t]--;
      for (int k = 0; k < jump_length; k++)
        s->timesteps[n++] = ++t;
    }
  }
  g_free (jumps);
  g_assert (n <= total);
  s->N = N;
  s->n_entries = n;
  s->n_steps = 0;
  for (int i = 0; i < n; i++) {
    s->timesteps[i] *= stride;
    s->n_steps += !ge_repaint_scheduler_is_undo (s, i);
  }
  return TRUE;
}

int
ge_repaint_scheduler_num_inference_steps (const GeRePaintScheduler * s)
{
  return s->N;
}

int
ge_repaint_scheduler_n_timesteps (const GeRePaintScheduler * s)
{
  return s->n_entries;
}

const gint64 *
ge_repaint_scheduler_timesteps (const GeRePaintScheduler * s)
{
  return s->timesteps;
}

gboolean
ge_repaint_scheduler_is_undo (const GeRePaintScheduler * s, int i)
{
  g_return_val_if_fail (i >= 0 && i < s->n_entries, FALSE);
  return i > 0 && s->timesteps[i] >= s->timesteps[i - 1];
}

int
ge_repaint_scheduler_n_steps (const GeRePaintScheduler * s)
{
  return s->n_steps;
}

int
ge_repaint_scheduler_undo_n_draws (const GeRePaintScheduler * s)
{
  return s->N > 0 ? s->T / s->N : 0;
}

void
ge_repaint_scheduler_step (const GeRePaintScheduler * s, gint64 t,
    const float *model_output, const float *sample, const float *original_image,
    const float *mask, gsize mask_n, const float *noise, gsize n, float *prev,
    float *pred_original)
{
  g_return_if_fail (s->N > 0 && t >= 0 && t < s->T && mask_n > 0);
  const float *ac = ge_scheduler_alphas_cumprod (s->base);
  const gint64 prev_t = t - s->T / s->N;
  /* torch's 0-d float32 tensors, operation by operation */
  const float a_t = ac[t];
  const float a_prev = prev_t >= 0 ? ac[prev_t] : 1.0f;      /* final_alpha_cumprod */
  const float beta_t = 1.0f - a_t;
  const float sqrt_beta_t = sqrtf (beta_t), sqrt_a_t = sqrtf (a_t);
  /* _get_variance */
  const float beta_prev = 1.0f - a_prev;
  const float ratio = beta_prev / beta_t, decay = 1.0f - a_t / a_prev;
  const float variance = ratio * decay;
  const float std_dev = s->eta * sqrtf (variance);
  const gboolean add_var = t > 0 && s->eta > 0;
  const float dir_var = (1.0f - a_prev) - std_dev * std_dev;
  const float dir_coef = sqrtf (dir_var);
  const float sqrt_a_prev = sqrtf (a_prev), sqrt_beta_prev = sqrtf (1.0f - a_prev);
  const gboolean clip = s->clip_sample;

  for (gsize k = 0; k < n; k++) {
    const float scaled = sqrt_beta_t * model_output[k];
    float x0 = (sample[k] - scaled) / sqrt_a_t;
    if (clip)
      x0 = x0 < -1.0f ? -1.0f : x0 > 1.0f ? 1.0f : x0;
    const float a = sqrt_a_prev * x0;
    const float dir = dir_coef * model_output[k];
    float unknown = a + dir;
    if (add_var) {
      const float v = std_dev * noise[k];
      unknown = unknown + v;
    }
    const float ko = sqrt_a_prev * original_image[k];
    const float kn = sqrt_beta_prev * noise[k];
    const float known = ko + kn;
    const float m = mask[k % mask_n];
    const float mk = m * known;
    const float inv = 1.0f - m;
    const float mu = inv * unknown;
    if (pred_original)
      pred_original[k] = x0;
    prev[k] = mk + mu;
  }
}

void
ge_repaint_scheduler_undo_step (const GeRePaintScheduler * s, gint64 t,
    const float *sample, const float *noise, gsize n, float *out)
{
  const int draws = ge_repaint_scheduler_undo_n_draws (s);
  g_return_if_fail (draws > 0 && t >= 0 && t + draws <= s->T);
  const float *betas = ge_scheduler_betas (s->base);
  const float *x = sample;
  for (int j = 0; j < draws; j++) {
    const float beta = betas[t + j];
    const float keep = sqrtf (1.0f - beta), add = sqrtf (beta);
    const float *nz = noise + (gsize) j * n;
    for (gsize k = 0; k < n; k++) {
      const float a = keep * x[k];
      const float b = add * nz[k];
      out[k] = a + b;
    }
    x = out;
  }
}
