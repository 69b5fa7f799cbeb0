/* vae-tiny.h: diffusers' AutoencoderTiny (TAESD), the engine side of a
 * GeVae that was loaded from an AutoencoderTiny (internal: callers use
 * ge-vae.h).
 *
 * EncoderTiny and DecoderTiny are nn.Sequential stacks; the layers keep
 * diffusers' indices, so weights and debug taps are named
 * "encoder.layers.N" / "decoder.layers.N" as in diffusers.
 */
#pragma once

#include "ge-blocks.h"

G_BEGIN_DECLS

typedef struct _GeVaeTiny GeVaeTiny;

typedef struct {
  int in_channels, out_channels, latent_channels;
  int factor;                   /* encoder downsampling == decoder upsampling */
  double scaling_factor, shift_factor;
  double latent_magnitude, latent_shift;        /* of the 8-bit latent storage */
} GeVaeTinyInfo;

GeVaeTiny *ge_vae_tiny_load (GeModelFile * mf, GError ** error);
void ge_vae_tiny_free (GeVaeTiny * t);
const GeVaeTinyInfo *ge_vae_tiny_info (const GeVaeTiny * t);
/* Each stride-2 conv (3x3, padding 1) maps s to ceil (s / 2). */
void ge_vae_tiny_latent_size (const GeVaeTiny * t, int h, int w, int *lh, int *lw);

/* x [n, in, h, w] in [-1, 1] -> latents [n, latent, lh, lw] (unscaled). */
void ge_vae_tiny_encode (const GeVaeTiny * t, GeCtx * ctx, GeModelTap tap, void *tap_data,
    const GeTensor * x, GeTensor * latents);
/* z [n, latent, lh, lw] -> y [n, out, lh * factor, lw * factor]. */
void ge_vae_tiny_decode (const GeVaeTiny * t, GeCtx * ctx, GeModelTap tap, void *tap_data,
    const GeTensor * z, GeTensor * y);

G_END_DECLS
