/* test-sampler.c: GeSampler's config reading (the error codes of classes
 * and options we do not run, diffusers' -Infinity, from_config across
 * classes) and the one-interface loop.  The numbers themselves are checked
 * against diffusers by diffusers-conformance; the references here are the
 * fixtures' timesteps.json lists, which diffusers wrote. */
#include "ge-sampler.h"

#include <glib/gstdio.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

static JsonParser *parser;

static JsonObject *
parse (const char *json)
{
  g_clear_object (&parser);
  parser = json_parser_new ();
  g_assert_true (json_parser_load_from_data (parser, json, -1, NULL));
  return json_node_get_object (json_parser_get_root (parser));
}

/* @json read as @name must fail with @code, naming "test.json" and @word */
static void
assert_refused (const char *name, const char *json, int code, const char *word)
{
  GError *err = NULL;
  GeSampler *s = ge_sampler_new_from_json_as (name, parse (json), "test.json",
      &err);
  if (s)
    g_error ("%s read as %s was accepted", json, name ? name : "itself");
  g_assert_error (err, GE_ERROR, code);
  g_assert_nonnull (strstr (err->message, "test.json"));
  if (word && !strstr (err->message, word))
    g_error ("\"%s\" does not name %s", err->message, word);
  g_clear_error (&err);
}

static GeSampler *
accept (const char *name, const char *json)
{
  GError *err = NULL;
  GeSampler *s = ge_sampler_new_from_json_as (name, parse (json), "test.json",
      &err);
  g_assert_no_error (err);
  g_assert_nonnull (s);
  return s;
}

static void
test_config_errors (void)
{
  const int U = GE_ERROR_UNSUPPORTED, C = GE_ERROR_CORRUPT;
  assert_refused (NULL, "{\"_class_name\": \"HeunDiscreteScheduler\"}", U,
      "HeunDiscreteScheduler");
  assert_refused (NULL, "{\"num_train_timesteps\": 1000}", C, "_class_name");
  assert_refused (NULL, "{\"_class_name\": 3}", C, "_class_name");
  assert_refused ("heun", "{\"_class_name\": \"PNDMScheduler\"}", U, "heun");
  /* PNDM: the Runge-Kutta warm-up (diffusers' default) and "sample" */
  assert_refused (NULL, "{\"_class_name\": \"PNDMScheduler\"}", U,
      "skip_prk_steps");
  assert_refused (NULL, "{\"_class_name\": \"PNDMScheduler\", "
      "\"skip_prk_steps\": true, \"prediction_type\": \"sample\"}", U,
      "prediction_type");
  assert_refused (NULL, "{\"_class_name\": \"PNDMScheduler\", "
      "\"skip_prk_steps\": true, \"timestep_spacing\": \"middle\"}", U,
      "timestep_spacing");
  assert_refused (NULL, "{\"_class_name\": \"PNDMScheduler\", "
      "\"skip_prk_steps\": \"yes\"}", C, "skip_prk_steps");
  /* DPM-Solver */
  const char *dpm = "{\"_class_name\": \"DPMSolverMultistepScheduler\", ";
  char *j;
#define REFUSE(body, code, word) (j = g_strconcat (dpm, body, "}", NULL), \
    assert_refused (NULL, j, code, word), g_free (j))
  REFUSE ("\"algorithm_type\": \"sde-dpmsolver++\"", U, "algorithm_type");
  REFUSE ("\"algorithm_type\": \"dpmsolver\"", U, "algorithm_type");
  REFUSE ("\"solver_order\": 3", U, "solver_order");
  REFUSE ("\"solver_type\": \"bogus\"", U, "solver_type");
  REFUSE ("\"thresholding\": true", U, "thresholding");
  REFUSE ("\"rescale_betas_zero_snr\": true", U, "rescale_betas_zero_snr");
  REFUSE ("\"use_exponential_sigmas\": true", U, "use_exponential_sigmas");
  REFUSE ("\"use_lu_lambdas\": true", U, "use_lu_lambdas");
  REFUSE ("\"use_flow_sigmas\": true", U, "use_flow_sigmas");
  REFUSE ("\"variance_type\": \"learned_range\"", U, "variance_type");
  REFUSE ("\"final_sigmas_type\": \"denoise_to_zero\"", U, "final_sigmas_type");
  REFUSE ("\"prediction_type\": \"flow_prediction\"", U, "prediction_type");
  REFUSE ("\"trained_betas\": [0.1, 0.2]", U, "trained_betas");
  REFUSE ("\"time_shift_type\": \"linear\"", U, "time_shift_type");
  REFUSE ("\"lower_order_final\": 1", C, "lower_order_final");
#undef REFUSE
  /* Euler */
  assert_refused (NULL, "{\"_class_name\": \"EulerDiscreteScheduler\", "
      "\"interpolation_type\": \"cubic\"}", U, "interpolation_type");
  assert_refused (NULL, "{\"_class_name\": \"EulerDiscreteScheduler\", "
      "\"timestep_type\": \"fancy\"}", U, "timestep_type");
  assert_refused (NULL, "{\"_class_name\": \"EulerDiscreteScheduler\", "
      "\"use_beta_sigmas\": true}", U, "use_beta_sigmas");
  assert_refused (NULL, "{\"_class_name\": \"EulerDiscreteScheduler\", "
      "\"sigma_min\": \"small\"}", C, "sigma_min");
  assert_refused (NULL, "{\"_class_name\": \"EulerAncestralDiscreteScheduler\", "
      "\"prediction_type\": \"sample\"}", U, "prediction_type");
  assert_refused (NULL, "{\"_class_name\": \"LMSDiscreteScheduler\", "
      "\"beta_schedule\": \"sigmoid\"}", U, "beta_schedule");
  /* DDIM / DDPM go through ge-scheduler.c's reader */
  assert_refused (NULL, "{\"_class_name\": \"DDIMScheduler\", "
      "\"thresholding\": true}", U, "thresholding");

  /* keys another class takes are ignored, as from_config does */
  GeSampler *s = accept ("euler", "{\"_class_name\": \"DPMSolverMultistepScheduler\", "
      "\"solver_order\": 3, \"thresholding\": false, \"clip_sample\": true}");
  g_assert_cmpstr (ge_sampler_class_name (s), ==, "EulerDiscreteScheduler");
  ge_sampler_free (s);
  /* the dpmpp-2m presets set the solver themselves */
  s = accept ("dpmpp-2m-karras", "{\"_class_name\": \"DPMSolverMultistepScheduler\", "
      "\"solver_order\": 3, \"algorithm_type\": \"sde-dpmsolver++\"}");
  g_assert_cmpstr (ge_sampler_class_name (s), ==, "DPMSolverMultistepScheduler");
  ge_sampler_free (s);

  GError *err = NULL;
  s = accept (NULL, "{\"_class_name\": \"EulerDiscreteScheduler\"}");
  g_assert_false (ge_sampler_set_timesteps (s, 0, &err));
  g_assert_error (err, GE_ERROR, GE_ERROR_INVALID);
  g_clear_error (&err);
  g_assert_false (ge_sampler_set_timesteps (s, 1001, &err));
  g_assert_error (err, GE_ERROR, GE_ERROR_INVALID);
  g_clear_error (&err);
  ge_sampler_free (s);
}

static char *
fixture (const char *c, const char *file)
{
  return g_test_build_filename (G_TEST_DIST, "..", "fixtures", "diffusers", c,
      file, NULL);
}

/* timesteps.json of @ref_case against @name read from @cfg_case's config */
static void
check_timesteps (const char *cfg_case, const char *name, const char *ref_case)
{
  char *cp = fixture (cfg_case, "scheduler_config.json");
  char *tp = fixture (ref_case, "timesteps.json");
  JsonParser *pc = NULL, *pt = json_parser_new ();
  GError *err = NULL;
  JsonObject *cfg = ge_sampler_config_load (cp, &pc, &err);
  if (!cfg && g_error_matches (err, GE_ERROR, GE_ERROR_NOT_FOUND)) {
    g_test_skip ("fixtures not found");
    g_clear_error (&err);
    goto out;
  }
  g_assert_no_error (err);
  g_assert_true (json_parser_load_from_file (pt, tp, NULL));
  GeSampler *s = ge_sampler_new_from_json_as (name, cfg, cp, &err);
  g_assert_no_error (err);
  JsonObject *lists = json_node_get_object (json_parser_get_root (pt));
  GList *keys = json_object_get_members (lists);
  for (GList * l = keys; l; l = l->next) {
    JsonArray *a = json_object_get_array_member (lists, l->data);
    g_assert_true (ge_sampler_set_timesteps (s, atoi (l->data), &err));
    g_assert_cmpint (ge_sampler_n_calls (s), ==, json_array_get_length (a));
    for (guint i = 0; i < json_array_get_length (a); i++)
      g_assert_cmpfloat (ge_sampler_timestep (s, i), ==,
          json_node_get_double (json_array_get_element (a, i)));
  }
  g_list_free (keys);
  ge_sampler_free (s);
out:
  g_clear_object (&pc);
  g_object_unref (pt);
  g_free (cp);
  g_free (tp);
}

static void
test_from_config (void)
{
  /* each case's own config, then SD 1.5's PNDM config read as the other
   * classes (what the fixtures' READMEs say their configs are) */
  check_timesteps ("sched_pndm_sd15", NULL, "sched_pndm_sd15");
  check_timesteps ("sched_dpmpp_2m_sd15", NULL, "sched_dpmpp_2m_sd15");
  check_timesteps ("sched_dpmpp_2m_karras_sd15", NULL,
      "sched_dpmpp_2m_karras_sd15");
  check_timesteps ("sched_pndm_sd15", "euler-ancestral",
      "sched_euler_ancestral_sd15");
  check_timesteps ("sched_pndm_sd15", "dpmpp-2m", "sched_dpmpp_2m_sd15");
  check_timesteps ("sched_pndm_sd15", "dpmpp-2m-karras",
      "sched_dpmpp_2m_karras_sd15");
  /* PNDMScheduler.from_config of a config without skip_prk_steps is the
   * Runge-Kutta warm-up, which we refuse */
  char *cp = fixture ("sched_dpmpp_2m_karras_sd15", "scheduler_config.json");
  JsonParser *pc = NULL;
  GError *err = NULL;
  JsonObject *cfg = ge_sampler_config_load (cp, &pc, &err);
  if (cfg) {
    g_assert_null (ge_sampler_new_from_json_as ("pndm", cfg, cp, &err));
    g_assert_error (err, GE_ERROR, GE_ERROR_UNSUPPORTED);
  }
  g_clear_error (&err);
  g_clear_object (&pc);
  g_free (cp);
}

/* diffusers writes lambda_min_clipped as -Infinity */
static void
test_nonfinite_json (void)
{
  char *path = g_build_filename (g_get_tmp_dir (), "ge-sampler-test.json", NULL);
  const char *text = "{\"_class_name\": \"DPMSolverMultistepScheduler\", "
      "\"lambda_min_clipped\": -Infinity, \"note\": \"-Infinity, NaN\", "
      "\"flow_shift\": NaN, \"sample_max_value\": Infinity}";
  g_assert_true (g_file_set_contents (path, text, -1, NULL));
  JsonParser *p = NULL;
  GError *err = NULL;
  JsonObject *o = ge_sampler_config_load (path, &p, &err);
  g_assert_no_error (err);
  g_assert_cmpstr (json_object_get_string_member (o, "note"), ==,
      "-Infinity, NaN");
  GeSampler *s = ge_sampler_new_from_json (o, path, &err);
  g_assert_no_error (err);
  g_assert_true (ge_sampler_set_timesteps (s, 10, &err));
  ge_sampler_free (s);
  g_object_unref (p);
  g_assert_true (g_file_set_contents (path, "{\"a\": -Infinit}", -1, NULL));
  g_assert_null (ge_sampler_config_load (path, &p, &err));
  g_assert_error (err, GE_ERROR, GE_ERROR_CORRUPT);
  g_clear_error (&err);
  g_unlink (path);
  g_free (path);
}

/* The same loop runs every class; with a model that predicts the noise it
 * was given, each ends near the clean sample. */
static void
test_one_loop (void)
{
  static const char *const names[] = { "ddim", "ddpm", "pndm", "euler",
    "euler-ancestral", "dpmpp-2m", "dpmpp-2m-karras", "lms"
  };
  const char *cfg = "{\"_class_name\": \"PNDMScheduler\", "
      "\"beta_start\": 0.00085, \"beta_end\": 0.012, "
      "\"beta_schedule\": \"scaled_linear\", \"skip_prk_steps\": true, "
      "\"steps_offset\": 1, \"clip_sample\": false, \"timestep_spacing\": \"leading\"}";
  enum { n = 64 };
  for (guint k = 0; k < G_N_ELEMENTS (names); k++) {
    GeSampler *s = accept (names[k], cfg);
    GError *err = NULL;
    g_assert_true (ge_sampler_set_timesteps (s, 25, &err));
    /* img2img from strength 0.6: the clean sample is constant 0.5 */
    const int i0 = ge_sampler_start_index (s, 0.6);
    g_assert_cmpint (i0, ==, 10);
    float x0[n], eps[n], x[n], noise[n];
    GRand *rng = g_rand_new_with_seed (7);
    for (int i = 0; i < n; i++) {
      x0[i] = 0.5f;
      eps[i] = (float) g_rand_double_range (rng, -1, 1);
    }
    ge_sampler_add_noise (s, i0, x0, eps, n, x);
    GeSamplerRun *r = ge_sampler_run_new (s, n);
    for (int i = i0; i < ge_sampler_n_calls (s); i++) {
      g_assert_true (isfinite (ge_sampler_timestep (s, i)));
      g_assert_cmpfloat (ge_sampler_input_scale (s, i), >, 0);
      for (int q = 0; q < n; q++)
        noise[q] = (float) g_rand_double_range (rng, -1, 1);
      /* the exact epsilon of x given x0 = 0.5 is not available for every
       * parameterisation; a constant x0 with eps from the current x is:
       * eps = (x - sqrt(a) x0) / sqrt(1 - a) for the alpha samplers and
       * (x - x0) / sigma for the sigma ones (x unscaled) */
      int ns = 0;
      const float *sg = ge_sampler_sigmas (s, &ns);
      float m[n];
      for (int q = 0; q < n; q++) {
        if (sg && strcmp (names[k], "dpmpp-2m") != 0
            && strcmp (names[k], "dpmpp-2m-karras") != 0)
          m[q] = (x[q] - x0[q]) / sg[i];
        else {
          const float *ac = ge_sampler_alphas_cumprod (s);
          float a;
          if (sg)
            a = 1.0f / (sg[i] * sg[i] + 1.0f);
          else
            a = ac[(int) ge_sampler_timestep (s, i)];
          m[q] = (x[q] - sqrtf (a) * x0[q]) / sqrtf (1.0f - a);
        }
      }
      ge_sampler_step (r, i, m, x, ge_sampler_step_needs_noise (s, i) ? noise
          : NULL, x);
    }
    for (int q = 0; q < n; q++)
      if (!(fabsf (x[q] - 0.5f) < 0.05f))
        g_error ("%s ends at %g, not near 0.5", names[k], x[q]);
    ge_sampler_run_free (r);
    g_rand_free (rng);
    ge_sampler_free (s);
  }
}

/* Found by fuzz-config: a file that is empty, or starts with a NUL, parses
 * to no root at all; that is a corrupt config, not a GLib critical. */
static void
test_empty_config (void)
{
  char *dir = g_dir_make_tmp ("ge-sampler-XXXXXX", NULL);
  char *path = g_build_filename (dir, "scheduler_config.json", NULL);
  static const char *const texts[] = { "", "\0{\"_class_name\": \"DDIMScheduler\"}" };
  for (guint i = 0; i < G_N_ELEMENTS (texts); i++) {
    g_assert_true (g_file_set_contents (path, texts[i], i == 0 ? 0 : 32, NULL));
    JsonParser *jp = NULL;
    GError *err = NULL;
    g_assert_null (ge_sampler_config_load (path, &jp, &err));
    g_assert_error (err, GE_ERROR, GE_ERROR_CORRUPT);
    g_assert_nonnull (strstr (err->message, path));
    g_assert_null (jp);
    g_error_free (err);
  }
  g_remove (path);
  g_rmdir (dir);
  g_free (path);
  g_free (dir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/sampler/config-errors", test_config_errors);
  g_test_add_func ("/sampler/from-config", test_from_config);
  g_test_add_func ("/sampler/nonfinite-json", test_nonfinite_json);
  g_test_add_func ("/sampler/empty-config", test_empty_config);
  g_test_add_func ("/sampler/one-loop", test_one_loop);
  int ret = g_test_run ();
  g_clear_object (&parser);
  return ret;
}
