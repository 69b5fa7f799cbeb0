/* conf-scheduler.c: scheduler cases (a scheduler_config.json and no model).
 *
 * Two case formats (see tests/fixtures/diffusers/sched_* /README.md):
 *
 * DDPM / DDIM, independent steps from one input:
 *  - scheduler_config.json: diffusers save_config () output; "_class_name"
 *    (or meta.json "class") says DDIM or DDPM;
 *  - meta.json: "num_inference_steps" [N...], "step_records" ["nN.iI"...],
 *    optional "extra" {use_clipped_model_output, eta};
 *  - io.safetensors: input.sample, input.model_output and the references
 *    betas, alphas_cumprod, final_alpha_cumprod, nN.timesteps and per record
 *    nN.iI.{t, prev_t, pred_original_sample, prev_sample, prev_sample_mean,
 *    noise, noise_std, clipped_eps.prev_sample}, add_noise.{noise,
 *    timesteps, out}.
 *  The plain nN.iI.* records are steps with eta 0 (the READMEs say so);
 *  extra.eta belongs to the nN.iI.eta.* records (the same names, with
 *  eta.noise the drawn noise, and also eta.variance / eta.std_dev_t).
 *
 * Every other class (PNDM, Euler, Euler ancestral, DPM++, LMS), through
 * GeSampler: meta.json "num_inference_steps" [N...] and a stateful run of
 * "run_len" calls at "run_steps"; io.safetensors betas, alphas_cumprod,
 * nN.{timesteps, sigmas, init_noise_sigma}, run.{initial_sample,
 * timesteps, sigmas} and per call stepI.{t, scaled_model_input,
 * model_output, noise, prev_sample, pred_original_sample}.  Each step is
 * replayed from the stored inputs of that step (the previous step's stored
 * prev_sample), one GeSamplerRun carrying the history, with the recorded
 * noise injected.
 *
 * Timesteps are compared exactly, everything else with the relative
 * tolerance.  Every tensor in io.safetensors must be an input or a checked
 * output: any other one fails the case ("unchecked output: KEY").
 */
#include "conf.h"
#include "ge-scheduler.h"
#include "ge-sampler.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static gboolean
has (Conf * c, const char *key)
{
  return ge_safetensors_find (c->io, key) != NULL;
}

/* Exact check of one integer scalar against a 0-d / [1] I64 reference. */
static void
check_int_scalar (Conf * c, const char *key, gint64 got)
{
  if (has (c, key))
    conf_check_ints (c, key, &got, 1);
}

/* "nN.iI" or "nN.iI.eta" -> N, I, whether it names the eta records */
static gboolean
parse_record (const char *rec, int *N, int *I, gboolean * eta)
{
  char *end;
  if (rec[0] != 'n')
    return FALSE;
  long n = strtol (rec + 1, &end, 10);
  if (end == rec + 1 || strncmp (end, ".i", 2) != 0)
    return FALSE;
  const char *p = end + 2;
  long i = strtol (p, &end, 10);
  *eta = strcmp (end, ".eta") == 0;
  if (end == p || (*end != '\0' && !*eta) || n < 1 || n > G_MAXINT || i < 0
      || i > G_MAXINT)
    return FALSE;
  *N = (int) n;
  *I = (int) i;
  return TRUE;
}

static double
member_double (JsonObject * o, const char *key, double dflt)
{
  JsonNode *n = o ? json_object_get_member (o, key) : NULL;
  if (!n || JSON_NODE_TYPE (n) != JSON_NODE_VALUE)
    return dflt;
  GType t = json_node_get_value_type (n);
  if (t == G_TYPE_DOUBLE)
    return json_node_get_double (n);
  if (t == G_TYPE_INT64)
    return (double) json_node_get_int (n);
  if (t == G_TYPE_BOOLEAN)
    return json_node_get_boolean (n);
  return dflt;
}

/* One record: @prefix "" (the plain step, eta 0) or "eta." (the step with
 * extra.eta). */
static void
check_record (Conf * c, GeScheduler * s, int N, int I, const char *prefix,
    const float *sample, const float *model_output, gsize n, float eta,
    gboolean extra_clipped)
{
  const GeSchedulerConfig *cfg = ge_scheduler_config (s);
  const gboolean ddim = cfg->kind == GE_SCHEDULER_DDIM;
  char key[160];
#define K(suffix) (g_snprintf (key, sizeof key, "n%d.i%d.%s%s", N, I, prefix, suffix), key)

  if (I >= ge_scheduler_n_timesteps (s)) {
    printf ("n%d.i%d: step index out of range (%d timesteps)\n", N, I,
        ge_scheduler_n_timesteps (s));
    c->n_failed++;
    return;
  }
  /* t and prev_t do not depend on eta */
  if (prefix[0] == '\0') {
    check_int_scalar (c, K ("t"), ge_scheduler_timesteps (s)[I]);
    check_int_scalar (c, K ("prev_t"), ge_scheduler_prev_timestep (s, I));
  }

  float *noise = conf_try_load_f32 (c, K ("noise"), NULL);
  if (!noise && ge_scheduler_step_noise_std (s, I, eta) > 0
      && has (c, K ("prev_sample"))) {
    /* a stored stochastic step without its noise cannot be replayed */
    printf ("%-48s MISSING (the step draws noise)\n", key);
    c->n_failed++;
  }
  float *prev = g_new (float, n);
  float *x0 = g_new (float, n);

  /* The stored prev_sample is the full step: with its noise when one was
   * drawn (DDPM at t > 0, DDIM with eta > 0). */
  ge_scheduler_step (s, I, model_output, sample, n, eta, FALSE, noise, prev,
      x0);
  if (has (c, K ("pred_original_sample")))
    conf_check (c, key, x0, n);
  if (has (c, K ("prev_sample")))
    conf_check (c, key, prev, n);

  if (has (c, K ("prev_sample_mean"))) {
    ge_scheduler_step (s, I, model_output, sample, n, eta, FALSE, NULL, prev,
        NULL);
    conf_check (c, key, prev, n);
  }
  if (has (c, K ("noise_std"))) {
    float std = ge_scheduler_noise_std (s, I, eta);
    conf_check (c, key, &std, 1);
  }
  if (ddim && has (c, K ("std_dev_t"))) {
    float std = ge_scheduler_noise_std (s, I, eta);
    conf_check (c, key, &std, 1);
  }
  if (ddim && has (c, K ("variance"))) {
    /* DDIM's _get_variance: std_dev_t at eta 1, squared */
    float sd = ge_scheduler_noise_std (s, I, 1.0f);
    float var = sd * sd;
    conf_check (c, key, &var, 1);
  }
  if (ddim && has (c, K ("clipped_eps.prev_sample"))) {
    ge_scheduler_step (s, I, model_output, sample, n, eta, TRUE, noise, prev,
        NULL);
    conf_check (c, key, prev, n);
  } else if (extra_clipped && has (c, K ("clipped_eps.prev_sample"))) {
    /* DDPM has no use_clipped_model_output: the reference equals the
     * plain step */
    ge_scheduler_step (s, I, model_output, sample, n, eta, FALSE, noise, prev,
        NULL);
    conf_check (c, key, prev, n);
  }
#undef K
  g_free (noise);
  g_free (prev);
  g_free (x0);
}

/* whether io.safetensors holds a key starting with @prefix */
static gboolean
has_prefix (Conf * c, const char *prefix)
{
  for (guint i = 0; i < ge_safetensors_n_tensors (c->io); i++)
    if (g_str_has_prefix (ge_safetensors_nth (c->io, i)->name, prefix))
      return TRUE;
  return FALSE;
}

static void
check_add_noise (Conf * c, GeScheduler * s, const float *sample, gsize n)
{
  if (!has (c, "add_noise.out"))
    return;
  const GeStTensor *tt = ge_safetensors_find (c->io, "add_noise.timesteps");
  conf_use (c, "add_noise.timesteps");
  gsize nn = 0;
  float *noise = conf_load_f32 (c, "add_noise.noise", &nn);
  if (!tt || !noise || nn != n || tt->n_elements == 0
      || n % tt->n_elements != 0) {
    printf ("%-48s inputs missing or of the wrong size\n", "add_noise.out");
    c->n_failed++;
    g_free (noise);
    return;
  }
  /* one timestep per batch element (the leading dimension) */
  const gsize per = n / tt->n_elements;
  const int T = ge_scheduler_config (s)->num_train_timesteps;
  float *out = g_new (float, n);
  for (gsize b = 0; b < tt->n_elements; b++) {
    gint64 t = ge_st_tensor_get_int (tt, b);
    if (t < 0 || t >= T) {
      printf ("%-48s timestep %" G_GINT64_FORMAT " out of range\n",
          "add_noise.timesteps", t);
      c->n_failed++;
      goto out;
    }
    ge_scheduler_add_noise (s, sample + b * per, noise + b * per, t, per,
        out + b * per);
  }
  conf_check (c, "add_noise.out", out, n);
out:
  g_free (out);
  g_free (noise);
}

/* DDPM / DDIM: independent steps from input.sample / input.model_output */
static void
alpha_case (Conf * c, JsonObject * cfg_obj, JsonObject * meta, const char *cls)
{
  GeScheduler *s = NULL;
  float *sample = NULL, *model_output = NULL;
  GError *err = NULL;

  GeSchedulerConfig cfg;
  ge_scheduler_config_init_defaults (&cfg, strcmp (cls, "DDIMScheduler") == 0
      ? GE_SCHEDULER_DDIM : GE_SCHEDULER_DDPM);
  char *src = g_build_filename (c->dir, "scheduler_config.json", NULL);
  gboolean ok = ge_scheduler_config_from_json (&cfg, cfg_obj, src, &err);
  g_free (src);
  if (ok)
    s = ge_scheduler_new (&cfg, &err);
  if (!s) {
    printf ("scheduler: %s\n", err->message);
    g_clear_error (&err);
    c->n_failed++;
    goto done;
  }
  printf ("# %s, %d train steps\n",
      cfg.kind == GE_SCHEDULER_DDIM ? "DDIM" : "DDPM", cfg.num_train_timesteps);

  const gsize T = cfg.num_train_timesteps;
  if (has (c, "betas"))
    conf_check (c, "betas", ge_scheduler_betas (s), T);
  if (has (c, "alphas_cumprod"))
    conf_check (c, "alphas_cumprod", ge_scheduler_alphas_cumprod (s), T);
  if (has (c, "final_alpha_cumprod")) {
    float f = ge_scheduler_final_alpha_cumprod (s);
    conf_check (c, "final_alpha_cumprod", &f, 1);
  }

  JsonObject *extra = json_object_has_member (meta, "extra")
      && JSON_NODE_HOLDS_OBJECT (json_object_get_member (meta, "extra"))
      ? json_object_get_object_member (meta, "extra") : NULL;
  /* extra.eta is the eta of the nN.iI.eta.* records only */
  const gboolean has_eta = extra && json_object_has_member (extra, "eta");
  const float eta = (float) member_double (extra, "eta", 0.0);
  const gboolean extra_clipped =
      member_double (extra, "use_clipped_model_output", 0) != 0;

  gsize n = 0, n2 = 0;
  if (has (c, "input.sample"))
    sample = conf_load_f32 (c, "input.sample", &n);
  if (has (c, "input.model_output"))
    model_output = conf_load_f32 (c, "input.model_output", &n2);
  if ((sample || model_output) && (!sample || !model_output || n != n2)) {
    printf ("input.sample / input.model_output missing or of different "
        "sizes\n");
    c->n_failed++;
    goto done;
  }

  JsonArray *steps = json_object_has_member (meta, "num_inference_steps")
      && JSON_NODE_HOLDS_ARRAY (json_object_get_member (meta,
          "num_inference_steps"))
      ? json_object_get_array_member (meta, "num_inference_steps") : NULL;
  JsonArray *records = json_object_has_member (meta, "step_records")
      && JSON_NODE_HOLDS_ARRAY (json_object_get_member (meta, "step_records"))
      ? json_object_get_array_member (meta, "step_records") : NULL;

  for (guint a = 0; steps && a < json_array_get_length (steps); a++) {
    int N = (int) json_array_get_int_element (steps, a);
    char key[64];
    if (!ge_scheduler_set_timesteps (s, N, &err)) {
      printf ("set_timesteps (%d): %s\n", N, err->message);
      g_clear_error (&err);
      c->n_failed++;
      continue;
    }
    g_snprintf (key, sizeof key, "n%d.timesteps", N);
    if (has (c, key))
      conf_check_ints (c, key, ge_scheduler_timesteps (s),
          ge_scheduler_n_timesteps (s));
  }

  /* Records in meta.json order; set_timesteps again whenever N changes.
   * A plain record also brings its eta variant when one is stored. */
  GHashTable *done_recs = g_hash_table_new_full (g_str_hash, g_str_equal,
      g_free, NULL);
  int cur_N = 0;
  for (guint r = 0; records && r < json_array_get_length (records); r++) {
    const char *rec = json_array_get_string_element (records, r);
    int N, I;
    gboolean eta_rec = FALSE;
    if (!rec || !parse_record (rec, &N, &I, &eta_rec)) {
      printf ("meta.json: bad step record \"%s\"\n", rec ? rec : "?");
      c->n_failed++;
      continue;
    }
    if (!sample) {
      printf ("%s: no input.sample / input.model_output\n", rec);
      c->n_failed++;
      continue;
    }
    if (N != cur_N) {
      if (!ge_scheduler_set_timesteps (s, N, &err)) {
        printf ("%s: set_timesteps: %s\n", rec, err->message);
        g_clear_error (&err);
        c->n_failed++;
        cur_N = 0;
        continue;
      }
      cur_N = N;
    }
    char *plain = g_strdup_printf ("n%d.i%d", N, I);
    char *with_eta = g_strdup_printf ("n%d.i%d.eta", N, I);
    char *eta_prefix = g_strdup_printf ("n%d.i%d.eta.", N, I);
    if (!eta_rec && !g_hash_table_contains (done_recs, plain)) {
      check_record (c, s, N, I, "", sample, model_output, n, 0.0f,
          extra_clipped);
      g_hash_table_add (done_recs, g_strdup (plain));
    }
    if ((eta_rec || has_prefix (c, eta_prefix))
        && !g_hash_table_contains (done_recs, with_eta)) {
      if (!has_eta) {
        printf ("%s: eta records but no meta.json extra.eta\n", with_eta);
        c->n_failed++;
      } else
        check_record (c, s, N, I, "eta.", sample, model_output, n, eta,
            extra_clipped);
      g_hash_table_add (done_recs, g_strdup (with_eta));
    }
    g_free (plain);
    g_free (with_eta);
    g_free (eta_prefix);
  }
  g_hash_table_unref (done_recs);

  if (sample)
    check_add_noise (c, s, sample, n);

done:
  ge_scheduler_free (s);
  g_free (sample);
  g_free (model_output);
}

/* Exact comparison of timesteps (I64 or float tensors) with ours. */
static void
check_exact (Conf * c, const char *key, const float *got, gsize n)
{
  const GeStTensor *t = ge_safetensors_find (c->io, key);
  conf_use (c, key);
  if (!t || t->n_elements != n) {
    printf ("%-48s %s (got %" G_GSIZE_FORMAT " values)\n", key,
        t ? "SIZE MISMATCH" : "MISSING in io.safetensors", n);
    c->n_failed++;
    return;
  }
  double *ref = g_new (double, MAX (n, 1));
  ge_st_tensor_to_f64 (t, ref);
  gsize bad = 0;
  for (gsize i = 0; i < n; i++)
    if (ref[i] != (double) got[i])
      bad++;
  g_free (ref);
  printf ("%-48s %s (%" G_GSIZE_FORMAT " of %" G_GSIZE_FORMAT " differ)\n",
      key, bad ? "FAIL" : "exact", bad, n);
  c->n_checked++;
  if (bad) {
    c->n_failed++;
    c->worst = INFINITY;
  }
}

/* PREFIX.{timesteps, sigmas, init_noise_sigma} of the current schedule */
static void
check_schedule (Conf * c, GeSampler * s, const char *prefix)
{
  char key[96];
  const int n = ge_sampler_n_calls (s);
  float *ts = g_new (float, MAX (n, 1));
  for (int i = 0; i < n; i++)
    ts[i] = ge_sampler_timestep (s, i);
  g_snprintf (key, sizeof key, "%s.timesteps", prefix);
  if (has (c, key))
    check_exact (c, key, ts, n);
  g_free (ts);
  g_snprintf (key, sizeof key, "%s.sigmas", prefix);
  if (has (c, key)) {
    int ns = 0;
    const float *sg = ge_sampler_sigmas (s, &ns);
    if (!sg) {
      printf ("%-48s %s has no sigmas\n", key, ge_sampler_class_name (s));
      c->n_failed++;
      conf_use (c, key);
    } else
      conf_check (c, key, sg, ns);
  }
  g_snprintf (key, sizeof key, "%s.init_noise_sigma", prefix);
  if (has (c, key)) {
    float v = ge_sampler_init_noise_sigma (s);
    conf_check (c, key, &v, 1);
  }
}

static int
member_int (JsonObject * o, const char *key)
{
  return (int) member_double (o, key, 0);
}

/* The stateful run: each step replayed from the stored inputs of that step,
 * one GeSamplerRun carrying the history through all of them. */
static void
check_run (Conf * c, GeSampler * s, JsonObject * meta)
{
  GError *err = NULL;
  const int N = member_int (meta, "run_steps");
  const int len = member_int (meta, "run_len");
  if (N < 1) {
    printf ("meta.json: the case stores a run but no \"run_steps\"\n");
    c->n_failed++;
    return;
  }
  if (!ge_sampler_set_timesteps (s, N, &err)) {
    printf ("run: set_timesteps (%d): %s\n", N, err->message);
    g_clear_error (&err);
    c->n_failed++;
    return;
  }
  check_schedule (c, s, "run");
  const int calls = ge_sampler_n_calls (s);
  if (len != calls) {
    printf ("run: meta.json run_len %d, but %s makes %d calls of %d steps\n",
        len, ge_sampler_class_name (s), calls, N);
    c->n_failed++;
  }
  gsize n = 0;
  float *x = conf_load_f32 (c, "run.initial_sample", &n);
  if (!x)
    return;
  GeSamplerRun *run = ge_sampler_run_new (s, n);
  float *buf = g_new (float, n), *x0 = g_new (float, n);
  char key[96];
#define K(i, suffix) (g_snprintf (key, sizeof key, "step%d.%s", i, suffix), key)
  for (int i = 0; i < calls; i++) {
    float t = ge_sampler_timestep (s, i);
    if (has (c, K (i, "t")))
      check_exact (c, key, &t, 1);
    if (has (c, K (i, "scaled_model_input"))) {
      ge_sampler_scale_model_input (s, i, x, n, buf);
      conf_check (c, key, buf, n);
    }
    gsize nm = 0, nz = 0;
    float *mo = conf_load_f32 (c, K (i, "model_output"), &nm);
    if (!mo || nm != n) {
      if (mo)
        printf ("%-48s SIZE MISMATCH\n", key);
      c->n_failed += mo != NULL;
      g_free (mo);
      break;
    }
    float *noise = conf_try_load_f32 (c, K (i, "noise"), &nz);
    if (ge_sampler_step_needs_noise (s, i) && (!noise || nz != n)) {
      printf ("%-48s %s (the step draws noise)\n", key,
          noise ? "SIZE MISMATCH" : "MISSING");
      c->n_failed++;
      g_free (mo);
      g_free (noise);
      break;
    }
    gboolean wrote = ge_sampler_step_full (run, i, mo, x, noise, buf, x0);
    if (has (c, K (i, "pred_original_sample"))) {
      if (wrote)
        conf_check (c, key, x0, n);
      else {
        printf ("%-48s %s returns no pred_original_sample\n", key,
            ge_sampler_class_name (s));
        conf_use (c, key);
        c->n_failed++;
      }
    }
    if (has (c, K (i, "prev_sample"))) {
      conf_check (c, key, buf, n);
      /* the next step starts from the stored sample */
      gsize np = 0;
      float *ref = conf_try_load_f32 (c, key, &np);
      if (ref && np == n)
        memcpy (buf, ref, n * sizeof *buf);
      g_free (ref);
    }
    float *tmp = x;
    x = buf;
    buf = tmp;
    g_free (mo);
    g_free (noise);
  }
#undef K
  ge_sampler_run_free (run);
  g_free (x);
  g_free (buf);
  g_free (x0);
}

/* add_noise.{noise, timesteps, out} with the run's schedule: each batch
 * element's timestep is looked up in it as diffusers' index_for_timestep
 * does (the second of two equal entries). */
static void
check_sampler_add_noise (Conf * c, GeSampler * s)
{
  if (!has (c, "add_noise.out"))
    return;
  const GeStTensor *tt = ge_safetensors_find (c->io, "add_noise.timesteps");
  conf_use (c, "add_noise.timesteps");
  gsize n = 0, nn = 0;
  float *x0 = conf_load_f32 (c, "add_noise.original", &n);
  float *noise = conf_load_f32 (c, "add_noise.noise", &nn);
  if (!tt || !x0 || !noise || nn != n || tt->n_elements == 0
      || n % tt->n_elements != 0 || ge_sampler_n_calls (s) == 0) {
    printf ("%-48s inputs missing or of the wrong size\n", "add_noise.out");
    c->n_failed++;
    goto out;
  }
  const gsize per = n / tt->n_elements;
  float *out = g_new (float, n);
  double *tv = g_new (double, tt->n_elements);
  ge_st_tensor_to_f64 (tt, tv);
  gboolean ok = TRUE;
  for (gsize b = 0; b < tt->n_elements && ok; b++) {
    int idx = -1, hits = 0;
    for (int i = 0; i < ge_sampler_n_calls (s); i++)
      if ((double) ge_sampler_timestep (s, i) == tv[b] && hits++ < 2)
        idx = i;
    if (idx < 0) {
      printf ("%-48s timestep %g is not in the schedule\n",
          "add_noise.timesteps", tv[b]);
      c->n_failed++;
      ok = FALSE;
    } else
      ge_sampler_add_noise (s, idx, x0 + b * per, noise + b * per, per,
          out + b * per);
  }
  if (ok)
    conf_check (c, "add_noise.out", out, n);
  g_free (out);
  g_free (tv);
out:
  g_free (x0);
  g_free (noise);
}

/* Every class but DDPM / DDIM, through GeSampler. */
static void
sampler_case (Conf * c, JsonObject * cfg_obj, JsonObject * meta,
    const char *cls)
{
  GError *err = NULL;
  char *src = g_build_filename (c->dir, "scheduler_config.json", NULL);
  GeSampler *s = ge_sampler_new_from_json_as (json_object_has_member (cfg_obj,
          "_class_name") ? NULL : cls, cfg_obj, src, &err);
  g_free (src);
  if (!s) {
    printf ("scheduler: %s\n", err->message);
    g_clear_error (&err);
    c->n_failed++;
    return;
  }
  const int T = ge_sampler_num_train_timesteps (s);
  printf ("# %s, %d train steps\n", ge_sampler_class_name (s), T);
  if (has (c, "betas"))
    conf_check (c, "betas", ge_sampler_betas (s), T);
  if (has (c, "alphas_cumprod"))
    conf_check (c, "alphas_cumprod", ge_sampler_alphas_cumprod (s), T);

  JsonArray *steps = json_object_has_member (meta, "num_inference_steps")
      && JSON_NODE_HOLDS_ARRAY (json_object_get_member (meta,
          "num_inference_steps"))
      ? json_object_get_array_member (meta, "num_inference_steps") : NULL;
  for (guint a = 0; steps && a < json_array_get_length (steps); a++) {
    int N = (int) json_array_get_int_element (steps, a);
    char prefix[32];
    if (!ge_sampler_set_timesteps (s, N, &err)) {
      printf ("set_timesteps (%d): %s\n", N, err->message);
      g_clear_error (&err);
      c->n_failed++;
      continue;
    }
    g_snprintf (prefix, sizeof prefix, "n%d", N);
    check_schedule (c, s, prefix);
  }
  if (has_prefix (c, "run.") || has_prefix (c, "step"))
    check_run (c, s, meta);
  check_sampler_add_noise (c, s);
  ge_sampler_free (s);
}

void
conf_scheduler_case (Conf * c)
{
  JsonParser *cfg_parser = NULL, *meta_parser = NULL;
  GError *err = NULL;
  char *path = g_build_filename (c->dir, "scheduler_config.json", NULL);
  /* diffusers writes -Infinity into DPMSolverMultistepScheduler configs */
  JsonObject *cfg_obj = ge_sampler_config_load (path, &cfg_parser, &err);
  g_free (path);
  if (!cfg_obj) {
    printf ("%s\n", err->message);
    g_clear_error (&err);
    c->n_failed++;
  }
  JsonObject *meta = conf_read_json (c, "meta.json", &meta_parser);
  if (!cfg_obj || !meta)
    goto done;

  /* meta.json "class" stands in when the config lacks "_class_name" */
  const char *cls = json_object_has_member (cfg_obj, "_class_name")
      ? json_object_get_string_member (cfg_obj, "_class_name")
      : json_object_get_string_member_with_default (meta, "class",
      "DDPMScheduler");
  if (!cls)
    cls = "";
  c->used = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  if (strcmp (cls, "DDIMScheduler") == 0 || strcmp (cls, "DDPMScheduler") == 0)
    alpha_case (c, cfg_obj, meta, cls);
  else
    sampler_case (c, cfg_obj, meta, cls);
  conf_fail_unchecked (c);
  g_clear_pointer (&c->used, g_hash_table_unref);

done:
  g_clear_object (&cfg_parser);
  g_clear_object (&meta_parser);
}
