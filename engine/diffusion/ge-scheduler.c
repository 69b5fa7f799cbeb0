/* ge-scheduler.c: see ge-scheduler.h.
 *
 * The reference is diffusers 0.35.2 running on torch's CPU kernels; the
 * fixtures in tests/fixtures/diffusers (NOTES.md) document every quirk
 * reproduced here.  The step functions mirror diffusers' expressions one
 * operation at a time, in float32, so that the results stay within a few
 * ulp of torch's. */
#include "ge-scheduler.h"
#include "ge-scheduler-private.h"

#include <math.h>
#include <string.h>

/* torch evaluates every diffusers expression one rounded float32 operation
 * at a time (a*b + c is a mul kernel, then an add kernel).  Compilers fuse
 * such pairs into FMAs wherever the target has them (aarch64, x86-64-v3,
 * -march=native), which moves results by an ulp; keep them apart. */
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize ("fp-contract=off")
#endif

/* Upper bound on num_train_timesteps: far above any real schedule (1000 or
 * 4000), low enough that int arithmetic and the tables stay small. */
#define GE_SCHED_MAX_TRAIN_STEPS (1 << 20)

struct _GeScheduler {
  GeSchedulerConfig cfg;
  float *betas;
  float *alphas_cumprod;
  float final_alpha_cumprod;
  int num_inference_steps;      /* N given to set_timesteps; 0 before */
  int n_timesteps;
  gint64 *timesteps;
};

/* Forces @x to be rounded on its own.  Belt and braces for the tables that
 * must be bit-exact (betas, timesteps): even with an unknown compiler that
 * ignores the pragmas above, a product stored here is never fused into the
 * following add. */
static inline float
round_f32 (float x)
{
  volatile float v = x;
  return v;
}

static inline double
round_f64 (double x)
{
  volatile double v = x;
  return v;
}

void
ge_scheduler_config_init_defaults (GeSchedulerConfig * cfg,
    GeSchedulerKind kind)
{
  /* DDPMScheduler.__init__ and DDIMScheduler.__init__ share these. */
  memset (cfg, 0, sizeof *cfg);
  cfg->kind = kind;
  cfg->num_train_timesteps = 1000;
  cfg->beta_start = 0.0001;
  cfg->beta_end = 0.02;
  cfg->beta_schedule = GE_BETA_LINEAR;
  cfg->prediction_type = GE_PREDICT_EPSILON;
  cfg->clip_sample = TRUE;
  cfg->clip_sample_range = 1.0;
  cfg->set_alpha_to_one = TRUE;
  cfg->steps_offset = 0;
  cfg->timestep_spacing = GE_SPACING_LEADING;
  cfg->variance_type = GE_VARIANCE_FIXED_SMALL;
}

/* ---- config from JSON ---------------------------------------------------- */

#define CFG_FAIL(code, ...) do { \
    char *m_ = g_strdup_printf (__VA_ARGS__); \
    g_set_error (error, GE_ERROR, code, "%s: %s", source, m_); \
    g_free (m_); return FALSE; } while (0)

gboolean
ge_sched_json_is_type (JsonNode * node, GType type)
{
  return JSON_NODE_TYPE (node) == JSON_NODE_VALUE
      && json_node_get_value_type (node) == type;
}

gboolean
ge_sched_json_get_bool (JsonNode * node, const char *key, const char *source,
    gboolean * out, GError ** error)
{
  if (!ge_sched_json_is_type (node, G_TYPE_BOOLEAN))
    CFG_FAIL (GE_ERROR_CORRUPT, "\"%s\" is not a boolean", key);
  *out = json_node_get_boolean (node);
  return TRUE;
}

gboolean
ge_sched_json_get_double (JsonNode * node, const char *key, const char *source,
    double *out, GError ** error)
{
  if (ge_sched_json_is_type (node, G_TYPE_DOUBLE))
    *out = json_node_get_double (node);
  else if (ge_sched_json_is_type (node, G_TYPE_INT64))
    *out = (double) json_node_get_int (node);
  else
    CFG_FAIL (GE_ERROR_CORRUPT, "\"%s\" is not a number", key);
  if (!isfinite (*out))
    CFG_FAIL (GE_ERROR_CORRUPT, "\"%s\" is not finite", key);
  return TRUE;
}

gboolean
ge_sched_json_get_int (JsonNode * node, const char *key, const char *source, int *out,
    GError ** error)
{
  double d;
  if (ge_sched_json_is_type (node, G_TYPE_INT64)) {
    gint64 v = json_node_get_int (node);
    if (v < G_MININT || v > G_MAXINT)
      CFG_FAIL (GE_ERROR_UNSUPPORTED, "\"%s\" = %" G_GINT64_FORMAT
          " is out of range", key, v);
    *out = (int) v;
    return TRUE;
  }
  if (!ge_sched_json_get_double (node, key, source, &d, error))
    return FALSE;
  if (d != floor (d) || d < G_MININT || d > G_MAXINT)
    CFG_FAIL (GE_ERROR_CORRUPT, "\"%s\" = %g is not an integer", key, d);
  *out = (int) d;
  return TRUE;
}

/* Maps a string value to an enum through @names (NULL-terminated). */
gboolean
ge_sched_json_get_enum (JsonNode * node, const char *key, const char *source,
    const char *const *names, int *out, GError ** error)
{
  if (!ge_sched_json_is_type (node, G_TYPE_STRING))
    CFG_FAIL (GE_ERROR_CORRUPT, "\"%s\" is not a string", key);
  const char *v = json_node_get_string (node);
  for (int i = 0; names[i]; i++)
    if (strcmp (v, names[i]) == 0) {
      *out = i;
      return TRUE;
    }
  CFG_FAIL (GE_ERROR_UNSUPPORTED, "%s \"%s\" is not supported", key, v);
}

static const char *const beta_names[] =
    { "linear", "scaled_linear", "squaredcos_cap_v2", NULL };
static const char *const prediction_names[] =
    { "epsilon", "v_prediction", "sample", NULL };
static const char *const spacing_names[] =
    { "leading", "trailing", "linspace", NULL };
static const char *const variance_names[] =
    { "fixed_small", "fixed_large", NULL };

static gboolean
config_apply (GeSchedulerConfig * cfg, GeSchedulerKind kind, JsonObject * obj,
    const char *source, GError ** error)
{
  ge_scheduler_config_init_defaults (cfg, kind);
  GList *members = json_object_get_members (obj);
  gboolean ok = TRUE;
  for (GList * l = members; l && ok; l = l->next) {
    const char *key = l->data;
    JsonNode *node = json_object_get_member (obj, key);
    int e = 0;
    gboolean b = FALSE;

    if (strcmp (key, "num_train_timesteps") == 0)
      ok = ge_sched_json_get_int (node, key, source, &cfg->num_train_timesteps, error);
    else if (strcmp (key, "beta_start") == 0)
      ok = ge_sched_json_get_double (node, key, source, &cfg->beta_start, error);
    else if (strcmp (key, "beta_end") == 0)
      ok = ge_sched_json_get_double (node, key, source, &cfg->beta_end, error);
    else if (strcmp (key, "beta_schedule") == 0) {
      ok = ge_sched_json_get_enum (node, key, source, beta_names, &e, error);
      cfg->beta_schedule = e;
    } else if (strcmp (key, "prediction_type") == 0) {
      ok = ge_sched_json_get_enum (node, key, source, prediction_names, &e, error);
      cfg->prediction_type = e;
    } else if (strcmp (key, "timestep_spacing") == 0) {
      ok = ge_sched_json_get_enum (node, key, source, spacing_names, &e, error);
      cfg->timestep_spacing = e;
    } else if (strcmp (key, "variance_type") == 0) {
      /* DDIM has no such parameter: diffusers ignores the key there. */
      if (kind == GE_SCHEDULER_DDPM) {
        ok = ge_sched_json_get_enum (node, key, source, variance_names, &e, error);
        cfg->variance_type = e;
      }
    } else if (strcmp (key, "clip_sample") == 0)
      ok = ge_sched_json_get_bool (node, key, source, &cfg->clip_sample, error);
    else if (strcmp (key, "clip_sample_range") == 0)
      ok = ge_sched_json_get_double (node, key, source, &cfg->clip_sample_range, error);
    else if (strcmp (key, "set_alpha_to_one") == 0)
      ok = ge_sched_json_get_bool (node, key, source, &cfg->set_alpha_to_one, error);
    else if (strcmp (key, "steps_offset") == 0)
      ok = ge_sched_json_get_int (node, key, source, &cfg->steps_offset, error);
    else if (strcmp (key, "thresholding") == 0
        || strcmp (key, "rescale_betas_zero_snr") == 0) {
      ok = ge_sched_json_get_bool (node, key, source, &b, error);
      if (ok && b) {
        g_set_error (error, GE_ERROR, GE_ERROR_UNSUPPORTED,
            "%s: %s = true is not supported", source, key);
        ok = FALSE;
      }
    } else if (strcmp (key, "trained_betas") == 0) {
      if (!JSON_NODE_HOLDS_NULL (node)) {
        g_set_error (error, GE_ERROR, GE_ERROR_UNSUPPORTED,
            "%s: trained_betas is not supported (only null)", source);
        ok = FALSE;
      }
    }
    /* Everything else (_class_name, _diffusers_version, sample_max_value
     * and dynamic_thresholding_ratio without thresholding, other schedulers'
     * keys) does not change what these two schedulers compute. */
  }
  g_list_free (members);
  return ok;
}

gboolean
ge_scheduler_config_from_json_as (GeSchedulerConfig * cfg,
    GeSchedulerKind kind, JsonObject * obj, const char *source,
    GError ** error)
{
  g_return_val_if_fail (cfg && obj, FALSE);
  if (!source)
    source = "scheduler config";
  return config_apply (cfg, kind, obj, source, error);
}

gboolean
ge_scheduler_config_from_json (GeSchedulerConfig * cfg, JsonObject * obj,
    const char *source, GError ** error)
{
  g_return_val_if_fail (cfg && obj, FALSE);
  if (!source)
    source = "scheduler config";
  GeSchedulerKind kind = cfg->kind;
  JsonNode *cn = json_object_get_member (obj, "_class_name");
  if (cn) {
    if (!ge_sched_json_is_type (cn, G_TYPE_STRING))
      CFG_FAIL (GE_ERROR_CORRUPT, "\"_class_name\" is not a string");
    const char *cls = json_node_get_string (cn);
    if (strcmp (cls, "DDIMScheduler") == 0)
      kind = GE_SCHEDULER_DDIM;
    else if (strcmp (cls, "DDPMScheduler") == 0)
      kind = GE_SCHEDULER_DDPM;
    else
      CFG_FAIL (GE_ERROR_UNSUPPORTED, "_class_name \"%s\" is not supported "
          "(DDIMScheduler and DDPMScheduler are)", cls);
  }
  return config_apply (cfg, kind, obj, source, error);
}

/* ---- schedule ------------------------------------------------------------ */

/* torch.linspace (start, end, n, dtype=float32) on CPU, as the AVX2 kernel
 * of torch's RangeFactoriesKernel computes it: the first n/16*16 entries in
 * 8-wide vectors whose base is an FMA from the nearer end (start below
 * n/2, end from there on) and whose lanes are base + (float) (k * step);
 * the tail entries with the scalar FMA formula.  (torch splits n > 32768
 * entries over threads, which would move the blocks; no schedule is that
 * long, and the fixtures were made with one thread.) */
void
ge_sched_torch_linspace_f32 (float start, float end, int n, float *out)
{
  if (n == 1) {
    out[0] = start;
    return;
  }
  const float step = (end - start) / (float) (n - 1);
  const int halfway = n / 2;
  const int vec_end = n / 16 * 16;
  for (int b = 0; b < vec_end; b += 8) {
    float base = b < halfway ? fmaf (step, (float) b, start)
        : fmaf (-step, (float) (n - 1 - b), end);
    for (int k = 0; k < 8; k++)
      out[b + k] = base + round_f32 ((float) k * step);
  }
  for (int i = vec_end; i < n; i++)
    out[i] = i < halfway ? fmaf (step, (float) i, start)
        : fmaf (-step, (float) (n - 1 - i), end);
}

static double
alpha_bar_cosine (double t)
{
  /* Python: math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2, left to right */
  double c = cos ((t + 0.008) / 1.008 * G_PI / 2);
  return c * c;
}

static gboolean
make_betas (GeScheduler * s, GError ** error)
{
  const GeSchedulerConfig *cfg = &s->cfg;
  const int T = cfg->num_train_timesteps;
  switch (cfg->beta_schedule) {
    case GE_BETA_LINEAR:
      ge_sched_torch_linspace_f32 ((float) cfg->beta_start, (float) cfg->beta_end, T,
          s->betas);
      break;
    case GE_BETA_SCALED_LINEAR:
      if (cfg->beta_start < 0 || cfg->beta_end < 0) {
        g_set_error (error, GE_ERROR, GE_ERROR_INVALID,
            "scaled_linear needs beta_start, beta_end >= 0 (got %g, %g)",
            cfg->beta_start, cfg->beta_end);
        return FALSE;
      }
      /* linspace of the square roots (Python double sqrt, then float32),
       * squared in float32 */
      ge_sched_torch_linspace_f32 ((float) sqrt (cfg->beta_start),
          (float) sqrt (cfg->beta_end), T, s->betas);
      for (int i = 0; i < T; i++)
        s->betas[i] = s->betas[i] * s->betas[i];
      break;
    case GE_BETA_SQUAREDCOS_CAP_V2:
      /* betas_for_alpha_bar: Python doubles, capped at 0.999, then float32 */
      for (int i = 0; i < T; i++) {
        double t1 = (double) i / T, t2 = (double) (i + 1) / T;
        double b = 1 - alpha_bar_cosine (t2) / alpha_bar_cosine (t1);
        s->betas[i] = (float) MIN (b, 0.999);
      }
      break;
    default:
      g_set_error (error, GE_ERROR, GE_ERROR_INVALID,
          "unknown beta schedule %d", (int) cfg->beta_schedule);
      return FALSE;
  }
  for (int i = 0; i < T; i++)
    /* beta = 0 makes 1 - alpha_cumprod = 0 at t = 0, which the steps divide
     * by; beta >= 1 zeroes alphas_cumprod */
    if (!(s->betas[i] > 0 && s->betas[i] < 1)) {
      g_set_error (error, GE_ERROR, GE_ERROR_INVALID,
          "beta[%d] = %g is outside (0, 1) (beta_start %g, beta_end %g)", i,
          s->betas[i], cfg->beta_start, cfg->beta_end);
      return FALSE;
    }

  /* torch.cumprod (1 - betas): 1 - beta in float32, but the CPU kernel
   * accumulates the product in double and rounds every prefix. */
  double acc = 1.0;
  for (int i = 0; i < T; i++) {
    float alpha = 1.0f - s->betas[i];
    acc *= (double) alpha;
    s->alphas_cumprod[i] = (float) acc;
  }
  if (!(s->alphas_cumprod[T - 1] > 0)) {
    g_set_error (error, GE_ERROR, GE_ERROR_INVALID,
        "alphas_cumprod underflows to 0 at the last timestep: the steps "
        "would divide by zero");
    return FALSE;
  }
  s->final_alpha_cumprod = cfg->set_alpha_to_one ? 1.0f : s->alphas_cumprod[0];
  return TRUE;
}

GeScheduler *
ge_scheduler_new (const GeSchedulerConfig * cfg, GError ** error)
{
  g_return_val_if_fail (cfg != NULL, NULL);
  const int T = cfg->num_train_timesteps;
  if (T < 1 || T > GE_SCHED_MAX_TRAIN_STEPS) {
    g_set_error (error, GE_ERROR, GE_ERROR_INVALID,
        "num_train_timesteps = %d is outside [1, %d]", T,
        GE_SCHED_MAX_TRAIN_STEPS);
    return NULL;
  }
  if (!isfinite (cfg->beta_start) || !isfinite (cfg->beta_end)) {
    g_set_error (error, GE_ERROR, GE_ERROR_INVALID,
        "beta_start / beta_end are not finite");
    return NULL;
  }
  if (cfg->clip_sample && !(cfg->clip_sample_range > 0)) {
    g_set_error (error, GE_ERROR, GE_ERROR_INVALID,
        "clip_sample_range = %g must be positive", cfg->clip_sample_range);
    return NULL;
  }
  if ((guint) cfg->kind > GE_SCHEDULER_DDIM
      || (guint) cfg->prediction_type > GE_PREDICT_SAMPLE
      || (guint) cfg->timestep_spacing > GE_SPACING_LINSPACE
      || (guint) cfg->variance_type > GE_VARIANCE_FIXED_LARGE) {
    g_set_error (error, GE_ERROR, GE_ERROR_INVALID,
        "scheduler config holds an unknown enum value");
    return NULL;
  }

  GeScheduler *s = g_new0 (GeScheduler, 1);
  s->cfg = *cfg;
  s->betas = g_new (float, T);
  s->alphas_cumprod = g_new (float, T);
  if (!make_betas (s, error)) {
    ge_scheduler_free (s);
    return NULL;
  }
  return s;
}

void
ge_scheduler_free (GeScheduler * s)
{
  if (!s)
    return;
  g_free (s->betas);
  g_free (s->alphas_cumprod);
  g_free (s->timesteps);
  g_free (s);
}

const GeSchedulerConfig *
ge_scheduler_config (const GeScheduler * s)
{
  return &s->cfg;
}

const float *
ge_scheduler_betas (const GeScheduler * s)
{
  return s->betas;
}

const float *
ge_scheduler_alphas_cumprod (const GeScheduler * s)
{
  return s->alphas_cumprod;
}

float
ge_scheduler_final_alpha_cumprod (const GeScheduler * s)
{
  return s->final_alpha_cumprod;
}

/* ---- timesteps ----------------------------------------------------------- */

gboolean
ge_sched_spacing_timesteps (GeTimestepSpacing spacing, int T, int N,
    int steps_offset, gint64 * ts, GError ** error)
{
  switch (spacing) {
    case GE_SPACING_LEADING:
      /* (arange(N) * (T // N)).round()[::-1] + steps_offset */
      for (int j = 0; j < N; j++)
        ts[j] = (gint64) (N - 1 - j) * (T / N) + steps_offset;
      break;
    case GE_SPACING_TRAILING:{
      /* round(arange(T, 0, -T / N)) - 1.  numpy's float arange stores
       * start and start + step, then fills start + i * delta with
       * delta = (start + step) - start; np.round is half-to-even (rint). */
      const double start = T;
      const double delta = round_f64 (start + -((double) T / N)) - start;
      for (int j = 0; j < N; j++)
        ts[j] = (gint64) rint (start + round_f64 (j * delta)) - 1;
      break;
    }
    case GE_SPACING_LINSPACE:{
      /* round(linspace(0, T - 1, N))[::-1]: numpy computes i * step (+ 0.0)
       * and stores the end point exactly. */
      const double stop = T - 1;
      const double step = N > 1 ? stop / (N - 1) : 0;
      for (int j = 0; j < N; j++) {
        int i = N - 1 - j;
        double y = (N > 1 && i == N - 1) ? stop : (step == 0 ? 0 : i * step);
        ts[j] = (gint64) rint (y);
      }
      break;
    }
    default:
      g_set_error (error, GE_ERROR, GE_ERROR_INVALID, "unknown spacing");
      return FALSE;
  }
  for (int j = 0; j < N; j++)
    if (ts[j] < 0 || ts[j] >= T) {
      g_set_error (error, GE_ERROR, GE_ERROR_INVALID,
          "timestep %" G_GINT64_FORMAT " (step %d of %d, steps_offset %d) is "
          "outside [0, %d)", ts[j], j, N, steps_offset, T);
      return FALSE;
    }
  return TRUE;
}

gboolean
ge_scheduler_set_timesteps (GeScheduler * s, int num_inference_steps,
    GError ** error)
{
  g_return_val_if_fail (s != NULL, FALSE);
  const int T = s->cfg.num_train_timesteps, N = num_inference_steps;
  if (N < 1 || N > T) {
    g_set_error (error, GE_ERROR, GE_ERROR_INVALID,
        "num_inference_steps = %d must be in [1, num_train_timesteps = %d]",
        N, T);
    return FALSE;
  }
  gint64 *ts = g_new (gint64, N);
  if (!ge_sched_spacing_timesteps (s->cfg.timestep_spacing, T, N,
          s->cfg.steps_offset, ts, error)) {
    g_free (ts);
    return FALSE;
  }
  g_free (s->timesteps);
  s->timesteps = ts;
  s->n_timesteps = N;
  s->num_inference_steps = N;
  return TRUE;
}

int
ge_scheduler_n_timesteps (const GeScheduler * s)
{
  return s->n_timesteps;
}

const gint64 *
ge_scheduler_timesteps (const GeScheduler * s)
{
  return s->timesteps;
}

gint64
ge_scheduler_prev_timestep (const GeScheduler * s, int step_index)
{
  g_return_val_if_fail (step_index >= 0 && step_index < s->n_timesteps, -1);
  if (s->cfg.kind == GE_SCHEDULER_DDIM)
    return s->timesteps[step_index]
        - s->cfg.num_train_timesteps / s->num_inference_steps;
  /* DDPMScheduler.previous_timestep (diffusers >= 0.32) */
  return step_index + 1 < s->n_timesteps ? s->timesteps[step_index + 1] : -1;
}

/* ---- steps --------------------------------------------------------------- */

/* The 0-d float32 scalars of one step, each computed as diffusers writes
 * it (torch pow (x, 0.5) is sqrt). */
typedef struct {
  gint64 t;
  float a_t, a_prev, b_t, b_prev;
  float sqrt_a, sqrt_b;         /* alpha_prod_t ** 0.5, beta_prod_t ** 0.5 */
  float std;                    /* multiplies the noise; 0 for none */
  float x0_lo, x0_hi;           /* clip range */
  gboolean clip;
  /* DDIM */
  float sqrt_a_prev, dir_coef;
  /* DDPM */
  float c_x0, c_x;
} StepCoefs;

static void
step_coefs (const GeScheduler * s, int i, float eta, StepCoefs * k)
{
  const gint64 t = s->timesteps[i];
  const gint64 pt = ge_scheduler_prev_timestep (s, i);
  memset (k, 0, sizeof *k);
  k->t = t;
  k->a_t = s->alphas_cumprod[t];
  k->b_t = 1.0f - k->a_t;
  k->sqrt_a = sqrtf (k->a_t);
  k->sqrt_b = sqrtf (k->b_t);
  k->clip = s->cfg.clip_sample;
  k->x0_hi = (float) s->cfg.clip_sample_range;
  k->x0_lo = -k->x0_hi;

  if (s->cfg.kind == GE_SCHEDULER_DDIM) {
    k->a_prev = pt >= 0 ? s->alphas_cumprod[pt] : s->final_alpha_cumprod;
    k->b_prev = 1.0f - k->a_prev;
    /* _get_variance: (beta_prod_t_prev / beta_prod_t)
     *     * (1 - alpha_prod_t / alpha_prod_t_prev) */
    float variance = (k->b_prev / k->b_t) * (1.0f - k->a_t / k->a_prev);
    float std = eta * sqrtf (variance);
    k->std = eta > 0 ? std : 0.0f;
    k->sqrt_a_prev = sqrtf (k->a_prev);
    /* (1 - alpha_prod_t_prev - std_dev_t ** 2) ** 0.5; with eta = 0 the
     * std term is an exact 0 */
    k->dir_coef = sqrtf ((1.0f - k->a_prev) - std * std);
  } else {
    k->a_prev = pt >= 0 ? s->alphas_cumprod[pt] : 1.0f;
    k->b_prev = 1.0f - k->a_prev;
    float cur_alpha = k->a_t / k->a_prev;
    float cur_beta = 1.0f - cur_alpha;
    k->c_x0 = (sqrtf (k->a_prev) * cur_beta) / k->b_t;
    k->c_x = (sqrtf (cur_alpha) * k->b_prev) / k->b_t;
    if (t > 0) {
      float variance;
      if (s->cfg.variance_type == GE_VARIANCE_FIXED_LARGE)
        variance = cur_beta;
      else {
        variance = (1.0f - k->a_prev) / (1.0f - k->a_t) * cur_beta;
        variance = MAX (variance, 1e-20f);
      }
      k->std = sqrtf (variance);
    }
  }
}

float
ge_scheduler_noise_std (const GeScheduler * s, int step_index, float eta)
{
  g_return_val_if_fail (s && step_index >= 0 && step_index < s->n_timesteps,
      0.0f);
  StepCoefs k;
  step_coefs (s, step_index, eta, &k);
  return k.std;
}

void
ge_scheduler_step (const GeScheduler * s, int step_index,
    const float *model_output, const float *sample, gsize n, float eta,
    gboolean use_clipped_model_output, const float *noise,
    float *prev_sample, float *pred_original)
{
  g_return_if_fail (s && step_index >= 0 && step_index < s->n_timesteps);
  g_return_if_fail (n == 0 || (model_output && sample && prev_sample));

  StepCoefs k;
  step_coefs (s, step_index, eta, &k);
  const GePrediction pred = s->cfg.prediction_type;
  const gboolean ddim = s->cfg.kind == GE_SCHEDULER_DDIM;

  for (gsize i = 0; i < n; i++) {
    const float m = model_output[i], x = sample[i];
    float x0, eps = m;
    switch (pred) {
      case GE_PREDICT_EPSILON:
        x0 = (x - k.sqrt_b * m) / k.sqrt_a;
        eps = m;
        break;
      case GE_PREDICT_SAMPLE:
        x0 = m;
        if (ddim)
          eps = (x - k.sqrt_a * x0) / k.sqrt_b;
        break;
      case GE_PREDICT_V:
      default:
        x0 = k.sqrt_a * x - k.sqrt_b * m;
        if (ddim)
          eps = k.sqrt_a * m + k.sqrt_b * x;
        break;
    }
    /* clamp (NaN propagates as in torch.clamp) */
    if (k.clip)
      x0 = x0 < k.x0_lo ? k.x0_lo : (x0 > k.x0_hi ? k.x0_hi : x0);

    float prev;
    if (ddim) {
      if (use_clipped_model_output)
        eps = (x - k.sqrt_a * x0) / k.sqrt_b;
      prev = k.sqrt_a_prev * x0 + k.dir_coef * eps;
    } else
      prev = k.c_x0 * x0 + k.c_x * x;
    if (noise && k.std > 0)
      prev = prev + k.std * noise[i];

    /* written last: the outputs may alias the inputs */
    if (pred_original)
      pred_original[i] = x0;
    prev_sample[i] = prev;
  }
}

float
ge_scheduler_step_noise_std (const GeScheduler * s, int step_index, float eta)
{
  g_return_val_if_fail (s && step_index >= 0 && step_index < s->n_timesteps, 0.0f);
  StepCoefs k;
  step_coefs (s, step_index, eta, &k);
  return k.std;
}

void
ge_scheduler_add_noise (const GeScheduler * s, const float *x0,
    const float *noise, gint64 t, gsize n, float *out)
{
  g_return_if_fail (s && t >= 0 && t < s->cfg.num_train_timesteps);
  const float a = s->alphas_cumprod[t];
  const float sa = sqrtf (a), sb = sqrtf (1.0f - a);
  for (gsize i = 0; i < n; i++)
    out[i] = sa * x0[i] + sb * noise[i];
}
