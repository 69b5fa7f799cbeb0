/* conv2d.c: 2-D convolution as banded im2col + GEMM.
 *
 * For each sample and group the output is W [cout, K] x col [K, pixels] with
 * K = cin/groups * kh * kw.  We never build col for the whole image (that is
 * the 1-2 GB stable-diffusion.cpp measured in the VAE): each task builds it
 * for a band of output pixels that fits in cache, multiplies, and writes the
 * matching band of y; bands run in parallel, and when there are too few of
 * them the output channels are split as well.
 *
 * Two GEMMs: with packed weights (AVX-512, see gemm.h) col is written
 * straight into NR-wide panels and the bias is folded into the tile; else
 * col is a plain [K, pixels] matrix for single-threaded OpenBLAS sgemm.
 */
#include "ge-ops.h"
#include "ge-pool.h"
#include "gemm.h"

#include <cblas.h>
#include <string.h>

/* Target size of one band's col buffer in floats (512 KiB: half of a
 * typical L2, leaving room for the weights streaming through). */
#define BAND_FLOATS (128 * 1024)

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

gsize
ge_conv2d_packed_size (const GeConv2d * p)
{
  if (!ge_gemm_packed_available ())
    return 0;
  const int cout_g = p->out_channels / p->groups, k = p->in_channels / p->groups * p->kh * p->kw;
  return ge_gemm_packed_a_size (cout_g, k) * p->groups;
}

void
ge_conv2d_pack (GeConv2d * p, float *storage)
{
  const int cout_g = p->out_channels / p->groups, k = p->in_channels / p->groups * p->kh * p->kw;
  const gsize per_group = ge_gemm_packed_a_size (cout_g, k);
  for (int g = 0; g < p->groups; g++)
    ge_gemm_pack_a (p->weight + (gsize) g * cout_g * k, cout_g, k, k, storage + g * per_group);
  p->packed = storage;
}

typedef struct {
  const GeConv2d *p;
  const GeTensor *x;
  GeTensor *y;
  int oh, ow, opix;
  int cin_g, cout_g, K;
  int band_pix, n_bands;        /* bands are ranges of flattened output pixels */
  int cout_splits, cout_per_split;
  float *scratch;               /* per thread: col (+ one im2col row) */
  gsize scratch_floats;
} ConvJob;

/* Output row @oy, columns [ox0, ox1), of kernel tap (ky, kx) of input
 * plane @plane into @d (zero where the tap falls into the padding). */
static inline void
tap_row (const ConvJob * j, const float *plane, int ky, int kx, int oy, int ox0, int ox1,
    float *d)
{
  const GeConv2d *p = j->p;
  const int H = j->x->h, W = j->x->w;
  const int iy = oy * p->stride_h + ky * p->dil_h - p->pad_top;
  const int n = ox1 - ox0;
  if (iy < 0 || iy >= H) {
    memset (d, 0, sizeof (float) * n);
    return;
  }
  const int xoff = kx * p->dil_w - p->pad_left;
  /* Valid output columns: 0 <= ox * stride + xoff < W. */
  int v0 = xoff < 0 ? (-xoff + p->stride_w - 1) / p->stride_w : 0;
  int v1 = W - 1 - xoff < 0 ? 0 : (W - 1 - xoff) / p->stride_w + 1;
  v0 = CLAMP (v0, ox0, ox1);
  v1 = CLAMP (v1, v0, ox1);
  const float *src = plane + (gsize) iy * W + xoff;
  memset (d, 0, sizeof (float) * (v0 - ox0));
  if (p->stride_w == 1)
    memcpy (d + v0 - ox0, src + v0, sizeof (float) * (v1 - v0));
  else
    for (int ox = v0; ox < v1; ox++)
      d[ox - ox0] = src[ox * p->stride_w];
  memset (d + v1 - ox0, 0, sizeof (float) * (ox1 - v1));
}

/* col for output pixels [p0, p0 + npix) of one sample/group: row k holds
 * tap k.  Packed: NR-wide panels [K][NR]; else [K][npix]. */
static void
im2col (const ConvJob * j, const float *xg, int p0, int npix, float *col, gboolean panels)
{
  const GeConv2d *p = j->p;
  const gsize plane_sz = (gsize) j->x->h * j->x->w;
  const int K = j->K;
  float *row = col + (panels ? (gsize) K * ((npix + GE_NR - 1) / GE_NR) * GE_NR : (gsize) K * npix);
  for (int ci = 0; ci < j->cin_g; ci++) {
    const float *plane = xg + ci * plane_sz;
    for (int ky = 0; ky < p->kh; ky++)
      for (int kx = 0; kx < p->kw; kx++) {
        const int k = (ci * p->kh + ky) * p->kw + kx;
        int q = 0;              /* pixels of the band done */
        while (q < npix) {
          const int oy = (p0 + q) / j->ow, ox0 = (p0 + q) % j->ow;
          const int ox1 = MIN (j->ow, ox0 + (npix - q));
          if (!panels) {
            tap_row (j, plane, ky, kx, oy, ox0, ox1, col + (gsize) k * npix + q);
            q += ox1 - ox0;
            continue;
          }
          tap_row (j, plane, ky, kx, oy, ox0, ox1, row);
          for (int s = 0; s < ox1 - ox0;) {
            const int pi = (q + s) / GE_NR, off = (q + s) % GE_NR;
            const int len = MIN (GE_NR - off, ox1 - ox0 - s);
            memcpy (col + ((gsize) pi * K + k) * GE_NR + off, row + s, sizeof (float) * len);
            s += len;
          }
          q += ox1 - ox0;
        }
      }
  }
  if (panels && npix % GE_NR) {   /* zero the last panel's unused columns */
    const int pi = npix / GE_NR, used = npix % GE_NR;
    for (int k = 0; k < K; k++)
      memset (col + ((gsize) pi * K + k) * GE_NR + used, 0, sizeof (float) * (GE_NR - used));
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
  const int p0 = band * j->band_pix, npix = MIN (j->band_pix, j->opix - p0);
  const int c0 = split * j->cout_per_split;       /* within the group */
  const int nco = MIN (j->cout_per_split, j->cout_g - c0);
  if (nco <= 0 || npix <= 0)
    return;
  const int co0 = g * j->cout_g + c0;
  const float *xg = j->x->data + ((gsize) n * j->x->c + (gsize) g * j->cin_g) * j->x->h * j->x->w;
  float *yb = j->y->data + ((gsize) n * j->y->c + co0) * j->opix + p0;
  const float *bias = p->bias ? p->bias + co0 : NULL;
  float *col = j->scratch + (gsize) thread * j->scratch_floats;

  im2col (j, xg, p0, npix, col, p->packed != NULL);
  if (p->packed) {
    const float *ap = p->packed + (gsize) g * ge_gemm_packed_a_size (j->cout_g, j->K)
        + (gsize) c0 * j->K;    /* c0 is a multiple of GE_MR */
    ge_gemm_packed (nco, npix, j->K, ap, col, yb, j->opix, bias);
    return;
  }
  float beta = 0.0f;
  if (bias) {
    for (int co = 0; co < nco; co++)
      for (int i = 0; i < npix; i++)
        yb[(gsize) co * j->opix + i] = bias[co];
    beta = 1.0f;
  }
  cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, nco, npix, j->K, 1.0f,
      p->weight + (gsize) co0 * j->K, j->K, col, npix, beta, yb, j->opix);
}

void
ge_conv2d (GeCtx * ctx, const GeConv2d * p, const GeTensor * x, GeTensor * y)
{
  ConvJob j = { .p = p, .x = x, .y = y };
  ge_conv2d_out_size (p, x->h, x->w, &j.oh, &j.ow);
  g_return_if_fail (x->c == p->in_channels && y->c == p->out_channels);
  g_return_if_fail (y->n == x->n && y->h == j.oh && y->w == j.ow);
  g_return_if_fail (p->in_channels % p->groups == 0 && p->out_channels % p->groups == 0);
  j.opix = j.oh * j.ow;
  j.cin_g = p->in_channels / p->groups;
  j.cout_g = p->out_channels / p->groups;
  j.K = j.cin_g * p->kh * p->kw;

  const int n_threads = ge_pool_n_threads (ctx->pool);
  /* Band: col fits BAND_FLOATS, a whole number of panels, at least one. */
  int band = (int) MAX (GE_NR, BAND_FLOATS / MAX (j.K, 1) / GE_NR * GE_NR);
  j.band_pix = MIN (band, j.opix);
  j.n_bands = (j.opix + j.band_pix - 1) / j.band_pix;
  /* Few bands (small images, deep layers): split output channels too, in
   * whole register tiles for the packed kernel. */
  const int units = x->n * p->groups * j.n_bands;
  j.cout_splits = 1;
  if (units < n_threads && j.cout_g >= 32)
    j.cout_splits = MIN (n_threads, j.cout_g / 16);
  j.cout_per_split = (j.cout_g + j.cout_splits - 1) / j.cout_splits;
  if (p->packed)
    j.cout_per_split = (j.cout_per_split + GE_MR - 1) / GE_MR * GE_MR;

  gsize mark = ge_arena_mark (ctx->arena);
  const gsize padded = (gsize) (j.band_pix + GE_NR - 1) / GE_NR * GE_NR;
  j.scratch_floats = (gsize) j.K * padded + j.ow + 16;
  j.scratch = ge_arena_alloc (ctx->arena, j.scratch_floats * n_threads);
  ge_pool_run (ctx->pool, units * j.cout_splits, conv_task, &j);
  ge_arena_release (ctx->arena, mark);
}
