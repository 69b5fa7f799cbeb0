/* ge-inpaint.h: diffusion inpainting of masked regions of 8-bit images,
 * what the diffusioninpaint element calls.
 *
 * The model file is a .safetensors whose __metadata__ holds a UNet2DModel
 * ("architecture", "config"), a DDIMScheduler config under "scheduler" and
 * the task under "task" (JSON: {"task": "inpaint", "num_inference_steps":
 * 4, ...}; see models/inpaint/MODEL.md).  The U-Net is conditioned as Stable
 * Diffusion's inpainting U-Nets are, by concatenation, in pixels, 3 + 1 + 3
 * channels in [-1, 1]:
 *  - plain: input concat (x_t, hole, image * (1 - hole)), it predicts the
 *    image (x0);
 *  - residual ("residual": "base_fill", "residual_scale", "base_sigmas",
 *    "base_support", optional "base_harmonic_sweeps" and
 *    "base_harmonic_omega"; what models/inpaint/ trains): the hole is first
 *    filled classically (normalised Gaussian convolutions of the known
 *    pixels, coarse to fine, then SOR sweeps towards the harmonic fill, as
 *    models/inpaint/train.py's base_fill), the diffusion
 *    runs on r = (image - base) * residual_scale inside the hole, input
 *    concat (r_t, hole, base), and the image is base + hole * r0 /
 *    residual_scale.
 * The DDIM sampler's eta is the task's "eta" (0 when absent, at most 1):
 * with eta > 0 every step adds draw i + 1 of the seeded noise below.
 *
 * Exemplar guidance (task "exemplar_guidance" g, 0 when absent, or
 * ge_inpaint_set_exemplar_guidance): each box's hole is also filled with
 * patches of the box's own known pixels (PatchMatch, engine/tasks/
 * patchmatch.h: the frame's texture, lines carried on from the rim; seeded,
 * deterministic), and every step's estimate x0 becomes x0 + g * hole *
 * (target - x0).  The target is that fill in the U-Net's sample space; for
 * residual models its residual e over the base, with the structure coarser
 * than "exemplar_sigma" pixels (1.5) kept only in part: e - (1 -
 * "exemplar_low") * gauss (e) ("exemplar_low" 1 when absent).  With g = 1
 * on a residual model every estimate is the target, so the U-Net's output
 * would be thrown away and it is not run: the fill is the base plus the
 * target, whatever the steps.  Not a diffusers feature; RePaint ignores it.
 *
 * Unconditional U-Nets (3 channels in and out, epsilon prediction, e.g. a
 * diffusers UNet2DModel checkpoint without a "task") inpaint with RePaint,
 * as diffusers' RePaintPipeline does (eta 0), with the file's "scheduler"
 * config or DDPMScheduler's defaults, 50 steps and jumps of 10 steps taken
 * 3 times unless set (ge_inpaint_set_repaint_jumps).
 *
 * Only regions around the mask are diffused: each connected part of the
 * mask, grown by the feather width, gets a box with context around it
 * (half its larger side, at least 16 pixels on each side, clamped to the
 * frame, widened to the U-Net's size multiple); overlapping boxes merge.
 * The result is blended in with weights that are 1 on the mask and fall
 * smoothly to 0 at feather + 1 pixels outside it (chamfer distance); every
 * pixel that far out or further is the input's, bit for bit.
 *
 * Deterministic: the noise of pixel (x, y) depends only on the seed and
 * (x, y), so a static mask on video gets the same noise every frame.
 */
#pragma once

#include <glib.h>
#include "ge-error.h"
#include "ge-image.h"
#include "ge-precision.h"

G_BEGIN_DECLS

typedef struct _GeInpaint GeInpaint;

/* Loads and checks the model: GE_ERROR_* naming @path on failure. */
GeInpaint *ge_inpaint_new (const char *path, GError ** error);
void ge_inpaint_free (GeInpaint * ip);

/* The model's default number of sampling steps. */
int ge_inpaint_default_steps (const GeInpaint * ip);
/* TRUE for an unconditional U-Net, which runs RePaint. */
gboolean ge_inpaint_is_repaint (const GeInpaint * ip);
/* RePaint's jumps: back @jump_length steps, @jump_n_sample - 1 times at
 * every @jump_length-th step (1 = no jumps).  Conditional models ignore it. */
void ge_inpaint_set_repaint_jumps (GeInpaint * ip, int jump_length, int jump_n_sample);

/* 0 = one thread per core. */
void ge_inpaint_set_n_threads (GeInpaint * ip, int n_threads);
/* The precision its convolutions run in (ge-precision.h), and its exemplar
 * fill's exhaustive search (exact in each: the same bytes); the default is
 * GE_PRECISION_F32.  Returns what the U-Net runs on this CPU: F32, BF16 or
 * INT8. */
GePrecision ge_inpaint_set_precision (GeInpaint * ip, GePrecision precision);
/* 0 = the model's default. */
void ge_inpaint_set_num_steps (GeInpaint * ip, int steps);
void ge_inpaint_set_seed (GeInpaint * ip, guint64 seed);
/* Exemplar guidance in [0, 1] (conditional models; RePaint ignores it):
 * at every step the U-Net's estimate x0 becomes x0 + g * hole * (e - x0),
 * e the PatchMatch fill of the box from its own known pixels (patchmatch.h)
 * in the U-Net's sample space.  0: the model alone; 1: the exemplar fill.
 * < 0: the model's default, the task's "exemplar_guidance" (0 when absent). */
void ge_inpaint_set_exemplar_guidance (GeInpaint * ip, float guidance);
float ge_inpaint_default_exemplar_guidance (const GeInpaint * ip);
/* Width in pixels of the blend outside the mask (0: a hard edge). */
void ge_inpaint_set_feather (GeInpaint * ip, int feather);

/* Regenerates the pixels of @img where @mask (8 bits per pixel, @mask_stride
 * bytes per row, img's size) is not 0, in place.  Channels other than r, g,
 * b (alpha) are left alone.  An empty mask changes nothing. */
gboolean ge_inpaint_process (GeInpaint * ip, GeImageU8 * img, const guint8 * mask,
    int mask_stride, GError ** error);

/* Pixels diffused (the boxes' area) by the last call. */
gsize ge_inpaint_last_area (const GeInpaint * ip);
/* Boxes of the last call whose input (pixels and mask), position and
 * settings were those of the call before: their last output was put back,
 * the same bytes the model would give again, without running it. */
gsize ge_inpaint_last_reused (const GeInpaint * ip);
/* Work buffers are planned once per box size: with the same mask, a second
 * frame allocates nothing (tests check this). */
guint ge_inpaint_n_allocs (const GeInpaint * ip);

G_END_DECLS
