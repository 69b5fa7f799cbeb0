/* ge-vae-codec.h: 8-bit frames to VAE latents and back, what the vaeencode
 * and vaedecode elements call.
 *
 * The model file is a diffusers AutoencoderKL (or VQModel) as .safetensors
 * with its config in the __metadata__ (ge-vae.h runs it).  Pixels go in and
 * come out in [-1, 1], as for Stable Diffusion's VAE.
 *
 * Latents are float32 planes [C][lh][lw] (lw fastest), NOT multiplied by
 * the model's scaling_factor (ge_vae_codec_scaling_factor() gives it to
 * whoever wants the diffusion-scale latents).  A frame whose sides are not
 * multiples of the downsampling factor f is replicate-padded to the next
 * multiples before encoding (lw = ceil (width / f)); decoding crops back to
 * the size the caller asks for, which must round up to the same latent.
 *
 * Large frames can be tiled: square tiles of tile_size pixels overlapping
 * by tile_overlap (both rounded up to multiples of f), encoded or decoded
 * one by one and blended with smootherstep weights in the overlaps (in
 * latent space when encoding, in pixels when decoding).  Tiling bounds the
 * memory; its results differ slightly from the whole frame's because
 * GroupNorm statistics are then per tile.
 *
 * In SAMPLE mode encoding returns z = mean + exp (logvar / 2) * n with the
 * engine's counter-based noise: n at latent (c, y, x) is element
 * ((c << 16 | y) << 16 | x) of the seed's stream, so tiles and frames of a
 * size see the same noise.  A VQModel has no distribution: it returns its
 * pre-quantisation latents in either mode and decoding quantises them.
 */
#pragma once

#include <glib.h>
#include "ge-error.h"
#include "ge-image.h"
#include "ge-precision.h"

G_BEGIN_DECLS

typedef struct _GeVaeCodec GeVaeCodec;

typedef enum {
  GE_VAE_MEAN,                  /* the distribution's mean (the mode) */
  GE_VAE_SAMPLE,                /* a draw from it (reparameterised) */
} GeVaeSampleMode;

/* Loads and checks the model: GE_ERROR_* naming @path on failure. */
GeVaeCodec *ge_vae_codec_new (const char *path, GError ** error);
void ge_vae_codec_free (GeVaeCodec * c);

int ge_vae_codec_factor (const GeVaeCodec * c);
int ge_vae_codec_latent_channels (const GeVaeCodec * c);
double ge_vae_codec_scaling_factor (const GeVaeCodec * c);
/* The diffusers class of the model: "AutoencoderKL" or "VQModel". */
const char *ge_vae_codec_model_class (const GeVaeCodec * c);
/* ceil (side / factor) */
void ge_vae_codec_latent_size (const GeVaeCodec * c, int width, int height, int *lw, int *lh);

/* 0 = one thread per core. */
void ge_vae_codec_set_n_threads (GeVaeCodec * c, int n_threads);
/* The precision its convolutions run in (ge-precision.h); the default is
 * GE_PRECISION_F32.  Returns what runs on this CPU: F32 or BF16. */
GePrecision ge_vae_codec_set_precision (GeVaeCodec * c, GePrecision precision);
/* Pixels; tile_size 0 = whole frame. */
void ge_vae_codec_set_tiling (GeVaeCodec * c, int tile_size, int tile_overlap);
void ge_vae_codec_set_sample_mode (GeVaeCodec * c, GeVaeSampleMode mode, guint64 seed);

/* @latent: [C][lh][lw] for the frame's latent size.  Alpha is ignored. */
gboolean ge_vae_codec_encode (GeVaeCodec * c, const GeImageU8 * in, float *latent,
    GError ** error);
/* Decodes an @lw x @lh latent into @out, whose size must have that latent
 * size; alpha, when @out has it, is set opaque. */
gboolean ge_vae_codec_decode (GeVaeCodec * c, const float *latent, int lw, int lh,
    GeImageU8 * out, GError ** error);

/* System allocations of the last call: after the first frame of a size
 * (and tiling) none (tests check this). */
guint ge_vae_codec_n_allocs (const GeVaeCodec * c);

G_END_DECLS
