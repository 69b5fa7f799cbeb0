/* ge-vae.h: diffusers' AutoencoderKL and VQModel (one handle for both).
 *
 * encode() gives the latent distribution of AutoencoderKL (mean and the
 * clamped log-variance) or the pre-quantisation latents h of a VQModel;
 * decode() maps latents back to pixels (a VQModel quantises first unless
 * told not to, as VQModel.decode does).  Neither applies scaling_factor:
 * pipelines do that, and so do the callers of this API.
 */
#pragma once

#include "ge-model-file.h"

G_BEGIN_DECLS

typedef struct _GeVae GeVae;

GeVae *ge_vae_new (GeModelFile * mf, GError ** error);
void ge_vae_free (GeVae * v);
void ge_vae_set_n_threads (GeVae * v, int n_threads);
void ge_vae_set_tap (GeVae * v, GeModelTap tap, void *user_data);

gboolean ge_vae_is_vq (const GeVae * v);
int ge_vae_in_channels (const GeVae * v);
int ge_vae_out_channels (const GeVae * v);
int ge_vae_latent_channels (const GeVae * v);
/* 2^(levels-1): latents are that much smaller (floor; see below). */
int ge_vae_downsample_factor (const GeVae * v);
double ge_vae_scaling_factor (const GeVae * v);
/* Latent size of an h x w input (0 when the input is too small). */
void ge_vae_latent_size (const GeVae * v, int h, int w, int *lh, int *lw);

/* mean, logvar: [n, latent_channels, lh, lw]; logvar may be NULL and is
 * left untouched for a VQModel (mean then receives h). */
gboolean ge_vae_encode (GeVae * v, const float *x, int n, int h, int w,
    float *mean, float *logvar, GError ** error);
/* out: [n, out_channels, lh * f, lw * f]. */
gboolean ge_vae_decode (GeVae * v, const float *z, int n, int lh, int lw,
    gboolean quantize, float *out, GError ** error);
/* VQModel only: nearest codebook entries (first on ties) of z, written as
 * z + (e - z) like diffusers; @indices ([n*lh*lw]) may be NULL. */
gboolean ge_vae_quantize (GeVae * v, const float *z, int n, int lh, int lw,
    float *zq, gint64 * indices, GError ** error);

/* System allocations of the work arena since the model was loaded (or
 * its thread count last changed). */
guint ge_vae_n_system_allocs (const GeVae * v);

G_END_DECLS
