/* ge-sd.h: the Stable Diffusion family's sampling loops, as diffusers'
 * pipelines run them, on the parts of a GePipeline.
 *
 * What a GeSd holds: the conditional U-Net, the VAE (AutoencoderKL or
 * AutoencoderTiny), the CLIP tokenizer and text encoder, and one sampler
 * (any of ge-sampler.h's, from the pipeline's scheduler config or by
 * name).  Prompts are encoded when they change, never per frame: the last
 * few (prompt -> embedding) pairs are kept, so the negative prompt and an
 * alternating prompt cost nothing either.
 *
 * Classifier-free guidance follows diffusers: the U-Net runs on the batch
 * cat ([uncond, cond]) (UNCONDITIONAL FIRST) in one forward, and the
 * guided prediction is u + g (c - u); with g <= 1 only the conditional
 * half runs.  instruct-pix2pix's two scales run the batch [text+image,
 * uncond+image, uncond+no image] and combine
 * u + g (text - image) + ig (image - u).
 *
 * Randomness: every draw the loop makes (the initial latents, the VAE
 * posterior sample of the inpainting pipeline, each ancestral step's noise)
 * goes through a GeSdNoise callback, so a caller replays recorded draws
 * (the conformance cases) or draws from our counter-based generator
 * (ge_sd_noise_seeded, what the elements use).  diffusers' torch.Generator
 * draws are not reproduced: same seed, other numbers, on purpose (our noise
 * is a function of position, see ge-rng.h).
 *
 * Images are planar f32 RGB in [0, 1], [3, h, w]; masks [h, w] in [0, 1]
 * (1 = regenerate); h and w multiples of ge_sd_size_multiple ().
 */
#pragma once

#include "ge-pipeline.h"

G_BEGIN_DECLS

typedef struct _GeSd GeSd;

/* What the loop asks for: @what is "latents" (the initial noise),
 * "vae_encode" (the posterior sample of the masked image) or "step" (the
 * ancestral noise of step @step); fill @n standard normals into @out,
 * shaped [1, c, h, w] as diffusers' randn would be. */
typedef void (*GeSdNoiseFunc) (void *user_data, const char *what, int step, float *out,
    int c, int h, int w);

/* Reports the loop's intermediates under the names of the conformance
 * record: "text.cond_embeds", "mask_latent", "masked_image_latents",
 * "step%d.unet_input", "step%d.noise_pred_uncond", "step%d.noise_pred_text",
 * "step%d.noise_pred", "step%d.latents", "final.decoded" (NCHW). */
typedef GeModelTap GeSdTap;

/* Loads the parts the pipeline class needs (StableDiffusionInpaintPipeline
 * for now): a missing part is GE_ERROR_NOT_FOUND naming it, another class
 * is GE_ERROR_UNSUPPORTED listing the ones that run. */
GeSd *ge_sd_new (GePipeline * p, GError ** error);
void ge_sd_free (GeSd * sd);

void ge_sd_set_n_threads (GeSd * sd, int n_threads);
void ge_sd_set_tap (GeSd * sd, GeSdTap tap, void *user_data);
/* The scheduler's name as ge_sampler_new_from_json_as () takes it; NULL
 * = the pipeline's own scheduler. */
gboolean ge_sd_set_scheduler (GeSd * sd, const char *name, GError ** error);
gboolean ge_sd_set_num_steps (GeSd * sd, int steps, GError ** error);
void ge_sd_set_guidance (GeSd * sd, float guidance_scale);
/* Sets the prompts; the text is encoded now if it has not been seen
 * recently.  *@truncated (may be NULL) says whether either prompt was cut
 * to the tokenizer's 77 tokens, as diffusers does with a warning. */
gboolean ge_sd_set_prompt (GeSd * sd, const char *prompt, const char *negative_prompt,
    gboolean * truncated, GError ** error);

int ge_sd_size_multiple (const GeSd * sd);
/* How many text encodes have run (tests: a prompt is encoded once). */
guint ge_sd_n_text_encodes (const GeSd * sd);

/* StableDiffusionInpaintPipeline at strength 1: a 9-channel U-Net gets
 * cat (latents, mask, masked-image latents); a 4-channel one runs the
 * plain loop and puts the known region back, noised to each step's
 * level, as diffusers does.  @out is the decoded image [3, h, w], clamped
 * to [0, 1]. */
gboolean ge_sd_inpaint (GeSd * sd, const float *image, const float *mask, int h, int w,
    GeSdNoiseFunc noise, void *noise_data, float *out, GError ** error);

/* The GeSdNoiseFunc of the elements: draws by position from @seed's
 * normal stream, a separate stream offset per @what and step. */
void ge_sd_noise_seeded (void *seed_ptr, const char *what, int step, float *out,
    int c, int h, int w);

G_END_DECLS
