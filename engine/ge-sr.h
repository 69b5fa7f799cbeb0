/* ge-sr.h: diffusion super-resolution of 8-bit images, what the
 * diffusionsr element calls.
 *
 * The model file is a .safetensors whose __metadata__ holds, besides the
 * UNet2DModel "architecture" and "config", a DDIMScheduler config under
 * "scheduler" and the task under "task" (JSON: {"scale": 2,
 * "num_inference_steps": 4, "residual_scale": 5.0}; see models/sr/MODEL.md).
 * The U-Net runs
 * at the low resolution: its input is the noisy high-resolution residual,
 * pixel-unshuffled by the scale, concatenated with the low-resolution image;
 * it predicts the residual over bicubic upsampling.
 *
 * Deterministic: the noise of output pixel (x, y) depends only on the seed
 * and (x, y), so tiles see the same noise as the whole frame, and a fixed
 * seed gives the same bytes for the same input on any machine.
 */
#pragma once

#include <glib.h>
#include "ge-error.h"
#include "ge-image.h"
#include "ge-precision.h"

G_BEGIN_DECLS

typedef struct _GeSr GeSr;

/* Loads and checks the model: GE_ERROR_* naming @path on failure. */
GeSr *ge_sr_new (const char *path, GError ** error);
void ge_sr_free (GeSr * sr);

int ge_sr_scale (const GeSr * sr);
/* The model's default number of sampling steps. */
int ge_sr_default_steps (const GeSr * sr);
/* Smallest input side the model takes (smaller frames are an error). */
int ge_sr_min_size (const GeSr * sr);

/* 0 = one thread per core. */
void ge_sr_set_n_threads (GeSr * sr, int n_threads);
/* The precision its convolutions run in (ge-precision.h); the default is
 * GE_PRECISION_F32.  Returns what runs on this CPU: F32 or BF16. */
GePrecision ge_sr_set_precision (GeSr * sr, GePrecision precision);
/* 0 = the model's default. */
void ge_sr_set_num_steps (GeSr * sr, int steps);
void ge_sr_set_seed (GeSr * sr, guint64 seed);
/* Low-resolution tile side and overlap in pixels; tile_size 0 = whole
 * frame.  Tiles are blended with smooth weights in the overlap. */
void ge_sr_set_tiling (GeSr * sr, int tile_size, int tile_overlap);

/* out must be (in.width * scale) x (in.height * scale) with the same
 * channel layout.  Alpha, when both have it, is upscaled bilinearly. */
gboolean ge_sr_process (GeSr * sr, const GeImageU8 * in, GeImageU8 * out, GError ** error);

/* Where the last ge_sr_process () spent its time (ms, wall clock): the
 * U-Net, the sampler's updates, the bicubic upsampling, drawing the noise
 * (or copying the cached draw), the conversions (8-bit to float and back,
 * conditioning copy, pixel (un)shuffle, tile blending), and the whole. */
typedef struct {
  double unet_ms, step_ms, bicubic_ms, noise_ms, convert_ms, total_ms;
} GeSrTimes;
const GeSrTimes *ge_sr_last_times (const GeSr * sr);

/* Work buffers are planned once per frame size: after the first frame of a
 * given size, processing allocates nothing (tests check this). */
guint ge_sr_n_allocs (const GeSr * sr);

G_END_DECLS
