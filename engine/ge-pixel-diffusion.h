/* ge-pixel-diffusion.h: diffusers' pixel-space pipelines of an
 * unconditional UNet2DModel (no VAE, no text), as their __call__ runs
 * them, on the parts of a GePipeline (unet + scheduler):
 *
 *   task                             pipeline classes run
 *   GE_PIXEL_DIFFUSION_REPAINT       RePaintPipeline; DDPMPipeline and
 *                                    DDIMPipeline folders too, their
 *                                    scheduler config read as
 *                                    RePaintScheduler's (what diffusers'
 *                                    own RePaint example does with
 *                                    google/ddpm-ema-celebahq-256)
 *   GE_PIXEL_DIFFUSION_SDEDIT        DDPMPipeline (its scheduler's class)
 *                                    and DDIMPipeline (the config read as
 *                                    DDIMScheduler, as its __init__ does)
 *                                    used as an SDEdit prior: the image is
 *                                    noised to the timestep `strength`
 *                                    picks (get_timesteps of diffusers'
 *                                    img2img pipelines:
 *                                    ge_sampler_start_index) and denoised
 *                                    from there
 *
 * RePaint runs RePaintPipeline.__call__: image 2x - 1; mask binarised;
 * x = noise; the walk of ge-repaint-scheduler.h with the pipeline's
 * `t_last` test (model call + step, or undo_step from the entry before);
 * out = (x / 2 + 0.5) clamped to [0, 1].  eta is the pipeline's argument
 * (default 0), not the config's (the pipeline overwrites scheduler.eta).
 *
 * SDEdit is no diffusers pipeline of its own: it is the img2img recipe of
 * StableDiffusionImg2ImgPipeline in pixels: x = add_noise (2 image - 1,
 * noise, first timestep); then DDPMPipeline's / DDIMPipeline's loop body
 * (model call on scale_model_input (x), scheduler step with eta, no
 * clipped model output) from there; out as above.  Any sampler of
 * ge-sampler.h can be set in its place (ge_pixel_diffusion_set_scheduler).
 * With strength so small that no step remains, the output is the input
 * (as 2x - 1 and back).
 *
 * MASK CONVENTION: here, as in ge-sd.h, 1 = regenerate.  diffusers'
 * RePaint mask is the opposite (1 = keep): keep = 1 - mask.  The mask is
 * binarised as RePaintPipeline binarises a PIL mask (keep >= 0.5 is kept,
 * i.e. a pixel is regenerated where mask > 0.5); a soft tensor mask, which
 * diffusers would use unbinarised, is not reproduced.
 *
 * Randomness: every draw goes through a GeSdNoiseFunc (ge-sd.h) in the
 * order the diffusers pipeline draws from its generator: "latents" (the
 * initial noise of RePaint, the SDEdit noise of add_noise), then per
 * entry i of the walk "step" (RePaint: every step, eta 0 included; SDEdit:
 * where ge_sampler_step_needs_noise) and, RePaint only, "undo" with step =
 * the entry index, asked for at once as c = undo_n_draws * 3 channels (the
 * undo_step's T / N draws of [3, h, w] one after the other).  Entry
 * indices of "step" and "undo" never coincide, so ge_sd_noise_seeded
 * (which keys unknown draws by step only) gives every draw its own stream
 * region.
 *
 * Taps (ge_pixel_diffusion_set_tap), under the conformance records'
 * names: "original_image" ([-1, 1]), "mask_keep" (diffusers' mask),
 * "sdedit.noised" (the start of the SDEdit loop), "step%d.model_output",
 * "step%d.sample", "undo%d.sample", "final.sample" (all NCHW).
 *
 * Images are planar f32 RGB in [0, 1], [3, h, w]; masks [h, w]; h and w
 * multiples of ge_pixel_diffusion_size_multiple ().  Not done here:
 * resizing (diffusers' PIL paths resize the image to a multiple of 8 and
 * the mask to a multiple of 32 first), tiling.
 */
#pragma once

#include "ge-pipeline.h"
#include "ge-sd.h"

G_BEGIN_DECLS

typedef struct _GePixelDiffusion GePixelDiffusion;

typedef enum {
  GE_PIXEL_DIFFUSION_REPAINT,
  GE_PIXEL_DIFFUSION_SDEDIT,
} GePixelDiffusionTask;

/* Loads the unet and the scheduler config: a missing part is
 * GE_ERROR_NOT_FOUND naming it, a pipeline class the task does not run
 * GE_ERROR_UNSUPPORTED listing those it does, a unet that does not map 3
 * channels to 3 or is conditional GE_ERROR_CORRUPT. */
GePixelDiffusion *ge_pixel_diffusion_new (GePipeline * p, GePixelDiffusionTask task,
    GError ** error);
void ge_pixel_diffusion_free (GePixelDiffusion * pd);
/* "RePaintPipeline", "DDIMPipeline", ... (the folder's class). */
const char *ge_pixel_diffusion_pipeline_class (const GePixelDiffusion * pd);
/* The classes @task runs, for messages. */
const char *ge_pixel_diffusion_supported_classes (GePixelDiffusionTask task);

void ge_pixel_diffusion_set_n_threads (GePixelDiffusion * pd, int n_threads);
/* The precision of the U-Net (ge-precision.h, as ge_sd_set_precision). */
GePrecision ge_pixel_diffusion_set_precision (GePixelDiffusion * pd, GePrecision precision);
void ge_pixel_diffusion_set_tap (GePixelDiffusion * pd, GeModelTap tap, void *user_data);

/* num_inference_steps: diffusers' defaults are RePaint 250, DDIMPipeline
 * 50, DDPMPipeline 1000.  GE_ERROR_INVALID outside what the scheduler
 * takes. */
gboolean ge_pixel_diffusion_set_num_steps (GePixelDiffusion * pd, int steps, GError ** error);
int ge_pixel_diffusion_num_steps (const GePixelDiffusion * pd);
/* RePaint's jumps (default 10, 10; 1 = none).  SDEdit ignores them. */
gboolean ge_pixel_diffusion_set_jumps (GePixelDiffusion * pd, int jump_length,
    int jump_n_sample, GError ** error);
/* eta (default 0): RePaint's, and DDIM's for SDEdit. */
void ge_pixel_diffusion_set_eta (GePixelDiffusion * pd, float eta);
/* SDEdit strength in [0, 1] (default 0.8, img2img's; 1 = from pure
 * noise).  RePaint ignores it. */
void ge_pixel_diffusion_set_strength (GePixelDiffusion * pd, float strength);
/* SDEdit: a sampler name as ge_sampler_new_from_json_as () takes it; NULL
 * = the pipeline's own (DDIMScheduler for a DDIMPipeline).  RePaint:
 * GE_ERROR_UNSUPPORTED for any name but NULL / "repaint". */
gboolean ge_pixel_diffusion_set_scheduler (GePixelDiffusion * pd, const char *name,
    GError ** error);

/* Inputs must be multiples of this. */
int ge_pixel_diffusion_size_multiple (const GePixelDiffusion * pd);
/* U-Net calls one image costs with the current settings (RePaint's walk
 * calls it far more often than num_steps: 250 steps with 10 x 10 jumps
 * make 2410 calls). */
int ge_pixel_diffusion_n_unet_calls (const GePixelDiffusion * pd);

/* One image: @image [3, h, w] in [0, 1]; @mask [h, w] (1 = regenerate)
 * for RePaint, NULL for SDEdit; @out [3, h, w] in [0, 1] (may alias
 * @image). */
gboolean ge_pixel_diffusion_process (GePixelDiffusion * pd, const float *image,
    const float *mask, int h, int w, GeSdNoiseFunc noise, void *noise_data, float *out,
    GError ** error);

G_END_DECLS
