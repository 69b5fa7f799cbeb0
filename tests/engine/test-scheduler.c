/* test-scheduler.c: ge-scheduler against references that are not the code
 * under test: the timesteps lists diffusers wrote to the fixtures'
 * timesteps.json, lists numpy printed for the other spacings, and naive
 * double-precision forms of the DDIM / DDPM formulas.  (Bit-exactness with
 * diffusers' float32 tensors is the job of the diffusers-conformance
 * program.)
 *
 * The fixtures are found through G_TEST_SRCDIR (this directory in the
 * source tree); without them those tests skip. */
#include "ge-scheduler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static GeScheduler *
new_sched (const GeSchedulerConfig * cfg)
{
  GError *err = NULL;
  GeScheduler *s = ge_scheduler_new (cfg, &err);
  g_assert_no_error (err);
  g_assert_nonnull (s);
  return s;
}

static GeScheduler *
new_from_json (const char *json, GError ** error)
{
  JsonParser *p = json_parser_new ();
  g_assert_true (json_parser_load_from_data (p, json, -1, NULL));
  GeSchedulerConfig cfg;
  ge_scheduler_config_init_defaults (&cfg, GE_SCHEDULER_DDIM);
  GeScheduler *s = NULL;
  if (ge_scheduler_config_from_json (&cfg,
          json_node_get_object (json_parser_get_root (p)), "test.json", error))
    s = ge_scheduler_new (&cfg, error);
  g_object_unref (p);
  return s;
}

static void
assert_timesteps (GeScheduler * s, int N, const gint64 * want, int n_want)
{
  g_assert_true (ge_scheduler_set_timesteps (s, N, NULL));
  g_assert_cmpint (ge_scheduler_n_timesteps (s), ==, n_want);
  const gint64 *ts = ge_scheduler_timesteps (s);
  for (int i = 0; i < n_want; i++)
    g_assert_cmpint (ts[i], ==, want[i]);
}

/* timesteps.json of each sched_* fixture, with its own scheduler config */
static void
test_fixture_timesteps (void)
{
  static const char *const cases[] = { "sched_ddpm_linear_eps_clip",
    "sched_ddim_linear_eps_clip", "sched_ddim_sd15_eps_offset1"
  };
  int n_done = 0;
  for (guint c = 0; c < G_N_ELEMENTS (cases); c++) {
    char *cfg_path = g_test_build_filename (G_TEST_DIST, "..", "fixtures",
        "diffusers", cases[c], "scheduler_config.json", NULL);
    char *ts_path = g_test_build_filename (G_TEST_DIST, "..", "fixtures",
        "diffusers", cases[c], "timesteps.json", NULL);
    JsonParser *pc = json_parser_new (), *pt = json_parser_new ();
    if (json_parser_load_from_file (pc, cfg_path, NULL)
        && json_parser_load_from_file (pt, ts_path, NULL)) {
      GError *err = NULL;
      GeSchedulerConfig cfg;
      ge_scheduler_config_init_defaults (&cfg, GE_SCHEDULER_DDPM);
      g_assert_true (ge_scheduler_config_from_json (&cfg,
              json_node_get_object (json_parser_get_root (pc)), cfg_path,
              &err));
      g_assert_no_error (err);
      GeScheduler *s = new_sched (&cfg);
      JsonObject *lists = json_node_get_object (json_parser_get_root (pt));
      GList *keys = json_object_get_members (lists);
      for (GList * l = keys; l; l = l->next) {
        int N = atoi (l->data);
        JsonArray *a = json_object_get_array_member (lists, l->data);
        int n = (int) json_array_get_length (a);
        gint64 *want = g_new (gint64, n);
        for (int i = 0; i < n; i++)
          want[i] = json_array_get_int_element (a, i);
        assert_timesteps (s, N, want, n);
        /* prev_timestep: DDIM t - T/N, DDPM the next entry (same for
         * leading) */
        for (int i = 0; i < n; i++)
          g_assert_cmpint (ge_scheduler_prev_timestep (s, i), ==,
              cfg.kind == GE_SCHEDULER_DDIM
              ? want[i] - cfg.num_train_timesteps / N
              : (i + 1 < n ? want[i + 1] : -1));
        g_free (want);
        n_done++;
      }
      g_list_free (keys);
      ge_scheduler_free (s);
    }
    g_object_unref (pc);
    g_object_unref (pt);
    g_free (cfg_path);
    g_free (ts_path);
  }
  if (n_done == 0)
    g_test_skip ("fixtures not found (set G_TEST_SRCDIR to tests/engine)");
}

/* Lists printed by numpy 1.24 for the expressions diffusers uses:
 * round(arange(1000, 0, -1000/N)) - 1 and round(linspace(0, 999, N))[::-1]
 * (round half to even: 166.5 -> 166, 832.5 -> 832). */
static void
test_spacings (void)
{
  GeSchedulerConfig cfg;
  ge_scheduler_config_init_defaults (&cfg, GE_SCHEDULER_DDIM);
  cfg.steps_offset = 1;         /* ignored by trailing and linspace */

  cfg.timestep_spacing = GE_SPACING_TRAILING;
  GeScheduler *s = new_sched (&cfg);
  static const gint64 tr7[] = { 999, 856, 713, 570, 428, 285, 142 };
  static const gint64 tr9[] = { 999, 888, 777, 666, 555, 443, 332, 221, 110 };
  assert_timesteps (s, 7, tr7, 7);
  /* DDIM always steps by T // N: 999 -> 857, not to the next entry 856 */
  g_assert_cmpint (ge_scheduler_prev_timestep (s, 0), ==, 857);
  g_assert_cmpint (ge_scheduler_prev_timestep (s, 6), ==, 0);
  assert_timesteps (s, 9, tr9, 9);
  /* numpy's arange gives 62 values for N = 61; we keep 61 */
  g_assert_true (ge_scheduler_set_timesteps (s, 61, NULL));
  g_assert_cmpint (ge_scheduler_n_timesteps (s), ==, 61);
  g_assert_cmpint (ge_scheduler_timesteps (s)[60], ==, 15);
  ge_scheduler_free (s);

  cfg.timestep_spacing = GE_SPACING_LINSPACE;
  s = new_sched (&cfg);
  static const gint64 ls7[] = { 999, 832, 666, 500, 333, 166, 0 };
  static const gint64 ls9[] = { 999, 874, 749, 624, 500, 375, 250, 125, 0 };
  static const gint64 ls1[] = { 0 };
  assert_timesteps (s, 7, ls7, 7);
  assert_timesteps (s, 9, ls9, 9);
  assert_timesteps (s, 1, ls1, 1);
  ge_scheduler_free (s);

  /* DDPM: previous timestep = next entry of the list */
  cfg.kind = GE_SCHEDULER_DDPM;
  cfg.timestep_spacing = GE_SPACING_TRAILING;
  s = new_sched (&cfg);
  assert_timesteps (s, 7, tr7, 7);
  for (int i = 0; i < 6; i++)
    g_assert_cmpint (ge_scheduler_prev_timestep (s, i), ==, tr7[i + 1]);
  g_assert_cmpint (ge_scheduler_prev_timestep (s, 6), ==, -1);
  ge_scheduler_free (s);

  /* leading + offset */
  cfg.timestep_spacing = GE_SPACING_LEADING;
  s = new_sched (&cfg);
  static const gint64 ld4[] = { 751, 501, 251, 1 };
  assert_timesteps (s, 4, ld4, 4);
  ge_scheduler_free (s);
}

static void
test_set_timesteps_errors (void)
{
  GeSchedulerConfig cfg;
  ge_scheduler_config_init_defaults (&cfg, GE_SCHEDULER_DDIM);
  cfg.steps_offset = 1;
  GeScheduler *s = new_sched (&cfg);
  GError *err = NULL;
  g_assert_false (ge_scheduler_set_timesteps (s, 0, &err));
  g_assert_error (err, GE_ERROR, GE_ERROR_INVALID);
  g_clear_error (&err);
  g_assert_false (ge_scheduler_set_timesteps (s, 1001, &err));
  g_assert_error (err, GE_ERROR, GE_ERROR_INVALID);
  g_clear_error (&err);
  /* leading N=1000 + offset 1 reaches t = 1000 */
  g_assert_false (ge_scheduler_set_timesteps (s, 1000, &err));
  g_assert_error (err, GE_ERROR, GE_ERROR_INVALID);
  g_clear_error (&err);
  g_assert_cmpint (ge_scheduler_n_timesteps (s), ==, 0);
  ge_scheduler_free (s);

  cfg.num_train_timesteps = 0;
  g_assert_null (ge_scheduler_new (&cfg, &err));
  g_assert_error (err, GE_ERROR, GE_ERROR_INVALID);
  g_clear_error (&err);
  ge_scheduler_config_init_defaults (&cfg, GE_SCHEDULER_DDPM);
  cfg.beta_end = 1.5;
  g_assert_null (ge_scheduler_new (&cfg, &err));
  g_assert_error (err, GE_ERROR, GE_ERROR_INVALID);
  g_clear_error (&err);
}

/* Betas / alphas_cumprod against the plain double formulas: equal to within
 * float rounding (the exact torch rounding is the conformance test's). */
static void
test_schedules (void)
{
  GeSchedulerConfig cfg;
  ge_scheduler_config_init_defaults (&cfg, GE_SCHEDULER_DDPM);
  for (int sched = 0; sched < 3; sched++) {
    cfg.beta_schedule = sched;
    if (sched == GE_BETA_SCALED_LINEAR) {
      cfg.beta_start = 0.00085;
      cfg.beta_end = 0.012;
    }
    GeScheduler *s = new_sched (&cfg);
    const float *b = ge_scheduler_betas (s), *ac = ge_scheduler_alphas_cumprod (s);
    double prod = 1;
    for (int i = 0; i < 1000; i++) {
      double want;
      if (sched == GE_BETA_LINEAR)
        want = cfg.beta_start + (cfg.beta_end - cfg.beta_start) * i / 999.0;
      else if (sched == GE_BETA_SCALED_LINEAR) {
        double r = sqrt (cfg.beta_start)
            + (sqrt (cfg.beta_end) - sqrt (cfg.beta_start)) * i / 999.0;
        want = r * r;
      } else {
        double f1 = cos ((i / 1000.0 + 0.008) / 1.008 * M_PI / 2);
        double f2 = cos (((i + 1) / 1000.0 + 0.008) / 1.008 * M_PI / 2);
        want = MIN (1 - (f2 * f2) / (f1 * f1), 0.999);
      }
      g_assert_cmpfloat_with_epsilon (b[i], want, 4e-7 * want);
      /* cumprod of the float betas (beta near 0.999 leaves 1 - beta with
       * few significant bits, so the formula's betas would not do) */
      prod *= 1 - (double) b[i];
      g_assert_cmpfloat_with_epsilon (ac[i], prod, 1e-5 * prod);
    }
    if (sched == GE_BETA_LINEAR) {
      /* torch's linspace hits both ends exactly */
      g_assert_cmpfloat (b[0], ==, (float) cfg.beta_start);
      g_assert_cmpfloat (b[999], ==, (float) cfg.beta_end);
    }
    g_assert_cmpfloat (ge_scheduler_final_alpha_cumprod (s), ==, 1.0f);
    ge_scheduler_free (s);
  }
  cfg.kind = GE_SCHEDULER_DDIM;
  cfg.set_alpha_to_one = FALSE;
  GeScheduler *s = new_sched (&cfg);
  g_assert_cmpfloat (ge_scheduler_final_alpha_cumprod (s), ==,
      ge_scheduler_alphas_cumprod (s)[0]);
  ge_scheduler_free (s);
}

/* Naive double DDIM / DDPM steps (formulas of the DDIM and DDPM papers as
 * diffusers writes them) against ge_scheduler_step, for every prediction
 * type, with and without clipping, eta and noise. */
static void
ref_step (const GeScheduler * s, int i, double eta, gboolean clipped_eps,
    const float *mo, const float *x, const float *noise, gsize n,
    double *prev, double *x0o)
{
  const GeSchedulerConfig *cfg = ge_scheduler_config (s);
  const float *ac = ge_scheduler_alphas_cumprod (s);
  const gint64 t = ge_scheduler_timesteps (s)[i];
  const gint64 N = ge_scheduler_n_timesteps (s);
  const gboolean ddim = cfg->kind == GE_SCHEDULER_DDIM;
  double a = ac[t], ap;
  if (ddim) {
    gint64 pt = t - cfg->num_train_timesteps / N;
    ap = pt >= 0 ? ac[pt] : (cfg->set_alpha_to_one ? 1.0 : ac[0]);
  } else {
    gint64 pt = i + 1 < N ? ge_scheduler_timesteps (s)[i + 1] : -1;
    ap = pt >= 0 ? ac[pt] : 1.0;
  }
  for (gsize k = 0; k < n; k++) {
    double x0, eps;
    if (cfg->prediction_type == GE_PREDICT_EPSILON) {
      eps = mo[k];
      x0 = (x[k] - sqrt (1 - a) * eps) / sqrt (a);
    } else if (cfg->prediction_type == GE_PREDICT_SAMPLE) {
      x0 = mo[k];
      eps = (x[k] - sqrt (a) * x0) / sqrt (1 - a);
    } else {
      x0 = sqrt (a) * x[k] - sqrt (1 - a) * mo[k];
      eps = sqrt (a) * mo[k] + sqrt (1 - a) * x[k];
    }
    if (cfg->clip_sample)
      x0 = CLAMP (x0, -cfg->clip_sample_range, cfg->clip_sample_range);
    if (ddim) {
      double sigma = eta * sqrt ((1 - ap) / (1 - a) * (1 - a / ap));
      if (clipped_eps)
        eps = (x[k] - sqrt (a) * x0) / sqrt (1 - a);
      prev[k] = sqrt (ap) * x0 + sqrt (1 - ap - sigma * sigma) * eps
          + (noise && eta > 0 ? sigma * noise[k] : 0);
    } else {
      double beta = 1 - a / ap;
      double mean = sqrt (ap) * beta / (1 - a) * x0
          + sqrt (1 - beta) * (1 - ap) / (1 - a) * x[k];
      double var = cfg->variance_type == GE_VARIANCE_FIXED_LARGE ? beta
          : (1 - ap) / (1 - a) * beta;
      prev[k] = mean + (noise && t > 0 ? sqrt (var) * noise[k] : 0);
    }
    x0o[k] = x0;
  }
}

static double
rel_err (const float *got, const double *want, gsize n)
{
  double mx = 0, me = 0;
  for (gsize k = 0; k < n; k++) {
    mx = MAX (mx, fabs (want[k]));
    me = MAX (me, fabs (got[k] - want[k]));
  }
  return mx > 0 ? me / mx : me;
}

static void
test_steps_vs_double (void)
{
  enum { n = 97 };
  float mo[n], x[n], noise[n], prev[n], x0[n];
  double rprev[n], rx0[n];
  /* deterministic inputs spread over [-3, 3] without an RNG */
  for (int k = 0; k < n; k++) {
    x[k] = (float) (3 * sin (k * 1.7 + 0.3));
    mo[k] = (float) (2 * cos (k * 0.9 - 1.1));
    noise[k] = (float) sin (k * 2.3);
  }
  int n_cases = 0;
  for (int kind = 0; kind < 2; kind++)
    for (int pred = 0; pred < 3; pred++)
      for (int clip = 0; clip < 2; clip++)
        for (int sp = 0; sp < 3; sp++) {
          GeSchedulerConfig cfg;
          ge_scheduler_config_init_defaults (&cfg, kind);
          cfg.prediction_type = pred;
          cfg.clip_sample = clip;
          cfg.clip_sample_range = 1.5;
          cfg.timestep_spacing = sp;
          cfg.set_alpha_to_one = sp != 1;
          cfg.variance_type = sp == 2 ? GE_VARIANCE_FIXED_LARGE
              : GE_VARIANCE_FIXED_SMALL;
          cfg.beta_schedule = sp == 1 ? GE_BETA_SQUAREDCOS_CAP_V2 : GE_BETA_LINEAR;
          GeScheduler *s = new_sched (&cfg);
          g_assert_true (ge_scheduler_set_timesteps (s, 7, NULL));
          for (int i = 0; i < 7; i++)
            for (int variant = 0; variant < 3; variant++) {
              /* 0: eta 0, no noise; 1: eta 0.7 + noise; 2: clipped eps */
              float eta = variant == 1 ? 0.7f : 0.0f;
              const float *nz = variant == 1 ? noise : NULL;
              ge_scheduler_step (s, i, mo, x, n, eta, variant == 2, nz, prev,
                  x0);
              ref_step (s, i, eta, variant == 2, mo, x, nz, n, rprev, rx0);
              /* squaredcos reaches beta = 0.999: sqrt(1 - a) cancels */
              double tol = cfg.beta_schedule == GE_BETA_SQUAREDCOS_CAP_V2
                  ? 1e-4 : 1e-5;
              if (rel_err (x0, rx0, n) > tol || rel_err (prev, rprev, n) > tol)
                g_error ("kind %d pred %d clip %d spacing %d step %d variant "
                    "%d: x0 err %g, prev err %g", kind, pred, clip, sp, i,
                    variant, rel_err (x0, rx0, n), rel_err (prev, rprev, n));
              n_cases++;
            }
          /* in place: prev_sample over sample gives the same numbers */
          float inplace[n];
          memcpy (inplace, x, sizeof x);
          ge_scheduler_step (s, 3, mo, inplace, n, 0.3f, FALSE, noise,
              inplace, NULL);
          ge_scheduler_step (s, 3, mo, x, n, 0.3f, FALSE, noise, prev, NULL);
          g_assert_cmpmem (inplace, sizeof inplace, prev, sizeof prev);
          ge_scheduler_free (s);
        }
  g_assert_cmpint (n_cases, ==, 2 * 3 * 2 * 3 * 7 * 3);
}

static void
test_noise_std_and_add_noise (void)
{
  GeSchedulerConfig cfg;
  ge_scheduler_config_init_defaults (&cfg, GE_SCHEDULER_DDPM);
  GeScheduler *s = new_sched (&cfg);
  g_assert_true (ge_scheduler_set_timesteps (s, 10, NULL));
  const float *ac = ge_scheduler_alphas_cumprod (s);
  /* t = 900 -> 800: fixed_small variance */
  double a = ac[900], ap = ac[800], beta = 1 - a / ap;
  g_assert_cmpfloat_with_epsilon (ge_scheduler_noise_std (s, 0, 0),
      sqrt ((1 - ap) / (1 - a) * beta), 1e-6);
  /* the last step (t = 0) adds no noise */
  g_assert_cmpfloat (ge_scheduler_noise_std (s, 9, 0), ==, 0.0f);

  float x0[4] = { 1, -2, 0.5f, 0 }, nz[4] = { 0.1f, 0.2f, -1, 3 }, out[4];
  ge_scheduler_add_noise (s, x0, nz, 500, 4, out);
  for (int k = 0; k < 4; k++)
    g_assert_cmpfloat_with_epsilon (out[k],
        sqrt (ac[500]) * x0[k] + sqrt (1 - ac[500]) * nz[k], 1e-6);
  ge_scheduler_free (s);

  ge_scheduler_config_init_defaults (&cfg, GE_SCHEDULER_DDIM);
  s = new_sched (&cfg);
  g_assert_true (ge_scheduler_set_timesteps (s, 10, NULL));
  g_assert_cmpfloat (ge_scheduler_noise_std (s, 0, 0), ==, 0.0f);
  g_assert_cmpfloat (ge_scheduler_noise_std (s, 0, 1), >, 0.0f);
  ge_scheduler_free (s);
}

static void
expect_json_error (const char *json, int code, const char *needle)
{
  GError *err = NULL;
  GeScheduler *s = new_from_json (json, &err);
  g_assert_null (s);
  g_assert_error (err, GE_ERROR, code);
  if (!strstr (err->message, "test.json") || !strstr (err->message, needle))
    g_error ("message \"%s\" lacks the source or \"%s\"", err->message, needle);
  g_clear_error (&err);
}

static void
test_config_json (void)
{
  GError *err = NULL;
  /* an SD-1.x style DDIM config, with keys DDIM ignores */
  GeScheduler *s = new_from_json ("{\"_class_name\": \"DDIMScheduler\","
      " \"beta_start\": 0.00085, \"beta_end\": 0.012,"
      " \"beta_schedule\": \"scaled_linear\", \"clip_sample\": false,"
      " \"set_alpha_to_one\": false, \"steps_offset\": 1,"
      " \"skip_prk_steps\": true, \"trained_betas\": null,"
      " \"thresholding\": false, \"sample_max_value\": 1.0,"
      " \"prediction_type\": \"v_prediction\","
      " \"timestep_spacing\": \"trailing\", \"num_train_timesteps\": 1000}",
      &err);
  g_assert_no_error (err);
  const GeSchedulerConfig *c = ge_scheduler_config (s);
  g_assert_cmpint (c->kind, ==, GE_SCHEDULER_DDIM);
  g_assert_cmpfloat (c->beta_start, ==, 0.00085);
  g_assert_cmpint (c->beta_schedule, ==, GE_BETA_SCALED_LINEAR);
  g_assert_false (c->clip_sample);
  g_assert_false (c->set_alpha_to_one);
  g_assert_cmpint (c->steps_offset, ==, 1);
  g_assert_cmpint (c->prediction_type, ==, GE_PREDICT_V);
  g_assert_cmpint (c->timestep_spacing, ==, GE_SPACING_TRAILING);
  ge_scheduler_free (s);

  s = new_from_json ("{\"_class_name\": \"DDPMScheduler\","
      " \"variance_type\": \"fixed_large\", \"num_train_timesteps\": 4000.0,"
      " \"beta_schedule\": \"squaredcos_cap_v2\"}", &err);
  g_assert_no_error (err);
  c = ge_scheduler_config (s);
  g_assert_cmpint (c->kind, ==, GE_SCHEDULER_DDPM);
  g_assert_cmpint (c->variance_type, ==, GE_VARIANCE_FIXED_LARGE);
  g_assert_cmpint (c->num_train_timesteps, ==, 4000);
  g_assert_true (c->clip_sample);     /* default */
  ge_scheduler_free (s);

  expect_json_error ("{\"thresholding\": true}", GE_ERROR_UNSUPPORTED,
      "thresholding");
  expect_json_error ("{\"rescale_betas_zero_snr\": true}",
      GE_ERROR_UNSUPPORTED, "rescale_betas_zero_snr");
  expect_json_error ("{\"trained_betas\": [0.1, 0.2]}", GE_ERROR_UNSUPPORTED,
      "trained_betas");
  expect_json_error ("{\"beta_schedule\": \"sigmoid\"}", GE_ERROR_UNSUPPORTED,
      "beta_schedule");
  expect_json_error ("{\"prediction_type\": \"flow\"}", GE_ERROR_UNSUPPORTED,
      "prediction_type");
  expect_json_error ("{\"timestep_spacing\": \"karras\"}",
      GE_ERROR_UNSUPPORTED, "timestep_spacing");
  expect_json_error ("{\"_class_name\": \"DDPMScheduler\", "
      "\"variance_type\": \"learned_range\"}", GE_ERROR_UNSUPPORTED,
      "variance_type");
  expect_json_error ("{\"_class_name\": \"PNDMScheduler\"}",
      GE_ERROR_UNSUPPORTED, "PNDMScheduler");
  expect_json_error ("{\"beta_start\": \"0.1\"}", GE_ERROR_CORRUPT,
      "beta_start");
  expect_json_error ("{\"steps_offset\": 1.5}", GE_ERROR_CORRUPT,
      "steps_offset");
  expect_json_error ("{\"clip_sample\": 1}", GE_ERROR_CORRUPT, "clip_sample");

  /* from_json_as ignores _class_name, like DDIMScheduler.from_config */
  JsonParser *p = json_parser_new ();
  g_assert_true (json_parser_load_from_data (p,
          "{\"_class_name\": \"PNDMScheduler\", \"steps_offset\": 1}", -1,
          NULL));
  GeSchedulerConfig cfg;
  g_assert_true (ge_scheduler_config_from_json_as (&cfg, GE_SCHEDULER_DDIM,
          json_node_get_object (json_parser_get_root (p)), "pndm.json", &err));
  g_assert_no_error (err);
  g_assert_cmpint (cfg.kind, ==, GE_SCHEDULER_DDIM);
  g_assert_cmpint (cfg.steps_offset, ==, 1);
  g_object_unref (p);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/scheduler/fixture-timesteps", test_fixture_timesteps);
  g_test_add_func ("/scheduler/spacings", test_spacings);
  g_test_add_func ("/scheduler/set-timesteps-errors", test_set_timesteps_errors);
  g_test_add_func ("/scheduler/schedules", test_schedules);
  g_test_add_func ("/scheduler/steps-vs-double", test_steps_vs_double);
  g_test_add_func ("/scheduler/noise-std-add-noise",
      test_noise_std_and_add_noise);
  g_test_add_func ("/scheduler/config-json", test_config_json);
  return g_test_run ();
}
