/* tiles.h: overlapping tiles and their blending weights, shared by the
 * image tasks that tile (super-resolution, the VAE codec). */
#pragma once

#include <glib.h>

/* Tile starts along one axis: equal tiles of @t pixels overlapping by at
 * least @o, the last one flush with the end.  Starts are multiples of the
 * step when @len, @t and @o are multiples of it. */
static inline int
ge_tile_starts (int len, int t, int o, int *starts, int max)
{
  if (t >= len) {
    starts[0] = 0;
    return 1;
  }
  const int step = MAX (t - o, 1);
  int n = 0;
  for (int x = 0; n < max; x += step) {
    if (x + t >= len) {
      starts[n++] = len - t;
      break;
    }
    starts[n++] = x;
  }
  return n;
}

/* Blending weight across an overlap of @o pixels at position @i from the
 * tile's edge: smootherstep, so seams have no kink. */
static inline float
ge_tile_ramp (int i, int o)
{
  if (o <= 0 || i >= o)
    return 1.0f;
  const float t = (i + 0.5f) / o;
  return t * t * t * (t * (t * 6.0f - 15.0f) + 10.0f);
}

/* Weight of pixel (@x, @y) of a @tw x @th tile at (@x0, @y0) in a
 * @W x @H frame: ramps in from the tile's edges that are not frame edges. */
static inline float
ge_tile_weight (int x, int y, int x0, int y0, int tw, int th, int W, int H, int o)
{
  const float wy = (y0 > 0 ? ge_tile_ramp (y, o) : 1.0f)
      * (y0 + th < H ? ge_tile_ramp (th - 1 - y, o) : 1.0f);
  return wy * (x0 > 0 ? ge_tile_ramp (x, o) : 1.0f)
      * (x0 + tw < W ? ge_tile_ramp (tw - 1 - x, o) : 1.0f);
}

/* Adds a tile's @channels planes into the frame's: acc[c][y0 + y][x0 + x]
 * += w (x, y) * src[c][y][x] over its @tw x @th area, w the tile's weight
 * in the @W x @H frame (ge_tile_weight); @wsum (W x H) collects the weights
 * unless NULL.  @src: planes of @src_plane floats, rows of @src_stride. */
static inline void
ge_tile_accumulate (float *acc, float *wsum, int channels, int W, int H,
    const float *src, int src_stride, gsize src_plane, int x0, int y0, int tw, int th,
    int o)
{
  const gsize plane = (gsize) W * H;
  for (int y = 0; y < th; y++)
    for (int x = 0; x < tw; x++) {
      const float w = ge_tile_weight (x, y, x0, y0, tw, th, W, H, o);
      const gsize p = (gsize) (y0 + y) * W + x0 + x;
      if (wsum)
        wsum[p] += w;
      for (int c = 0; c < channels; c++)
        acc[c * plane + p] += w * src[c * src_plane + (gsize) y * src_stride + x];
    }
}

/* acc[c][i] /= wsum[i]: the blend of the tiles accumulated. */
static inline void
ge_tile_normalize (float *acc, const float *wsum, int channels, gsize plane)
{
  for (int c = 0; c < channels; c++)
    for (gsize i = 0; i < plane; i++)
      acc[c * plane + i] /= wsum[i];
}
