/* conf-scheduler.c: scheduler cases (a scheduler_config.json and no model).
 *
 * Case format (see tests/fixtures/diffusers/sched_* /README.md):
 *  - scheduler_config.json: diffusers save_config () output; "_class_name"
 *    (or meta.json "class") says DDIM or DDPM;
 *  - meta.json: "num_inference_steps" [N...], "step_records" ["nN.iI"...],
 *    optional "extra" {use_clipped_model_output, eta};
 *  - io.safetensors: input.sample, input.model_output and the references
 *    betas, alphas_cumprod, final_alpha_cumprod, nN.timesteps and per record
 *    nN.iI.{t, prev_t, pred_original_sample, prev_sample, prev_sample_mean,
 *    noise, noise_std, clipped_eps.prev_sample}, add_noise.{noise,
 *    timesteps, out}.
 * Every reference present is checked; a check is skipped only when its
 * reference tensor is absent.
 */
#include "conf.h"
#include "ge-scheduler.h"

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

/* "nN.iI" -> N, I */
static gboolean
parse_record (const char *rec, int *N, int *I)
{
  char *end;
  if (rec[0] != 'n')
    return FALSE;
  long n = strtol (rec + 1, &end, 10);
  if (end == rec + 1 || strncmp (end, ".i", 2) != 0)
    return FALSE;
  const char *p = end + 2;
  long i = strtol (p, &end, 10);
  if (end == p || *end != '\0' || n < 1 || n > G_MAXINT || i < 0
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

static void
check_record (Conf * c, GeScheduler * s, int N, int I, const float *sample,
    const float *model_output, gsize n, float eta, gboolean extra_clipped)
{
  const GeSchedulerConfig *cfg = ge_scheduler_config (s);
  const gboolean ddim = cfg->kind == GE_SCHEDULER_DDIM;
  char key[128];
#define K(suffix) (g_snprintf (key, sizeof key, "n%d.i%d.%s", N, I, suffix), key)

  if (I >= ge_scheduler_n_timesteps (s)) {
    printf ("n%d.i%d: step index out of range (%d timesteps)\n", N, I,
        ge_scheduler_n_timesteps (s));
    c->n_failed++;
    return;
  }
  check_int_scalar (c, K ("t"), ge_scheduler_timesteps (s)[I]);
  check_int_scalar (c, K ("prev_t"), ge_scheduler_prev_timestep (s, I));

  float *noise = conf_try_load_f32 (c, K ("noise"), NULL);
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

static void
check_add_noise (Conf * c, GeScheduler * s, const float *sample, gsize n)
{
  if (!has (c, "add_noise.out"))
    return;
  const GeStTensor *tt = ge_safetensors_find (c->io, "add_noise.timesteps");
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

void
conf_scheduler_case (Conf * c)
{
  JsonParser *cfg_parser = NULL, *meta_parser = NULL;
  GeScheduler *s = NULL;
  float *sample = NULL, *model_output = NULL;
  GError *err = NULL;

  JsonObject *cfg_obj = conf_read_json (c, "scheduler_config.json", &cfg_parser);
  JsonObject *meta = conf_read_json (c, "meta.json", &meta_parser);
  if (!cfg_obj || !meta)
    goto done;

  /* meta.json "class" stands in when the config lacks "_class_name" */
  GeSchedulerConfig cfg;
  const char *cls = json_object_get_string_member_with_default (meta, "class",
      "DDPMScheduler");
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

  /* Records in meta.json order; set_timesteps again whenever N changes. */
  int cur_N = 0;
  for (guint r = 0; records && r < json_array_get_length (records); r++) {
    const char *rec = json_array_get_string_element (records, r);
    int N, I;
    if (!rec || !parse_record (rec, &N, &I)) {
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
    check_record (c, s, N, I, sample, model_output, n, eta, extra_clipped);
  }

  if (sample)
    check_add_noise (c, s, sample, n);

done:
  ge_scheduler_free (s);
  g_free (sample);
  g_free (model_output);
  g_clear_object (&cfg_parser);
  g_clear_object (&meta_parser);
}
