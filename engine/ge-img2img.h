/* ge-img2img.h: image-to-image translation by conditional diffusion in
 * pixels (colorization, or any paired translation), what the
 * diffusionimg2img element calls.
 *
 * The model file is a diffusers UNet2DModel .safetensors whose
 * __metadata__ holds, besides "architecture" and "config", a DDIMScheduler
 * config under "scheduler" and the task under "task" (models/img2img/):
 *   {"task": "img2img", "target": "rgb" | "chroma", "scale": s,
 *    "num_inference_steps": n}
 * The U-Net works at 1/s of the frame size on
 *   target "rgb":    cat (unshuffle_s (x_t), unshuffle_s (source))
 *                    -> unshuffle_s (target), pixels in [-1, 1]
 *   target "chroma": cat (x_t, unshuffle_s (Y))  -> (Cb, Cr) averaged over
 *                    s x s blocks; Y, Cb, Cr are full-range BT.601 (JPEG)
 *                    of the source, as 2Y - 1, 2Cb, 2Cr in [-1, 1]; the
 *                    output keeps the source's luma and takes the
 *                    predicted chroma, bilinearly upsampled
 * ("sample" prediction: the U-Net predicts x0).
 *
 * Strength is SDEdit's, as diffusers' img2img pipelines run it: of N steps
 * the last round (N * strength) run, from the source's own target
 * representation noised to the first of them; strength 1 starts from
 * (almost) pure noise, strength 0 returns the source's representation.
 *
 * Deterministic: the noise at working-resolution position (c, y, x) is
 * element ((c << 16 | y) << 16 | x) of the seed's stream less the mean of
 * channel c over the frame, the same for every frame and every tiling.
 * Alpha passes through.
 */
#pragma once

#include <glib.h>
#include "ge-error.h"
#include "ge-image.h"
#include "ge-precision.h"

G_BEGIN_DECLS

typedef struct _GeImg2Img GeImg2Img;

GeImg2Img *ge_img2img_new (const char *path, GError ** error);
void ge_img2img_free (GeImg2Img * t);

int ge_img2img_default_steps (const GeImg2Img * t);
/* TRUE for a colorization ("chroma") model. */
gboolean ge_img2img_is_chroma (const GeImg2Img * t);
int ge_img2img_scale (const GeImg2Img * t);

/* 0 = one thread per core. */
void ge_img2img_set_n_threads (GeImg2Img * t, int n_threads);
/* The precision its convolutions run in (ge-precision.h); the default is
 * GE_PRECISION_F32.  Returns what runs on this CPU: F32 or BF16. */
GePrecision ge_img2img_set_precision (GeImg2Img * t, GePrecision precision);
/* 0 = the model's default. */
void ge_img2img_set_num_steps (GeImg2Img * t, int steps);
void ge_img2img_set_seed (GeImg2Img * t, guint64 seed);
/* In [0, 1]. */
void ge_img2img_set_strength (GeImg2Img * t, float strength);
/* Tile side and overlap in frame pixels; 0 = whole frame. */
void ge_img2img_set_tiling (GeImg2Img * t, int tile_size, int tile_overlap);

/* @out has @in's size. */
gboolean ge_img2img_process (GeImg2Img * t, const GeImageU8 * in, GeImageU8 * out,
    GError ** error);

/* System allocations of the last call (0 after the first frame of a size). */
guint ge_img2img_n_allocs (const GeImg2Img * t);

G_END_DECLS
