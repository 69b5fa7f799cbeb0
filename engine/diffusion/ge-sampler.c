/* ge-sampler.c: see ge-sampler.h.  The class-independent part: reading the
 * config, the calls every sampler answers the same way, and the sigma
 * schedule helpers the Karras-style samplers share.  The steps live in
 * sampler_*.c. */
#include "ge-sampler-private.h"

#include <math.h>
#include <string.h>

/* see ge-scheduler.c: torch rounds every operation on its own */
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize ("fp-contract=off")
#endif

static const GeSamplerClass *const classes[] = {
  &ge_sampler_ddpm_class, &ge_sampler_ddim_class, &ge_sampler_pndm_class,
  &ge_sampler_euler_class, &ge_sampler_euler_ancestral_class,
  &ge_sampler_dpmpp_class, &ge_sampler_lms_class,
};

/* ---- config file --------------------------------------------------------- */

/* Python's json.dumps writes float('-inf') as -Infinity: quote such bare
 * tokens (outside strings) so that a JSON parser takes them. */
static char *
quote_nonfinite (const char *text, gsize len)
{
  static const char *const toks[] = { "-Infinity", "Infinity", "NaN" };
  GString *out = g_string_sized_new (len + 16);
  gboolean in_str = FALSE;
  for (gsize i = 0; i < len; i++) {
    const char ch = text[i];
    if (in_str) {
      g_string_append_c (out, ch);
      if (ch == '\\' && i + 1 < len)
        g_string_append_c (out, text[++i]);
      else if (ch == '"')
        in_str = FALSE;
      continue;
    }
    if (ch == '"') {
      in_str = TRUE;
      g_string_append_c (out, ch);
      continue;
    }
    gboolean done = FALSE;
    for (guint k = 0; k < G_N_ELEMENTS (toks) && !done; k++) {
      gsize tl = strlen (toks[k]);
      if (i + tl <= len && memcmp (text + i, toks[k], tl) == 0
          && (i + tl == len || !g_ascii_isalnum (text[i + tl]))) {
        g_string_append_printf (out, "\"%s\"", toks[k]);
        i += tl - 1;
        done = TRUE;
      }
    }
    if (!done)
      g_string_append_c (out, ch);
  }
  return g_string_free (out, FALSE);
}

JsonObject *
ge_sampler_config_load (const char *path, JsonParser ** parser,
    GError ** error)
{
  char *text = NULL;
  gsize len = 0;
  *parser = NULL;
  if (!g_file_get_contents (path, &text, &len, NULL)) {
    ge_fail (error, GE_ERROR_NOT_FOUND, path, "cannot read the scheduler config");
    return NULL;
  }
  char *fixed = quote_nonfinite (text, len);
  g_free (text);
  JsonParser *p = json_parser_new ();
  GError *jerr = NULL;
  /* An empty text (or one that starts with a NUL) parses, to no root. */
  if (!json_parser_load_from_data (p, fixed, -1, &jerr) || !json_parser_get_root (p)
      || !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (p))) {
    ge_fail (error, GE_ERROR_CORRUPT, path, "%s",
        jerr ? jerr->message : "not a JSON object");
    g_clear_error (&jerr);
    g_free (fixed);
    g_object_unref (p);
    return NULL;
  }
  g_free (fixed);
  *parser = p;
  return json_node_get_object (json_parser_get_root (p));
}

/* ---- config keys --------------------------------------------------------- */

static const char *const beta_names[] =
    { "linear", "scaled_linear", "squaredcos_cap_v2", NULL };
/* "original_sample" is EulerDiscreteScheduler's old name for "sample" */
static const char *const prediction_names[] =
    { "epsilon", "v_prediction", "sample", "original_sample", NULL };
static const char *const spacing_names[] =
    { "leading", "trailing", "linspace", NULL };

/* A number, or one of the strings ge_sampler_config_load makes of Python's
 * non-finite literals. */
static gboolean
get_number_ext (JsonNode * node, const char *key, const char *source,
    double *out, GError ** error)
{
  if (ge_sched_json_is_type (node, G_TYPE_STRING)) {
    const char *v = json_node_get_string (node);
    if (strcmp (v, "-Infinity") == 0)
      *out = -INFINITY;
    else if (strcmp (v, "Infinity") == 0)
      *out = INFINITY;
    else if (strcmp (v, "NaN") == 0)
      *out = NAN;
    else
      GE_SAMPLER_FAIL (error, GE_ERROR_CORRUPT, source,
          "\"%s\" is not a number", key);
    return TRUE;
  }
  if (ge_sched_json_is_type (node, G_TYPE_DOUBLE))
    *out = json_node_get_double (node);
  else if (ge_sched_json_is_type (node, G_TYPE_INT64))
    *out = (double) json_node_get_int (node);
  else
    GE_SAMPLER_FAIL (error, GE_ERROR_CORRUPT, source,
        "\"%s\" is not a number", key);
  return TRUE;
}

/* A boolean that must be false (or null) for us to run the config. */
static gboolean
get_false (JsonNode * node, const char *key, const char *source,
    GError ** error)
{
  gboolean b = FALSE;
  if (JSON_NODE_HOLDS_NULL (node))
    return TRUE;
  if (!ge_sched_json_get_bool (node, key, source, &b, error))
    return FALSE;
  if (b)
    GE_SAMPLER_FAIL (error, GE_ERROR_UNSUPPORTED, source,
        "%s = true is not supported", key);
  return TRUE;
}

/* A boolean where diffusers also takes null (as false). */
static gboolean
get_bool_or_null (JsonNode * node, const char *key, const char *source,
    gboolean * out, GError ** error)
{
  if (JSON_NODE_HOLDS_NULL (node)) {
    *out = FALSE;
    return TRUE;
  }
  return ge_sched_json_get_bool (node, key, source, out, error);
}

static gboolean
get_string_in (JsonNode * node, const char *key, const char *source,
    const char *const *names, int *out, GError ** error)
{
  return ge_sched_json_get_enum (node, key, source, names, out, error);
}

static gboolean
read_key (const GeSamplerClass * k, GeSamplerConfig * c, const char *key,
    JsonNode * node, const char *source, GError ** error)
{
  int e = 0;
  gboolean b = FALSE;
  double d = 0;

  if (strcmp (key, "num_train_timesteps") == 0)
    return ge_sched_json_get_int (node, key, source,
        &c->base.num_train_timesteps, error);
  if (strcmp (key, "beta_start") == 0)
    return ge_sched_json_get_double (node, key, source, &c->base.beta_start,
        error);
  if (strcmp (key, "beta_end") == 0)
    return ge_sched_json_get_double (node, key, source, &c->base.beta_end,
        error);
  if (strcmp (key, "beta_schedule") == 0) {
    if (!get_string_in (node, key, source, beta_names, &e, error))
      return FALSE;
    c->base.beta_schedule = e;
    return TRUE;
  }
  if (strcmp (key, "prediction_type") == 0) {
    if (!get_string_in (node, key, source, prediction_names, &e, error))
      return FALSE;
    if (e == 3 && k != &ge_sampler_euler_class)
      GE_SAMPLER_FAIL (error, GE_ERROR_UNSUPPORTED, source,
          "prediction_type \"original_sample\" is not supported by %s",
          k->class_name);
    c->base.prediction_type = e == 3 ? GE_PREDICT_SAMPLE : (GePrediction) e;
    return TRUE;
  }
  if (strcmp (key, "timestep_spacing") == 0) {
    if (!get_string_in (node, key, source, spacing_names, &e, error))
      return FALSE;
    c->base.timestep_spacing = e;
    return TRUE;
  }
  if (strcmp (key, "steps_offset") == 0)
    return ge_sched_json_get_int (node, key, source, &c->base.steps_offset,
        error);
  if (strcmp (key, "set_alpha_to_one") == 0)
    return ge_sched_json_get_bool (node, key, source,
        &c->base.set_alpha_to_one, error);
  if (strcmp (key, "skip_prk_steps") == 0)
    return ge_sched_json_get_bool (node, key, source, &c->skip_prk_steps,
        error);
  if (strcmp (key, "trained_betas") == 0) {
    if (!JSON_NODE_HOLDS_NULL (node))
      GE_SAMPLER_FAIL (error, GE_ERROR_UNSUPPORTED, source,
          "trained_betas is not supported (only null)");
    return TRUE;
  }
  if (strcmp (key, "rescale_betas_zero_snr") == 0
      || strcmp (key, "thresholding") == 0
      || strcmp (key, "use_exponential_sigmas") == 0
      || strcmp (key, "use_beta_sigmas") == 0
      || strcmp (key, "use_lu_lambdas") == 0
      || strcmp (key, "use_flow_sigmas") == 0)
    return get_false (node, key, source, error);
  if (strcmp (key, "use_dynamic_shifting") == 0)
    /* only acts through set_timesteps (mu=...), which we do not take */
    return get_bool_or_null (node, key, source, &b, error);
  if (strcmp (key, "use_karras_sigmas") == 0)
    return get_bool_or_null (node, key, source, &c->use_karras_sigmas, error);
  if (strcmp (key, "interpolation_type") == 0) {
    static const char *const names[] = { "linear", "log_linear", NULL };
    if (!get_string_in (node, key, source, names, &e, error))
      return FALSE;
    c->log_linear = e == 1;
    return TRUE;
  }
  if (strcmp (key, "timestep_type") == 0) {
    static const char *const names[] = { "discrete", "continuous", NULL };
    if (!get_string_in (node, key, source, names, &e, error))
      return FALSE;
    c->continuous = e == 1;
    return TRUE;
  }
  if (strcmp (key, "sigma_min") == 0 || strcmp (key, "sigma_max") == 0) {
    const gboolean is_min = key[6] == 'i';
    if (JSON_NODE_HOLDS_NULL (node))
      return TRUE;
    if (!ge_sched_json_get_double (node, key, source, &d, error))
      return FALSE;
    if (!(d > 0))
      GE_SAMPLER_FAIL (error, GE_ERROR_UNSUPPORTED, source,
          "%s = %g must be positive", key, d);
    *(is_min ? &c->sigma_min : &c->sigma_max) = d;
    *(is_min ? &c->has_sigma_min : &c->has_sigma_max) = TRUE;
    return TRUE;
  }
  if (strcmp (key, "final_sigmas_type") == 0) {
    static const char *const names[] = { "zero", "sigma_min", NULL };
    if (!get_string_in (node, key, source, names, &e, error))
      return FALSE;
    c->final_sigma_min = e == 1;
    return TRUE;
  }
  if (strcmp (key, "solver_order") == 0) {
    if (!ge_sched_json_get_int (node, key, source, &c->solver_order, error))
      return FALSE;
    if (c->solver_order != 1 && c->solver_order != 2)
      GE_SAMPLER_FAIL (error, GE_ERROR_UNSUPPORTED, source,
          "solver_order = %d is not supported (1 and 2 are)", c->solver_order);
    return TRUE;
  }
  if (strcmp (key, "algorithm_type") == 0) {
    /* diffusers maps "deis" to dpmsolver++; the others are other solvers */
    static const char *const names[] = { "dpmsolver++", "deis", NULL };
    return get_string_in (node, key, source, names, &e, error);
  }
  if (strcmp (key, "solver_type") == 0) {
    /* diffusers maps DEIS's / UniPC's solver types to midpoint */
    static const char *const names[] =
        { "midpoint", "heun", "logrho", "bh1", "bh2", NULL };
    if (!get_string_in (node, key, source, names, &e, error))
      return FALSE;
    c->heun = e == 1;
    return TRUE;
  }
  if (strcmp (key, "lower_order_final") == 0)
    return ge_sched_json_get_bool (node, key, source, &c->lower_order_final,
        error);
  if (strcmp (key, "euler_at_final") == 0)
    return ge_sched_json_get_bool (node, key, source, &c->euler_at_final,
        error);
  if (strcmp (key, "lambda_min_clipped") == 0) {
    if (!get_number_ext (node, key, source, &c->lambda_min_clipped, error))
      return FALSE;
    if (isnan (c->lambda_min_clipped))
      GE_SAMPLER_FAIL (error, GE_ERROR_UNSUPPORTED, source,
          "lambda_min_clipped = NaN is not supported");
    return TRUE;
  }
  if (strcmp (key, "variance_type") == 0) {
    /* learned variances: a model output twice the sample's channels */
    if (!JSON_NODE_HOLDS_NULL (node)) {
      const char *v = ge_sched_json_is_type (node, G_TYPE_STRING)
          ? json_node_get_string (node) : "(not a string)";
      GE_SAMPLER_FAIL (error, GE_ERROR_UNSUPPORTED, source,
          "variance_type \"%s\" is not supported (only null)", v);
    }
    return TRUE;
  }
  if (strcmp (key, "time_shift_type") == 0) {
    static const char *const names[] = { "exponential", NULL };
    return get_string_in (node, key, source, names, &e, error);
  }
  if (strcmp (key, "flow_shift") == 0
      || strcmp (key, "dynamic_thresholding_ratio") == 0
      || strcmp (key, "sample_max_value") == 0)
    /* used only with use_flow_sigmas / thresholding, refused above */
    return get_number_ext (node, key, source, &d, error);
  GE_SAMPLER_FAIL (error, GE_ERROR_UNSUPPORTED, source,
      "%s takes \"%s\", which we do not read", k->class_name, key);
}

static gboolean
in_list (const char *const *list, const char *key)
{
  for (int i = 0; list && list[i]; i++)
    if (strcmp (list[i], key) == 0)
      return TRUE;
  return FALSE;
}

/* keys a preset name sets itself */
typedef struct {
  const char *name;
  const GeSamplerClass *klass;
  int karras;                   /* -1: as the config says */
} Preset;

static const Preset presets[] = {
  { "ddpm", &ge_sampler_ddpm_class, -1 },
  { "ddim", &ge_sampler_ddim_class, -1 },
  { "pndm", &ge_sampler_pndm_class, -1 },
  { "euler", &ge_sampler_euler_class, -1 },
  { "euler-ancestral", &ge_sampler_euler_ancestral_class, -1 },
  { "dpmpp-2m", &ge_sampler_dpmpp_class, 0 },
  { "dpmpp-2m-karras", &ge_sampler_dpmpp_class, 1 },
  { "lms", &ge_sampler_lms_class, -1 },
};

static const char *const dpmpp_preset_keys[] =
    { "algorithm_type", "solver_order", "use_karras_sigmas", NULL };

static gboolean
read_config (const Preset * p, GeSamplerConfig * c, JsonObject * obj,
    const char *source, GError ** error)
{
  const GeSamplerClass *k = p->klass;
  memset (c, 0, sizeof *c);
  if (k->keys == NULL)
    /* DDPM / DDIM: ge-scheduler.c reads them */
    return ge_scheduler_config_from_json_as (&c->base, k->base_kind, obj,
        source, error);

  ge_scheduler_config_init_defaults (&c->base, GE_SCHEDULER_DDIM);
  /* defaults every other class shares */
  c->base.clip_sample = FALSE;
  c->base.set_alpha_to_one = FALSE;
  c->base.timestep_spacing = GE_SPACING_LINSPACE;
  c->lambda_min_clipped = -INFINITY;
  c->solver_order = 2;
  c->lower_order_final = TRUE;
  if (k->defaults)
    k->defaults (c);

  const gboolean preset = p->karras >= 0;
  GList *members = json_object_get_members (obj);
  gboolean ok = TRUE;
  for (GList * l = members; l && ok; l = l->next) {
    const char *key = l->data;
    if (key[0] == '_' || !in_list (k->keys, key))
      continue;                 /* diffusers' from_config ignores them too */
    if (preset && in_list (dpmpp_preset_keys, key))
      continue;
    ok = read_key (k, c, key, json_object_get_member (obj, key), source,
        error);
  }
  g_list_free (members);
  if (!ok)
    return FALSE;
  if (preset) {
    c->solver_order = 2;
    c->use_karras_sigmas = p->karras;
  }
  return k->check ? k->check (c, source, error) : TRUE;
}

static GeSampler *
sampler_new (const Preset * p, JsonObject * config, const char *source,
    GError ** error)
{
  GeSamplerConfig c;
  if (!read_config (p, &c, config, source, error))
    return NULL;
  GeScheduler *base = ge_scheduler_new (&c.base, error);
  if (!base) {
    /* The schedule's own checks know no file: say which one. */
    g_prefix_error (error, "%s: ", source);
    return NULL;
  }
  GeSampler *s = g_new0 (GeSampler, 1);
  s->source = g_strdup (source);
  s->klass = p->klass;
  s->cfg = c;
  s->base = base;
  s->init_noise_sigma = 1.0f;
  return s;
}

GeSampler *
ge_sampler_new_from_json_as (const char *name, JsonObject * config,
    const char *source, GError ** error)
{
  g_return_val_if_fail (config != NULL, NULL);
  if (!source)
    source = "scheduler config";
  const char *cls = NULL;
  JsonNode *cn = json_object_get_member (config, "_class_name");
  if (cn && ge_sched_json_is_type (cn, G_TYPE_STRING))
    cls = json_node_get_string (cn);
  else if (cn) {
    ge_fail (error, GE_ERROR_CORRUPT, source, "\"_class_name\" is not a string");
    return NULL;
  }
  if (!name && !cls) {
    ge_fail (error, GE_ERROR_CORRUPT, source, "no \"_class_name\"");
    return NULL;
  }
  const char *want = name ? name : cls;
  for (guint i = 0; i < G_N_ELEMENTS (presets); i++)
    if (strcmp (want, presets[i].name) == 0)
      return sampler_new (&presets[i], config, source, error);
  for (guint i = 0; i < G_N_ELEMENTS (classes); i++)
    if (strcmp (want, classes[i]->class_name) == 0) {
      Preset p = { classes[i]->short_name, classes[i], -1 };
      return sampler_new (&p, config, source, error);
    }
  if (name)
    ge_fail (error, GE_ERROR_UNSUPPORTED, source, "unknown sampler \"%s\" "
        "(ddim, ddpm, pndm, euler, euler-ancestral, dpmpp-2m, dpmpp-2m-karras, "
        "lms)", name);
  else
    ge_fail (error, GE_ERROR_UNSUPPORTED, source, "_class_name \"%s\" is not "
        "supported (DDPMScheduler, DDIMScheduler, PNDMScheduler, "
        "EulerDiscreteScheduler, EulerAncestralDiscreteScheduler, "
        "DPMSolverMultistepScheduler, LMSDiscreteScheduler are)", cls);
  return NULL;
}

GeSampler *
ge_sampler_new_from_json (JsonObject * config, const char *source,
    GError ** error)
{
  return ge_sampler_new_from_json_as (NULL, config, source, error);
}

void
ge_sampler_free (GeSampler * s)
{
  if (!s)
    return;
  ge_scheduler_free (s->base);
  g_free (s->source);
  g_free (s->timesteps);
  g_free (s->itimesteps);
  g_free (s->sigmas);
  g_free (s->lms_coefs);
  g_free (s);
}

/* ---- schedule ------------------------------------------------------------ */

const char *
ge_sampler_class_name (const GeSampler * s)
{
  return s->klass->class_name;
}

int
ge_sampler_num_train_timesteps (const GeSampler * s)
{
  return s->cfg.base.num_train_timesteps;
}

const float *
ge_sampler_betas (const GeSampler * s)
{
  return ge_scheduler_betas (s->base);
}

const float *
ge_sampler_alphas_cumprod (const GeSampler * s)
{
  return ge_scheduler_alphas_cumprod (s->base);
}

static gboolean set_timesteps (GeSampler * s, int num_inference_steps, GError ** error);

gboolean
ge_sampler_set_timesteps (GeSampler * s, int num_inference_steps,
    GError ** error)
{
  g_return_val_if_fail (s != NULL, FALSE);
  if (set_timesteps (s, num_inference_steps, error))
    return TRUE;
  g_prefix_error (error, "%s: ", s->source);
  return FALSE;
}

static gboolean
set_timesteps (GeSampler * s, int num_inference_steps, GError ** error)
{
  const int T = s->cfg.base.num_train_timesteps;
  if (num_inference_steps < 1 || num_inference_steps > T) {
    g_set_error (error, GE_ERROR, GE_ERROR_INVALID,
        "num_inference_steps = %d must be in [1, num_train_timesteps = %d]",
        num_inference_steps, T);
    return FALSE;
  }
  g_clear_pointer (&s->timesteps, g_free);
  g_clear_pointer (&s->itimesteps, g_free);
  g_clear_pointer (&s->sigmas, g_free);
  g_clear_pointer (&s->lms_coefs, g_free);
  s->n_sigmas = 0;
  s->n_calls = 0;
  s->num_inference_steps = 0;
  s->init_noise_sigma = 1.0f;
  if (!s->klass->set_timesteps (s, num_inference_steps, error)) {
    s->n_calls = 0;
    return FALSE;
  }
  s->num_inference_steps = num_inference_steps;
  return TRUE;
}

int
ge_sampler_n_calls (const GeSampler * s)
{
  return s->n_calls;
}

float
ge_sampler_timestep (const GeSampler * s, int i)
{
  g_return_val_if_fail (i >= 0 && i < s->n_calls, 0.0f);
  return s->timesteps[i];
}

const float *
ge_sampler_sigmas (const GeSampler * s, int *n_sigmas)
{
  if (n_sigmas)
    *n_sigmas = s->n_sigmas;
  return s->sigmas;
}

float
ge_sampler_init_noise_sigma (const GeSampler * s)
{
  return s->init_noise_sigma;
}

static gboolean
scales_input (const GeSampler * s)
{
  return s->klass == &ge_sampler_euler_class
      || s->klass == &ge_sampler_euler_ancestral_class
      || s->klass == &ge_sampler_lms_class;
}

/* (sigma ** 2 + 1) ** 0.5 */
static float
input_denom (const GeSampler * s, int i)
{
  const float sg = s->sigmas[i];
  return sqrtf (sg * sg + 1.0f);
}

float
ge_sampler_input_scale (const GeSampler * s, int i)
{
  g_return_val_if_fail (i >= 0 && i < s->n_calls, 1.0f);
  return scales_input (s) ? 1.0f / input_denom (s, i) : 1.0f;
}

void
ge_sampler_scale_model_input (const GeSampler * s, int i, const float *in,
    gsize n, float *out)
{
  g_return_if_fail (i >= 0 && i < s->n_calls);
  if (!scales_input (s)) {
    if (out != in)
      memmove (out, in, n * sizeof *out);
    return;
  }
  const float d = input_denom (s, i);
  for (gsize k = 0; k < n; k++)
    out[k] = in[k] / d;
}

int
ge_sampler_start_index (const GeSampler * s, double strength)
{
  /* StableDiffusionImg2ImgPipeline.get_timesteps: every class here has
   * order 1, so the index is t_start itself */
  const int N = s->num_inference_steps;
  double st = CLAMP (strength, 0.0, 1.0);
  int init = (int) ((double) N * st);
  init = MIN (init, N);
  return MAX (N - init, 0);
}

void
ge_sampler_add_noise (const GeSampler * s, int i, const float *x0,
    const float *noise, gsize n, float *out)
{
  g_return_if_fail (i >= 0 && i < s->n_calls);
  if (s->klass == &ge_sampler_dpmpp_class) {
    /* _sigma_to_alpha_sigma_t, then alpha_t * x0 + sigma_t * noise */
    const float sg = s->sigmas[i];
    const float alpha_t = 1.0f / sqrtf (sg * sg + 1.0f);
    const float sigma_t = sg * alpha_t;
    for (gsize k = 0; k < n; k++)
      out[k] = alpha_t * x0[k] + sigma_t * noise[k];
  } else if (s->sigmas) {
    const float sg = s->sigmas[i];
    for (gsize k = 0; k < n; k++)
      out[k] = x0[k] + noise[k] * sg;
  } else
    ge_scheduler_add_noise (s->base, x0, noise, s->itimesteps[i], n, out);
}

void
ge_sampler_set_eta (GeSampler * s, float eta)
{
  s->eta = eta;
}

/* ---- runs ---------------------------------------------------------------- */

GeSamplerRun *
ge_sampler_run_new (const GeSampler * s, gsize n)
{
  g_return_val_if_fail (s != NULL, NULL);
  GeSamplerRun *r = g_new0 (GeSamplerRun, 1);
  r->s = s;
  r->n = n;
  for (int b = 0; b < s->klass->n_bufs && b < GE_SAMPLER_RUN_BUFS; b++)
    r->buf[b] = g_new0 (float, MAX (n, 1));
  return r;
}

void
ge_sampler_run_free (GeSamplerRun * r)
{
  if (!r)
    return;
  for (int b = 0; b < GE_SAMPLER_RUN_BUFS; b++)
    g_free (r->buf[b]);
  g_free (r);
}

void
ge_sampler_run_reset (GeSamplerRun * r)
{
  r->counter = 0;
  r->n_hist = 0;
}

gboolean
ge_sampler_step_needs_noise (const GeSampler * s, int i)
{
  g_return_val_if_fail (i >= 0 && i < s->n_calls, FALSE);
  return s->klass->needs_noise ? s->klass->needs_noise (s, i) : FALSE;
}

gboolean
ge_sampler_step_full (GeSamplerRun * r, int i, const float *model_output,
    const float *sample, const float *noise, float *prev_sample,
    float *pred_original)
{
  g_return_val_if_fail (r && i >= 0 && i < r->s->n_calls, FALSE);
  g_return_val_if_fail (r->n == 0 || (model_output && sample && prev_sample),
      FALSE);
  if (!ge_sampler_step_needs_noise (r->s, i))
    noise = NULL;
  gboolean wrote = r->s->klass->step (r, i, model_output, sample, noise,
      prev_sample, pred_original);
  r->counter++;
  return wrote;
}

void
ge_sampler_step (GeSamplerRun * r, int i, const float *model_output,
    const float *sample, const float *noise, float *prev_sample)
{
  ge_sampler_step_full (r, i, model_output, sample, noise, prev_sample, NULL);
}

/* ---- sigma schedules ----------------------------------------------------- */

void
ge_sampler_train_sigmas (const GeSampler * s, float *out)
{
  const float *ac = ge_scheduler_alphas_cumprod (s->base);
  for (int t = 0; t < s->cfg.base.num_train_timesteps; t++)
    out[t] = sqrtf ((1.0f - ac[t]) / ac[t]);
}

double
ge_sampler_interp (double x, const float *fp, int T)
{
  /* numpy's interp kernel with xp = 0 .. T-1: clamp outside, fp[j] where
   * x hits a sample point, else slope * (x - xp[j]) + fp[j] */
  if (!(x > 0))
    return fp[0];
  if (x >= T - 1)
    return fp[T - 1];
  const int j = (int) floor (x);
  if ((double) j == x)
    return fp[j];
  const double slope = ((double) fp[j + 1] - (double) fp[j]) / 1.0;
  return slope * (x - (double) j) + (double) fp[j];
}

void
ge_sampler_karras (double sigma_min, double sigma_max, int n, double *out)
{
  const double rho = 7.0;
  const double min_inv_rho = pow (sigma_min, 1.0 / rho);
  const double max_inv_rho = pow (sigma_max, 1.0 / rho);
  /* ramp = np.linspace (0, 1, n) */
  const double step = n > 1 ? 1.0 / (n - 1) : 0.0;
  for (int i = 0; i < n; i++) {
    double ramp = (n > 1 && i == n - 1) ? 1.0 : i * step;
    out[i] = pow (max_inv_rho + ramp * (min_inv_rho - max_inv_rho), rho);
  }
}

double
ge_sampler_sigma_to_t (double sigma, const float *log_sigmas, int T)
{
  const double log_sigma = log (MAX (sigma, 1e-10));
  /* low_idx: the last index with log_sigmas[idx] <= log_sigma (0 when
   * none), at most T - 2 */
  int low = 0;
  for (int k = 0; k < T; k++)
    if (log_sigma - (double) log_sigmas[k] >= 0)
      low = k;
  low = MIN (low, T - 2);
  const int high = low + 1;
  const float lo = log_sigmas[low], hi = log_sigmas[high];
  /* (low - log_sigma) in double, (low - high) in float32 as numpy does */
  double w = ((double) lo - log_sigma) / (double) (float) (lo - hi);
  w = CLAMP (w, 0.0, 1.0);
  return (1.0 - w) * low + w * high;
}

void
ge_sampler_sigmas_to_t (const double *sigmas, int n, const float *train, int T, float *ts)
{
  float *log_sigmas = g_new (float, T);
  for (int t = 0; t < T; t++)
    log_sigmas[t] = logf (train[t]);
  for (int k = 0; k < n; k++)
    ts[k] = (float) ge_sampler_sigma_to_t (sigmas[k], log_sigmas, T);
  g_free (log_sigmas);
}

gboolean
ge_sampler_sigma_spacing (const GeSampler * s, int N, float *ts,
    GError ** error)
{
  const GeSchedulerConfig *c = &s->cfg.base;
  const int T = c->num_train_timesteps;
  if (c->timestep_spacing == GE_SPACING_LINSPACE) {
    /* np.linspace (0, T - 1, N, dtype=float32)[::-1]: float64, then
     * rounded to float32 */
    const double stop = T - 1;
    const double step = N > 1 ? stop / (N - 1) : 0;
    for (int j = 0; j < N; j++) {
      int i = N - 1 - j;
      double y = (N > 1 && i == N - 1) ? stop : (step == 0 ? 0 : i * step);
      ts[j] = (float) y;
    }
    return TRUE;
  }
  gint64 *it = g_new (gint64, N);
  gboolean ok = ge_sched_spacing_timesteps (c->timestep_spacing, T, N,
      c->steps_offset, it, error);
  for (int j = 0; ok && j < N; j++)
    ts[j] = (float) it[j];
  g_free (it);
  return ok;
}
