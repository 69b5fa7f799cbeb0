/* conv_transpose.c: transposed 2-D convolution as sgemm + col2im.
 *
 * col = W_g^T x_g gives, per input pixel, the kh*kw contributions of every
 * output channel; they are scatter-added into y.  Input rows are processed
 * in bands so col stays cache-sized.  Tasks own disjoint output channels,
 * so the scatter needs no locks.
 */
#include "ge-ops.h"
#include "ge-pool.h"

#include <cblas.h>
#include <string.h>

#define BAND_FLOATS (64 * 1024)

void
ge_conv_transpose2d_out_size (const GeConvTranspose2d * p, int h, int w, int *oh, int *ow)
{
  *oh = (h - 1) * p->stride_h - 2 * p->pad_h + p->dil_h * (p->kh - 1) + p->out_pad_h + 1;
  *ow = (w - 1) * p->stride_w - 2 * p->pad_w + p->dil_w * (p->kw - 1) + p->out_pad_w + 1;
}

typedef struct {
  const GeConvTranspose2d *p;
  const GeTensor *x;
  GeTensor *y;
  int cin_g, cout_g, splits, per_split, rows_per_band;
  float *scratch;
  gsize band_floats;
} Job;

static void
task (void *data, int t, int thread)
{
  const Job *j = data;
  const GeConvTranspose2d *p = j->p;
  const int split = t % j->splits, ng = t / j->splits;
  const int g = ng % p->groups, n = ng / p->groups;
  const int c0 = split * j->per_split, nc = MIN (j->per_split, j->cout_g - c0);
  if (nc <= 0)
    return;
  const int H = j->x->h, W = j->x->w, OH = j->y->h, OW = j->y->w, kk = p->kh * p->kw;
  const float *xg = j->x->data + ((gsize) n * j->x->c + (gsize) g * j->cin_g) * H * W;
  const float *wg = p->weight + (gsize) g * j->cin_g * j->cout_g * kk;
  float *col = j->scratch + (gsize) thread * j->band_floats;

  for (int c = 0; c < nc; c++) {
    const int co = g * j->cout_g + c0 + c;
    float *plane = j->y->data + ((gsize) n * j->y->c + co) * OH * OW;
    const float b = p->bias ? p->bias[co] : 0.0f;
    for (gsize i = 0; i < (gsize) OH * OW; i++)
      plane[i] = b;
  }
  for (int r0 = 0; r0 < H; r0 += j->rows_per_band) {
    const int rows = MIN (j->rows_per_band, H - r0), npix = rows * W;
    /* col [nc*kk, npix] = W_g[:, c0*kk : (c0+nc)*kk]^T x_g[:, band] */
    cblas_sgemm (CblasRowMajor, CblasTrans, CblasNoTrans, nc * kk, npix, j->cin_g,
        1.0f, wg + (gsize) c0 * kk, j->cout_g * kk, xg + (gsize) r0 * W, H * W,
        0.0f, col, npix);
    for (int c = 0; c < nc; c++) {
      float *plane = j->y->data + ((gsize) n * j->y->c + g * j->cout_g + c0 + c) * OH * OW;
      for (int ky = 0; ky < p->kh; ky++)
        for (int kx = 0; kx < p->kw; kx++) {
          const float *src = col + ((gsize) c * kk + ky * p->kw + kx) * npix;
          for (int r = 0; r < rows; r++) {
            const int oy = (r0 + r) * p->stride_h - p->pad_h + ky * p->dil_h;
            if (oy < 0 || oy >= OH)
              continue;
            float *dst = plane + (gsize) oy * OW;
            const float *s = src + (gsize) r * W;
            for (int ix = 0; ix < W; ix++) {
              const int ox = ix * p->stride_w - p->pad_w + kx * p->dil_w;
              if (ox >= 0 && ox < OW)
                dst[ox] += s[ix];
            }
          }
        }
    }
  }
}

void
ge_conv_transpose2d (GeCtx * ctx, const GeConvTranspose2d * p, const GeTensor * x, GeTensor * y)
{
  int oh, ow;
  ge_conv_transpose2d_out_size (p, x->h, x->w, &oh, &ow);
  g_return_if_fail (x->c == p->in_channels && y->c == p->out_channels);
  g_return_if_fail (y->n == x->n && y->h == oh && y->w == ow);
  g_return_if_fail (p->in_channels % p->groups == 0 && p->out_channels % p->groups == 0);
  Job j = { .p = p, .x = x, .y = y };
  j.cin_g = p->in_channels / p->groups;
  j.cout_g = p->out_channels / p->groups;
  const int n_threads = ge_pool_n_threads (ctx->pool);
  const int units = x->n * p->groups;
  j.splits = units >= n_threads ? 1 : MIN (j.cout_g, n_threads);
  j.per_split = (j.cout_g + j.splits - 1) / j.splits;
  gsize row = (gsize) j.per_split * p->kh * p->kw * x->w;
  j.rows_per_band = (int) CLAMP (BAND_FLOATS / MAX (row, 1), 1, (gsize) x->h);
  j.band_floats = row * j.rows_per_band;
  gsize mark = ge_arena_mark (ctx->arena);
  j.scratch = ge_arena_alloc (ctx->arena, j.band_floats * n_threads);
  ge_pool_run (ctx->pool, units * j.splits, task, &j);
  ge_arena_release (ctx->arena, mark);
}
