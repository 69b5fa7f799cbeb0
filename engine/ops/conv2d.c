/* conv2d.c: 2-D convolution as banded im2col + sgemm.
 *
 * For each sample and group the output is W [cout, K] x col [K, pixels] with
 * K = cin/groups * kh * kw.  We never build col for the whole image (that is
 * the 1-2 GB stable-diffusion.cpp measured in the VAE): each task builds it
 * for a band of output rows that fits in cache, runs a single-threaded sgemm
 * into the matching band of y, and the bands run in parallel.  A 1x1
 * stride-1 unpadded conv needs no col at all: the input already is the
 * matrix.
 */
#include "ge-ops.h"
#include "ge-pool.h"

#include <cblas.h>
#include <string.h>

/* Target size of one band's col buffer in floats (256 KiB: half a typical
 * L2, leaving room for sgemm's packed panels). */
#define BAND_FLOATS (64 * 1024)

GeConv2d
ge_conv2d_params (int in, int out, int k, int stride, int pad,
    const float *weight, const float *bias)
{
  GeConv2d p = {
    .in_channels = in, .out_channels = out, .kh = k, .kw = k,
    .stride_h = stride, .stride_w = stride,
    .pad_top = pad, .pad_left = pad, .pad_bottom = pad, .pad_right = pad,
    .dil_h = 1, .dil_w = 1, .groups = 1, .weight = weight, .bias = bias,
  };
  return p;
}

void
ge_conv2d_out_size (const GeConv2d * p, int h, int w, int *oh, int *ow)
{
  *oh = (h + p->pad_top + p->pad_bottom - p->dil_h * (p->kh - 1) - 1) / p->stride_h + 1;
  *ow = (w + p->pad_left + p->pad_right - p->dil_w * (p->kw - 1) - 1) / p->stride_w + 1;
}

typedef struct {
  const GeConv2d *p;
  const GeTensor *x;
  GeTensor *y;
  int oh, ow;
  int cin_g, cout_g, K;
  int rows_per_band, n_bands;
  int cout_splits, cout_per_split;
  gboolean direct;              /* 1x1, stride 1, no padding: no col */
  float *scratch;               /* n_threads * band floats */
  gsize band_floats;
} ConvJob;

/* col[K, rows*ow] for output rows [r0, r0 + rows) of one sample/group. */
static void
im2col_band (const ConvJob * j, const float *xg, int r0, int rows, float *col)
{
  const GeConv2d *p = j->p;
  const int H = j->x->h, W = j->x->w, ow = j->ow, npix = rows * ow;
  for (int ci = 0; ci < j->cin_g; ci++) {
    const float *plane = xg + (gsize) ci * H * W;
    for (int ky = 0; ky < p->kh; ky++)
      for (int kx = 0; kx < p->kw; kx++) {
        float *dst = col + ((gsize) (ci * p->kh + ky) * p->kw + kx) * npix;
        const int xoff = kx * p->dil_w - p->pad_left;
        /* Valid output columns: 0 <= ox*s + xoff < W. */
        int ox0 = 0, ox1 = ow;
        if (xoff < 0)
          ox0 = (-xoff + p->stride_w - 1) / p->stride_w;
        if (W - 1 - xoff < 0)
          ox1 = 0;
        else
          ox1 = MIN (ow, (W - 1 - xoff) / p->stride_w + 1);
        ox0 = MIN (ox0, ox1);
        for (int r = 0; r < rows; r++) {
          const int iy = (r0 + r) * p->stride_h + ky * p->dil_h - p->pad_top;
          float *d = dst + (gsize) r * ow;
          if (iy < 0 || iy >= H) {
            memset (d, 0, sizeof (float) * ow);
            continue;
          }
          const float *src = plane + (gsize) iy * W + xoff;
          memset (d, 0, sizeof (float) * ox0);
          if (p->stride_w == 1)
            memcpy (d + ox0, src + ox0, sizeof (float) * (ox1 - ox0));
          else
            for (int ox = ox0; ox < ox1; ox++)
              d[ox] = src[ox * p->stride_w];
          memset (d + ox1, 0, sizeof (float) * (ow - ox1));
        }
      }
  }
}

static void
conv_task (void *data, int task, int thread)
{
  const ConvJob *j = data;
  const GeConv2d *p = j->p;
  const int split = task % j->cout_splits;
  const int band = (task / j->cout_splits) % j->n_bands;
  const int ng = task / (j->cout_splits * j->n_bands);
  const int g = ng % p->groups, n = ng / p->groups;
  const int r0 = band * j->rows_per_band;
  const int rows = MIN (j->rows_per_band, j->oh - r0);
  const int co0 = g * j->cout_g + split * j->cout_per_split;
  const int nco = MIN (j->cout_per_split, (g + 1) * j->cout_g - co0);
  if (nco <= 0 || rows <= 0)
    return;
  const gsize opix = (gsize) j->oh * j->ow;
  const int npix = rows * j->ow;

  const float *xg = j->x->data + ((gsize) n * j->x->c + (gsize) g * j->cin_g) * j->x->h * j->x->w;
  float *yb = j->y->data + ((gsize) n * j->y->c + co0) * opix + (gsize) r0 * j->ow;
  const float *wg = p->weight + (gsize) co0 * j->K;

  const float *col;
  int ldcol;
  if (j->direct) {
    col = xg + (gsize) r0 * j->ow;
    ldcol = (int) opix;
  } else {
    float *c = j->scratch + (gsize) thread * j->band_floats;
    im2col_band (j, xg, r0, rows, c);
    col = c;
    ldcol = npix;
  }
  float beta = 0.0f;
  if (p->bias) {
    for (int co = 0; co < nco; co++) {
      float *row = yb + (gsize) co * opix, b = p->bias[co0 + co];
      for (int i = 0; i < npix; i++)
        row[i] = b;
    }
    beta = 1.0f;
  }
  cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, nco, npix, j->K,
      1.0f, wg, j->K, col, ldcol, beta, yb, (int) opix);
}

void
ge_conv2d (GeCtx * ctx, const GeConv2d * p, const GeTensor * x, GeTensor * y)
{
  ConvJob j = { .p = p, .x = x, .y = y };
  ge_conv2d_out_size (p, x->h, x->w, &j.oh, &j.ow);
  g_return_if_fail (x->c == p->in_channels && y->c == p->out_channels);
  g_return_if_fail (y->n == x->n && y->h == j.oh && y->w == j.ow);
  g_return_if_fail (p->in_channels % p->groups == 0 && p->out_channels % p->groups == 0);
  j.cin_g = p->in_channels / p->groups;
  j.cout_g = p->out_channels / p->groups;
  j.K = j.cin_g * p->kh * p->kw;
  j.direct = p->kh == 1 && p->kw == 1 && p->stride_h == 1 && p->stride_w == 1
      && !p->pad_top && !p->pad_left && !p->pad_bottom && !p->pad_right;

  const int n_threads = ge_pool_n_threads (ctx->pool);
  /* Band height: col fits BAND_FLOATS, but at least one row. */
  gsize row_floats = (gsize) j.K * j.ow;
  j.rows_per_band = (int) MAX (1, BAND_FLOATS / MAX (row_floats, 1));
  if (j.direct)                 /* no col: bands only for parallelism and cache */
    j.rows_per_band = (int) MAX (1, 8192 / MAX (j.ow, 1));
  j.rows_per_band = MIN (j.rows_per_band, j.oh);
  j.n_bands = (j.oh + j.rows_per_band - 1) / j.rows_per_band;
  /* Few bands (small images, deep layers): split output channels as well. */
  int units = x->n * p->groups * j.n_bands;
  j.cout_splits = 1;
  if (units < n_threads && j.cout_g >= 2 * 16)
    j.cout_splits = MIN (n_threads, j.cout_g / 16);
  j.cout_per_split = (j.cout_g + j.cout_splits - 1) / j.cout_splits;

  gsize mark = ge_arena_mark (ctx->arena);
  j.band_floats = (gsize) j.K * j.rows_per_band * j.ow;
  if (!j.direct)
    j.scratch = ge_arena_alloc (ctx->arena, j.band_floats * n_threads);
  ge_pool_run (ctx->pool, units * j.cout_splits, conv_task, &j);
  ge_arena_release (ctx->arena, mark);
}
