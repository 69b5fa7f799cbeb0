/* pixel_diffusion.c: see ge-pixel-diffusion.h. */
#include "ge-pixel-diffusion.h"
#include "ge-repaint-scheduler.h"
#include "ge-sampler.h"
#include "ge-unet2d.h"

#include <string.h>

struct _GePixelDiffusion {
  GePipeline *pipeline;
  GePixelDiffusionTask task;
  const char *class_name;
  GeModelFile *unet_mf;
  GeUNet2D *unet;
  JsonObject *scheduler_config; /* owned by the pipeline */
  GeRePaintScheduler *repaint;
  GeSampler *sampler;
  GeSamplerRun *run;
  int steps, jump_length, jump_n_sample;
  float eta, strength;
  GeModelTap tap;
  void *tap_data;
  /* work buffers, kept while the size repeats */
  gsize n, undo_n;
  float *x, *orig, *eps, *noise, *undo_noise, *keep, *scaled;
};

/* NULL-terminated: no task lists more than three. */
static const char *const classes[][4] = {
  [GE_PIXEL_DIFFUSION_REPAINT] = { "RePaintPipeline", "DDPMPipeline", "DDIMPipeline" },
  [GE_PIXEL_DIFFUSION_SDEDIT] = { "DDPMPipeline", "DDIMPipeline" },
};

const char *
ge_pixel_diffusion_supported_classes (GePixelDiffusionTask task)
{
  static gsize joined[G_N_ELEMENTS (classes)];
  return ge_pipeline_classes_joined (classes[task], &joined[task]);
}

/* A new schedule with the current steps (and jumps): on failure the old
 * one stays. */
static gboolean
make_schedule (GePixelDiffusion * pd, const char *name, int steps, int jl, int jn,
    GError ** error)
{
  const char *src = ge_pipeline_part_path (pd->pipeline, "scheduler");
  if (pd->task == GE_PIXEL_DIFFUSION_REPAINT) {
    GeRePaintScheduler *r = ge_repaint_scheduler_new_from_json (pd->scheduler_config, src,
        error);
    if (!r || !ge_repaint_scheduler_set_timesteps (r, steps, jl, jn, error)) {
      ge_repaint_scheduler_free (r);
      return FALSE;
    }
    ge_repaint_scheduler_set_eta (r, pd->eta);
    ge_repaint_scheduler_free (pd->repaint);
    pd->repaint = r;
  } else {
    GeSampler *s = ge_sampler_new_from_json_as (name, pd->scheduler_config, src, error);
    if (!s || !ge_sampler_set_timesteps (s, steps, error)) {
      g_clear_pointer (&s, ge_sampler_free);
      return FALSE;
    }
    ge_sampler_set_eta (s, pd->eta);
    g_clear_pointer (&pd->run, ge_sampler_run_free);
    g_clear_pointer (&pd->sampler, ge_sampler_free);
    pd->sampler = s;
  }
  pd->steps = steps;
  pd->jump_length = jl;
  pd->jump_n_sample = jn;
  return TRUE;
}

GePixelDiffusion *
ge_pixel_diffusion_new (GePipeline * p, GePixelDiffusionTask task, GError ** error)
{
  const char *cls = ge_pipeline_class_name (p);
  const int which = ge_pipeline_find_class (p, classes[task], error);
  if (which < 0)
    return NULL;
  GePixelDiffusion *pd = g_new0 (GePixelDiffusion, 1);
  pd->pipeline = p;
  pd->task = task;
  pd->class_name = classes[task][which];
  pd->strength = 0.8f;
  const gboolean ddim = g_strcmp0 (cls, "DDIMPipeline") == 0;
  int steps = task == GE_PIXEL_DIFFUSION_REPAINT ? 250 : ddim ? 50 : 1000;

  if (!(pd->unet_mf = ge_pipeline_open_model (p, "unet", error))
      || !(pd->unet = ge_unet2d_new (pd->unet_mf, error)))
    goto fail;
  if (ge_unet2d_cross_attention_dim (pd->unet) > 0 || ge_unet2d_in_channels (pd->unet) != 3
      || ge_unet2d_out_channels (pd->unet) != 3) {
    ge_fail (error, GE_ERROR_CORRUPT, ge_pipeline_folder (p),
        "the %s needs an unconditional unet (UNet2DModel) of 3 input and 3 output "
        "channels, not %s of %d and %d", pd->class_name,
        ge_unet2d_cross_attention_dim (pd->unet) > 0 ? "a conditional one" : "one",
        ge_unet2d_in_channels (pd->unet), ge_unet2d_out_channels (pd->unet));
    goto fail;
  }
  if (!(pd->scheduler_config = ge_pipeline_scheduler_config (p, error)))
    goto fail;
  /* DDPMPipeline's default of 1000 steps is the whole schedule: a shorter
   * one (num_train_timesteps < 1000) runs all of its own. */
  if (task == GE_PIXEL_DIFFUSION_SDEDIT) {
    GeSampler *s = ge_sampler_new_from_json_as (ddim ? "ddim" : NULL, pd->scheduler_config,
        ge_pipeline_part_path (p, "scheduler"), error);
    if (!s)
      goto fail;
    steps = MIN (steps, ge_sampler_num_train_timesteps (s));
    ge_sampler_free (s);
  }
  if (!make_schedule (pd, ddim ? "ddim" : NULL, steps, 10, 10, error))
    goto fail;
  return pd;

fail:
  ge_pixel_diffusion_free (pd);
  return NULL;
}

void
ge_pixel_diffusion_free (GePixelDiffusion * pd)
{
  if (!pd)
    return;
  ge_repaint_scheduler_free (pd->repaint);
  g_clear_pointer (&pd->run, ge_sampler_run_free);
  g_clear_pointer (&pd->sampler, ge_sampler_free);
  g_clear_pointer (&pd->unet, ge_unet2d_free);
  g_clear_pointer (&pd->unet_mf, ge_model_file_unref);
  g_free (pd->x);
  g_free (pd->orig);
  g_free (pd->eps);
  g_free (pd->noise);
  g_free (pd->undo_noise);
  g_free (pd->keep);
  g_free (pd->scaled);
  g_free (pd);
}

const char *
ge_pixel_diffusion_pipeline_class (const GePixelDiffusion * pd)
{
  return ge_pipeline_class_name (pd->pipeline);
}

void
ge_pixel_diffusion_set_n_threads (GePixelDiffusion * pd, int n_threads)
{
  ge_unet2d_set_n_threads (pd->unet, n_threads);
}

GePrecision
ge_pixel_diffusion_set_precision (GePixelDiffusion * pd, GePrecision precision)
{
  return ge_unet2d_set_precision (pd->unet, precision);
}

void
ge_pixel_diffusion_set_tap (GePixelDiffusion * pd, GeModelTap tap, void *user_data)
{
  pd->tap = tap;
  pd->tap_data = user_data;
}

gboolean
ge_pixel_diffusion_set_num_steps (GePixelDiffusion * pd, int steps, GError ** error)
{
  if (pd->task == GE_PIXEL_DIFFUSION_SDEDIT) {
    if (!ge_sampler_set_timesteps (pd->sampler, steps, error))
      return FALSE;
    pd->steps = steps;
    return TRUE;
  }
  return make_schedule (pd, NULL, steps, pd->jump_length, pd->jump_n_sample, error);
}

int
ge_pixel_diffusion_num_steps (const GePixelDiffusion * pd)
{
  return pd->steps;
}

gboolean
ge_pixel_diffusion_set_jumps (GePixelDiffusion * pd, int jump_length, int jump_n_sample,
    GError ** error)
{
  if (pd->task != GE_PIXEL_DIFFUSION_REPAINT) {
    pd->jump_length = jump_length;
    pd->jump_n_sample = jump_n_sample;
    return TRUE;
  }
  return make_schedule (pd, NULL, pd->steps, jump_length, jump_n_sample, error);
}

void
ge_pixel_diffusion_set_eta (GePixelDiffusion * pd, float eta)
{
  pd->eta = eta;
  if (pd->repaint)
    ge_repaint_scheduler_set_eta (pd->repaint, eta);
  if (pd->sampler)
    ge_sampler_set_eta (pd->sampler, eta);
}

void
ge_pixel_diffusion_set_strength (GePixelDiffusion * pd, float strength)
{
  pd->strength = CLAMP (strength, 0.0f, 1.0f);
}

gboolean
ge_pixel_diffusion_set_scheduler (GePixelDiffusion * pd, const char *name, GError ** error)
{
  if (pd->task == GE_PIXEL_DIFFUSION_REPAINT) {
    if (!name || g_ascii_strcasecmp (name, "repaint") == 0
        || g_strcmp0 (name, "RePaintScheduler") == 0)
      return TRUE;
    return ge_fail (error, GE_ERROR_UNSUPPORTED, ge_pipeline_folder (pd->pipeline),
        "RePaint runs only its own scheduler, not \"%s\"", name);
  }
  if (!name && g_strcmp0 (ge_pipeline_class_name (pd->pipeline), "DDIMPipeline") == 0)
    name = "ddim";
  return make_schedule (pd, name, pd->steps, pd->jump_length, pd->jump_n_sample, error);
}

int
ge_pixel_diffusion_size_multiple (const GePixelDiffusion * pd)
{
  return ge_unet2d_size_multiple (pd->unet);
}

int
ge_pixel_diffusion_n_unet_calls (const GePixelDiffusion * pd)
{
  if (pd->task == GE_PIXEL_DIFFUSION_REPAINT)
    return ge_repaint_scheduler_n_steps (pd->repaint);
  const int calls = ge_sampler_n_calls (pd->sampler);
  return calls - MIN (ge_sampler_start_index (pd->sampler, pd->strength), calls);
}

/* ---- the loops ------------------------------------------------------------ */

static void
tap (GePixelDiffusion * pd, const char *name, const float *data, int c, int h, int w)
{
  if (pd->tap)
    pd->tap (name, data, 1, c, h, w, pd->tap_data);
}

static void
tap_entry (GePixelDiffusion * pd, const char *kind, int i, const char *what,
    const float *data, int h, int w)
{
  if (!pd->tap)
    return;
  char name[64];
  g_snprintf (name, sizeof name, "%s%d.%s", kind, i, what);
  pd->tap (name, data, 1, 3, h, w, pd->tap_data);
}

static void
ensure_buffers (GePixelDiffusion * pd, gsize n, gsize undo_n)
{
  if (pd->n != n) {
    float **bufs[] = { &pd->x, &pd->orig, &pd->eps, &pd->noise, &pd->scaled };
    for (guint i = 0; i < G_N_ELEMENTS (bufs); i++) {
      g_free (*bufs[i]);
      *bufs[i] = g_new (float, n);
    }
    g_free (pd->keep);
    pd->keep = g_new (float, n / 3);
    pd->n = n;
    g_clear_pointer (&pd->run, ge_sampler_run_free);
  }
  if (pd->undo_n != undo_n) {
    g_free (pd->undo_noise);
    pd->undo_noise = undo_n ? g_new (float, undo_n) : NULL;
    pd->undo_n = undo_n;
  }
}

static gboolean
run_repaint (GePixelDiffusion * pd, int h, int w, GeSdNoiseFunc noise, void *noise_data,
    GError ** error)
{
  const GeRePaintScheduler *s = pd->repaint;
  const gint64 *ts = ge_repaint_scheduler_timesteps (s);
  const int entries = ge_repaint_scheduler_n_timesteps (s);
  const int draws = ge_repaint_scheduler_undo_n_draws (s);
  const gsize n = pd->n, hw = n / 3;

  noise (noise_data, "latents", 0, pd->x, 3, h, w);
  for (int i = 0; i < entries; i++) {
    if (!ge_repaint_scheduler_is_undo (s, i)) {
      const float t = (float) ts[i];
      if (!ge_unet2d_forward (pd->unet, pd->x, 1, h, w, &t, pd->eps, error))
        return FALSE;
      tap_entry (pd, "step", i, "model_output", pd->eps, h, w);
      noise (noise_data, "step", i, pd->noise, 3, h, w);
      ge_repaint_scheduler_step (s, ts[i], pd->eps, pd->x, pd->orig, pd->keep, hw, pd->noise,
          n, pd->x, NULL);
      tap_entry (pd, "step", i, "sample", pd->x, h, w);
    } else {
      noise (noise_data, "undo", i, pd->undo_noise, 3 * draws, h, w);
      ge_repaint_scheduler_undo_step (s, ts[i - 1], pd->x, pd->undo_noise, n, pd->x);
      tap_entry (pd, "undo", i, "sample", pd->x, h, w);
    }
  }
  return TRUE;
}

static gboolean
run_sdedit (GePixelDiffusion * pd, int h, int w, GeSdNoiseFunc noise, void *noise_data,
    GError ** error)
{
  const GeSampler *s = pd->sampler;
  const gsize n = pd->n;
  const int calls = ge_sampler_n_calls (s);
  const int start = MIN (ge_sampler_start_index (s, pd->strength), calls);

  /* diffusers' img2img draws the noise whatever the strength */
  noise (noise_data, "latents", 0, pd->noise, 3, h, w);
  if (start < calls)
    ge_sampler_add_noise (s, start, pd->orig, pd->noise, n, pd->x);
  else
    memcpy (pd->x, pd->orig, sizeof (float) * n);
  tap (pd, "sdedit.noised", pd->x, 3, h, w);
  if (!pd->run)
    pd->run = ge_sampler_run_new (s, n);
  else
    ge_sampler_run_reset (pd->run);
  for (int i = start; i < calls; i++) {
    const float t = ge_sampler_timestep (s, i);
    ge_sampler_scale_model_input (s, i, pd->x, n, pd->scaled);
    if (!ge_unet2d_forward (pd->unet, pd->scaled, 1, h, w, &t, pd->eps, error))
      return FALSE;
    tap_entry (pd, "step", i, "model_output", pd->eps, h, w);
    const float *nz = NULL;
    if (ge_sampler_step_needs_noise (s, i)) {
      noise (noise_data, "step", i, pd->noise, 3, h, w);
      nz = pd->noise;
    }
    ge_sampler_step (pd->run, i, pd->eps, pd->x, nz, pd->x);
    tap_entry (pd, "step", i, "sample", pd->x, h, w);
  }
  return TRUE;
}

gboolean
ge_pixel_diffusion_process (GePixelDiffusion * pd, const float *image, const float *mask,
    int h, int w, GeSdNoiseFunc noise, void *noise_data, float *out, GError ** error)
{
  const int m = ge_pixel_diffusion_size_multiple (pd);
  if (h < 1 || w < 1 || h % m || w % m)
    return ge_fail (error, GE_ERROR_INVALID, ge_pipeline_folder (pd->pipeline),
        "the %s needs an image whose sides are multiples of %d, not %dx%d",
        pd->class_name, m, w, h);
  const gboolean repaint = pd->task == GE_PIXEL_DIFFUSION_REPAINT;
  if (repaint && !mask)
    return ge_fail (error, GE_ERROR_INVALID, ge_pipeline_folder (pd->pipeline),
        "RePaint needs a mask");
  const gsize hw = (gsize) h * w, n = 3 * hw;
  ensure_buffers (pd, n, repaint ? (gsize) ge_repaint_scheduler_undo_n_draws (pd->repaint) * n
      : 0);

  for (gsize k = 0; k < n; k++)
    pd->orig[k] = 2.0f * image[k] - 1.0f;
  tap (pd, "original_image", pd->orig, 3, h, w);
  gboolean ok;
  if (repaint) {
    /* diffusers' mask (1 = keep), binarised as its PIL path does */
    for (gsize k = 0; k < hw; k++)
      pd->keep[k] = 1.0f - mask[k] >= 0.5f ? 1.0f : 0.0f;
    tap (pd, "mask_keep", pd->keep, 1, h, w);
    ok = run_repaint (pd, h, w, noise, noise_data, error);
  } else
    ok = run_sdedit (pd, h, w, noise, noise_data, error);
  if (!ok)
    return FALSE;
  tap (pd, "final.sample", pd->x, 3, h, w);
  for (gsize k = 0; k < n; k++) {
    const float v = pd->x[k] / 2.0f + 0.5f;
    out[k] = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
  }
  return TRUE;
}
