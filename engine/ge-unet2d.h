/* ge-unet2d.h: diffusers' UNet2DModel.
 *
 * Loads any configuration built from DownBlock2D, AttnDownBlock2D,
 * UpBlock2D, AttnUpBlock2D and UNetMidBlock2D (any number of levels,
 * channels and layers per block, positional time embedding), with the
 * weights named as diffusers names them.  Inputs are NCHW f32; H and W must
 * be multiples of ge_unet2d_size_multiple().
 */
#pragma once

#include "ge-model-file.h"

G_BEGIN_DECLS

typedef struct _GeUNet2D GeUNet2D;

GeUNet2D *ge_unet2d_new (GeModelFile * mf, GError ** error);
void ge_unet2d_free (GeUNet2D * u);
/* 0 = one thread per core. */
void ge_unet2d_set_n_threads (GeUNet2D * u, int n_threads);
int ge_unet2d_in_channels (const GeUNet2D * u);
int ge_unet2d_out_channels (const GeUNet2D * u);
int ge_unet2d_size_multiple (const GeUNet2D * u);
/* num_train_timesteps from the config (1000 when absent). */
int ge_unet2d_num_train_timesteps (const GeUNet2D * u);
gsize ge_unet2d_n_params (const GeUNet2D * u);

/* out[n, out_channels, h, w] = unet (x[n, in_channels, h, w], t[n]).
 * Timesteps are used as given (diffusers truncates Python floats to int64,
 * not tensors: pass integers to match a diffusers pipeline). */
gboolean ge_unet2d_forward (GeUNet2D * u, const float *x, int n, int h, int w,
    const float *timesteps, float *out, GError ** error);

/* Debugging: @tap sees each diffusers module output during forward. */
void ge_unet2d_set_tap (GeUNet2D * u, GeModelTap tap, void *user_data);

/* Allocations the last forward made (0 once shapes repeat). */
guint ge_unet2d_n_allocs (const GeUNet2D * u);
/* Bytes of activation memory planned for the largest input so far. */
gsize ge_unet2d_workspace_bytes (const GeUNet2D * u);

G_END_DECLS
