/* conv2d.c: 2-D convolution as GEMM, never with a full-image im2col.
 *
 * For each sample and group the output is W [cout, K] x col [K, pixels]
 * with K = cin/groups * kh * kw.  Three ways to run it:
 *
 *  - implicit GEMM (packed kernel, no dilation, one group, equal strides:
 *    every conv of the U-Nets and VAEs): the kernel reads tap k of output
 *    row y straight from the input's rows, which each task pads, applies
 *    the GeConvInput transform to (group norm, SiLU) and, for a strided
 *    conv, splits into phases in a ring of a few rows in L2 (ring_row).
 *    No im2col, and neither the normalised tensor nor a padded copy is
 *    written out;
 *  - banded im2col + packed kernel (the rest on AVX-512: narrow strided
 *    outputs, dilation, groups);
 *  - banded im2col + single-threaded OpenBLAS sgemm (everything else, and
 *    every conv where the CPU lacks AVX-512).
 *
 * Work is split into bands of output rows/pixels; with too few bands the
 * output channels are split too.  Scratch comes from the arena.
 *
 * With ctx->precision BF16 (on AVX512-BF16) convs of one group without
 * dilation take the bf16 kernel instead (conv2d_bf16 below: the same
 * implicit GEMM on channel pairs rounded to bf16 as the input is prepared);
 * with INT8 (on AVX512-VNNI) the convs marked int8 take the int8 kernel
 * where their shape allows (conv2d_int8: quads of channels quantized to
 * 8 bits as the ring rows are built) and the others the bf16 one;
 * everything above is the f32 reference and unchanged by them.
 */
#include "act.h"
#include "ge-pool.h"
#include "gemm.h"

#include <cblas.h>
#include <string.h>

/* Target size of one band's col buffer in floats (512 KiB, half an L2). */
#define BAND_FLOATS (128 * 1024)
/* Output pixels per implicit-GEMM task. */
#define IMPLICIT_BAND_PIX 4096
/* 16-bit weights.  Tasks that run one GEMM (im2col, the wide mode)
 * convert K slice by K slice inside it (ge_gemm_packed16).  Tasks that run
 * a GEMM per output row convert their rows of the weights once, before the
 * first, and reuse them (converting inside every per-row GEMM cost 18-50 %
 * of the GEMM, bench/weights16_bench): per thread at most A16_FLOATS
 * floats for that copy (with more, the output channels are split further)
 * but at least A16_MIN_ROWS rows: with fewer, every split streams the
 * whole input again (8 rows per task cost 28 % on 1920->640 3x3 at 16x16
 * when the wide mode still used the copy). */
#define A16_FLOATS (256 * 1024)
#define A16_MIN_ROWS 32

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
  if (!ge_gemm_packed_available () || p->weight16)
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

/* ---- input preparation -------------------------------------------------- */

typedef struct {
  const GeTensor *x;
  const GeConvInput *in;
  GeTensor *out;                /* [n, c, pt + h*up + pb, pl + w*up + pr] */
  int pt, pl;
  gboolean interleaved;         /* rows stored [n][y][c][x] */
} PrepJob;

GE_VECTOR_CLONES static void
transform_row_generic (const float *src, float *dst, int n, float s, float b, GeAct act)
{
  if (act == GE_ACT_SILU)
    for (int i = 0; i < n; i++) {
      const float v = src[i] * s + b;
      dst[i] = v / (1.0f + ge_expf (-v));
    }
  else
    for (int i = 0; i < n; i++)
      dst[i] = ge_act1 (src[i] * s + b, act, 0.0f);
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* SiLU on AVX-512 with a reciprocal estimate refined by one Newton step
 * (relative error ~1e-8) instead of a division, which is what limited the
 * generic loop: this pass runs over every resnet input. */
__attribute__((target ("avx512f")))
static void
silu_row_avx512 (const float *src, float *dst, int n, float s, float b)
{
  const __m512 vs = _mm512_set1_ps (s), vb = _mm512_set1_ps (b), one = _mm512_set1_ps (1.0f);
  const __m512 two = _mm512_set1_ps (2.0f), lo = _mm512_set1_ps (-87.0f), hi = _mm512_set1_ps (88.0f);
  const __m512 log2e = _mm512_set1_ps (1.44269504088896341f), magic = _mm512_set1_ps (12582912.0f);
  const __m512 c1 = _mm512_set1_ps (0.693359375f), c2 = _mm512_set1_ps (-2.12194440e-4f);
  for (int i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? 0xffff : (__mmask16) ((1u << (n - i)) - 1);
    const __m512 v = _mm512_fmadd_ps (_mm512_maskz_loadu_ps (m, src + i), vs, vb);
    /* exp (-v), as ge_expf */
    __m512 x = _mm512_min_ps (_mm512_max_ps (_mm512_sub_ps (_mm512_setzero_ps (), v), lo), hi);
    const __m512 fn = _mm512_sub_ps (_mm512_fmadd_ps (x, log2e, magic), magic);
    __m512 r = _mm512_fnmadd_ps (fn, c1, x);
    r = _mm512_fnmadd_ps (fn, c2, r);
    __m512 p = _mm512_set1_ps (1.9875691500e-4f);
    p = _mm512_fmadd_ps (p, r, _mm512_set1_ps (1.3981999507e-3f));
    p = _mm512_fmadd_ps (p, r, _mm512_set1_ps (8.3334519073e-3f));
    p = _mm512_fmadd_ps (p, r, _mm512_set1_ps (4.1665795894e-2f));
    p = _mm512_fmadd_ps (p, r, _mm512_set1_ps (1.6666665459e-1f));
    p = _mm512_fmadd_ps (p, r, _mm512_set1_ps (5.0000001201e-1f));
    p = _mm512_fmadd_ps (_mm512_mul_ps (p, r), r, _mm512_add_ps (r, one));
    const __m512i e = _mm512_slli_epi32 (_mm512_add_epi32 (_mm512_cvtps_epi32 (fn),
            _mm512_set1_epi32 (127)), 23);
    const __m512 d = _mm512_fmadd_ps (p, _mm512_castsi512_ps (e), one);       /* 1 + exp (-v) */
    __m512 inv = _mm512_rcp14_ps (d);
    inv = _mm512_mul_ps (inv, _mm512_fnmadd_ps (d, inv, two));
    _mm512_mask_storeu_ps (dst + i, m, _mm512_mul_ps (v, inv));
  }
}
#endif

static inline gboolean
is_identity (float s, float b, GeAct act)
{
  return s == 1.0f && b == 0.0f && act == GE_ACT_NONE;
}

/* dst = act (src * s + b) over @n floats; a plain copy when that is the
 * identity. */
static void
transform_row (const float *src, float *dst, int n, float s, float b, GeAct act)
{
  if (is_identity (s, b, act)) {
    memcpy (dst, src, sizeof (float) * n);
    return;
  }
#if defined(__x86_64__) && defined(__GNUC__)
  if (act == GE_ACT_SILU && ge_gemm_packed_available ()) {      /* AVX-512 */
    silu_row_avx512 (src, dst, n, s, b);
    return;
  }
#endif
  transform_row_generic (src, dst, n, s, b, act);
}

/* The pad loops below are a float or two per row: GCC would turn them into
 * memset calls (two per row, 3 % of an SR frame), so it is told not to. */
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize ("no-tree-loop-distribute-patterns")))
#endif
static void
prep_task (void *data, int t, int thread)
{
  const PrepJob *j = data;
  const GeTensor *x = j->x;
  const GeConvInput *in = j->in;
  const int up = in && in->upsample > 1 ? in->upsample : 1;
  const int ow = j->out->w, oh = j->out->h, iw = x->w * up, ih = x->h * up;
  const float *src = x->data + (gsize) t * x->h * x->w;
  /* Row y of this channel is at dst + y * pitch. */
  const int n = t / x->c, c = t % x->c;
  float *dst;
  gsize pitch;
  if (j->interleaved) {
    dst = j->out->data + ((gsize) n * oh * x->c + c) * ow;
    pitch = (gsize) x->c * ow;
  } else {
    dst = j->out->data + (gsize) t * oh * ow;
    pitch = ow;
  }
  const float s = in && in->scale ? in->scale[t] : 1.0f;
  const float b = in && in->shift ? in->shift[t] : 0.0f;
  const GeAct act = in ? in->act : GE_ACT_NONE;

  for (int y = 0; y < j->pt; y++)
    memset (dst + y * pitch, 0, sizeof (float) * ow);
  for (int y = 0; y < ih; y++) {
    float *row = dst + (gsize) (j->pt + y) * pitch;
    for (int i = 0; i < j->pl; i++)
      row[i] = 0.0f;
    for (int i = j->pl + iw; i < ow; i++)
      row[i] = 0.0f;
    if (y % up) {               /* an upsampled row repeats the one above */
      memcpy (row + j->pl, row + j->pl - pitch, sizeof (float) * iw);
      continue;
    }
    const float *s_row = src + (gsize) (y / up) * x->w;
    float *d = row + j->pl;
    if (up == 1)
      transform_row (s_row, d, x->w, s, b, act);
    else {
      /* Transform into the row's right end, then spread it leftwards. */
      float *t_row = d + iw - x->w;
      transform_row (s_row, t_row, x->w, s, b, act);
      for (int xx = 0; xx < x->w; xx++) {
        const float v = t_row[xx];
        for (int r = 0; r < up; r++)
          d[xx * up + r] = v;
      }
    }
  }
  for (int y = j->pt + ih; y < oh; y++)
    memset (dst + y * pitch, 0, sizeof (float) * ow);
}

/* Floats per channel row of a ring slot (ring_row): at least @w, and an
 * odd number of cache lines.  The taps of one output row are rows a whole
 * number of row pitches apart; with a pitch of an even number of lines
 * (1282 floats is 80.1) they crowd into a quarter of the L1 sets and
 * evict each other within a K slice. */
static int
conflict_free_width (int w)
{
  int lines = (w + 15) / 16;
  return (lines | 1) * 16;
}

/* The conv's real input, transformed, upsampled and padded, in the arena;
 * @interleaved stores the rows of all channels of one y together (the
 * GeTensor then only carries the sizes). */
static GeTensor
prepare (GeCtx * ctx, const GeTensor * x, const GeConvInput * in, int pt, int pl, int pb,
    int pr, gboolean interleaved)
{
  const int up = in && in->upsample > 1 ? in->upsample : 1;
  GeTensor out = ge_tensor_new (ctx->arena, x->n, x->c, pt + x->h * up + pb,
      pl + x->w * up + pr);
  PrepJob j = { x, in, &out, pt, pl, interleaved };
  ge_pool_run (ctx->pool, x->n * x->c, prep_task, &j);
  return out;
}

/* ---- the GEMMs -------------------------------------------------------- */

/* Outputs of this many bytes or more are written past the caches (the
 * word kernels' @stream): the next op reads such an output whole after
 * its last band is written and finds little of it cached (half a 32 MiB
 * last-level cache; what sysconf reports is no guide: 320 MiB on a 2-core
 * VM of a 32 MiB L3), and streaming saves reading every line in before it
 * is written.  At the SR models' 640x360 x 32 channels (29.5 MB) it took
 * 0.88-0.92 of an int8 frame's time, paired on a busy host (bench/RESULTS.md). */
#define STREAM_MIN_BYTES (16u << 20)

typedef struct {
  const GeConv2d *p;
  const GeTensor *x;            /* the conv's input (prepared if needed) */
  GeTensor *y;
  int oh, ow, opix;
  int cin_g, cout_g, K;
  int band, n_bands;            /* implicit: rows; im2col: pixels */
  int cout_splits, cout_per_split;
  const int *boff;              /* implicit: tap offsets in the padded input */
  gboolean wide;                /* implicit: rows of a band run as one */
  gboolean accumulate;          /* y += conv (x) */
  const float *res;             /* y = conv (x) + res, or NULL (conv2d_run) */
  gboolean stream;              /* the word kernels store y past the caches (STREAM_MIN_BYTES) */
  gsize row_pitch;              /* implicit: floats from one input row to the next */
  float *scratch;               /* per thread: col + offsets, or the ring */
  gsize scratch_floats;
  gboolean kernel;              /* the packed kernel runs (packed or 16-bit weights) */
  /* 16-bit weights: per thread, the task's rows converted (a16_whole) or
   * ge_gemm_packed16's scratch */
  float *a16;
  gsize a16_floats;
  gboolean a16_whole;
  /* Ring mode of the implicit GEMM (ring_row): each task pads and
   * transforms the input rows its band reads into a ring of a few rows in
   * its thread's scratch, just before the GEMMs read them, instead of
   * reading one padded copy of the whole input: the prepared rows are
   * written and read back in L2, not through memory, which is what limited
   * the full-resolution layers. */
  gboolean ring;
  const GeTensor *src;          /* the untransformed input */
  const GeConvInput *in;
  int ring_rows;                /* slots: the rows one output row reads */
  int ring_pitch;               /* floats per channel row of a slot */
  gsize ring_slot;              /* floats per slot */
  /* bf16 (conv2d_bf16): channel pairs, K pairs, the weights converted per
   * task where there is no packed copy, and in copy mode the bf16 input
   * (ring_pitch is then the width of its rows) */
  int CP, KP;
  guint32 *ab;
  gsize ab_words;
  int *ab_c0;                   /* per thread: whose rows ab holds, or -1 */
  const guint32 *xb;
  gsize xb_sample;
  /* int8 (conv2d_int8): CP and KP count quads, xb is the weights; per
   * output channel the sums' scale and offset; the input's zero point and
   * 1 / its scale */
  float *int8_scale, *int8_offset;
  int zp;
  float inv_sx;
  gboolean silu_inside;         /* SiLU's inputs all in [-86, 86] (its exp needs no clamp) */
} ConvJob;

/* Output row @oy, columns [ox0, ox1), of tap (ky, kx) of input plane
 * @plane into @d (zero where the tap falls into the padding). */
static inline void
tap_row (const ConvJob * j, const float *plane, int ky, int kx, int oy, int ox0, int ox1,
    float *d)
{
  const GeConv2d *p = j->p;
  const int H = j->x->h, W = j->x->w;
  const int iy = oy * p->stride_h + ky * p->dil_h - p->pad_top;
  if (iy < 0 || iy >= H) {
    memset (d, 0, sizeof (float) * (ox1 - ox0));
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

/* col [K, npix] for output pixels [p0, p0 + npix) of one sample/group. */
static void
im2col (const ConvJob * j, const float *xg, int p0, int npix, float *col)
{
  const GeConv2d *p = j->p;
  const gsize plane = (gsize) j->x->h * j->x->w;
  for (int ci = 0; ci < j->cin_g; ci++)
    for (int ky = 0; ky < p->kh; ky++)
      for (int kx = 0; kx < p->kw; kx++) {
        float *dst = col + (gsize) ((ci * p->kh + ky) * p->kw + kx) * npix;
        for (int q = 0; q < npix;) {
          const int oy = (p0 + q) / j->ow, ox0 = (p0 + q) % j->ow;
          const int ox1 = MIN (j->ow, ox0 + (npix - q));
          tap_row (j, xg + ci * plane, ky, kx, oy, ox0, ox1, dst + q);
          q += ox1 - ox0;
        }
      }
}

static void
task_split (const ConvJob * j, int task, int *n, int *g, int *band, int *c0, int *nco)
{
  const int split = task % j->cout_splits;
  *band = (task / j->cout_splits) % j->n_bands;
  const int ng = task / (j->cout_splits * j->n_bands);
  *g = ng % j->p->groups;
  *n = ng / j->p->groups;
  *c0 = split * j->cout_per_split;
  *nco = MIN (j->cout_per_split, j->cout_g - *c0);
}

/* Channel @ci's input row @y of sample @n (transformed, 0 <= y < h) as
 * its @s phase rows: phase px holds padded pixels (y, c * s + px) at
 * column c, at @d + px * @pitch, zeros where padding.  @tmp: a transformed
 * input row when s > 1. */
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize ("no-tree-loop-distribute-patterns")))
#endif
static void
phase_rows (const ConvJob * j, int n, int ci, int y, float *d, gsize pitch, float *tmp)
{
  const GeTensor *x = j->src;
  const GeConvInput *in = j->in;
  const int s = j->p->stride_h, pl = j->p->pad_left, w = x->w, wp = j->ring_pitch;
  const int bc = n * x->c + ci;
  const float *src = x->data + ((gsize) bc * x->h + y) * w;
  /* The next call reads the next rows of every channel plane: too many
   * streams for the hardware prefetchers, so they are fetched into L2
   * while this row's GEMMs run. */
  if (y + s < x->h)
    for (int i = 0; i < w; i += 16)
      __builtin_prefetch (src + (gsize) s * w + i, 0, 2);
  const float sc = in && in->scale ? in->scale[bc] : 1.0f;
  const float sh = in && in->shift ? in->shift[bc] : 0.0f;
  const GeAct act = in ? in->act : GE_ACT_NONE;
  if (s == 1) {
    for (int i = 0; i < pl; i++)
      d[i] = 0.0f;
    transform_row (src, d + pl, w, sc, sh, act);
    for (int i = pl + w; i < wp; i++)
      d[i] = 0.0f;
    return;
  }
  if (!is_identity (sc, sh, act)) {     /* else read it in place */
    transform_row (src, tmp, w, sc, sh, act);
    src = tmp;
  }
  for (int px = 0; px < s; px++, d += pitch) {
    /* Columns c0 <= c < c1 read the input: 0 <= c * s + px - pl < w. */
    const int off = px - pl;
    int c0 = off < 0 ? (-off + s - 1) / s : 0, c1 = off < w ? (w - 1 - off) / s + 1 : 0;
    c1 = CLAMP (c1, 0, wp);
    c0 = MIN (c0, c1);
    for (int c = 0; c < c0; c++)
      d[c] = 0.0f;
    const float *sp = src + off;
    if (s == 2)
      for (int c = c0; c < c1; c++)
        d[c] = sp[2 * c];
    else
      for (int c = c0; c < c1; c++)
        d[c] = sp[c * s];
    for (int c = c1; c < wp; c++)
      d[c] = 0.0f;
  }
}

/* Row @r of sample @n's padded input, all channels, transformed, into the
 * ring slot @dst; for a stride s > 1 split into its s x s phases, so that
 * the GEMM reads a strided conv as it reads a stride-1 one: phase (py, px)
 * of row r holds padded pixels (r * s + py, c * s + px) at column c, at
 * dst + ((py * s + px) * channels + ci) * ring_pitch.  Tap (ci, ky, kx) of
 * output row oy, column ox is then phase (ky % s, kx % s) of row
 * oy + ky / s at column ox + kx / s: consecutive outputs read consecutive
 * floats.  @tmp: a transformed input row when s > 1. */
static void
ring_row (const ConvJob * j, int n, int r, float *dst, float *tmp)
{
  const GeTensor *x = j->src;
  const int s = j->p->stride_h, C = x->c, wp = j->ring_pitch;
  for (int py = 0; py < s; py++) {
    const int y = r * s + py - j->p->pad_top;
    for (int ci = 0; ci < C; ci++) {
      float *d = dst + (gsize) py * s * C * wp + (gsize) ci * wp;
      if (y < 0 || y >= x->h)
        for (int px = 0; px < s; px++)
          memset (d + (gsize) px * C * wp, 0, sizeof (float) * wp);
      else
        phase_rows (j, n, ci, y, d, (gsize) C * wp, tmp);
    }
  }
}

/* Packed weights of output channels [c0, c0 + nco) of group @g: a slice of
 * the packed copy, or 16-bit weights converted into the thread's a16; NULL
 * where task_gemm converts them as it runs. */
static const float *
task_weights (const ConvJob * j, int g, int c0, int nco, int thread)
{
  const GeConv2d *p = j->p;
  if (p->packed)
    return p->packed + (gsize) g * ge_gemm_packed_a_size (j->cout_g, j->K)
        + (gsize) c0 * j->K;    /* c0 is a multiple of GE_MR */
  if (!j->a16_whole)
    return NULL;
  float *ap = j->a16 + (gsize) thread * j->a16_floats;
  ge_gemm_pack_a16 ((const guint8 *) p->weight16 + 2 * ((gsize) g * j->cout_g + c0) * j->K,
      p->dtype16, nco, 0, j->K, j->K, ap);
  return ap;
}

/* A GEMM of a task with weights @ap from task_weights (). */
static void
task_gemm (const ConvJob * j, int g, int c0, int nco, int thread, const float *ap, int n,
    const float *b, const int *boff, float *c, int ldc, const float *bias, gboolean acc)
{
  if (ap) {
    ge_gemm_packed (nco, n, j->K, ap, b, boff, c, ldc, bias, acc);
    return;
  }
  const GeConv2d *p = j->p;
  ge_gemm_packed16 (nco, n, j->K, (const guint8 *) p->weight16
      + 2 * ((gsize) g * j->cout_g + c0) * j->K, p->dtype16, j->K, b, boff, c, ldc, bias, acc,
      j->a16 + (gsize) thread * j->a16_floats);
}

static void
implicit_task (void *data, int task, int thread)
{
  const ConvJob *j = data;
  int n, g, band, c0, nco;
  task_split (j, task, &n, &g, &band, &c0, &nco);
  const int y0 = band * j->band, y1 = MIN (j->oh, y0 + j->band);
  if (nco <= 0)
    return;
  const GeConv2d *p = j->p;
  const int wp = j->x->w;
  const gsize pitch = j->row_pitch;
  const float *ap = task_weights (j, 0, c0, nco, thread);
  const float *bias = p->bias ? p->bias + c0 : NULL;
  const float *xn = j->x->data + (gsize) n * j->x->c * j->x->h * wp;
  float *yn = j->y->data + ((gsize) n * j->y->c + c0) * j->opix;
  if (j->ring) {
    /* Row r lives in slot r % R; boff holds one tap table per oy % R, the
     * rotation of the slots that output row oy reads. */
    const int R = j->ring_rows;
    float *ring = j->scratch + (gsize) thread * j->scratch_floats;
    float *tmp = ring + R * j->ring_slot;
    for (int r = y0; r < y1 + R - 1; r++) {
      ring_row (j, n, r, ring + (r % R) * j->ring_slot, tmp);
      const int oy = r - (R - 1);
      if (oy >= y0)
        ge_gemm_packed (nco, j->ow, j->K, ap, ring, j->boff + (gsize) (oy % R) * j->K,
            yn + (gsize) oy * j->ow, j->opix, bias, j->accumulate);
    }
    return;
  }
  if (!j->wide) {
    for (int oy = y0; oy < y1; oy++)
      ge_gemm_packed (nco, j->ow, j->K, ap, xn + (gsize) oy * pitch, j->boff,
          yn + (gsize) oy * j->ow, j->opix, bias, j->accumulate);
    return;
  }
  /* Narrow rows would leave most of a register panel masked off: run the
   * band's rows as one long row of pitch wp (the columns between rows are
   * computed and dropped) into scratch, then copy the real columns out. */
  const int ncols = (y1 - y0 - 1) * wp + j->ow;
  float *tmp = j->scratch + (gsize) thread * j->scratch_floats;
  task_gemm (j, 0, c0, nco, thread, ap, ncols, xn + (gsize) y0 * wp, j->boff, tmp, ncols, bias,
      FALSE);
  for (int co = 0; co < nco; co++)
    for (int oy = y0; oy < y1; oy++) {
      float *d = yn + (gsize) co * j->opix + (gsize) oy * j->ow;
      const float *t = tmp + (gsize) co * ncols + (gsize) (oy - y0) * wp;
      if (j->accumulate)
        for (int i = 0; i < j->ow; i++)
          d[i] += t[i];
      else
        memcpy (d, t, sizeof (float) * j->ow);
    }
}

static void
im2col_task (void *data, int task, int thread)
{
  const ConvJob *j = data;
  const GeConv2d *p = j->p;
  int n, g, band, c0, nco;
  task_split (j, task, &n, &g, &band, &c0, &nco);
  const int p0 = band * j->band, npix = MIN (j->band, j->opix - p0);
  if (nco <= 0 || npix <= 0)
    return;
  const int co0 = g * j->cout_g + c0;
  const float *xg = j->x->data + ((gsize) n * j->x->c + (gsize) g * j->cin_g) * j->x->h * j->x->w;
  float *yb = j->y->data + ((gsize) n * j->y->c + co0) * j->opix + p0;
  const float *bias = p->bias ? p->bias + co0 : NULL;
  float *col = j->scratch + (gsize) thread * j->scratch_floats;
  im2col (j, xg, p0, npix, col);

  if (j->kernel) {
    int *boff = (int *) (col + (gsize) j->K * npix);
    for (int k = 0; k < j->K; k++)
      boff[k] = k * npix;
    const float *ap = task_weights (j, g, c0, nco, thread);
    task_gemm (j, g, c0, nco, thread, ap, npix, col, boff, yb, j->opix, bias, j->accumulate);
    return;
  }
  float beta = j->accumulate ? 1.0f : 0.0f;
  if (bias) {
    for (int co = 0; co < nco; co++) {
      float *row = yb + (gsize) co * j->opix;
      for (int i = 0; i < npix; i++)
        row[i] = j->accumulate ? row[i] + bias[co] : bias[co];
    }
    beta = 1.0f;
  }
  cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, nco, npix, j->K, 1.0f,
      p->weight + (gsize) co0 * j->K, j->K, col, npix, beta, yb, j->opix);
}

/* With fewer work units (bands) than keep the threads busy, the output
 * channels are split too; with @packed weights into whole register tiles
 * (so rounding may leave fewer splits than asked for). */
static void
split_channels (int cout, int units, int n_threads, gboolean packed, int *splits,
    int *per_split)
{
  int n = 1;
  if (units < 2 * n_threads && cout >= 32)
    n = MIN (2 * n_threads, cout / 16);
  *per_split = (cout + n - 1) / n;
  if (packed)
    *per_split = (*per_split + GE_MR - 1) / GE_MR * GE_MR;
  *splits = (cout + *per_split - 1) / *per_split;
}

/* Rows whose width leaves a quarter or more of the kernel's last column
 * panel empty: implicit_task runs them in its wide mode. */
static gboolean
narrow_rows (int w)
{
  return w % GE_NR != 0 && (GE_NR - w % GE_NR) * 4 >= w / GE_NR * GE_NR + GE_NR;
}

/* 16-bit weights: the per-thread scratch for them; @whole: a converted
 * copy of the task's rows (channels per task capped, see A16_FLOATS),
 * else ge_gemm_packed16's. */
static void
alloc_a16 (GeCtx * ctx, ConvJob * j, int n_threads, gboolean whole)
{
  if (!j->p->weight16 || j->p->packed)
    return;
  j->a16_whole = whole;
  if (!whole) {
    j->a16_floats = ge_gemm_packed16_scratch (j->cout_per_split, j->K);
    j->a16 = ge_arena_alloc (ctx->arena, j->a16_floats * n_threads);
    return;
  }
  const int max_rows = MAX (A16_MIN_ROWS, (int) (A16_FLOATS / MAX (j->K, 1)) / GE_MR * GE_MR);
  if (j->cout_per_split > max_rows) {
    j->cout_per_split = max_rows;
    j->cout_splits = (j->cout_g + max_rows - 1) / max_rows;
  }
  j->a16_floats = ge_gemm_packed_a_size (j->cout_per_split, j->K);
  j->a16 = ge_arena_alloc (ctx->arena, j->a16_floats * n_threads);
}

/* ---- bf16 ---------------------------------------------------------------
 *
 * The bf16 kernel (gemm.h) reads pairs of K: here the input channels 2c
 * and 2c + 1 at one tap, so pair row (c, ky, kx) of output row y is row
 * y + ky of a channel-pair-interleaved copy of the input, shifted by kx,
 * and the implicit GEMM works as in f32.  K order: pair kp = (c * kh + ky)
 * * kw + kx; an odd channel count pairs the last channel with zeros.  The
 * input is rounded to bf16 where it is prepared (ring_row_bf16, or a copy
 * of the whole input for narrow rows), from the f32 tensor and after the
 * GeConvInput transform; the output stays f32. */

/* Row @i of the weights ([in][kh][kw]) as f32: in place, or converted
 * into @tmp (K floats). */
static const float *
weight_row (const GeConv2d * p, int i, float *tmp)
{
  const int K = p->in_channels / p->groups * p->kh * p->kw;
  if (p->weight)
    return p->weight + (gsize) i * K;
  if (p->weight16)
    ge_half_to_f32 ((const guint8 *) p->weight16 + 2 * (gsize) i * K, p->dtype16, K, tmp);
  else {                        /* only the packed f32 copy */
    const float *src = p->packed + (gsize) (i / GE_MR) * K * GE_MR + i % GE_MR;
    for (int k = 0; k < K; k++)
      tmp[k] = src[(gsize) k * GE_MR];
  }
  return tmp;
}

/* Rows [c0, c0 + nco) of the weights into @ap for the bf16 kernel;
 * @tmp: K floats. */
static void
pack_bf16_rows (const GeConv2d * p, int c0, int nco, guint32 * ap, float *tmp)
{
  const int T = p->kh * p->kw, C = p->in_channels, CP = (C + 1) / 2;
  const int KP = CP * T;
  for (int i0 = 0; i0 < nco; i0 += GE_MR)
    for (int r = 0; r < GE_MR; r++) {
      guint32 *dst = ap + (gsize) i0 * KP + r;
      const int i = c0 + i0 + r;
      if (i0 + r >= nco) {
        for (int kp = 0; kp < KP; kp++)
          dst[(gsize) kp * GE_MR] = 0;
        continue;
      }
      const float *w = weight_row (p, i, tmp);
      /* Channel pair c: the taps of channels 2c and 2c + 1, T pairs. */
      guint32 pairs[64];
      for (int c = 0; c < CP; c++)
        for (int t0 = 0; t0 < T; t0 += 64) {
          const int nt = MIN (64, T - t0);
          ge_bf16_pairs (w + (gsize) 2 * c * T + t0,
              2 * c + 1 < C ? w + (gsize) (2 * c + 1) * T + t0 : NULL, nt, pairs);
          for (int t = 0; t < nt; t++)
            dst[(gsize) (c * T + t0 + t) * GE_MR] = pairs[t];
        }
    }
}

gsize
ge_conv2d_packed_bf16_size (const GeConv2d * p)
{
  if (!ge_gemm_bf16_available () || p->groups != 1)
    return 0;
  return ge_gemm_bf16_a_size (p->out_channels, (p->in_channels + 1) / 2 * p->kh * p->kw);
}

static void
pack_bf16 (const GeConv2d * p, guint32 * storage)
{
  float *tmp = g_new (float, (gsize) p->in_channels * p->kh * p->kw);
  pack_bf16_rows (p, 0, p->out_channels, storage, tmp);
  g_free (tmp);
}

void
ge_conv2d_pack_bf16 (GeConv2d * p, guint32 * storage)
{
  pack_bf16 (p, storage);
  p->packed_bf16 = storage;
}

void
ge_conv2d_set_cache (GeConv2d * p, GeConvCache * cache)
{
  p->cache = cache;
}

/* @p's bf16 weights: packed_bf16, else its cache's, packed now on the first
 * bf16 call; NULL without either.  Every caller of one conv (a model's
 * forward, the copies of its GeConv2d) sees one copy, packed once. */
static const guint32 *
bf16_weights (const GeConv2d * p)
{
  GeConvCache *c = p->cache;
  if (p->packed_bf16 || !c)
    return p->packed_bf16;
  if (g_once_init_enter (&c->packed)) {
    guint32 *w = (guint32 *) c->alloc (c->owner, ge_conv2d_packed_bf16_size (p));
    pack_bf16 (p, w);
    g_once_init_leave (&c->packed, w);
  }
  return c->packed;
}

/* The task's rows of the bf16 weights: a slice of the packed copy, or
 * converted into the thread's scratch. */
static const guint32 *
task_weights_bf16 (const ConvJob * j, int c0, int nco, int thread)
{
  if (j->p->packed_bf16)
    return j->p->packed_bf16 + (gsize) c0 * j->KP;    /* c0 is a multiple of GE_MR */
  guint32 *ap = j->ab + (gsize) thread * j->ab_words;
  /* A thread's tasks often share their rows (one channel split, many
   * bands): converted once per call then. */
  if (j->ab_c0[thread] != c0) {
    pack_bf16_rows (j->p, c0, nco, ap, (float *) (ap + ge_gemm_bf16_a_size (nco, j->KP)));
    j->ab_c0[thread] = c0;
  }
  return ap;
}

#if defined(__x86_64__) && defined(__GNUC__)
/* SiLU for inputs about to be rounded to 8 bits (bf16's significand, or
 * int8): cheaper than silu_row_avx512's (exp to degree 4, the reciprocal
 * estimate without its Newton step: about 1e-4 relative), the f32 path
 * keeps its own.  exp (-v) = 2^n p (r): n = round (-v log2 e), r = -v -
 * n ln 2, p to degree 4 (|r| <= 0.35: 5e-5), -v clamped as in ge_expf;
 * vscalefps applies 2^n. */
__attribute__((target ("avx512f,avx512bw,avx512vl")))
static inline __m512
silu_8bit_core_avx512 (__m512 v, __m512 vc)
{
  /* Written on t = -r (so -v is never formed): n = round (v * -log2 e),
   * t = v + n ln 2, p (r) = p (-t) with alternating signs.  Rounding is
   * symmetric, so every step is the negation of the one on r, to the bit. */
  const __m512 one = _mm512_set1_ps (1.0f);
  const __m512 fn = _mm512_roundscale_ps (_mm512_mul_ps (vc, _mm512_set1_ps (-1.44269504088896341f)),
      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 t = _mm512_fmadd_ps (fn, _mm512_set1_ps (0.693359375f), vc);
  t = _mm512_fmadd_ps (fn, _mm512_set1_ps (-2.12194440e-4f), t);
  __m512 p = _mm512_fnmadd_ps (_mm512_set1_ps (1.0f / 24), t, _mm512_set1_ps (1.0f / 6));
  p = _mm512_fnmadd_ps (p, t, _mm512_set1_ps (0.5f));
  p = _mm512_fnmadd_ps (p, t, one);
  p = _mm512_fnmadd_ps (p, t, one);
  const __m512 ex = _mm512_scalef_ps (p, fn);
  return _mm512_mul_ps (v, _mm512_rcp14_ps (_mm512_add_ps (ex, one)));
}

/* v clamped to [-88, 87] for exp (-v) as ge_expf does; where every input
 * is known to lie inside, silu_8bit_core_avx512 (v, v) is the same. */
__attribute__((target ("avx512f,avx512bw,avx512vl")))
static inline __m512
silu_8bit_avx512 (__m512 v)
{
  return silu_8bit_core_avx512 (v, _mm512_max_ps (_mm512_min_ps (v, _mm512_set1_ps (87.0f)),
          _mm512_set1_ps (-88.0f)));
}

/* Stride-1 ring rows of a channel pair, transformed and rounded in one
 * pass: dst[i] = pair (act (a[i] sa + ba), act (b[i] sb + bb)), b NULL: a
 * zero partner; act NONE or SiLU (silu_8bit_avx512). */
__attribute__((target ("avx512f,avx512bw,avx512vl,avx512bf16")))
static void
transform_pairs_bf16 (const float *a, const float *b, int n, const float s[2],
    const float sh[2], gboolean silu, guint32 * dst)
{
  static const short idx_[32] = { 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23,
    8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31
  };
  const __m512i idx = _mm512_loadu_si512 (idx_);
  const __m512 vs[2] = { _mm512_set1_ps (s[0]), _mm512_set1_ps (s[1]) };
  const __m512 vb[2] = { _mm512_set1_ps (sh[0]), _mm512_set1_ps (sh[1]) };
  for (int i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? 0xffff : (__mmask16) ((1u << (n - i)) - 1);
    __m512 v[2];
    for (int e = 0; e < 2; e++) {
      const float *src = e ? b : a;
      if (!src) {
        v[e] = _mm512_setzero_ps ();
        continue;
      }
      v[e] = _mm512_fmadd_ps (_mm512_maskz_loadu_ps (m, src + i), vs[e], vb[e]);
      if (silu)
        v[e] = silu_8bit_avx512 (v[e]);
    }
    const __m512i w = (__m512i) _mm512_cvtne2ps_pbh (v[1], v[0]);
    _mm512_mask_storeu_epi32 (dst + i, m, _mm512_permutexvar_epi16 (idx, w));
  }
}
#endif

/* TRUE where pairs_row_bf16 can prepare the input of a stride-1 conv:
 * its transform is one transform_pairs_bf16 does. */
static gboolean
fused_pairs (const GeConvInput * in)
{
#if defined(__x86_64__) && defined(__GNUC__)
  const GeAct act = in ? in->act : GE_ACT_NONE;
  return (act == GE_ACT_NONE || act == GE_ACT_SILU) && !(in && in->upsample > 1);
#else
  return FALSE;
#endif
}

/* Row @y (0 <= y < x->h) of channel pair @c of sample @n, transformed by
 * @in and rounded to pairs, at dst + @pl, zeros before it and after it up
 * to @wp.  Only where fused_pairs (@in). */
static void
pairs_row_bf16 (const GeTensor * x, const GeConvInput * in, int n, int c, int y, int pl,
    int wp, guint32 * dst)
{
#if defined(__x86_64__) && defined(__GNUC__)
  const int C = x->c, w = x->w;
  float sc[2] = { 1.0f, 1.0f }, sh[2] = { 0.0f, 0.0f };
  const float *src[2] = { NULL, NULL };
  for (int e = 0; e < 1 + (2 * c + 1 < C); e++) {
    const int bc = n * C + 2 * c + e;
    src[e] = x->data + ((gsize) bc * x->h + y) * w;
    if (y + 1 < x->h)           /* as phase_rows */
      for (int i = 0; i < w; i += 16)
        __builtin_prefetch (src[e] + w + i, 0, 2);
    sc[e] = in && in->scale ? in->scale[bc] : 1.0f;
    sh[e] = in && in->shift ? in->shift[bc] : 0.0f;
  }
  memset (dst, 0, sizeof (guint32) * pl);
  transform_pairs_bf16 (src[0], src[1], w, sc, sh, in && in->act == GE_ACT_SILU, dst + pl);
  memset (dst + pl + w, 0, sizeof (guint32) * (wp - pl - w));
#else
  g_assert_not_reached ();
#endif
}

/* ring_row in bf16 pairs: phase (py, px) of channel pair c of padded row
 * @r at dst + ((py * s + px) * CP + c) * ring_pitch.  @tmp: 2 s ring_pitch
 * + x->w floats. */
static void
ring_row_bf16 (const ConvJob * j, int n, int r, guint32 * dst, float *tmp)
{
  const GeTensor *x = j->src;
  const int s = j->p->stride_h, C = x->c, CP = j->CP, wp = j->ring_pitch;
  float *f[2] = { tmp, tmp + (gsize) s * wp };
  float *t = tmp + (gsize) 2 * s * wp;
  for (int py = 0; py < s; py++) {
    const int y = r * s + py - j->p->pad_top;
    for (int c = 0; c < CP; c++) {
      guint32 *d = dst + ((gsize) py * s * CP + c) * wp;
      if (y < 0 || y >= x->h) {
        for (int px = 0; px < s; px++)
          memset (d + (gsize) px * CP * wp, 0, sizeof (guint32) * wp);
        continue;
      }
      const gboolean odd = 2 * c + 1 < C;
      if (s == 1 && fused_pairs (j->in)) {
        pairs_row_bf16 (x, j->in, n, c, y, j->p->pad_left, wp, d);
        continue;
      }
      phase_rows (j, n, 2 * c, y, f[0], wp, t);
      if (odd)
        phase_rows (j, n, 2 * c + 1, y, f[1], wp, t);
      for (int px = 0; px < s; px++)
        ge_bf16_pairs (f[0] + (gsize) px * wp, odd ? f[1] + (gsize) px * wp : NULL, wp,
            d + (gsize) px * CP * wp);
    }
  }
}

static void
implicit_bf16_task (void *data, int task, int thread)
{
  const ConvJob *j = data;
  int n, g, band, c0, nco;
  task_split (j, task, &n, &g, &band, &c0, &nco);
  const int y0 = band * j->band, y1 = MIN (j->oh, y0 + j->band);
  if (nco <= 0 || y0 >= y1)
    return;
  const GeConv2d *p = j->p;
  const guint32 *ap = task_weights_bf16 (j, c0, nco, thread);
  const float *bias = p->bias ? p->bias + c0 : NULL;
  float *yn = j->y->data + ((gsize) n * j->y->c + c0) * j->opix;
  if (j->ring) {
    const int R = j->ring_rows;
    guint32 *ring = (guint32 *) (j->scratch + (gsize) thread * j->scratch_floats);
    float *tmp = (float *) (ring + R * j->ring_slot);
    for (int r = y0; r < y1 + R - 1; r++) {
      ring_row_bf16 (j, n, r, ring + (r % R) * j->ring_slot, tmp);
      const int oy = r - (R - 1);
      if (oy >= y0)
        ge_gemm_bf16 (nco, j->ow, j->KP, ap, ring, j->boff + (gsize) (oy % R) * j->KP,
            yn + (gsize) oy * j->ow, j->opix, bias, j->accumulate, j->stream);
    }
    return;
  }
  const int Wp = j->ring_pitch;
  const guint32 *xn = j->xb + (gsize) n * j->xb_sample;
  if (!j->wide) {
    for (int oy = y0; oy < y1; oy++)
      ge_gemm_bf16 (nco, j->ow, j->KP, ap, xn + (gsize) oy * Wp, j->boff,
          yn + (gsize) oy * j->ow, j->opix, bias, j->accumulate, j->stream);
    return;
  }
  /* The band's rows as one long row, as implicit_task's wide mode. */
  const int ncols = (y1 - y0 - 1) * Wp + j->ow;
  float *out = j->scratch + (gsize) thread * j->scratch_floats;
  ge_gemm_bf16 (nco, ncols, j->KP, ap, xn + (gsize) y0 * Wp, j->boff, out, ncols, bias, FALSE,
      FALSE);
  for (int co = 0; co < nco; co++)
    for (int oy = y0; oy < y1; oy++) {
      float *d = yn + (gsize) co * j->opix + (gsize) oy * j->ow;
      const float *t = out + (gsize) co * ncols + (gsize) (oy - y0) * Wp;
      if (j->accumulate)
        for (int i = 0; i < j->ow; i++)
          d[i] += t[i];
      else
        memcpy (d, t, sizeof (float) * j->ow);
    }
}

/* Copy mode: the input as bf16 pairs split into stride phases, [n][s * s]
 * [CP][Hp][Wp]: phase (py, px) row i column c is padded pixel (i s + py,
 * c s + px).  From the prepared f32 input xp ([n][c][Hpad][Wpad], padded
 * and transformed), or with xp NULL straight from x (stride 1 and a
 * transform pairs_row_bf16 does: one pass, no f32 copy).  A task is one
 * channel pair of one sample. */
typedef struct {
  const ConvJob *j;
  const GeTensor *x, *xp;
  guint32 *xb;
  int s, Hp;
  float *tmp;                   /* per thread: 2 Wp floats */
} CopyBf16Job;

static void
copy_bf16_task (void *data, int t, int thread)
{
  const CopyBf16Job *cj = data;
  const ConvJob *j = cj->j;
  const GeTensor *xp = cj->xp;
  const int s = cj->s, Hp = cj->Hp, Wp = j->ring_pitch, CP = j->CP;
  const int c = t % CP, n = t / CP;
  float *lo = cj->tmp + (gsize) thread * 2 * Wp, *hi = lo + Wp;
  for (int yy = 0; yy < Hp * s; yy++) {
    const int py = yy % s, i = yy / s;
    for (int px = 0; px < s; px++) {
      guint32 *d = cj->xb + (gsize) n * j->xb_sample
          + (((gsize) (py * s + px) * CP + c) * Hp + i) * Wp;
      if (!xp) {                /* s == 1 */
        const int y = yy - j->p->pad_top;
        if (y < 0 || y >= cj->x->h)
          memset (d, 0, sizeof (guint32) * Wp);
        else
          pairs_row_bf16 (cj->x, j->in, n, c, y, j->p->pad_left, Wp, d);
        continue;
      }
      const int C = xp->c;
      if (yy >= xp->h) {
        memset (d, 0, sizeof (guint32) * Wp);
        continue;
      }
      if (s == 1) {             /* the rows as they are, zeros past them */
        const float *src = xp->data + (((gsize) n * C + 2 * c) * xp->h + yy) * xp->w;
        const int w = MIN (Wp, xp->w);
        ge_bf16_pairs (src, 2 * c + 1 < C ? src + (gsize) xp->h * xp->w : NULL, w, d);
        memset (d + w, 0, sizeof (guint32) * (Wp - w));
        continue;
      }
      for (int e = 0; e < 2; e++) {
        float *f = e ? hi : lo;
        const int ci = 2 * c + e;
        if (ci >= C)
          continue;
        const float *src = xp->data + (((gsize) n * C + ci) * xp->h + yy) * xp->w;
        for (int col = 0; col < Wp; col++) {
          const int xx = col * s + px;
          f[col] = xx < xp->w ? src[xx] : 0.0f;
        }
      }
      ge_bf16_pairs (lo, 2 * c + 1 < C ? hi : NULL, Wp, d);
    }
  }
}

/* The ring of a conv on word rows (bf16 pairs, int8 quads: j->CP words a
 * padded pixel, j->KP words of K): its pitch and the output rows of a
 * band, long bands as each prepares R - 1 rows of the one before. */
static void
word_ring_bands (ConvJob * j, int n_threads)
{
  j->ring_pitch = conflict_free_width (j->ow + (j->p->kw - 1) / j->p->stride_h);
  j->band = MAX (IMPLICIT_BAND_PIX / j->ow, (j->oh + 4 * n_threads - 1) / (4 * n_threads));
}

/* Its slots (R of s * s phases of CP rows), per thread scratch for them
 * and @tmp_floats more, and the offsets of the K words in the slots. */
static void
word_ring_slots (GeCtx * ctx, ConvJob * j, const GeTensor * x, const GeConvInput * in,
    gsize tmp_floats)
{
  const GeConv2d *p = j->p;
  const int s = p->stride_h, R = (p->kh - 1) / s + 1, Wp = j->ring_pitch;
  j->src = x;
  j->in = in;
  j->ring_rows = R;
  j->ring_slot = (gsize) s * s * j->CP * Wp;
  j->scratch_floats = R * j->ring_slot + tmp_floats;
  j->scratch = ge_arena_alloc (ctx->arena, j->scratch_floats * ge_pool_n_threads (ctx->pool));
  int *boff = (int *) ge_arena_alloc (ctx->arena, (gsize) R * j->KP);
  for (int q = 0; q < R; q++)
    for (int c = 0, k = 0; c < j->CP; c++)
      for (int ky = 0; ky < p->kh; ky++)
        for (int kx = 0; kx < p->kw; kx++)
          boff[q * j->KP + k++] = (int) ((q + ky / s) % R * j->ring_slot)
              + ((ky % s * s + kx % s) * j->CP + c) * Wp + kx / s;
  j->boff = boff;
}

static void
conv2d_bf16 (GeCtx * ctx, ConvJob * j, const GeTensor * x, const GeConvInput * in, int up)
{
  const GeConv2d *p = j->p;
  const int s = p->stride_h, n_threads = ge_pool_n_threads (ctx->pool);
  j->CP = (j->cin_g + 1) / 2;
  j->KP = j->CP * p->kh * p->kw;
  j->wide = narrow_rows (j->ow);
  j->ring = !j->wide && up == 1;
  int Wp, Hp = 0;
  if (j->ring) {
    word_ring_bands (j, n_threads);
    Wp = j->ring_pitch;
  } else {
    const int Hpad = x->h * up + p->pad_top + p->pad_bottom;
    const int Wpad = x->w * up + p->pad_left + p->pad_right;
    /* Every tap of every output inside: ge_conv2d_out_size rounds a
     * negative (H + pads - kh) / s to 0, an output row whose taps run past
     * the padded input (read as zeros). */
    Hp = MAX ((Hpad + s - 1) / s, j->oh + (p->kh - 1) / s);
    Wp = MAX ((Wpad + s - 1) / s, j->ow + (p->kw - 1) / s);
    j->band = j->wide ? MAX (1, 1024 / Wp) : MAX (1, IMPLICIT_BAND_PIX / j->ow);
  }
  j->band = MAX (1, j->band);
  j->ring_pitch = Wp;
  j->n_bands = (j->oh + j->band - 1) / j->band;
  split_channels (j->cout_g, x->n * j->n_bands, n_threads, TRUE, &j->cout_splits,
      &j->cout_per_split);
  if (!p->packed_bf16) {
    /* Rows converted per task: as many as A16_FLOATS allows (see there). */
    const int max_rows = MAX (A16_MIN_ROWS, (int) (A16_FLOATS / MAX (j->KP, 1)) / GE_MR * GE_MR);
    if (j->cout_per_split > max_rows) {
      j->cout_per_split = max_rows;
      j->cout_splits = (j->cout_g + max_rows - 1) / max_rows;
    }
    j->ab_words = ge_gemm_bf16_a_size (j->cout_per_split, j->KP) + j->K;
    j->ab = (guint32 *) ge_arena_alloc (ctx->arena, j->ab_words * n_threads);
    j->ab_c0 = (int *) ge_arena_alloc (ctx->arena, n_threads);
    for (int t = 0; t < n_threads; t++)
      j->ab_c0[t] = -1;
  }
  if (j->ring)
    word_ring_slots (ctx, j, x, in, (gsize) 2 * s * Wp + x->w);      /* ring_row_bf16's tmp */
  else {
    GeTensor xp;
    const gboolean fused = s == 1 && fused_pairs (in);
    if (!fused)
      xp = prepare (ctx, x, in, p->pad_top, p->pad_left, p->pad_bottom, p->pad_right, FALSE);
    j->in = in;
    j->xb_sample = (gsize) s * s * j->CP * Hp * Wp;
    guint32 *xb = (guint32 *) ge_arena_alloc (ctx->arena, j->xb_sample * x->n);
    CopyBf16Job cj = { j, x, fused ? NULL : &xp, xb, s, Hp,
      ge_arena_alloc (ctx->arena, (gsize) 2 * Wp * n_threads)
    };
    ge_pool_run (ctx->pool, x->n * j->CP, copy_bf16_task, &cj);
    j->xb = xb;
    int *boff = (int *) ge_arena_alloc (ctx->arena, j->KP);
    for (int c = 0, kp = 0; c < j->CP; c++)
      for (int ky = 0; ky < p->kh; ky++)
        for (int kx = 0; kx < p->kw; kx++)
          boff[kp++] = (((ky % s * s + kx % s) * j->CP + c) * Hp + ky / s) * Wp + kx / s;
    j->boff = boff;
    if (j->wide) {
      j->scratch_floats = (gsize) j->cout_per_split * j->band * Wp + 16;
      j->scratch = ge_arena_alloc (ctx->arena, j->scratch_floats * n_threads);
    }
  }
  ge_pool_run (ctx->pool, x->n * j->n_bands * j->cout_splits, implicit_bf16_task, j);
}

/* ---- int8 ---------------------------------------------------------------
 *
 * With ctx->precision INT8 (on AVX512-VNNI) a conv marked int8, of one
 * group, stride 1, no dilation or upsampling, rows wide enough for the
 * ring, on an input transform of NONE or SiLU, runs the int8 kernel
 * (ge_gemm_int8) on quads of input channels; any other conv runs in bf16.
 *
 *   weights  per output channel co: sw = max |w| / 127, q = round (w / sw)
 *            in [-127, 127]; packed once into the cache, with sw and the
 *            sum of the row's q
 *   input    per call, over the whole (transformed) tensor: [lo, hi] its
 *            range widened to hold 0, sx = (hi - lo) / 255, zero point
 *            zp = round (-lo / sx), u = clamp (round (x / sx) + zp, 0, 255);
 *            the padding holds zp (the number 0)
 *   output   y = sw sx (sum q u - zp sum q) + bias: the int32 sums scaled
 *            by sw sx, the rest in each row's offset
 *
 * The range comes from each channel's raw minimum and maximum through the
 * channel's affine and SiLU (whose minimum, -0.2785 at -1.2785, is taken
 * where the interval holds it): one read of the input, no transformed copy.
 */

#define SILU_ARGMIN (-1.27846454f)

/* int8 weights: ge_gemm_bf16_a_size (cout, KQ) words of quads, then cout
 * rounded up to GE_MR scales (float) and sums (gint32). */
static gsize
int8_a_words (const GeConv2d * p)
{
  return ge_gemm_bf16_a_size (p->out_channels, (p->in_channels + 3) / 4 * p->kh * p->kw);
}

static gsize
int8_words (const GeConv2d * p)
{
  return int8_a_words (p) + 2 * (gsize) ((p->out_channels + GE_MR - 1) / GE_MR * GE_MR);
}

static void
pack_int8 (const GeConv2d * p, guint32 * st)
{
  const int T = p->kh * p->kw, C = p->in_channels, CQ = (C + 3) / 4, KQ = CQ * T;
  const int M = p->out_channels, Mp = (M + GE_MR - 1) / GE_MR * GE_MR;
  float *scale = (float *) (st + int8_a_words (p));
  gint32 *sum = (gint32 *) (scale + Mp);
  float *tmp = g_new (float, (gsize) C * T);
  gint8 *q = g_new0 (gint8, (gsize) CQ * 4 * T);
  memset (st, 0, sizeof (guint32) * int8_words (p));
  for (int i = 0; i < M; i++) {
    const float *w = weight_row (p, i, tmp);
    float amax = 0.0f;
    for (int k = 0; k < C * T; k++)
      amax = MAX (amax, fabsf (w[k]));
    const float sw = amax / 127.0f;
    gint32 total = 0;
    for (int k = 0; k < C * T; k++) {
      q[k] = sw > 0.0f ? (gint8) CLAMP (lrintf (w[k] / sw), -127, 127) : 0;
      total += q[k];
    }
    scale[i] = sw;
    sum[i] = total;
    guint32 *dst = st + (gsize) (i / GE_MR) * KQ * GE_MR + i % GE_MR;
    for (int c = 0; c < CQ; c++)
      for (int t = 0; t < T; t++) {
        guint32 word = 0;
        for (int e = 0; e < 4 && 4 * c + e < C; e++)
          word |= (guint32) (guint8) q[(gsize) (4 * c + e) * T + t] << (8 * e);
        dst[(gsize) (c * T + t) * GE_MR] = word;
      }
  }
  g_free (q);
  g_free (tmp);
}

/* @p's int8 weights, packed into its cache on the first int8 call. */
static const guint32 *
int8_weights (const GeConv2d * p)
{
  GeConvCache *c = p->cache;
  if (g_once_init_enter (&c->packed_int8)) {
    guint32 *w = (guint32 *) c->alloc (c->owner, int8_words (p));
    pack_int8 (p, w);
    g_once_init_leave (&c->packed_int8, w);
  }
  return c->packed_int8;
}

typedef struct {
  const GeTensor *x;
  const GeConvInput *in;
  float *lo, *hi;               /* per channel of every sample */
  float *amax;                  /* the largest magnitude into the activation */
} RangeJob;

/* SiLU with libm's expf: ge_act1's ge_expf moves the range by an ulp
 * now and then, and with it some quantized bytes of the runs the models'
 * int8 marks were measured with. */
static float
silu_f (float v)
{
  return v / (1.0f + expf (-v));
}

/* The range [lo[t], hi[t]] of channel @t's values through @in's transform,
 * from the raw minimum @mn and maximum @mx; NaN where either is not finite
 * (SiLU (-inf) would hide it). */
static void
transformed_range (const GeConvInput * in, int t, float mn, float mx, float *lo, float *hi,
    float *amax)
{
  if (!isfinite (mn) || !isfinite (mx)) {
    lo[t] = hi[t] = NAN;
    amax[t] = INFINITY;
    return;
  }
  const float sc = in && in->scale ? in->scale[t] : 1.0f, sh = in && in->shift ? in->shift[t] : 0.0f;
  float a = mn * sc + sh, b = mx * sc + sh;
  if (a > b) {
    const float tmp = a;
    a = b;
    b = tmp;
  }
  amax[t] = MAX (fabsf (a), fabsf (b));
  if (in && in->act == GE_ACT_SILU) {
    const float fa = silu_f (a), fb = silu_f (b);
    lo[t] = a < SILU_ARGMIN && b > SILU_ARGMIN ? silu_f (SILU_ARGMIN) : MIN (fa, fb);
    hi[t] = MAX (fa, fb);
  } else {
    lo[t] = a;
    hi[t] = b;
  }
}

/* The range of channel @t's transformed values, read from x. */
static void
range_task (void *data, int t, int thread)
{
  const RangeJob *j = data;
  const gsize n = (gsize) j->x->h * j->x->w;
  float mn, mx;
  ge_min_max (j->x->data + (gsize) t * n, n, &mn, &mx);
  transformed_range (j->in, t, mn, mx, j->lo, j->hi, j->amax);
}

#if defined(__x86_64__) && defined(__GNUC__)
/* Stride-1 ring rows of a channel quad, transformed and quantized in one
 * pass: byte e of dst[i] is clamp (round (act (src[e][i] s[e] + sh[e]) /
 * sx) + zp, 0, 255), zp where src[e] is NULL (a channel past the last:
 * its weights are 0).  @act: 0 none, 1 SiLU, 2 SiLU of inputs known to
 * lie in [-88, 87] (no clamp for its exp); a constant where inlined. */
__attribute__((target ("avx512f,avx512bw,avx512vl")))
static inline __attribute__((always_inline)) void
transform_quads_int8_act (const int act, const float *const src[4], int n, const float s[4],
    const float sh[4], float inv_sx, int zp, guint32 * dst)
{
  static const char quad_[64] = { 0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15,
    0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15,
    0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15,
    0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15
  };
  const __m512i quad = _mm512_loadu_si512 (quad_);
  const __m512 vi = _mm512_set1_ps (inv_sx);
  const __m512i vz = _mm512_set1_epi32 (zp);
  for (int i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? 0xffff : (__mmask16) ((1u << (n - i)) - 1);
    __m512i q[4];
    for (int e = 0; e < 4; e++) {
      q[e] = vz;
      if (src[e]) {
        __m512 v = _mm512_fmadd_ps (_mm512_maskz_loadu_ps (m, src[e] + i), _mm512_set1_ps (s[e]),
            _mm512_set1_ps (sh[e]));
        if (act == 1)
          v = silu_8bit_avx512 (v);
        else if (act == 2)
          v = silu_8bit_core_avx512 (v, v);
        q[e] = _mm512_add_epi32 (_mm512_cvtps_epi32 (_mm512_mul_ps (v, vi)), vz);
      }
    }
    /* The packs clamp to [0, 255] (the first saturates to 65535, the second
     * treats that as -1: only a number past 32767, which a value inside the
     * range the zero point was made for cannot give); in each 128-bit lane
     * they leave channel 0's four bytes, then 1's, 2's, 3's: the shuffle
     * makes them quads. */
    const __m512i b = _mm512_packus_epi16 (_mm512_packus_epi32 (q[0], q[1]),
        _mm512_packus_epi32 (q[2], q[3]));
    _mm512_mask_storeu_epi32 (dst + i, m, _mm512_shuffle_epi8 (b, quad));
  }
}

__attribute__((target ("avx512f,avx512bw,avx512vl")))
static void
transform_quads_int8 (const float *const src[4], int n, const float s[4], const float sh[4],
    int act, float inv_sx, int zp, guint32 * dst)
{
  if (act == 2)
    transform_quads_int8_act (2, src, n, s, sh, inv_sx, zp, dst);
  else if (act == 1)
    transform_quads_int8_act (1, src, n, s, sh, inv_sx, zp, dst);
  else
    transform_quads_int8_act (0, src, n, s, sh, inv_sx, zp, dst);
}
#endif

/* Ring row @r (padded row r of the input: stride 1) of sample @n as quads
 * at dst + c * ring_pitch, zp words in the padding. */
static void
ring_row_int8 (const ConvJob * j, int n, int r, guint32 * dst)
{
#if defined(__x86_64__) && defined(__GNUC__)
  const GeTensor *x = j->src;
  const GeConvInput *in = j->in;
  const int C = x->c, wp = j->ring_pitch, pl = j->p->pad_left, w = x->w;
  const int y = r - j->p->pad_top;
  const guint32 zw = 0x01010101u * (guint32) j->zp;
  for (int c = 0; c < j->CP; c++) {
    guint32 *d = dst + (gsize) c * wp;
    if (y < 0 || y >= x->h) {
      for (int i = 0; i < wp; i++)
        d[i] = zw;
      continue;
    }
    const float *src[4] = { NULL, NULL, NULL, NULL };
    float sc[4] = { 1, 1, 1, 1 }, sh[4] = { 0, 0, 0, 0 };
    for (int e = 0; e < 4 && 4 * c + e < C; e++) {
      const int bc = n * C + 4 * c + e;
      src[e] = x->data + ((gsize) bc * x->h + y) * w;
      sc[e] = in && in->scale ? in->scale[bc] : 1.0f;
      sh[e] = in && in->shift ? in->shift[bc] : 0.0f;
    }
    for (int i = 0; i < pl; i++)
      d[i] = zw;
    transform_quads_int8 (src, w, sc, sh, in && in->act == GE_ACT_SILU ? 1 + j->silu_inside : 0,
        j->inv_sx, j->zp, d + pl);
    for (int i = pl + w; i < wp; i++)
      d[i] = zw;
  }
#else
  g_assert_not_reached ();
#endif
}

static void
implicit_int8_task (void *data, int task, int thread)
{
  const ConvJob *j = data;
  int n, g, band, c0, nco;
  task_split (j, task, &n, &g, &band, &c0, &nco);
  const int y0 = band * j->band, y1 = MIN (j->oh, y0 + j->band);
  if (nco <= 0 || y0 >= y1)
    return;
  const guint32 *ap = j->xb + (gsize) c0 * j->KP;       /* the weights: c0 is a multiple of GE_MR */
  float *yn = j->y->data + ((gsize) n * j->y->c + c0) * j->opix;
  const int R = j->ring_rows;
  guint32 *ring = (guint32 *) (j->scratch + (gsize) thread * j->scratch_floats);
  const float *scale = j->int8_scale + c0, *offset = j->int8_offset + c0;
  for (int r = y0; r < y1 + R - 1; r++) {
    ring_row_int8 (j, n, r, ring + (r % R) * j->ring_slot);
    const int oy = r - (R - 1);
    if (oy >= y0)
      ge_gemm_int8 (nco, j->ow, j->KP, ap, ring, j->boff + (gsize) (oy % R) * j->KP,
          yn + (gsize) oy * j->ow, j->opix, scale, offset, j->accumulate,
          j->res ? j->res + (yn - j->y->data) + (gsize) oy * j->ow : NULL, j->stream);
  }
}

/* TRUE where conv2d_int8 runs @p on this input. */
static gboolean
int8_applies (GeCtx * ctx, const GeConv2d * p, const ConvJob * j, const GeConvInput * in, int up)
{
  return ctx->precision == GE_PRECISION_INT8 && ge_gemm_int8_available () && p->int8
      && p->cache && p->groups == 1 && p->stride_h == 1 && p->stride_w == 1 && p->dil_h == 1
      && p->dil_w == 1 && up == 1 && !narrow_rows (j->ow)
      && (!in || in->act == GE_ACT_NONE || in->act == GE_ACT_SILU);
}

/* FALSE, nothing done, where the input holds an infinity or a NaN: no
 * range quantizes it, and the bf16 path carries it on as f32 would, for
 * the checks downstream to see. */
static gboolean
conv2d_int8 (GeCtx * ctx, ConvJob * j, const GeTensor * x, const GeConvInput * in)
{
  const GeConv2d *p = j->p;
  const int n_threads = ge_pool_n_threads (ctx->pool), C = x->c, M = p->out_channels;
  const guint32 *wq = int8_weights (p);
  const float *sw = (const float *) (wq + int8_a_words (p));
  const gint32 *sumq = (const gint32 *) (sw + (M + GE_MR - 1) / GE_MR * GE_MR);

  /* the input's range, per channel */
  RangeJob rj = { x, in, ge_arena_alloc (ctx->arena, (gsize) x->n * C),
    ge_arena_alloc (ctx->arena, (gsize) x->n * C), ge_arena_alloc (ctx->arena, (gsize) x->n * C)
  };
  if (in && in->lo && in->hi)
    for (int t = 0; t < x->n * C; t++)
      transformed_range (in, t, in->lo[t], in->hi[t], rj.lo, rj.hi, rj.amax);
  else
    ge_pool_run (ctx->pool, x->n * C, range_task, &rj);
  j->int8_scale = ge_arena_alloc (ctx->arena, M);
  j->int8_offset = ge_arena_alloc (ctx->arena, M);
  /* One range for the batch (1 or 2 samples of one frame here): the ring
   * rows of every sample share the zero point. */
  float lo = 0.0f, hi = 0.0f, amax = 0.0f;
  for (gsize i = 0; i < (gsize) x->n * C; i++) {
    lo = MIN (lo, rj.lo[i]);
    hi = MAX (hi, rj.hi[i]);
    amax = MAX (amax, rj.amax[i]);
    if (!isfinite (rj.lo[i]) || !isfinite (rj.hi[i]))
      return FALSE;
  }
  /* a margin over [-88, 87] for the kernel's fused affine, which can
   * differ from the range's by an ulp */
  j->silu_inside = amax < 86.0f;
  const float sx = hi > lo ? (hi - lo) / 255.0f : 1.0f;
  j->zp = (int) CLAMP (lrintf (-lo / sx), 0, 255);
  j->inv_sx = 1.0f / sx;
  for (int co = 0; co < M; co++) {
    j->int8_scale[co] = sw[co] * sx;
    j->int8_offset[co] = (p->bias ? p->bias[co] : 0.0f)
        - j->int8_scale[co] * (float) j->zp * (float) sumq[co];
  }

  j->CP = (C + 3) / 4;
  j->KP = j->CP * p->kh * p->kw;
  j->xb = wq;
  word_ring_bands (j, n_threads);
  j->n_bands = (j->oh + j->band - 1) / j->band;
  split_channels (j->cout_g, x->n * j->n_bands, n_threads, TRUE, &j->cout_splits,
      &j->cout_per_split);
  word_ring_slots (ctx, j, x, in, 0);
  ge_pool_run (ctx->pool, x->n * j->n_bands * j->cout_splits, implicit_int8_task, j);
  return TRUE;
}

/* conv2d_run's paths; TRUE where the path added @res itself. */
static gboolean
conv2d_paths (GeCtx * ctx, const GeConv2d * p, const GeTensor * x, const GeConvInput * in,
    GeTensor * y, gboolean accumulate, const float *res)
{
  const int up = in && in->upsample > 1 ? in->upsample : 1;
  ConvJob j = { .p = p, .y = y, .accumulate = accumulate, .res = res };
  ge_conv2d_out_size (p, x->h * up, x->w * up, &j.oh, &j.ow);
  g_return_val_if_fail (x->c == p->in_channels && y->c == p->out_channels, TRUE);
  g_return_val_if_fail (y->n == x->n && y->h == j.oh && y->w == j.ow, TRUE);
  g_return_val_if_fail (p->in_channels % p->groups == 0 && p->out_channels % p->groups == 0,
      TRUE);
  GeConv2d p32;
  const gsize mark = ge_arena_mark (ctx->arena);
  if (p->weight16 && !p->packed && !ge_gemm_packed_available ()) {
    /* OpenBLAS needs f32 weights: converted for this call. */
    const gsize wn = (gsize) p->out_channels * (p->in_channels / p->groups) * p->kh * p->kw;
    p32 = *p;
    float *w = ge_arena_alloc (ctx->arena, wn);
    ge_half_to_f32 (p->weight16, p->dtype16, wn, w);
    p32.weight = w;
    p32.weight16 = NULL;
    p = j.p = &p32;
  }
  j.kernel = p->packed || (p->weight16 && ge_gemm_packed_available ());
  j.opix = j.oh * j.ow;
  j.stream = !accumulate && (gsize) y->n * y->c * j.opix * sizeof (float) >= STREAM_MIN_BYTES;
  j.cin_g = p->in_channels / p->groups;
  j.cout_g = p->out_channels / p->groups;
  j.K = j.cin_g * p->kh * p->kw;
  const int n_threads = ge_pool_n_threads (ctx->pool);
  const gboolean needs_prep = in && (in->scale || in->shift || in->act != GE_ACT_NONE || up > 1);

  const int s = p->stride_h;
  if (int8_applies (ctx, p, &j, in, up) && conv2d_int8 (ctx, &j, x, in)) {
    ge_arena_release (ctx->arena, mark);
    return TRUE;
  }
  if (ge_precision_uses_bf16 (ctx->precision) && ge_gemm_bf16_available () && p->groups == 1
      && p->stride_w == s && p->dil_h == 1 && p->dil_w == 1) {
    if (!p->packed_bf16 && p->cache) {
      p32 = *p;
      p32.packed_bf16 = bf16_weights (p);
      p = j.p = &p32;
    }
    conv2d_bf16 (ctx, &j, x, in, up);
    ge_arena_release (ctx->arena, mark);
    return FALSE;
  }
  if (j.kernel && p->groups == 1 && p->stride_w == s && p->dil_h == 1 && p->dil_w == 1
      && (s == 1 || (up == 1 && !narrow_rows (j.ow)))) {
    /* Implicit GEMM: tap (ci, ky, kx) of output row y, column x is read
     * straight from the (padded, transformed) input, no im2col.  Three
     * layouts: the rows of all channels at one y together, prepared band
     * by band in a ring (ring_row: padding, transforms and strides); the
     * input itself (stride 1, nothing to prepare); for narrow images at
     * stride 1, a padded copy of plain planes whose band of rows runs as
     * one long row (see implicit_task). */
    j.wide = narrow_rows (j.ow);
    const gboolean padded = p->pad_top || p->pad_left || p->pad_bottom || p->pad_right;
    j.ring = !j.wide && up == 1 && (needs_prep || padded || s > 1);
    /* Ring rows are padded to conflict_free_width (): the GEMM never
     * reads the extra columns. */
    const int wpad = j.ring ? conflict_free_width (j.ow + (p->kw - 1) / s)
        : p->pad_left + x->w * up + p->pad_right;
    j.band = MAX (1, IMPLICIT_BAND_PIX / j.ow);
    if (j.wide)
      j.band = MAX (1, 1024 / wpad);
    else if (j.ring)            /* long bands: each prepares R - 1 rows of the one before */
      j.band = MAX (j.band, (j.oh + 4 * n_threads - 1) / (4 * n_threads));
    j.n_bands = (j.oh + j.band - 1) / j.band;
    split_channels (j.cout_g, x->n * j.n_bands, n_threads, TRUE, &j.cout_splits,
      &j.cout_per_split);
    alloc_a16 (ctx, &j, n_threads, !j.wide);
    GeTensor xp = *x;           /* outside the ring: what the GEMM reads (j.x) */
    if (j.ring) {
      const int R = (p->kh - 1) / s + 1;
      j.src = x;
      j.in = in;
      j.ring_rows = R;
      j.ring_pitch = wpad;
      j.ring_slot = (gsize) s * s * j.cin_g * wpad;
      j.scratch_floats = R * j.ring_slot + x->w;
      j.scratch = ge_arena_alloc (ctx->arena, j.scratch_floats * n_threads);
      int *boff = (int *) ge_arena_alloc (ctx->arena, (gsize) R * j.K);
      for (int q = 0; q < R; q++)
        for (int ci = 0, k = 0; ci < j.cin_g; ci++)
          for (int ky = 0; ky < p->kh; ky++)
            for (int kx = 0; kx < p->kw; kx++)
              boff[q * j.K + k++] = (int) ((q + ky / s) % R * j.ring_slot)
                  + ((ky % s * s + kx % s) * j.cin_g + ci) * wpad + kx / s;
      j.boff = boff;
      j.x = x;
    } else {
      const gboolean interleaved = (needs_prep || padded) && !j.wide;
      if (needs_prep || padded)
        xp = prepare (ctx, x, in, p->pad_top, p->pad_left, p->pad_bottom, p->pad_right,
            interleaved);
      int *boff = (int *) ge_arena_alloc (ctx->arena, j.K);
      for (int ci = 0, k = 0; ci < j.cin_g; ci++)
        for (int ky = 0; ky < p->kh; ky++)
          for (int kx = 0; kx < p->kw; kx++)
            boff[k++] = (interleaved ? ky * j.cin_g + ci : ci * xp.h + ky) * xp.w + kx;
      j.row_pitch = interleaved ? (gsize) j.cin_g * xp.w : (gsize) xp.w;
      j.x = &xp;
      j.boff = boff;
      if (j.wide) {
        j.scratch_floats = (gsize) j.cout_per_split * j.band * xp.w + 16;
        j.scratch = ge_arena_alloc (ctx->arena, j.scratch_floats * n_threads);
      }
    }
    const int units = x->n * j.n_bands;
    ge_pool_run (ctx->pool, units * j.cout_splits, implicit_task, &j);
    ge_arena_release (ctx->arena, mark);
    return FALSE;
  }

  GeTensor xin = *x;
  if (needs_prep)
    xin = prepare (ctx, x, in, 0, 0, 0, 0, FALSE);
  j.x = &xin;
  /* Band: col fits BAND_FLOATS, a whole number of kernel panels. */
  j.band = (int) MAX (GE_NR, BAND_FLOATS / MAX (j.K, 1) / GE_NR * GE_NR);
  j.band = MIN (j.band, j.opix);
  j.n_bands = (j.opix + j.band - 1) / j.band;
  const int units = x->n * p->groups * j.n_bands;
  split_channels (j.cout_g, units, n_threads, j.kernel, &j.cout_splits,
      &j.cout_per_split);
  if (j.kernel)
    alloc_a16 (ctx, &j, n_threads, !j.wide);
  j.scratch_floats = (gsize) j.K * j.band + j.K + 16;      /* col + offsets */
  j.scratch = ge_arena_alloc (ctx->arena, j.scratch_floats * n_threads);
  ge_pool_run (ctx->pool, units * j.cout_splits, im2col_task, &j);
  ge_arena_release (ctx->arena, mark);
  return FALSE;
}

/* @res (NULL: none): y = conv (x) + res, added as the int8 kernel stores y
 * (the same sum, in the same order, as ge_add (res, y) after it), by a
 * pass of its own on the other paths. */
static void
conv2d_run (GeCtx * ctx, const GeConv2d * p, const GeTensor * x, const GeConvInput * in,
    GeTensor * y, gboolean accumulate, const float *res)
{
  g_return_if_fail (!(accumulate && res));
  if (!conv2d_paths (ctx, p, x, in, y, accumulate, res) && res)
    ge_add (ctx, res, y->data, y->data, ge_tensor_numel (y), 1.0f);
}

void
ge_conv2d_ex (GeCtx * ctx, const GeConv2d * p, const GeTensor * x, const GeConvInput * in,
    GeTensor * y)
{
  conv2d_run (ctx, p, x, in, y, FALSE, NULL);
}

void
ge_conv2d (GeCtx * ctx, const GeConv2d * p, const GeTensor * x, GeTensor * y)
{
  conv2d_run (ctx, p, x, NULL, y, FALSE, NULL);
}

void
ge_conv2d_accumulate (GeCtx * ctx, const GeConv2d * p, const GeTensor * x, GeTensor * y)
{
  conv2d_run (ctx, p, x, NULL, y, TRUE, NULL);
}

void
ge_conv2d_accumulate_ex (GeCtx * ctx, const GeConv2d * p, const GeTensor * x,
    const GeConvInput * in, GeTensor * y)
{
  conv2d_run (ctx, p, x, in, y, TRUE, NULL);
}

void
ge_conv2d_residual (GeCtx * ctx, const GeConv2d * p, const GeTensor * x,
    const GeConvInput * in, const float *res, GeTensor * y)
{
  conv2d_run (ctx, p, x, in, y, FALSE, res);
}

/* ---- 2x upsampling phases --------------------------------------------- */

typedef struct {
  const GeConv2d *phase;        /* [4], (dy, dx) = (i / 2, i % 2) */
  const GeTensor *xp;           /* x with one zero row/column around, rows interleaved */
  GeTensor *y;
  const GeTensor *ph;           /* fallback: the four phase outputs */
  int band, n_bands, cout_splits, cout_per_split, K;
  const int *boff;
  float *scratch;               /* per thread: 4 phases x cout_per_split x w */
  gsize scratch_floats;
  /* bf16: xp as channel pairs, [n][row][CP][w]; K pairs */
  const guint32 *xb;
  int CP, KP;
} PhaseJob;

/* Writes low-resolution row @i of the phases (pointers to [c][i][0] with
 * channel pitch @cp) as rows 2i and 2i + 1 of @y's channels [c0, c0 + nc). */
static void
interleave_rows (const float *const ph[4], gsize cp, GeTensor * y, int n, int c0, int nc, int i)
{
  const int W = y->w / 2;
  for (int c = 0; c < nc; c++)
    for (int dy = 0; dy < 2; dy++) {
      const float *a = ph[dy * 2] + c * cp, *b = ph[dy * 2 + 1] + c * cp;
      float *row = y->data + (((gsize) n * y->c + c0 + c) * y->h + 2 * i + dy) * y->w;
      for (int x = 0; x < W; x++) {
        row[2 * x] = a[x];
        row[2 * x + 1] = b[x];
      }
    }
}

/* One band of low-resolution rows: per row, the four phase GEMMs into
 * scratch (a few tens of KiB, still in L2 when they are spread out), then
 * the two output rows, so each output cache line is written by one task. */
static void
phase_task (void *data, int task, int thread)
{
  const PhaseJob *j = data;
  const int split = task % j->cout_splits, band = (task / j->cout_splits) % j->n_bands;
  const int n = task / (j->cout_splits * j->n_bands);
  const int c0 = split * j->cout_per_split;
  const int nco = MIN (j->cout_per_split, j->y->c - c0);
  const int H = j->y->h / 2, W = j->y->w / 2, wp = j->xp->w;
  const gsize pitch = (gsize) j->xp->c * wp;
  const float *xn = j->xp->data + (gsize) n * j->xp->c * j->xp->h * wp;
  float *tmp = j->scratch + (gsize) thread * j->scratch_floats;
  const float *ph[4];
  for (int i = 0; i < 4; i++)
    ph[i] = tmp + (gsize) i * nco * W;
  for (int oy = band * j->band; oy < MIN (H, (band + 1) * j->band); oy++) {
    for (int i = 0; i < 4; i++) {
      const GeConv2d *p = &j->phase[i];
      /* Phase (dy, dx) pads by (1 - dy, 1 - dx): its padded row r is row
       * r + dy of the shared copy, column c its column c + dx. */
      ge_gemm_packed (nco, W, j->K, p->packed + (gsize) c0 * j->K,
          xn + (gsize) (oy + i / 2) * pitch + i % 2, j->boff, (float *) ph[i], W,
          p->bias ? p->bias + c0 : NULL, FALSE);
    }
    interleave_rows (ph, W, j->y, n, c0, nco, oy);
  }
}

/* phase_task on the bf16 copy. */
static void
phase_bf16_task (void *data, int task, int thread)
{
  const PhaseJob *j = data;
  const int split = task % j->cout_splits, band = (task / j->cout_splits) % j->n_bands;
  const int n = task / (j->cout_splits * j->n_bands);
  const int c0 = split * j->cout_per_split;
  const int nco = MIN (j->cout_per_split, j->y->c - c0);
  const int H = j->y->h / 2, W = j->y->w / 2, wp = j->xp->w;
  const gsize pitch = (gsize) j->CP * wp;
  const guint32 *xn = j->xb + (gsize) n * j->xp->h * pitch;
  float *tmp = j->scratch + (gsize) thread * j->scratch_floats;
  const float *ph[4];
  for (int i = 0; i < 4; i++)
    ph[i] = tmp + (gsize) i * nco * W;
  for (int oy = band * j->band; oy < MIN (H, (band + 1) * j->band); oy++) {
    for (int i = 0; i < 4; i++) {
      const GeConv2d *p = &j->phase[i];
      ge_gemm_bf16 (nco, W, j->KP, p->packed_bf16 + (gsize) c0 * j->KP,
          xn + (gsize) (oy + i / 2) * pitch + i % 2, j->boff, (float *) ph[i], W,
          p->bias ? p->bias + c0 : NULL, FALSE, FALSE);
    }
    interleave_rows (ph, W, j->y, n, c0, nco, oy);
  }
}

/* Row @t of the interleaved f32 copy as bf16 channel pairs. */
static void
pairs_row_task (void *data, int t, int thread)
{
  const PhaseJob *j = data;
  const GeTensor *xp = j->xp;
  const float *row = xp->data + (gsize) t * xp->c * xp->w;
  guint32 *d = (guint32 *) j->xb + (gsize) t * j->CP * xp->w;
  for (int c = 0; c < j->CP; c++)
    ge_bf16_pairs (row + (gsize) 2 * c * xp->w,
        2 * c + 1 < xp->c ? row + (gsize) (2 * c + 1) * xp->w : NULL, xp->w,
        d + (gsize) c * xp->w);
}

static void
interleave_task (void *data, int nc, int thread)
{
  const PhaseJob *j = data;
  const int H = j->ph[0].h, W = j->ph[0].w, n = nc / j->y->c, c = nc % j->y->c;
  for (int i = 0; i < H; i++) {
    const float *ph[4];
    for (int k = 0; k < 4; k++)
      ph[k] = j->ph[k].data + ((gsize) nc * H + i) * W;
    interleave_rows (ph, 0, j->y, n, c, 1, i);
  }
}

void
ge_conv2d_phase2x (GeCtx * ctx, const GeConv2d phase[4], const GeTensor * x, GeTensor * y)
{
  const int C = phase[0].out_channels, H = x->h, W = x->w;
  g_return_if_fail (y->n == x->n && y->c == C && y->h == 2 * H && y->w == 2 * W);
  const gsize mark = ge_arena_mark (ctx->arena);
  PhaseJob j = { .phase = phase, .y = y };
  /* Rows narrow enough for implicit_task's wide mode keep the general path. */
  const gboolean bf16 = ge_precision_uses_bf16 (ctx->precision) && ge_gemm_bf16_available ();
  GeConv2d bp[4];
  if (bf16) {
    for (int i = 0; i < 4; i++) {
      bp[i] = phase[i];
      bp[i].packed_bf16 = bf16_weights (&phase[i]);
    }
    j.phase = bp;
  }
  if (bf16 && bp[0].packed_bf16 && bp[1].packed_bf16 && bp[2].packed_bf16
      && bp[3].packed_bf16 && !narrow_rows (W)) {
    GeTensor xp = prepare (ctx, x, NULL, 1, 1, 1, 1, TRUE);
    const int wp = xp.w;
    j.CP = (x->c + 1) / 2;
    j.KP = j.CP * 4;
    j.xp = &xp;
    j.xb = (const guint32 *) ge_arena_alloc (ctx->arena, (gsize) x->n * xp.h * j.CP * wp);
    ge_pool_run (ctx->pool, x->n * xp.h, pairs_row_task, &j);
    int *boff = (int *) ge_arena_alloc (ctx->arena, j.KP);
    for (int c = 0, k = 0; c < j.CP; c++)
      for (int ky = 0; ky < 2; ky++)
        for (int kx = 0; kx < 2; kx++)
          boff[k++] = (ky * j.CP + c) * wp + kx;
    j.boff = boff;
    const int n_threads = ge_pool_n_threads (ctx->pool);
    j.band = MAX (1, IMPLICIT_BAND_PIX / 4 / W);
    j.n_bands = (H + j.band - 1) / j.band;
    split_channels (C, x->n * j.n_bands, n_threads, TRUE, &j.cout_splits, &j.cout_per_split);
    j.scratch_floats = (gsize) 4 * j.cout_per_split * W;
    j.scratch = ge_arena_alloc (ctx->arena, j.scratch_floats * n_threads);
    ge_pool_run (ctx->pool, x->n * j.n_bands * j.cout_splits, phase_bf16_task, &j);
  } else if (phase[0].packed && !narrow_rows (W) && !bf16) {
    /* All four phases read one padded copy; the outputs are interleaved
     * from scratch, so neither the four phase tensors nor an interleave
     * pass over them exist. */
    GeTensor xp = prepare (ctx, x, NULL, 1, 1, 1, 1, TRUE);
    const int cin = x->c, wp = xp.w;
    j.K = cin * 4;
    int *boff = (int *) ge_arena_alloc (ctx->arena, j.K);
    for (int ci = 0, k = 0; ci < cin; ci++)
      for (int ky = 0; ky < 2; ky++)
        for (int kx = 0; kx < 2; kx++)
          boff[k++] = (ky * cin + ci) * wp + kx;
    j.xp = &xp;
    j.boff = boff;
    const int n_threads = ge_pool_n_threads (ctx->pool);
    j.band = MAX (1, IMPLICIT_BAND_PIX / 4 / W);
    j.n_bands = (H + j.band - 1) / j.band;
    split_channels (C, x->n * j.n_bands, n_threads, TRUE, &j.cout_splits, &j.cout_per_split);
    j.scratch_floats = (gsize) 4 * j.cout_per_split * W;
    j.scratch = ge_arena_alloc (ctx->arena, j.scratch_floats * n_threads);
    ge_pool_run (ctx->pool, x->n * j.n_bands * j.cout_splits, phase_task, &j);
  } else {
    GeTensor ph[4];
    for (int i = 0; i < 4; i++) {
      ph[i] = ge_tensor_new (ctx->arena, x->n, C, H, W);
      ge_conv2d (ctx, &phase[i], x, &ph[i]);
    }
    j.ph = ph;
    ge_pool_run (ctx->pool, x->n * C, interleave_task, &j);
  }
  ge_arena_release (ctx->arena, mark);
}
