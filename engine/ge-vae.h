/* ge-vae.h: diffusers' AutoencoderKL, VQModel and AutoencoderTiny (TAESD),
 * one handle for all three.
 *
 * encode() gives the latent distribution of AutoencoderKL (mean and the
 * clamped log-variance), the pre-quantisation latents h of a VQModel, or
 * the latents of an AutoencoderTiny (AutoencoderTiny.encode().latents);
 * decode() maps latents back to pixels (a VQModel quantises first unless
 * told not to, as VQModel.decode does).  None applies scaling_factor or
 * shift_factor: pipelines do that, and so do the callers of this API.
 *
 * AutoencoderTiny: its latents are not clamped; its decoder output is not
 * clamped either (diffusers' neither); an input whose size is not a
 * multiple of the factor gives ceil (size / 2) per level (its stride-2
 * convs pad by 1 on every side), and decode() returns factor * latent.
 * AutoencoderTiny.forward's 8-bit latent round trip is
 * ge_vae_latents_to_u8 () then ge_vae_latents_from_u8 () between the two.
 */
#pragma once

#include "ge-model-file.h"
#include "ge-precision.h"

G_BEGIN_DECLS

typedef struct _GeVae GeVae;

GeVae *ge_vae_new (GeModelFile * mf, GError ** error);
void ge_vae_free (GeVae * v);
void ge_vae_set_n_threads (GeVae * v, int n_threads);
/* The precision its convolutions run in (ge-precision.h); the default is
 * GE_PRECISION_F32.  Returns what runs on this CPU: F32 or BF16. */
GePrecision ge_vae_set_precision (GeVae * v, GePrecision precision);
void ge_vae_set_tap (GeVae * v, GeModelTap tap, void *user_data);

gboolean ge_vae_is_vq (const GeVae * v);
gboolean ge_vae_is_tiny (const GeVae * v);
/* TRUE for an AutoencoderKL only: encode() fills logvar, so latents can be
 * sampled; the others give one latent (mean) and leave logvar alone. */
gboolean ge_vae_has_distribution (const GeVae * v);
int ge_vae_in_channels (const GeVae * v);
int ge_vae_out_channels (const GeVae * v);
int ge_vae_latent_channels (const GeVae * v);
/* 2^(levels-1): latents are that much smaller (floor; see below). */
int ge_vae_downsample_factor (const GeVae * v);
double ge_vae_scaling_factor (const GeVae * v);
/* config "shift_factor" (0 when absent or null): pipelines decode
 * z / scaling_factor + shift_factor. */
double ge_vae_shift_factor (const GeVae * v);
/* Latent size of an h x w input (0 when the input is too small). */
void ge_vae_latent_size (const GeVae * v, int h, int w, int *lh, int *lw);

/* mean, logvar: [n, latent_channels, lh, lw]; logvar may be NULL and is
 * left untouched for a VQModel (mean then receives h) and an
 * AutoencoderTiny (mean receives its latents). */
gboolean ge_vae_encode (GeVae * v, const float *x, int n, int h, int w,
    float *mean, float *logvar, GError ** error);
/* out: [n, out_channels, lh * f, lw * f].  @quantize only matters to a
 * VQModel. */
gboolean ge_vae_decode (GeVae * v, const float *z, int n, int lh, int lw,
    gboolean quantize, float *out, GError ** error);
/* VQModel only: nearest codebook entries (first on ties) of z, written as
 * z + (e - z) like diffusers; @indices ([n*lh*lw]) may be NULL. */
gboolean ge_vae_quantize (GeVae * v, const float *z, int n, int lh, int lw,
    float *zq, gint64 * indices, GError ** error);

/* AutoencoderTiny only (GE_ERROR_INVALID otherwise): latents as the bytes
 * AutoencoderTiny.forward stores them, q = round (clamp (z / (2 m) + s, 0,
 * 1) * 255) with m = latent_magnitude, s = latent_shift (round half to
 * even), and back, z = (q / 255 - s) * 2 m; @n values each. */
gboolean ge_vae_latents_to_u8 (const GeVae * v, const float *z, gsize n, guint8 * q,
    GError ** error);
gboolean ge_vae_latents_from_u8 (const GeVae * v, const guint8 * q, gsize n, float *z,
    GError ** error);

/* System allocations of the work arena since the model was loaded (or
 * its thread count last changed). */
guint ge_vae_n_system_allocs (const GeVae * v);

G_END_DECLS
