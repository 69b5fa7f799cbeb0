/* fuzz-config.c: libFuzzer target for the JSON configs the engine reads.
 *
 * The first byte picks what the rest is read as, with real weights beside
 * it (the diffusers fixtures):
 *   0  model_index.json of a pipeline folder (parts, their classes)
 *   1  scheduler_config.json, run through a short loop
 *   2  config.json of unet_cond_sd_small (UNet2DConditionModel)
 *   3  config.json of unet_ddpm_small (UNet2DModel)
 *   4  config.json of vae_kl_small (AutoencoderKL)
 *   5  config.json of taesd_small (AutoencoderTiny)
 *   6  config.json of clip_text_small (CLIPTextModel)
 * A config that loads must run a small forward; one that does not must
 * fail with a GE_ERROR whose message names the file.  Never a crash, a
 * leak, or undefined behaviour.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "ge-clip-text.h"
#include "ge-pipeline.h"
#include "ge-repaint-scheduler.h"
#include "ge-sampler.h"
#include "ge-unet2d.h"
#include "ge-vae.h"

#define CHECK(cond) do { if (!(cond)) { \
      g_printerr ("%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond); \
      abort (); } } while (0)

int LLVMFuzzerInitialize (int *argc, char ***argv);
int LLVMFuzzerTestOneInput (const uint8_t * data, size_t size);

static const char *const models[][2] = {
  { "unet_cond_sd_small", "diffusion_pytorch_model.safetensors" },
  { "unet_ddpm_small", "diffusion_pytorch_model.safetensors" },
  { "vae_kl_small", "diffusion_pytorch_model.safetensors" },
  { "taesd_small", "diffusion_pytorch_model.safetensors" },
  { "clip_text_small", "model.safetensors" },
};

static char *dirs[G_N_ELEMENTS (models) + 1];   /* per model, then the pipeline's */

/* A GLib critical or warning is a bug: abort, so that libFuzzer keeps the
 * input (a breakpoint trap is not always caught). */
static void
abort_on_log (const gchar * domain, GLogLevelFlags level, const gchar * message, gpointer data)
{
  g_printerr ("%s: %s\n", domain ? domain : "", message);
  abort ();
}

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  g_setenv ("G_SLICE", "always-malloc", TRUE);
  g_log_set_default_handler (abort_on_log, NULL);
  g_log_set_handler (NULL, G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING, abort_on_log, NULL);
  g_log_set_handler ("Json", G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING, abort_on_log, NULL);
  g_log_set_handler ("GLib", G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING, abort_on_log, NULL);
  char *tmp = g_dir_make_tmp ("ge-fuzz-config-XXXXXX", NULL);
  CHECK (tmp);
  /* One folder per model: the fuzzed config.json beside a link to the
   * fixture's weights. */
  for (guint i = 0; i < G_N_ELEMENTS (models); i++) {
    dirs[i] = g_build_filename (tmp, models[i][0], NULL);
    CHECK (g_mkdir (dirs[i], 0700) == 0);
    char *src = g_build_filename (GE_FUZZ_FIXTURES, models[i][0], models[i][1], NULL);
    char *dst = g_build_filename (dirs[i], models[i][1], NULL);
    CHECK (symlink (src, dst) == 0);
    g_free (src);
    g_free (dst);
  }
  dirs[G_N_ELEMENTS (models)] = g_build_filename (tmp, "pipeline", NULL);
  CHECK (g_mkdir (dirs[G_N_ELEMENTS (models)], 0700) == 0);
  g_free (tmp);
  return 0;
}

static char *
write_file (const char *dir, const char *name, const uint8_t * data, size_t size)
{
  char *path = g_build_filename (dir, name, NULL);
  CHECK (g_file_set_contents (path, (const char *) data, (gssize) size, NULL));
  return path;
}

static void
expect_error (GError * err, const char *dir)
{
  CHECK (err && err->domain == GE_ERROR && err->message);
  CHECK (strstr (err->message, dir) != NULL);
}

static void
run_pipeline (const uint8_t * data, size_t size)
{
  const char *dir = dirs[G_N_ELEMENTS (models)];
  g_free (write_file (dir, "model_index.json", data, size));
  GError *err = NULL;
  GePipeline *p = ge_pipeline_open (dir, &err);
  if (!p) {
    expect_error (err, dir);
    g_error_free (err);
    return;
  }
  static const char *const parts[] = { "unet", "vae", "text_encoder", "scheduler", "x" };
  for (guint i = 0; i < G_N_ELEMENTS (parts); i++) {
    (void) ge_pipeline_part_class (p, parts[i]);
    GeModelFile *mf = ge_pipeline_open_model (p, parts[i], &err);
    CHECK (!mf);                /* no part folder exists */
    expect_error (err, dir);
    g_clear_error (&err);
  }
  ge_pipeline_free (p);
}

static void
run_scheduler (const uint8_t * data, size_t size)
{
  const char *dir = dirs[G_N_ELEMENTS (models)];
  char *path = write_file (dir, "scheduler_config.json", data, size);
  GError *err = NULL;
  JsonParser *parser = NULL;
  JsonObject *o = ge_sampler_config_load (path, &parser, &err);
  GeSampler *s = o ? ge_sampler_new_from_json (o, path, &err) : NULL;
  const int steps = 1 + (size ? data[size - 1] % 40 : 0);
  if (s && ge_sampler_set_timesteps (s, steps, &err)) {
    float x[4] = { 0.5f, -1, 2, 0 }, eps[4] = { 0.1f, 0.2f, -0.3f, 0 }, z[4] = { 1, -1, 0, 2 };
    GeSamplerRun *run = ge_sampler_run_new (s, 4);
    const int start = ge_sampler_start_index (s, 0.5);
    CHECK (start >= 0 && start <= ge_sampler_n_calls (s));
    for (int i = 0; i < ge_sampler_n_calls (s); i++) {
      (void) ge_sampler_timestep (s, i);
      ge_sampler_scale_model_input (s, i, x, 4, x);
      ge_sampler_step (run, i, eps, x, ge_sampler_step_needs_noise (s, i) ? z : NULL, x);
    }
    ge_sampler_run_free (run);
  } else if (err) {
    expect_error (err, dir);
  }
  g_clear_error (&err);
  ge_sampler_free (s);

  /* The same config read as RePaintScheduler (which takes any class's). */
  GeRePaintScheduler *r = o ? ge_repaint_scheduler_new_from_json (o, path, &err) : NULL;
  const int jl = size > 1 ? data[size - 2] % 8 : 1, jn = size > 2 ? data[size - 3] % 8 : 1;
  if (r && ge_repaint_scheduler_set_timesteps (r, steps, jl, jn, &err)) {
    float x[4] = { 0.5f, -1, 2, 0 }, eps[4] = { 0.1f, 0.2f, -0.3f, 0 }, keep[2] = { 1, 0 };
    const int draws = ge_repaint_scheduler_undo_n_draws (r);
    float *z = g_new0 (float, 4 * (gsize) MAX (draws, 1));
    const gint64 *ts = ge_repaint_scheduler_timesteps (r);
    for (int i = 0; i < ge_repaint_scheduler_n_timesteps (r); i++)
      if (!ge_repaint_scheduler_is_undo (r, i))
        ge_repaint_scheduler_step (r, ts[i], eps, x, x, keep, 2, z, 4, x, NULL);
      else
        ge_repaint_scheduler_undo_step (r, ts[i - 1], x, z, 4, x);
    g_free (z);
  } else if (err) {
    expect_error (err, dir);
  }
  g_clear_error (&err);
  ge_repaint_scheduler_free (r);
  g_clear_object (&parser);
  g_free (path);
}

static void
run_model (guint which, const uint8_t * data, size_t size)
{
  const char *dir = dirs[which];
  g_free (write_file (dir, "config.json", data, size));
  GError *err = NULL;
  GeModelFile *mf = ge_model_file_open (dir, &err);
  gboolean ok = mf != NULL;
  if (ok && which <= 1) {
    GeUNet2D *u = ge_unet2d_new (mf, &err);
    if ((ok = u != NULL)) {
      const int m = ge_unet2d_size_multiple (u), c = ge_unet2d_in_channels (u);
      const int d = ge_unet2d_cross_attention_dim (u), oc = ge_unet2d_out_channels (u);
      if (m <= 16 && c <= 16 && oc <= 16 && d <= 64) {
        float *x = g_new0 (float, (gsize) c * m * m), *y = g_new (float, (gsize) oc * m * m);
        float *ehs = g_new0 (float, 2 * MAX (d, 1)), t = 10, label = 0;
        if (d)
          ok = ge_unet2d_forward_cond (u, x, 1, m, m, &t, ehs, 2,
              ge_unet2d_has_class_embedding (u) ? &label : NULL, y, &err);
        else
          ok = ge_unet2d_forward (u, x, 1, m, m, &t, y, &err);
        CHECK (ok || err);
        ok = TRUE;
        g_clear_error (&err);
        g_free (x);
        g_free (y);
        g_free (ehs);
      }
      ge_unet2d_free (u);
    }
  } else if (ok && which <= 3) {
    GeVae *v = ge_vae_new (mf, &err);
    if ((ok = v != NULL)) {
      const int f = ge_vae_downsample_factor (v), c = ge_vae_in_channels (v);
      const int lc = ge_vae_latent_channels (v);
      if (f <= 16 && c <= 8 && lc <= 16) {
        float *x = g_new0 (float, (gsize) c * f * f), *z = g_new0 (float, lc);
        float *lv = g_new0 (float, lc), *y = g_new (float, (gsize) ge_vae_out_channels (v) * f * f);
        CHECK (ge_vae_encode (v, x, 1, f, f, z, lv, &err) || err);
        g_clear_error (&err);
        CHECK (ge_vae_decode (v, z, 1, 1, 1, FALSE, y, &err) || err);
        g_clear_error (&err);
        g_free (x);
        g_free (z);
        g_free (lv);
        g_free (y);
      }
      ge_vae_free (v);
    }
  } else if (ok) {
    GeClipText *t = ge_clip_text_new (mf, &err);
    if ((ok = t != NULL)) {
      const gint32 ids[4] = { 0, 1, 2, 3 };
      const int h = ge_clip_text_hidden_size (t);
      float *last = g_new (float, 4 * (gsize) MAX (h, 1));
      if (h <= 4096 && ge_clip_text_max_positions (t) >= 4)
        CHECK (ge_clip_text_forward (t, ids, 1, 4, NULL, last, NULL, &err) || err);
      g_clear_error (&err);
      g_free (last);
      ge_clip_text_free (t);
    }
  }
  if (!ok)
    expect_error (err, dir);
  g_clear_error (&err);
  if (mf)
    ge_model_file_unref (mf);
}

int
LLVMFuzzerTestOneInput (const uint8_t * data, size_t size)
{
  if (size < 1)
    return 0;
  const guint kind = data[0] % (2 + G_N_ELEMENTS (models));
  if (kind == 0)
    run_pipeline (data + 1, size - 1);
  else if (kind == 1)
    run_scheduler (data + 1, size - 1);
  else
    run_model (kind - 2, data + 1, size - 1);
  return 0;
}
