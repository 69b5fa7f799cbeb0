/* test-sd: the latent diffusion pipelines (ge-sd.h) beyond what the
 * conformance records check: prompts are encoded once per change (the
 * cache), repeated frames allocate nothing and give the same bytes, the
 * seed moves the output, and bad input is a clear error.
 *
 * The pipeline is the inpainting one of the diffusers records
 * (tests/fixtures/diffusers/sd_inpaint_loop_small and the parts it names),
 * put together part by part as the conformance program does.
 */
#include <glib.h>
#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

#include "ge-sd.h"

static char *fixtures;

static GePipeline *
inpaint_pipeline (void)
{
  char *dir = g_build_filename (fixtures, "sd_inpaint_loop_small", NULL);
  GePipeline *p = ge_pipeline_new ("StableDiffusionInpaintPipeline", dir);
  ge_pipeline_set_part (p, "unet", "unet", "UNet2DConditionModel");
  ge_pipeline_set_part (p, "vae", "../vae_kl_small", "AutoencoderKL");
  ge_pipeline_set_part (p, "text_encoder", "../clip_text_small", "CLIPTextModel");
  ge_pipeline_set_part (p, "tokenizer", "../clip_tokenizer_small", NULL);
  ge_pipeline_set_part (p, "scheduler", "scheduler_config.json", NULL);
  g_free (dir);
  return p;
}

static void
make_input (float *image, float *mask, int h, int w)
{
  for (int i = 0; i < 3 * h * w; i++)
    image[i] = (float) ((i * 37) % 101) / 100.0f;
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      mask[y * w + x] = y >= 8 && y < 24 && x >= 4 && x < 20;
}

static void
test_frames (void)
{
  GError *err = NULL;
  GePipeline *p = inpaint_pipeline ();
  GeSd *sd = ge_sd_new (p, GE_SD_INPAINT, &err);
  g_assert_no_error (err);
  g_assert_cmpstr (ge_sd_pipeline_class (sd), ==, "StableDiffusionInpaintPipeline");
  g_assert_true (ge_sd_set_num_steps (sd, 3, &err));
  ge_sd_set_n_threads (sd, 2);
  const int h = 32, w = 32;
  float *image = g_new (float, 3 * h * w), *mask = g_new (float, h * w);
  float *a = g_new (float, 3 * h * w), *b = g_new (float, 3 * h * w);
  make_input (image, mask, h, w);

  /* Prompts: each text once, then from the cache. */
  gboolean cut = TRUE;
  g_assert_true (ge_sd_set_prompt (sd, "a cat", "", &cut, &err));
  g_assert_false (cut);
  g_assert_cmpuint (ge_sd_n_text_encodes (sd), ==, 2);
  g_assert_true (ge_sd_set_prompt (sd, "a cat", "", NULL, &err));
  g_assert_true (ge_sd_set_prompt (sd, "a dog", "", NULL, &err));
  g_assert_cmpuint (ge_sd_n_text_encodes (sd), ==, 3);
  g_assert_true (ge_sd_set_prompt (sd, "a cat", "", NULL, &err));
  g_assert_true (ge_sd_set_prompt (sd, "a dog", "", NULL, &err));
  g_assert_cmpuint (ge_sd_n_text_encodes (sd), ==, 3);
  /* A prompt over 77 tokens is cut, and says so. */
  GString *longp = g_string_new (NULL);
  for (int i = 0; i < 100; i++)
    g_string_append (longp, "cat ");
  g_assert_true (ge_sd_set_prompt (sd, longp->str, "", &cut, &err));
  g_assert_true (cut);
  g_string_free (longp, TRUE);
  g_assert_true (ge_sd_set_prompt (sd, "a cat", "", NULL, &err));

  /* The same frame twice: the same bytes, and no allocation the second time. */
  guint64 seed = 7;
  g_assert_true (ge_sd_process (sd, image, mask, h, w, ge_sd_noise_seeded, &seed, a, &err));
  const guint allocs = ge_sd_n_allocs (sd);
  g_assert_true (ge_sd_process (sd, image, mask, h, w, ge_sd_noise_seeded, &seed, b, &err));
  g_assert_no_error (err);
  g_assert_cmpint (memcmp (a, b, sizeof (float) * 3 * h * w), ==, 0);
  g_assert_cmpuint (ge_sd_n_allocs (sd), ==, allocs);
  for (int i = 0; i < 3 * h * w; i++)
    g_assert_true (a[i] >= 0.0f && a[i] <= 1.0f);

  /* Another seed, another fill; outside the mask's latent footprint the
   * 9-channel model is free too, so only "different" is asserted. */
  seed = 8;
  g_assert_true (ge_sd_process (sd, image, mask, h, w, ge_sd_noise_seeded, &seed, b, &err));
  g_assert_cmpint (memcmp (a, b, sizeof (float) * 3 * h * w), !=, 0);

  /* Bad input. */
  g_assert_false (ge_sd_process (sd, image, mask, 30, 32, ge_sd_noise_seeded, &seed, b, &err));
  g_assert_error (err, GE_ERROR, GE_ERROR_INVALID);
  g_assert_nonnull (strstr (err->message, "not a multiple of"));
  g_clear_error (&err);
  g_assert_false (ge_sd_process (sd, image, NULL, h, w, ge_sd_noise_seeded, &seed, b, &err));
  g_assert_error (err, GE_ERROR, GE_ERROR_INVALID);
  g_clear_error (&err);
  g_assert_false (ge_sd_set_scheduler (sd, "no-such-sampler", &err));
  g_assert_nonnull (err);
  g_clear_error (&err);

  ge_sd_free (sd);
  ge_pipeline_free (p);
  g_free (image);
  g_free (mask);
  g_free (a);
  g_free (b);
}

/* A class the task does not run, and a pipeline missing a part. */
static void
test_refusals (void)
{
  GError *err = NULL;
  GePipeline *p = inpaint_pipeline ();
  g_assert_null (ge_sd_new (p, GE_SD_SUPER_RESOLUTION, &err));
  g_assert_error (err, GE_ERROR, GE_ERROR_UNSUPPORTED);
  g_assert_nonnull (strstr (err->message, "StableDiffusionInpaintPipeline"));
  g_assert_nonnull (strstr (err->message, "StableDiffusionUpscalePipeline"));
  g_assert_nonnull (strstr (err->message, "LDMSuperResolutionPipeline"));
  g_clear_error (&err);
  ge_pipeline_free (p);

  char *dir = g_build_filename (fixtures, "sd_inpaint_loop_small", NULL);
  p = ge_pipeline_new ("StableDiffusionInpaintPipeline", dir);
  ge_pipeline_set_part (p, "unet", "unet", NULL);
  ge_pipeline_set_part (p, "vae", "../vae_kl_small", NULL);
  g_assert_null (ge_sd_new (p, GE_SD_INPAINT, &err));
  g_assert_error (err, GE_ERROR, GE_ERROR_NOT_FOUND);
  g_assert_nonnull (strstr (err->message, "text_encoder"));
  g_clear_error (&err);
  ge_pipeline_free (p);
  g_free (dir);
}

/* The upscaler's noise level: up to the index's max_noise_level (350
 * here), refused above it as diffusers' check_inputs does; a
 * max_noise_level that is not an integer is a corrupt index. */
static void
test_upscale_noise_level (void)
{
  GError *err = NULL;
  char *dir = g_build_filename (fixtures, "..", "pipelines", "sd_upscale_x4", "pipeline", NULL);
  GePipeline *p = ge_pipeline_open (dir, &err);
  g_assert_no_error (err);
  GeSd *sd = ge_sd_new (p, GE_SD_SUPER_RESOLUTION, &err);
  g_assert_no_error (err);
  g_assert_true (ge_sd_set_num_steps (sd, 1, &err));
  g_assert_true (ge_sd_set_prompt (sd, "", "", NULL, &err));
  const int h = 16, w = 16;
  float *image = g_new (float, 3 * h * w), *out = g_new (float, 3 * 16 * h * w);
  for (int i = 0; i < 3 * h * w; i++)
    image[i] = (float) ((i * 37) % 101) / 100.0f;
  guint64 seed = 1;
  ge_sd_set_noise_level (sd, 350);
  g_assert_true (ge_sd_process (sd, image, NULL, h, w, ge_sd_noise_seeded, &seed, out, &err));
  g_assert_no_error (err);
  ge_sd_set_noise_level (sd, 351);
  g_assert_false (ge_sd_process (sd, image, NULL, h, w, ge_sd_noise_seeded, &seed, out, &err));
  g_assert_error (err, GE_ERROR, GE_ERROR_INVALID);
  g_assert_nonnull (strstr (err->message, "max_noise_level"));
  g_clear_error (&err);
  ge_sd_free (sd);
  ge_pipeline_free (p);

  /* The same parts under an index whose max_noise_level is a string. */
  char *tmp = g_dir_make_tmp ("test-sd-XXXXXX", &err);
  g_assert_no_error (err);
  const char *parts[] = { "unet", "vae", "text_encoder", "tokenizer", "scheduler",
    "low_res_scheduler" };
  for (guint i = 0; i < G_N_ELEMENTS (parts); i++) {
    char *from = g_build_filename (dir, parts[i], NULL), *to = g_build_filename (tmp, parts[i], NULL);
    g_assert_cmpint (symlink (from, to), ==, 0);
    g_free (from);
    g_free (to);
  }
  char *index_in = g_build_filename (dir, "model_index.json", NULL), *text = NULL;
  g_assert_true (g_file_get_contents (index_in, &text, NULL, NULL));
  char **halves = g_strsplit (text, "\"max_noise_level\": 350", 2);
  g_assert_nonnull (halves[1]);
  char *bad = g_strjoinv ("\"max_noise_level\": \"high\"", halves);
  char *index_out = g_build_filename (tmp, "model_index.json", NULL);
  g_assert_true (g_file_set_contents (index_out, bad, -1, NULL));
  p = ge_pipeline_open (tmp, &err);
  g_assert_no_error (err);
  g_assert_null (ge_sd_new (p, GE_SD_SUPER_RESOLUTION, &err));
  g_assert_error (err, GE_ERROR, GE_ERROR_CORRUPT);
  g_assert_nonnull (strstr (err->message, "model_index.json"));
  g_assert_nonnull (strstr (err->message, "max_noise_level"));
  g_clear_error (&err);
  ge_pipeline_free (p);
  g_unlink (index_out);
  for (guint i = 0; i < G_N_ELEMENTS (parts); i++) {
    char *to = g_build_filename (tmp, parts[i], NULL);
    g_unlink (to);
    g_free (to);
  }
  g_rmdir (tmp);
  g_strfreev (halves);
  g_free (bad);
  g_free (text);
  g_free (index_in);
  g_free (index_out);
  g_free (tmp);
  g_free (dir);
  g_free (image);
  g_free (out);
}

/* A tile's noise is that window of the frame's draw, for the named draws
 * and a per-step one; another draw is other noise. */
static void
test_noise_window (void)
{
  const int c = 4, H = 24, W = 40, y0 = 5, x0 = 13, h = 11, w = 17;
  const char *what[] = { "latents", "image_noise", "step" };
  float *frame = g_new (float, c * H * W), *tile = g_new (float, c * h * w);
  float *other = g_new (float, c * h * w);
  guint64 seed = 42;
  for (guint i = 0; i < G_N_ELEMENTS (what); i++) {
    ge_sd_noise_seeded (&seed, what[i], 3, frame, c, H, W);
    ge_sd_noise_seeded_at (seed, what[i], 3, y0, x0, tile, c, h, w);
    for (int ch = 0; ch < c; ch++)
      for (int y = 0; y < h; y++)
        g_assert_cmpmem (tile + ((gsize) ch * h + y) * w, w * sizeof (float),
            frame + ((gsize) ch * H + y0 + y) * W + x0, w * sizeof (float));
    ge_sd_noise_seeded_at (seed, what[(i + 1) % G_N_ELEMENTS (what)], 3, y0, x0, other,
        c, h, w);
    g_assert_true (memcmp (tile, other, c * h * w * sizeof (float)) != 0);
  }
  g_free (frame);
  g_free (tile);
  g_free (other);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  fixtures = g_build_filename (g_getenv ("G_TEST_SRCDIR"), "..", "fixtures", "diffusers", NULL);
  g_test_add_func ("/sd/frames", test_frames);
  g_test_add_func ("/sd/refusals", test_refusals);
  g_test_add_func ("/sd/upscale-noise-level", test_upscale_noise_level);
  g_test_add_func ("/sd/noise-window", test_noise_window);
  int r = g_test_run ();
  g_free (fixtures);
  return r;
}
