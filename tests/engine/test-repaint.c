/* test-repaint: RePaintScheduler's walk and config reading
 * (ge-repaint-scheduler.h) and the pixel-space loops' contracts
 * (ge-pixel-diffusion.h).  The numbers of the steps themselves are checked
 * against the PyTorch reference records by the conformance cases
 * (tests/fixtures/pipelines). */
#include "ge-pixel-diffusion.h"
#include "ge-repaint-scheduler.h"

#include <math.h>
#include <string.h>

static GeRePaintScheduler *
sched_from (const char *json, GError ** error)
{
  JsonParser *p = json_parser_new ();
  g_assert_true (json_parser_load_from_data (p, json, -1, NULL));
  GeRePaintScheduler *s = ge_repaint_scheduler_new_from_json (
      json_node_get_object (json_parser_get_root (p)), "test.json", error);
  g_object_unref (p);
  return s;
}

/* Walks written out by hand from diffusers' set_timesteps (no values are
 * documented there): jumps[j] = jump_n_sample - 1 for j in range (0, N -
 * jump_length, jump_length); down one step at a time, back up jump_length
 * steps at each j while its count lasts; times T // N. */
static void
test_walk (void)
{
  GError *err = NULL;
  GeRePaintScheduler *s = sched_from ("{\"_class_name\": \"RePaintScheduler\"}", &err);
  g_assert_no_error (err);

  /* N = 6, jumps of 2 steps taken twice at 0 and 2 */
  g_assert_true (ge_repaint_scheduler_set_timesteps (s, 6, 2, 3, &err));
  static const int walk6[] = { 5, 4, 3, 2, 3, 4, 3, 2, 3, 4, 3, 2, 1, 0, 1, 2, 1, 0, 1, 2, 1, 0 };
  g_assert_cmpint (ge_repaint_scheduler_n_timesteps (s), ==, G_N_ELEMENTS (walk6));
  const gint64 *ts = ge_repaint_scheduler_timesteps (s);
  int steps = 0;
  for (guint i = 0; i < G_N_ELEMENTS (walk6); i++) {
    g_assert_cmpint (ts[i], ==, walk6[i] * 166);
    /* the pipeline's t < t_last */
    const gboolean undo = i > 0 && walk6[i] >= walk6[i - 1];
    g_assert_cmpint (ge_repaint_scheduler_is_undo (s, i), ==, undo);
    steps += !undo;
  }
  g_assert_cmpint (ge_repaint_scheduler_n_steps (s), ==, steps);
  g_assert_cmpint (ge_repaint_scheduler_undo_n_draws (s), ==, 166);

  /* diffusers' defaults: 250 steps, 10 x 10 jumps: 2410 model calls */
  g_assert_true (ge_repaint_scheduler_set_timesteps (s, 250, 10, 10, &err));
  g_assert_cmpint (ge_repaint_scheduler_n_timesteps (s), ==, 250 + 2 * 24 * 9 * 10);
  g_assert_cmpint (ge_repaint_scheduler_n_steps (s), ==, 2410);
  ts = ge_repaint_scheduler_timesteps (s);
  g_assert_cmpint (ts[0], ==, 996);
  g_assert_cmpint (ts[ge_repaint_scheduler_n_timesteps (s) - 1], ==, 0);
  for (int i = 1; i < ge_repaint_scheduler_n_timesteps (s); i++)
    g_assert_cmpint (ABS (ts[i] - ts[i - 1]), ==, 4);

  /* jump_length >= N: no jumps; N > T is clamped to T */
  g_assert_true (ge_repaint_scheduler_set_timesteps (s, 5, 10, 10, &err));
  g_assert_cmpint (ge_repaint_scheduler_n_timesteps (s), ==, 5);
  g_assert_cmpint (ge_repaint_scheduler_timesteps (s)[0], ==, 800);
  g_assert_true (ge_repaint_scheduler_set_timesteps (s, 5000, 1, 1, &err));
  g_assert_cmpint (ge_repaint_scheduler_num_inference_steps (s), ==, 1000);
  g_assert_cmpint (ge_repaint_scheduler_n_timesteps (s), ==, 1000);
  g_assert_cmpint (ge_repaint_scheduler_undo_n_draws (s), ==, 1);

  /* refused, the old walk kept */
  g_assert_false (ge_repaint_scheduler_set_timesteps (s, 10, 0, 10, &err));
  g_assert_error (err, GE_ERROR, GE_ERROR_INVALID);
  g_clear_error (&err);
  g_assert_false (ge_repaint_scheduler_set_timesteps (s, 1000, 1, 1 << 20, &err));
  g_assert_error (err, GE_ERROR, GE_ERROR_INVALID);
  g_clear_error (&err);
  g_assert_cmpint (ge_repaint_scheduler_n_timesteps (s), ==, 1000);
  ge_repaint_scheduler_free (s);
}

static void
test_config (void)
{
  GError *err = NULL;
  /* a DDPMScheduler config read as RePaintScheduler: foreign keys ignored */
  GeRePaintScheduler *s = sched_from ("{\"_class_name\": \"DDPMScheduler\", "
      "\"beta_schedule\": \"linear\", \"num_train_timesteps\": 100, \"beta_end\": 0.1, "
      "\"clip_sample\": false, \"variance_type\": \"fixed_small\", \"eta\": 0.25, "
      "\"trained_betas\": null, \"prediction_type\": \"epsilon\"}", &err);
  g_assert_no_error (err);
  g_assert_cmpint (ge_repaint_scheduler_num_train_timesteps (s), ==, 100);
  g_assert_false (ge_repaint_scheduler_clip_sample (s));
  g_assert_cmpfloat (ge_repaint_scheduler_eta (s), ==, 0.25f);
  g_assert_cmpfloat (ge_repaint_scheduler_betas (s)[99], ==, 0.1f);
  ge_repaint_scheduler_free (s);

  static const char *const bad[][2] = {
    { "{\"beta_schedule\": \"sigmoid\"}", "beta_schedule" },
    { "{\"trained_betas\": [0.1, 0.2]}", "trained_betas" },
    { "{\"clip_sample\": 1}", "clip_sample" },
    { "{\"num_train_timesteps\": 0}", "num_train_timesteps" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++) {
    g_assert_null (sched_from (bad[i][0], &err));
    g_assert_nonnull (err);
    g_assert_true (strstr (err->message, "test.json") != NULL);
    if (i < 3)
      g_assert_nonnull (strstr (err->message, bad[i][1]));
    g_clear_error (&err);
  }
}

/* At t = 0 the known region is the original itself: a step there keeps
 * it exactly whatever the noise; the unknown region is DDIM's x0. */
static void
test_last_step (void)
{
  GError *err = NULL;
  GeRePaintScheduler *s = sched_from ("{}", &err);
  g_assert_true (ge_repaint_scheduler_set_timesteps (s, 10, 10, 10, &err));
  float mo[4] = { 0.5f, -0.25f, 2.0f, 0.0f }, x[4] = { 0.1f, 0.2f, -0.3f, 0.9f };
  float orig[4] = { -1.0f, 1.0f, 0.5f, 0.25f }, keep[2] = { 1.0f, 0.0f };
  float noise[4] = { 3.0f, -3.0f, 1.0f, 2.0f }, prev[4], x0[4];
  ge_repaint_scheduler_set_eta (s, 1.0f);
  ge_repaint_scheduler_step (s, 0, mo, x, orig, keep, 2, noise, 4, prev, x0);
  g_assert_cmpfloat (prev[0], ==, orig[0]);
  g_assert_cmpfloat (prev[2], ==, orig[2]);
  g_assert_cmpfloat (prev[1], ==, x0[1]);
  g_assert_cmpfloat (prev[3], ==, x0[3]);
  const float a0 = ge_repaint_scheduler_alphas_cumprod (s)[0];
  g_assert_cmpfloat_with_epsilon (x0[1], (0.2 - sqrt (1 - a0) * -0.25) / sqrt (a0), 1e-6);
  ge_repaint_scheduler_free (s);
}

static char *
fixture (const char *rel)
{
  return g_test_build_filename (G_TEST_DIST, "..", "fixtures", rel, NULL);
}

static GePipeline *
small_pipeline (const char *cls)
{
  char *dir = fixture ("pipelines");
  GePipeline *p = ge_pipeline_new (cls, dir);
  char *unet = fixture ("diffusers/unet_ddpm_small");
  char *sched = fixture (g_strcmp0 (cls, "RePaintPipeline") == 0
      ? "pipelines/repaint_small/scheduler_config.json"
      : "pipelines/sdedit_ddim_small/scheduler_config.json");
  ge_pipeline_set_part (p, "unet", unet, NULL);
  ge_pipeline_set_part (p, "scheduler", sched, NULL);
  g_free (dir);
  g_free (unet);
  g_free (sched);
  return p;
}

/* Same seed, same bits; the known pixels come back as they went in; the
 * work buffers are kept. */
static void
test_repaint_loop (void)
{
  GError *err = NULL;
  GePipeline *p = small_pipeline ("RePaintPipeline");
  GePixelDiffusion *pd = ge_pixel_diffusion_new (p, GE_PIXEL_DIFFUSION_REPAINT, &err);
  g_assert_no_error (err);
  g_assert_cmpint (ge_pixel_diffusion_num_steps (pd), ==, 250);
  g_assert_true (ge_pixel_diffusion_set_num_steps (pd, 4, &err));
  g_assert_true (ge_pixel_diffusion_set_jumps (pd, 2, 2, &err));
  g_assert_cmpint (ge_pixel_diffusion_n_unet_calls (pd), ==, 6);
  ge_pixel_diffusion_set_n_threads (pd, 1);
  const int h = 16, w = 16;
  float *img = g_new (float, 3 * h * w), *mask = g_new0 (float, h * w);
  float *a = g_new (float, 3 * h * w), *b = g_new (float, 3 * h * w);
  for (int k = 0; k < 3 * h * w; k++)
    img[k] = (float) ((k * 37) % 256) / 255.0f;
  for (int y = 4; y < 10; y++)
    for (int x = 3; x < 12; x++)
      mask[y * w + x] = 1.0f;
  guint64 seed = 7;
  g_assert_true (ge_pixel_diffusion_process (pd, img, mask, h, w, ge_sd_noise_seeded, &seed, a,
          &err));
  g_assert_true (ge_pixel_diffusion_process (pd, img, mask, h, w, ge_sd_noise_seeded, &seed, b,
          &err));
  g_assert_no_error (err);
  g_assert_cmpmem (a, sizeof (float) * 3 * h * w, b, sizeof (float) * 3 * h * w);
  int changed = 0;
  for (int c = 0; c < 3; c++)
    for (int k = 0; k < h * w; k++) {
      const float v = a[c * h * w + k], o = img[c * h * w + k];
      if (mask[k] == 0.0f)
        g_assert_cmpfloat_with_epsilon (v, o, 1e-6);
      else
        changed += fabsf (v - o) > 1e-3f;
      g_assert_true (v >= 0.0f && v <= 1.0f);
    }
  g_assert_cmpint (changed, >, 0);

  /* wrong sizes and a missing mask are errors, not crashes */
  g_assert_false (ge_pixel_diffusion_process (pd, img, mask, 15, 16, ge_sd_noise_seeded, &seed,
          a, &err));
  g_assert_error (err, GE_ERROR, GE_ERROR_INVALID);
  g_clear_error (&err);
  g_assert_false (ge_pixel_diffusion_process (pd, img, NULL, h, w, ge_sd_noise_seeded, &seed, a,
          &err));
  g_assert_error (err, GE_ERROR, GE_ERROR_INVALID);
  g_clear_error (&err);
  g_assert_false (ge_pixel_diffusion_set_scheduler (pd, "euler", &err));
  g_assert_error (err, GE_ERROR, GE_ERROR_UNSUPPORTED);
  g_clear_error (&err);
  g_assert_false (ge_pixel_diffusion_set_jumps (pd, 0, 2, &err));
  g_clear_error (&err);
  g_assert_cmpint (ge_pixel_diffusion_n_unet_calls (pd), ==, 6);

  g_free (img);
  g_free (mask);
  g_free (a);
  g_free (b);
  ge_pixel_diffusion_free (pd);
  ge_pipeline_free (p);
}

static void
test_sdedit_loop (void)
{
  GError *err = NULL;
  GePipeline *p = small_pipeline ("DDIMPipeline");
  GePixelDiffusion *pd = ge_pixel_diffusion_new (p, GE_PIXEL_DIFFUSION_SDEDIT, &err);
  g_assert_no_error (err);
  g_assert_cmpint (ge_pixel_diffusion_num_steps (pd), ==, 50);
  g_assert_true (ge_pixel_diffusion_set_num_steps (pd, 10, &err));
  ge_pixel_diffusion_set_strength (pd, 0.6f);
  g_assert_cmpint (ge_pixel_diffusion_n_unet_calls (pd), ==, 6);
  ge_pixel_diffusion_set_strength (pd, 0.05f);
  g_assert_cmpint (ge_pixel_diffusion_n_unet_calls (pd), ==, 0);
  const int h = 8, w = 8;
  float img[3 * 8 * 8], out[3 * 8 * 8];
  for (int k = 0; k < 3 * h * w; k++)
    img[k] = (float) ((k * 53) % 256) / 255.0f;
  guint64 seed = 3;
  /* no step left: the image comes back */
  g_assert_true (ge_pixel_diffusion_process (pd, img, NULL, h, w, ge_sd_noise_seeded, &seed, out,
          &err));
  for (int k = 0; k < 3 * h * w; k++)
    g_assert_cmpfloat_with_epsilon (out[k], img[k], 1e-6);
  /* any sampler of ge-sampler.h in DDIM's place */
  g_assert_true (ge_pixel_diffusion_set_scheduler (pd, "euler", &err));
  ge_pixel_diffusion_set_strength (pd, 0.5f);
  g_assert_true (ge_pixel_diffusion_process (pd, img, NULL, h, w, ge_sd_noise_seeded, &seed, out,
          &err));
  g_assert_no_error (err);
  ge_pixel_diffusion_free (pd);
  ge_pipeline_free (p);

  /* a class the task does not run */
  p = small_pipeline ("RePaintPipeline");
  g_assert_null (ge_pixel_diffusion_new (p, GE_PIXEL_DIFFUSION_SDEDIT, &err));
  g_assert_error (err, GE_ERROR, GE_ERROR_UNSUPPORTED);
  g_clear_error (&err);
  ge_pipeline_free (p);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/repaint/walk", test_walk);
  g_test_add_func ("/repaint/config", test_config);
  g_test_add_func ("/repaint/last-step", test_last_step);
  g_test_add_func ("/pixel-diffusion/repaint", test_repaint_loop);
  g_test_add_func ("/pixel-diffusion/sdedit", test_sdedit_loop);
  return g_test_run ();
}
