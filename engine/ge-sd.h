/* ge-sd.h: the latent diffusion pipelines of diffusers, as their __call__
 * runs them, on the parts of a GePipeline: what the elements call when
 * model-file is a pipeline folder.
 *
 *   task                   pipeline classes run
 *   GE_SD_INPAINT          StableDiffusionInpaintPipeline (9-channel U-Net:
 *                          cat (latents, mask, masked-image latents));
 *                          StableDiffusionPipeline / ...Inpaint with a
 *                          4-channel U-Net (the known region noised to each
 *                          step's level and pasted back, as diffusers does)
 *   GE_SD_IMG2IMG          StableDiffusionImg2ImgPipeline and
 *                          StableDiffusionPipeline (SDEdit: `strength`
 *                          picks the first timestep as diffusers'
 *                          get_timesteps does);
 *                          StableDiffusionInstructPix2PixPipeline (8-channel
 *                          U-Net, text and image guidance)
 *   GE_SD_SUPER_RESOLUTION StableDiffusionUpscalePipeline (x4: the low-res
 *                          image noised by low_res_scheduler at
 *                          `noise-level`, which is also the U-Net's
 *                          class label); LDMSuperResolutionPipeline
 *                          (UNet2DModel on cat (latents, image), VQModel
 *                          decode with quantisation, no text)
 *   GE_SD_TEXT2IMG         StableDiffusionPipeline (no input image: the
 *                          benchmark of a whole image, and apps)
 *
 * Prompts are encoded when they change, never per frame: the last few
 * (prompt -> embedding) pairs are kept, so a negative prompt or a prompt
 * that alternates costs nothing either.  A text encoder whose config sets
 * use_attention_mask gets the tokenizer's mask, as diffusers passes it.
 *
 * Classifier-free guidance follows diffusers: the U-Net runs the batch
 * cat ([uncond, cond]) (UNCONDITIONAL FIRST) in one forward and the
 * guided prediction is u + g (c - u); with g <= 1 only the conditional
 * half runs.  instruct-pix2pix runs [text + image, uncond + image,
 * uncond + zero image] and combines u + g (text - image) + ig (image - u),
 * when g > 1 and ig >= 1.
 *
 * Randomness: every draw the pipeline makes goes through a GeSdNoiseFunc
 * in the order diffusers draws from its generator, so a caller replays
 * recorded draws (the conformance cases) or draws from our counter-based
 * generator (ge_sd_noise_seeded, what the elements use).  Same seed as
 * torch.Generator gives other numbers, on purpose: our noise is a
 * function of position (ge-rng.h).
 *
 * Images are planar f32 RGB in [0, 1], [3, h, w]; masks [h, w] in [0, 1]
 * (1 = regenerate); h and w multiples of ge_sd_size_multiple ().  Not done
 * here: resizing to the multiple, tiling (the caller pads and tiles).
 */
#pragma once

#include "ge-pipeline.h"
#include "ge-precision.h"

G_BEGIN_DECLS

typedef struct _GeSd GeSd;

typedef enum {
  GE_SD_INPAINT,
  GE_SD_IMG2IMG,
  GE_SD_SUPER_RESOLUTION,
  GE_SD_TEXT2IMG,
} GeSdTask;

/* What the loop asks for, in diffusers' order of draws: @what is
 * "image_noise" (the upscaler's low-res noise), "image_latents" (the
 * posterior sample of the image to encode), "latents" (the initial noise)
 * or "step" (the noise of step @step of an ancestral sampler, counting
 * the steps run: 0 is the first step after strength skipped some); fill
 * c * h * w standard normals into @out ([1, c, h, w] as torch.randn). */
typedef void (*GeSdNoiseFunc) (void *user_data, const char *what, int step, float *out,
    int c, int h, int w);

/* The loop reports its intermediates under the names of the conformance
 * records: "text.cond_embeds", "text.uncond_embeds", "mask_binarized",
 * "mask_latent", "masked_image", "vae_encode.mean", "vae_encode.std",
 * "masked_image_latents", "image_latents", "step%d.unet_input",
 * "step%d.noise_pred_uncond", "step%d.noise_pred_text",
 * "step%d.noise_pred_image", "step%d.noise_pred", "step%d.latents",
 * "latents_start" (the first latents of a loop that starts part-way),
 * "image_noised" (the upscaler's noised low-res image), "final.decoded"
 * (NCHW); steps count from the first step run, as diffusers' loop over
 * the timesteps get_timesteps leaves. */

/* Loads the parts @task's pipeline class needs: a missing part is
 * GE_ERROR_NOT_FOUND naming it, a class the task cannot run is
 * GE_ERROR_UNSUPPORTED listing the ones it can, mismatched parts
 * (cross_attention_dim against the text encoder, U-Net input channels
 * against the VAE) are GE_ERROR_CORRUPT. */
GeSd *ge_sd_new (GePipeline * p, GeSdTask task, GError ** error);
void ge_sd_free (GeSd * sd);
/* Which class of the pipeline runs (the folder's, or the one the task
 * maps it to: "StableDiffusionImg2ImgPipeline" for a
 * StableDiffusionPipeline folder given to GE_SD_IMG2IMG). */
const char *ge_sd_pipeline_class (const GeSd * sd);
/* The classes @task runs, for messages ("A, B, C"). */
const char *ge_sd_supported_classes (GeSdTask task);

void ge_sd_set_n_threads (GeSd * sd, int n_threads);
/* The precision of the U-Net's and the VAE's convolutions and attention
 * (ge-precision.h; AUTO reads each part's own file, and diffusers files
 * carry no mark, so AUTO is f32 for them); the default is
 * GE_PRECISION_F32.  The text encoder stays f32: it runs once per prompt
 * change, and its linear layers have no bf16 kernel.  Returns what the
 * U-Net runs on this CPU: F32 or BF16. */
GePrecision ge_sd_set_precision (GeSd * sd, GePrecision precision);
void ge_sd_set_tap (GeSd * sd, GeModelTap tap, void *user_data);
/* A sampler name as ge_sampler_new_from_json_as () takes it; NULL = the
 * pipeline's own scheduler. */
gboolean ge_sd_set_scheduler (GeSd * sd, const char *name, GError ** error);
gboolean ge_sd_set_num_steps (GeSd * sd, int steps, GError ** error);
int ge_sd_num_steps (const GeSd * sd);
void ge_sd_set_guidance (GeSd * sd, float guidance_scale, float image_guidance_scale);
/* SDEdit strength in [0, 1] (img2img; 1 = from pure noise).  A double, as
 * diffusers' get_timesteps computes int (num_inference_steps * strength)
 * in double: 0.7 of 10 steps runs 7 of them, where 0.7f would run 6. */
void ge_sd_set_strength (GeSd * sd, double strength);
/* The x4 upscaler's noise level (a low_res_scheduler timestep, at most the
 * index's max_noise_level: a frame with a larger one fails, as diffusers
 * refuses it). */
void ge_sd_set_noise_level (GeSd * sd, int noise_level);
/* DDIM's eta (LDM super-resolution passes it; 0 by default). */
void ge_sd_set_eta (GeSd * sd, float eta);
/* Sets the prompts; either is encoded now unless seen recently.
 * *@truncated (may be NULL) says whether one was cut to the tokenizer's
 * max length, which diffusers does with a warning.  A pipeline without a
 * text encoder (LDM) ignores prompts. */
gboolean ge_sd_set_prompt (GeSd * sd, const char *prompt, const char *negative_prompt,
    gboolean * truncated, GError ** error);
gboolean ge_sd_has_text (const GeSd * sd);

/* Inputs must be multiples of this. */
int ge_sd_size_multiple (const GeSd * sd);
/* The output size for an h x w input (x4 for the upscalers). */
void ge_sd_output_size (const GeSd * sd, int h, int w, int *oh, int *ow);
/* Text encodes so far (a prompt is encoded once). */
guint ge_sd_n_text_encodes (const GeSd * sd);
/* System allocations of the per-frame buffers so far: it stays put once a
 * size has run (the models count their own: ge_unet2d_n_allocs ...). */
guint ge_sd_n_allocs (const GeSd * sd);

/* One image through the pipeline: @image [3, h, w] in [0, 1] (NULL for
 * GE_SD_TEXT2IMG, which makes an h x w image); @mask [h, w] for
 * GE_SD_INPAINT (else NULL); @out [3, oh, ow] in [0, 1]. */
gboolean ge_sd_process (GeSd * sd, const float *image, const float *mask, int h, int w,
    GeSdNoiseFunc noise, void *noise_data, float *out, GError ** error);

/* The GeSdNoiseFunc of the elements: @seed_ptr points at a guint64 seed;
 * draws by position from its normal stream, one stream region per draw
 * and step, so a tile or a frame draws the same noise at the same place. */
void ge_sd_noise_seeded (void *seed_ptr, const char *what, int step, float *out,
    int c, int h, int w);
/* The same draw's h x w window at (@y0, @x0) of a larger frame: a tile's
 * noise, equal to that part of the frame's, without drawing the frame. */
void ge_sd_noise_seeded_at (guint64 seed, const char *what, int step, int y0, int x0,
    float *out, int c, int h, int w);

G_END_DECLS
