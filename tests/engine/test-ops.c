/* test-ops: every engine op against a naive twin written here from the
 * PyTorch definitions, on random shapes (odd sizes, strides, padding,
 * dilation, groups), with 1 and 3 threads.  The twins compute in double,
 * so the bound checks the op, not the twin. */
#include "ge-ops.h"
#include "ge-pool.h"
#include "gemm.h"
#include "gemv.h"
#include "ge-safetensors.h"

#include <float.h>
#include <math.h>
#include <string.h>

static GRand *rng;
static GeCtx ctx;

static float *
randn (gsize n)
{
  float *v = g_new (float, MAX (n, 1));
  for (gsize i = 0; i < n; i++)
    v[i] = (float) g_rand_double_range (rng, -1.0, 1.0);
  return v;
}

static int
ri (int lo, int hi)             /* inclusive */
{
  return g_rand_int_range (rng, lo, hi + 1);
}

/* Normalised error: max|got - ref| / max|ref| and NMSE, both bounded. */
static void
assert_close (const char *what, const float *got, const double *ref, gsize n, double tol)
{
  double maxref = 0, maxerr = 0, se = 0, sr = 0;
  for (gsize i = 0; i < n; i++) {
    double e = fabs (got[i] - ref[i]);
    g_assert_false (isnan (got[i]));
    maxref = fmax (maxref, fabs (ref[i]));
    maxerr = fmax (maxerr, e);
    se += e * e;
    sr += ref[i] * ref[i];
  }
  double rel = maxref > 0 ? maxerr / maxref : maxerr;
  double nmse = sr > 0 ? se / sr : se;
  if (rel > tol || nmse > tol * tol) {
    g_printerr ("%s: max rel err %.3e, nmse %.3e (tol %.1e)\n", what, rel, nmse, tol);
    g_assert_not_reached ();
  }
}

static void
set_threads (int n)
{
  ge_pool_free (ctx.pool);
  ctx.pool = ge_pool_new (n);
}

static double
act_ref (double v, GeAct act, double param)
{
  switch (act) {
    case GE_ACT_NONE: return v;
    case GE_ACT_SILU: return v / (1 + exp (-v));
    case GE_ACT_GELU: return 0.5 * v * (1 + erf (v / sqrt (2.0)));
    case GE_ACT_GELU_TANH: return 0.5 * v * (1 + tanh (sqrt (2 / M_PI) * (v + 0.044715 * v * v * v)));
    case GE_ACT_RELU: return v > 0 ? v : 0;
    case GE_ACT_LEAKY_RELU: return v > 0 ? v : v * param;
    case GE_ACT_TANH: return tanh (v);
    case GE_ACT_SIGMOID: return 1 / (1 + exp (-v));
  }
  return NAN;
}

/* ---- conv2d ------------------------------------------------------------ */

static void
conv2d_naive (const GeConv2d * p, const GeTensor * x, int oh, int ow, double *y)
{
  const int cin_g = p->in_channels / p->groups, cout_g = p->out_channels / p->groups;
  for (int n = 0; n < x->n; n++)
    for (int co = 0; co < p->out_channels; co++) {
      const int g = co / cout_g;
      for (int oy = 0; oy < oh; oy++)
        for (int ox = 0; ox < ow; ox++) {
          double s = p->bias ? p->bias[co] : 0;
          for (int ci = 0; ci < cin_g; ci++)
            for (int ky = 0; ky < p->kh; ky++)
              for (int kx = 0; kx < p->kw; kx++) {
                int iy = oy * p->stride_h - p->pad_top + ky * p->dil_h;
                int ix = ox * p->stride_w - p->pad_left + kx * p->dil_w;
                if (iy < 0 || iy >= x->h || ix < 0 || ix >= x->w)
                  continue;
                double xv = x->data[(((gsize) n * x->c + g * cin_g + ci) * x->h + iy) * x->w + ix];
                double wv = p->weight[(((gsize) co * cin_g + ci) * p->kh + ky) * p->kw + kx];
                s += xv * wv;
              }
          y[(((gsize) n * p->out_channels + co) * oh + oy) * ow + ox] = s;
        }
    }
}

static void
check_conv2d (GeConv2d * p, int n, int h, int w)
{
  int oh, ow;
  ge_conv2d_out_size (p, h, w, &oh, &ow);
  if (oh <= 0 || ow <= 0)
    return;
  const gsize wn = (gsize) p->out_channels * p->in_channels / p->groups * p->kh * p->kw;
  float *wt = randn (wn), *b = randn (p->out_channels);
  p->weight = wt;
  p->bias = ri (0, 1) ? b : NULL;
  GeTensor x = { randn ((gsize) n * p->in_channels * h * w), n, p->in_channels, h, w };
  GeTensor y = { g_new (float, (gsize) n * p->out_channels * oh * ow), n, p->out_channels, oh, ow };
  double *ref = g_new (double, ge_tensor_numel (&y));
  conv2d_naive (p, &x, oh, ow, ref);
  /* Both GEMM paths: OpenBLAS, and the packed kernel where the CPU has it. */
  gsize packed_n = ge_conv2d_packed_size (p);
  float *packed = packed_n ? g_new (float, packed_n) : NULL;
  for (int pass = 0; pass < (packed ? 2 : 1); pass++) {
  p->packed = NULL;
  if (pass)
    ge_conv2d_pack (p, packed);
  memset (y.data, 0xff, sizeof (float) * ge_tensor_numel (&y));   /* NaNs */
  ge_conv2d (&ctx, p, &x, &y);
  char *what = g_strdup_printf ("%s conv2d n%d %dx%d %d->%d k%dx%d s%d,%d p%d,%d,%d,%d d%d,%d g%d",
      pass ? "packed" : "sgemm", n, h, w, p->in_channels, p->out_channels, p->kh, p->kw, p->stride_h, p->stride_w,
      p->pad_top, p->pad_left, p->pad_bottom, p->pad_right, p->dil_h, p->dil_w, p->groups);
  assert_close (what, y.data, ref, ge_tensor_numel (&y), 1e-5);
  g_free (what);
  /* y += conv (x) on top of a random y */
  double *acc = g_new (double, ge_tensor_numel (&y));
  float *y0 = randn (ge_tensor_numel (&y));
  for (gsize i = 0; i < ge_tensor_numel (&y); i++)
    acc[i] = ref[i] + y0[i];
  memcpy (y.data, y0, sizeof (float) * ge_tensor_numel (&y));
  ge_conv2d_accumulate (&ctx, p, &x, &y);
  assert_close ("conv2d accumulate", y.data, acc, ge_tensor_numel (&y), 1e-5);
  g_free (acc);
  g_free (y0);
  }
  p->packed = NULL;
  g_free (packed);
  g_free (wt);
  g_free (b);
  g_free (x.data);
  g_free (y.data);
  g_free (ref);
}

static void
test_conv2d_random (void)
{
  for (int threads = 1; threads <= 3; threads += 2) {
    set_threads (threads);
    for (int it = 0; it < 60; it++) {
      int groups = ri (0, 3) == 0 ? ri (2, 4) : 1;
      GeConv2d p = {
        .in_channels = groups * ri (1, 9), .out_channels = groups * ri (1, 9),
        .kh = ri (1, 5), .kw = ri (1, 5), .stride_h = ri (1, 3), .stride_w = ri (1, 3),
        .pad_top = ri (0, 2), .pad_left = ri (0, 2), .pad_bottom = ri (0, 2),
        .pad_right = ri (0, 2), .dil_h = ri (1, 2), .dil_w = ri (1, 2), .groups = groups,
      };
      check_conv2d (&p, ri (1, 2), ri (1, 23), ri (1, 29));
    }
  }
}

/* The shapes the models use: 3x3 pad 1, 1x1, stride-2 with (0,1,0,1), and
 * wide enough layers that several bands and channel splits happen. */
static void
test_conv2d_model_shapes (void)
{
  for (int threads = 1; threads <= 3; threads += 2) {
    set_threads (threads);
    GeConv2d a = ge_conv2d_params (32, 48, 3, 1, 1, NULL, NULL);
    check_conv2d (&a, 1, 61, 67);
    GeConv2d b = ge_conv2d_params (64, 96, 1, 1, 0, NULL, NULL);
    check_conv2d (&b, 2, 40, 37);
    GeConv2d c = ge_conv2d_params (16, 16, 3, 2, 0, NULL, NULL);
    c.pad_bottom = c.pad_right = 1;
    check_conv2d (&c, 1, 33, 32);
    GeConv2d d = ge_conv2d_params (128, 128, 3, 1, 1, NULL, NULL);
    check_conv2d (&d, 1, 8, 8);     /* one band: output channels split instead */
    GeConv2d e = ge_conv2d_params (19, 3, 3, 1, 1, NULL, NULL);
    check_conv2d (&e, 1, 50, 97);   /* partial register tiles and panels */
    /* Strided convs with outputs wide enough (95, 96 columns) for the
     * implicit GEMM on phase-split rows: the encoders' downsamplers, odd
     * sizes, and a stride-3 4x4 kernel. */
    GeConv2d f = ge_conv2d_params (24, 40, 3, 2, 0, NULL, NULL);
    f.pad_bottom = f.pad_right = 1;
    check_conv2d (&f, 2, 45, 191);
    GeConv2d g = ge_conv2d_params (7, 9, 4, 3, 1, NULL, NULL);
    g.pad_right = 2;
    check_conv2d (&g, 1, 23, 287);
  }
}

/* GeConvInput: per-channel affine, SiLU and nearest upsampling applied on
 * the fly must equal the conv of the materialised input (twin: done here
 * by hand in double, then the naive conv). */
static void
test_conv2d_input_transform (void)
{
  for (int threads = 1; threads <= 3; threads += 2) {
    set_threads (threads);
    for (int it = 0; it < 24; it++) {
      /* The last iterations have outputs wide enough (50-128 columns) for
       * the implicit GEMM with the transform done in its ring of rows. */
      const int n = ri (1, 2), cin = ri (1, 12), cout = ri (1, 20), h = ri (1, 13);
      const int w = it >= 18 ? ri (100, 128) : ri (1, 17);
      const int up = ri (1, 2), k = it % 3 == 0 ? 1 : 3;
      GeConv2d p = ge_conv2d_params (cin, cout, k, it % 5 == 4 ? 2 : 1, k / 2, NULL, NULL);
      float *wt = randn ((gsize) cout * cin * k * k), *b = randn (cout);
      p.weight = wt;
      p.bias = b;
      float *scale = randn ((gsize) n * cin), *shift = randn ((gsize) n * cin);
      GeConvInput in = { scale, shift, it % 2 ? GE_ACT_SILU : GE_ACT_NONE, up };
      GeTensor x = { randn ((gsize) n * cin * h * w), n, cin, h, w };
      GeTensor xm = { g_new (float, (gsize) n * cin * h * up * w * up), n, cin, h * up, w * up };
      for (int bc = 0; bc < n * cin; bc++)
        for (int yy = 0; yy < h * up; yy++)
          for (int xx = 0; xx < w * up; xx++) {
            double v = (double) x.data[((gsize) bc * h + yy / up) * w + xx / up] * scale[bc] + shift[bc];
            xm.data[((gsize) bc * h * up + yy) * w * up + xx] = (float) act_ref (v, in.act, 0);
          }
      int oh, ow;
      ge_conv2d_out_size (&p, h * up, w * up, &oh, &ow);
      GeTensor y = { g_new (float, (gsize) n * cout * oh * ow), n, cout, oh, ow };
      double *ref = g_new (double, ge_tensor_numel (&y));
      conv2d_naive (&p, &xm, oh, ow, ref);
      gsize packed_n = ge_conv2d_packed_size (&p);
      float *packed = packed_n ? g_new (float, packed_n) : NULL;
      for (int pass = 0; pass < (packed ? 2 : 1); pass++) {
        p.packed = NULL;
        if (pass)
          ge_conv2d_pack (&p, packed);
        ge_conv2d_ex (&ctx, &p, &x, &in, &y);
        assert_close ("conv2d with input transform", y.data, ref, ge_tensor_numel (&y), 1e-5);
      }
      g_free (packed);
      g_free (wt);
      g_free (b);
      g_free (scale);
      g_free (shift);
      g_free (x.data);
      g_free (xm.data);
      g_free (y.data);
      g_free (ref);
    }
  }
}

/* ge_conv2d_phase2x against its definition: output pixel (2i + dy, 2j + dx)
 * is pixel (i, j) of the naive conv with phase (dy, dx)'s weights and pads.
 * Widths that take the fused path (one padded copy, channel splits) and
 * the narrow-row fallback. */
static void
test_conv2d_phase2x (void)
{
  static const struct { int n, c, h, w; } shapes[] = {
    { 1, 16, 9, 64 }, { 2, 24, 5, 96 }, { 1, 40, 3, 32 }, { 2, 8, 7, 16 }, { 1, 12, 4, 5 },
  };
  for (int threads = 1; threads <= 3; threads += 2) {
    set_threads (threads);
    for (guint s = 0; s < G_N_ELEMENTS (shapes); s++) {
      const int n = shapes[s].n, c = shapes[s].c, h = shapes[s].h, w = shapes[s].w;
      GeConv2d ph[4];
      float *b = randn (c), *packed[4];
      for (int i = 0; i < 4; i++) {
        ph[i] = ge_conv2d_params (c, c, 2, 1, 0, randn ((gsize) c * c * 4), b);
        ph[i].pad_top = 1 - i / 2;
        ph[i].pad_bottom = i / 2;
        ph[i].pad_left = 1 - i % 2;
        ph[i].pad_right = i % 2;
      }
      GeTensor x = { randn ((gsize) n * c * h * w), n, c, h, w };
      GeTensor y = { g_new (float, (gsize) n * c * 4 * h * w), n, c, 2 * h, 2 * w };
      double *ref = g_new (double, ge_tensor_numel (&y)), *one = g_new (double, (gsize) n * c * h * w);
      for (int i = 0; i < 4; i++) {
        conv2d_naive (&ph[i], &x, h, w, one);
        for (gsize nc = 0; nc < (gsize) n * c; nc++)
          for (int yy = 0; yy < h; yy++)
            for (int xx = 0; xx < w; xx++)
              ref[(nc * 2 * h + 2 * yy + i / 2) * 2 * w + 2 * xx + i % 2] = one[(nc * h + yy) * w + xx];
      }
      const gboolean can_pack = ge_conv2d_packed_size (&ph[0]) > 0;
      for (int pass = 0; pass < (can_pack ? 2 : 1); pass++) {
        for (int i = 0; i < 4; i++) {
          packed[i] = pass ? g_new (float, ge_conv2d_packed_size (&ph[i])) : NULL;
          ph[i].packed = NULL;
          if (pass)
            ge_conv2d_pack (&ph[i], packed[i]);
        }
        memset (y.data, 0xff, sizeof (float) * ge_tensor_numel (&y));   /* NaNs */
        ge_conv2d_phase2x (&ctx, ph, &x, &y);
        char *what = g_strdup_printf ("%s phase2x n%d c%d %dx%d", pass ? "packed" : "sgemm", n, c, h, w);
        assert_close (what, y.data, ref, ge_tensor_numel (&y), 1e-5);
        g_free (what);
        for (int i = 0; i < 4; i++)
          g_free (packed[i]);
      }
      for (int i = 0; i < 4; i++)
        g_free ((float *) ph[i].weight);
      g_free (b);
      g_free (x.data);
      g_free (y.data);
      g_free (ref);
      g_free (one);
    }
  }
}

/* ---- 16-bit weights ------------------------------------------------------ */

/* The test's own rounding to F16 / BF16 (round to nearest even: the
 * compiler's _Float16 and the usual bias trick) and back.  Both
 * directions are exact on the way up, so the engine's converted weights
 * must equal these. */
static guint16
to16 (float f, GeDType dtype)
{
  guint32 u;
  memcpy (&u, &f, 4);
  if (dtype == GE_DTYPE_BF16)
    return (guint16) ((u + 0x7fff + ((u >> 16) & 1)) >> 16);
  _Float16 h = (_Float16) f;
  guint16 b;
  memcpy (&b, &h, 2);
  return b;
}

static float
from16 (guint16 b, GeDType dtype)
{
  if (dtype == GE_DTYPE_BF16) {
    guint32 u = (guint32) b << 16;
    float f;
    memcpy (&f, &u, 4);
    return f;
  }
  _Float16 h;
  memcpy (&h, &b, 2);
  return (float) h;
}

/* @n random weights as 16-bit numbers at an odd address (as in a mapping
 * with odd offsets: the engine must read them unaligned) in *@raw (to free),
 * and their exact f32 values in *@wq. */
static const void *
rand16 (gsize n, GeDType dtype, guint8 ** raw, float **wq)
{
  float *w = randn (n);
  *raw = g_malloc (2 * n + 1);
  *wq = g_new (float, MAX (n, 1));
  for (gsize i = 0; i < n; i++) {
    guint16 b = to16 (w[i], dtype);
    memcpy (*raw + 1 + 2 * i, &b, 2);
    (*wq)[i] = from16 (b, dtype);
  }
  g_free (w);
  return *raw + 1;
}

/* Conv with 16-bit weights: bitwise the conv of the converted weights on
 * the f32 path (packed where it runs: the 16-bit path converts exactly
 * and adds in the same order), and close to the naive twin. */
static void
check_conv2d_16 (GeConv2d * p, int n, int h, int w, GeDType dtype, const GeConvInput * in,
    gboolean accumulate)
{
  int oh, ow;
  const int up = in && in->upsample > 1 ? in->upsample : 1;
  ge_conv2d_out_size (p, h * up, w * up, &oh, &ow);
  const gsize wn = (gsize) p->out_channels * p->in_channels / p->groups * p->kh * p->kw;
  guint8 *raw;
  float *wq, *b = randn (p->out_channels);
  const void *w16 = rand16 (wn, dtype, &raw, &wq);
  GeTensor x = { randn ((gsize) n * p->in_channels * h * w), n, p->in_channels, h, w };
  const gsize ny = (gsize) n * p->out_channels * oh * ow;
  GeTensor y32 = { randn (ny), n, p->out_channels, oh, ow };
  GeTensor y16 = { g_memdup2 (y32.data, sizeof (float) * ny), n, p->out_channels, oh, ow };
  GeConv2d p32 = *p, p16 = *p;
  p32.weight = wq;
  p32.bias = p16.bias = b;
  gsize packed_n = ge_conv2d_packed_size (&p32);
  float *packed = packed_n ? g_new (float, packed_n) : NULL;
  if (packed)
    ge_conv2d_pack (&p32, packed);
  p16.weight = NULL;
  p16.packed = NULL;
  p16.weight16 = w16;
  p16.dtype16 = dtype;
  g_assert_cmpuint (ge_conv2d_packed_size (&p16), ==, 0);
  if (accumulate) {
    ge_conv2d_accumulate (&ctx, &p32, &x, &y32);
    ge_conv2d_accumulate (&ctx, &p16, &x, &y16);
  } else {
    ge_conv2d_ex (&ctx, &p32, &x, in, &y32);
    ge_conv2d_ex (&ctx, &p16, &x, in, &y16);
  }
  char *what = g_strdup_printf ("%s conv2d n%d %dx%d %d->%d k%dx%d s%d p%d,%d d%d g%d%s%s",
      dtype == GE_DTYPE_F16 ? "f16" : "bf16", n, h, w, p->in_channels, p->out_channels, p->kh,
      p->kw, p->stride_h, p->pad_top, p->pad_bottom, p->dil_h, p->groups, in ? " input" : "",
      accumulate ? " accumulate" : "");
  for (gsize i = 0; i < ny; i++)
    if (memcmp (&y16.data[i], &y32.data[i], 4) != 0) {
      g_printerr ("%s: [%" G_GSIZE_FORMAT "] %.9g (16-bit) != %.9g (f32)\n", what, i,
          y16.data[i], y32.data[i]);
      g_assert_not_reached ();
    }
  if (!in && !accumulate) {
    double *ref = g_new (double, ny);
    p32.packed = NULL;
    conv2d_naive (&p32, &x, oh, ow, ref);
    assert_close (what, y16.data, ref, ny, 1e-5);
    g_free (ref);
  }
  g_free (what);
  g_free (packed);
  g_free (raw);
  g_free (wq);
  g_free (b);
  g_free (x.data);
  g_free (y32.data);
  g_free (y16.data);
}

static void
test_conv2d_16bit (void)
{
  for (int threads = 1; threads <= 3; threads += 2) {
    set_threads (threads);
    for (GeDType dt = GE_DTYPE_F16; dt <= GE_DTYPE_BF16; dt++) {
      /* implicit, ring (padding), K over one slice, M and K tails */
      GeConv2d a = ge_conv2d_params (40, 19, 3, 1, 1, NULL, NULL);
      check_conv2d_16 (&a, 2, 13, 70, dt, NULL, FALSE);
      check_conv2d_16 (&a, 1, 13, 70, dt, NULL, TRUE);
      /* 1x1, the input itself; and narrow rows (one long row per band) */
      GeConv2d b = ge_conv2d_params (64, 48, 1, 1, 0, NULL, NULL);
      check_conv2d_16 (&b, 1, 9, 64, dt, NULL, FALSE);
      check_conv2d_16 (&b, 2, 8, 8, dt, NULL, FALSE);
      /* strided: phase-split ring (wide) and im2col (narrow) */
      GeConv2d c = ge_conv2d_params (24, 40, 3, 2, 0, NULL, NULL);
      c.pad_bottom = c.pad_right = 1;
      check_conv2d_16 (&c, 1, 21, 191, dt, NULL, FALSE);
      check_conv2d_16 (&c, 1, 16, 16, dt, NULL, FALSE);
      /* im2col: dilation, groups */
      GeConv2d d = ge_conv2d_params (12, 18, 3, 1, 2, NULL, NULL);
      d.dil_h = d.dil_w = 2;
      check_conv2d_16 (&d, 1, 11, 40, dt, NULL, FALSE);
      GeConv2d e = ge_conv2d_params (12, 18, 3, 1, 1, NULL, NULL);
      e.groups = 3;
      check_conv2d_16 (&e, 2, 9, 35, dt, NULL, FALSE);
      /* rows x K over the per-thread cap: more channel splits */
      GeConv2d f = ge_conv2d_params (320, 104, 3, 1, 1, NULL, NULL);
      check_conv2d_16 (&f, 1, 6, 40, dt, NULL, FALSE);
      /* group norm + SiLU applied on the fly (ring), and with upsampling */
      float *scale = randn (2 * 40), *shift = randn (2 * 40);
      GeConvInput in = { scale, shift, GE_ACT_SILU, 1 };
      check_conv2d_16 (&a, 2, 13, 70, dt, &in, FALSE);
      in.upsample = 2;
      check_conv2d_16 (&a, 1, 5, 33, dt, &in, FALSE);
      g_free (scale);
      g_free (shift);
    }
  }
}

/* ---- bf16 ---------------------------------------------------------------- */

/* The test's own bf16 rounding, from the definition: the nearest number
 * with an 8-bit significand, ties to even (rint in the default rounding
 * mode), in double; denormal inputs flush to zero as vcvtne2ps2bf16 does. */
static float
bf16_round (float f)
{
  if (f == 0 || isinf (f) || isnan (f))
    return f;
  if (fabsf (f) < FLT_MIN)
    return copysignf (0.0f, f);
  int e;
  double m = frexp (f, &e);     /* |m| in [0.5, 1): 8 significant bits are m * 2^8 */
  return (float) ldexp (rint (ldexp (m, 8)), e - 8);
}

/* Conversion: ge_f32_to_bf16 and the vectorised ge_bf16_pairs against
 * bf16_round on random numbers of every magnitude and on the edge cases
 * (ties both ways, the largest finite numbers rounding to infinity,
 * denormals, infinities, NaNs). */
static void
test_bf16_convert (void)
{
  const int n = 4099;
  float *lo = g_new (float, n), *hi = g_new (float, n);
  guint32 *pairs = g_new (guint32, n);
  static const guint32 edge[] = { 0x3f808000, 0x3f818000, 0x3f80ffff, 0x3f807fff, 0x7f7fffff,
    0xff7fffff, 0x7f7f8000, 0x00000001, 0x807fffff, 0x00800000, 0x7f800000, 0xff800000,
    0x7fc00001, 0x7f800001, 0x80000000, 0x3f800000, 0x40490fdb, 0xc0490fdb
  };
  for (int i = 0; i < n; i++) {
    guint32 u = i < (int) G_N_ELEMENTS (edge) ? edge[i] : g_rand_int (rng);
    memcpy (&lo[i], &u, 4);
    hi[i] = (float) g_rand_double_range (rng, -1e3, 1e3);
  }
  for (int pass = 0; pass < 2; pass++) {
    ge_bf16_pairs (lo, pass ? NULL : hi, n, pairs);
    for (int i = 0; i < n; i++) {
      const float want[2] = { bf16_round (lo[i]), pass ? 0.0f : bf16_round (hi[i]) };
      const float got[2] = { ge_bf16_to_f32 (pairs[i] & 0xffff), ge_bf16_to_f32 (pairs[i] >> 16) };
      const guint16 scalar = ge_f32_to_bf16 (lo[i]);
      for (int e = 0; e < 2; e++) {
        const gboolean same = isnan (want[e]) ? isnan (got[e])
            : memcmp (&want[e], &got[e], 4) == 0;
        if (!same) {
          g_printerr ("bf16 of %.9g (0x%08x): got %.9g, want %.9g\n", e ? hi[i] : lo[i],
              *(guint32 *) (e ? &hi[i] : &lo[i]), got[e], want[e]);
          g_assert_not_reached ();
        }
      }
      g_assert_cmpuint (scalar, ==, pairs[i] & 0xffff);
    }
  }
  g_free (lo);
  g_free (hi);
  g_free (pairs);
}

/* Offsets of @k rows of B @ld words apart in a shuffled order, as the
 * convolutions' tap tables address them. */
static int *
shuffled_rows (int k, int ld)
{
  int *off = g_new (int, k);
  for (int p = 0; p < k; p++)
    off[p] = p * ld;
  for (int p = k - 1; p > 0; p--) {
    const int q = ri (0, p), t = off[p];
    off[p] = off[q];
    off[q] = t;
  }
  return off;
}

/* C as the word kernels' tests give it: 64-byte aligned (the streaming
 * stores need it), a copy of @c0's m x ldc floats. */
static float *
aligned_copy (const float *c0, int m, int ldc)
{
  float *c = g_aligned_alloc ((gsize) m * ldc, sizeof (float), 64);
  memcpy (c, c0, sizeof (float) * m * ldc);
  return c;
}

/* The kernel: C = bias + A B over pairs of K against a double twin on the
 * bf16 numbers it reads, K summed pair by pair in the kernel's order and
 * in the reverse one (a compiler that reassociates either shows).  Sums
 * are f32: the bound is the f32 accumulation bound (kp + 2) 2^-23 sum
 * |a b| per element; every element is checked, under the release build
 * CI runs.  Half the runs stream C (non-temporal stores), most of those
 * with rows a multiple of 16 floats apart, where they apply. */
static void
test_bf16_gemm (void)
{
  if (!ge_gemm_bf16_available ()) {
    g_test_skip ("no AVX512-BF16 on this CPU (or GE_NO_BF16 / GE_NO_AVX512 set)");
    return;
  }
  for (int it = 0; it < 40; it++) {
    const int m = ri (1, 29), n = ri (1, 100), kp = it < 4 ? ri (300, 700) : ri (1, 90);
    const gboolean acc = ri (0, 1), with_bias = ri (0, 1), stream = ri (0, 1);
    const int ldb = n + ri (0, 5), ldc = stream && ri (0, 3) ? (n + 15) / 16 * 16 : n + ri (0, 3);
    float *a = randn ((gsize) m * 2 * kp), *b = randn ((gsize) 2 * kp * n), *bias = randn (m);
    float *c0 = randn ((gsize) m * ldc), *c = aligned_copy (c0, m, ldc);
    guint32 *ap = g_new0 (guint32, ge_gemm_bf16_a_size (m, kp));
    guint32 *bp = g_new0 (guint32, (gsize) kp * ldb + 64);
    int *boff = shuffled_rows (kp, ldb);
    for (int i = 0; i < m; i++)
      for (int p = 0; p < kp; p++)
        ap[((gsize) (i / GE_MR) * kp + p) * GE_MR + i % GE_MR] =
            ge_bf16_pair (a[(gsize) i * 2 * kp + 2 * p], a[(gsize) i * 2 * kp + 2 * p + 1]);
    for (int p = 0; p < kp; p++)
      for (int j = 0; j < n; j++)
        bp[boff[p] + j] = ge_bf16_pair (b[(gsize) 2 * p * n + j], b[(gsize) (2 * p + 1) * n + j]);
    ge_gemm_bf16 (m, n, kp, ap, bp, boff, c, ldc, with_bias ? bias : NULL, acc, stream);
    for (int i = 0; i < m; i++)
      for (int j = 0; j < n; j++) {
        double fwd = 0, rev = 0, mag = 0;
        for (int k = 0; k < 2 * kp; k++) {
          const double v = (double) bf16_round (a[(gsize) i * 2 * kp + k])
              * bf16_round (b[(gsize) k * n + j]);
          fwd = fwd + v;
          mag += fabs (v);
        }
        for (int k = 2 * kp - 1; k >= 0; k--)
          rev = rev + (double) bf16_round (a[(gsize) i * 2 * kp + k])
              * bf16_round (b[(gsize) k * n + j]);
        const double base = (with_bias ? bias[i] : 0) + (acc ? c0[(gsize) i * ldc + j] : 0);
        const double got = c[(gsize) i * ldc + j];
        const double bound = (kp + 2) * 0x1p-23 * (mag + fabs (base)) + 1e-30;
        if (fabs (got - (base + fwd)) > bound || fabs (fwd - rev) > 1e-9 * (mag + 1)) {
          g_printerr ("bf16 gemm m%d n%d kp%d%s [%d,%d]: %.9g, twin %.9g (reverse %.9g), "
              "bound %.3g\n", m, n, kp, stream ? " stream" : "", i, j, got, base + fwd,
              base + rev, bound);
          g_assert_not_reached ();
        }
      }
    for (int i = 0; i < m; i++)     /* nothing past column n */
      for (int j = n; j < ldc; j++)
        g_assert_true (memcmp (&c[(gsize) i * ldc + j], &c0[(gsize) i * ldc + j], 4) == 0);
    g_free (a);
    g_free (b);
    g_free (bias);
    g_aligned_free (c);
    g_free (c0);
    g_free (ap);
    g_free (bp);
    g_free (boff);
  }
}

/* The int8 kernel against an exact twin: the quads' products summed as
 * integers (exact in the kernel too), then C = fma (sum, scale, offset (+ C
 * where accumulating)) + res in f32, as the kernel's epilogue rounds it:
 * bit for bit for one K slice.  Past one slice (KC = 256 quads) the
 * slices' sums are scaled one by one: within 4 ulps of sum |a b| scale.
 * Half the runs stream C, as test_bf16_gemm's. */
static void
test_int8_gemm (void)
{
  if (!ge_gemm_int8_available ()) {
    g_test_skip ("no AVX512-VNNI on this CPU (or GE_NO_INT8 / GE_NO_AVX512 set)");
    return;
  }
  for (int it = 0; it < 60; it++) {
    const int m = ri (1, 29), n = ri (1, 100), kq = it < 4 ? ri (300, 600) : ri (1, 250);
    const gboolean acc = ri (0, 1), with_offset = ri (0, 1), with_res = ri (0, 1);
    const gboolean stream = ri (0, 1);
    const int ldb = n + ri (0, 5), ldc = stream && ri (0, 3) ? (n + 15) / 16 * 16 : n + ri (0, 3);
    gint8 *a = g_new (gint8, (gsize) m * 4 * kq);
    guint8 *b = g_new (guint8, (gsize) 4 * kq * n);
    for (gsize i = 0; i < (gsize) m * 4 * kq; i++)
      a[i] = (gint8) ri (-128, 127);
    for (gsize i = 0; i < (gsize) 4 * kq * n; i++)
      b[i] = (guint8) ri (0, 255);
    float *scale = randn (m), *offset = randn (m);
    float *c0 = randn ((gsize) m * ldc), *res = randn ((gsize) m * ldc);
    float *c = aligned_copy (c0, m, ldc);
    guint32 *ap = g_new0 (guint32, ge_gemm_bf16_a_size (m, kq));
    guint32 *bp = g_new0 (guint32, (gsize) kq * ldb + 64);
    int *boff = shuffled_rows (kq, ldb);
    for (int i = 0; i < m; i++)
      for (int q = 0; q < kq; q++) {
        guint32 w = 0;
        for (int e = 0; e < 4; e++)
          w |= (guint32) (guint8) a[(gsize) i * 4 * kq + 4 * q + e] << (8 * e);
        ap[((gsize) (i / GE_MR) * kq + q) * GE_MR + i % GE_MR] = w;
      }
    for (int q = 0; q < kq; q++)
      for (int j = 0; j < n; j++) {
        guint32 w = 0;
        for (int e = 0; e < 4; e++)
          w |= (guint32) b[(gsize) (4 * q + e) * n + j] << (8 * e);
        bp[boff[q] + j] = w;
      }
    ge_gemm_int8 (m, n, kq, ap, bp, boff, c, ldc, scale, with_offset ? offset : NULL, acc,
        with_res ? res : NULL, stream);
    for (int i = 0; i < m; i++)
      for (int j = 0; j < n; j++) {
        gint64 sum = 0, abs_sum = 0;
        for (int k = 0; k < 4 * kq; k++) {
          const gint64 v = (gint64) a[(gsize) i * 4 * kq + k] * b[(gsize) k * n + j];
          sum += v;
          abs_sum += ABS (v);
        }
        const gsize at = (gsize) i * ldc + j;
        float o = with_offset ? offset[i] : 0.0f;
        if (acc)
          o = o + c0[at];
        float want = fmaf ((float) sum, scale[i], o);
        if (with_res)
          want = res[at] + want;
        const float got = c[at];
        const gboolean exact = kq <= 256;
        const double mag = (double) abs_sum * fabs (scale[i]) + fabs (o)
            + (with_res ? fabs (res[at]) : 0);
        if (exact ? memcmp (&got, &want, 4) != 0 : fabs (got - want) > 4 * 0x1p-23 * mag) {
          g_printerr ("int8 gemm m%d n%d kq%d%s%s%s%s [%d,%d]: %.9g, twin %.9g\n", m, n, kq,
              acc ? " acc" : "", with_offset ? " offset" : "", with_res ? " res" : "",
              stream ? " stream" : "", i, j, got, want);
          g_assert_not_reached ();
        }
      }
    for (int i = 0; i < m; i++)     /* nothing past column n */
      for (int j = n; j < ldc; j++)
        g_assert_true (memcmp (&c[(gsize) i * ldc + j], &c0[(gsize) i * ldc + j], 4) == 0);
    g_free (a);
    g_free (b);
    g_free (scale);
    g_free (offset);
    g_free (c0);
    g_free (res);
    g_aligned_free (c);
    g_free (ap);
    g_free (bp);
    g_free (boff);
  }
}

/* A bf16 conv against two twins in double: on the bf16-rounded input and
 * weights (exact where the conv's input is x itself or upsampled: the
 * rounding is then the same number; only f32 accumulation differs, bound
 * (K + 4) 2^-23 sum |x w| per element), and on the f32 numbers, within the
 * bf16 bound: each input and weight off by at most 2^-8 relative (8
 * significant bits, round to nearest), so each product by 2^-7 + 2^-16,
 * plus the f32 one, and 2e-4 for the input transform (the bf16 path's
 * SiLU is good to 1e-4 relative: its result is rounded to 8 bits next).
 * Every output element has its own bound from its sum |x w|.
 * @wdtype: the weights as F32 (packed for the bf16 kernel when @packed)
 * or as 16-bit numbers. */
static void
check_conv2d_bf16 (GeConv2d * p, int n, int h, int w, const GeConvInput * in,
    gboolean accumulate, GeDType wdtype, gboolean packed)
{
  int oh, ow;
  if (accumulate)
    in = NULL;                  /* ge_conv2d_accumulate takes none */
  const int up = in && in->upsample > 1 ? in->upsample : 1;
  ge_conv2d_out_size (p, h * up, w * up, &oh, &ow);
  if (oh <= 0 || ow <= 0)
    return;
  const int cin = p->in_channels, cout = p->out_channels, T = p->kh * p->kw;
  const gsize wn = (gsize) cout * cin * T;
  guint8 *raw = NULL;
  float *wq, *b = randn (cout);
  const void *w16 = NULL;
  if (wdtype == GE_DTYPE_F32)
    wq = randn (wn);
  else
    w16 = rand16 (wn, wdtype, &raw, &wq);
  GeConv2d q = *p;
  q.weight = w16 ? NULL : wq;
  q.weight16 = w16;
  q.dtype16 = wdtype;
  q.bias = ri (0, 1) ? b : NULL;
  q.packed = NULL;
  q.packed_bf16 = NULL;
  guint32 *pk = NULL;
  if (packed && ge_conv2d_packed_bf16_size (&q)) {
    pk = g_new (guint32, ge_conv2d_packed_bf16_size (&q));
    ge_conv2d_pack_bf16 (&q, pk);
  }
  GeTensor x = { randn ((gsize) n * cin * h * w), n, cin, h, w };
  /* the conv's real input, materialised in f32 as the engine computes it */
  GeTensor xm = { g_new (float, (gsize) n * cin * h * up * w * up), n, cin, h * up, w * up };
  for (int bc = 0; bc < n * cin; bc++)
    for (int yy = 0; yy < h * up; yy++)
      for (int xx = 0; xx < w * up; xx++) {
        double v = x.data[((gsize) bc * h + yy / up) * w + xx / up];
        if (in)
          v = act_ref (v * (in->scale ? in->scale[bc] : 1) + (in->shift ? in->shift[bc] : 0),
              in->act, 0);
        xm.data[((gsize) bc * h * up + yy) * w * up + xx] = (float) v;
      }
  const gboolean exact_input = !in || (!in->scale && !in->shift && in->act == GE_ACT_NONE);
  const gsize ny = (gsize) n * cout * oh * ow;
  GeTensor y = { randn (ny), n, cout, oh, ow };
  float *y0 = g_memdup2 (y.data, sizeof (float) * ny);
  ctx.precision = GE_PRECISION_BF16;
  if (accumulate)
    ge_conv2d_accumulate (&ctx, &q, &x, &y);
  else
    ge_conv2d_ex (&ctx, &q, &x, in, &y);
  ctx.precision = GE_PRECISION_F32;
  char *what = g_strdup_printf ("bf16 conv2d n%d %dx%d %d->%d k%dx%d s%d p%d,%d,%d,%d up%d%s%s w%s%s",
      n, h, w, cin, cout, p->kh, p->kw, p->stride_h, p->pad_top, p->pad_left, p->pad_bottom,
      p->pad_right, up, in && in->act ? " silu" : "", accumulate ? " accumulate" : "",
      wdtype == GE_DTYPE_F32 ? "f32" : wdtype == GE_DTYPE_F16 ? "f16" : "bf16",
      pk ? " packed" : "");
  double se = 0, sr = 0;
  for (int nn = 0; nn < n; nn++)
    for (int co = 0; co < cout; co++)
      for (int oy = 0; oy < oh; oy++)
        for (int ox = 0; ox < ow; ox++) {
          double s = 0, sq = 0, mag = 0;
          for (int ci = 0; ci < cin; ci++)
            for (int ky = 0; ky < p->kh; ky++)
              for (int kx = 0; kx < p->kw; kx++) {
                const int iy = oy * p->stride_h - p->pad_top + ky, ix = ox * p->stride_w - p->pad_left + kx;
                if (iy < 0 || iy >= h * up || ix < 0 || ix >= w * up)
                  continue;
                const float xv = xm.data[(((gsize) nn * cin + ci) * h * up + iy) * w * up + ix];
                const float wv = wq[((gsize) co * cin + ci) * T + ky * p->kw + kx];
                s += (double) xv * wv;
                sq += (double) bf16_round (xv) * bf16_round (wv);
                mag += fabs ((double) xv * wv);
              }
          const gsize i = (((gsize) nn * cout + co) * oh + oy) * ow + ox;
          const double base = (q.bias ? q.bias[co] : 0) + (accumulate ? y0[i] : 0);
          const double acc_bound = (cin * T + 4) * 0x1p-23 * (mag + fabs (base)) + 1e-30;
          const double got = y.data[i];
          g_assert_false (isnan (got));
          gboolean bad = fabs (got - (base + s)) > (0x1p-7 + 0x1p-16 + 2e-4) * mag + acc_bound;
          if (exact_input && ge_gemm_bf16_available ())
            bad |= fabs (got - (base + sq)) > acc_bound;
          if (bad) {
            g_printerr ("%s: [%d,%d,%d,%d] %.9g, twin %.9g, on bf16 numbers %.9g, sum |xw| %.3g\n",
                what, nn, co, oy, ox, got, base + s, base + sq, mag);
            g_assert_not_reached ();
          }
          se += (got - (base + s)) * (got - (base + s));
          sr += (base + s) * (base + s);
        }
  if (ge_gemm_bf16_available ()) {
    /* the bf16 path did run: errors of bf16's size (NMSE ~ 1e-6), not f32's
     * (where any output is not 0: a strided conv's taps can all fall in
     * the padding) */
    if (ny * cin * T > 5000 && sr > 0)
      g_assert_cmpfloat (se, >, 1e-10 * sr);
  } else {
    /* the fallback: bitwise the f32 path */
    GeTensor yf = { g_memdup2 (y0, sizeof (float) * ny), n, cout, oh, ow };
    if (accumulate)
      ge_conv2d_accumulate (&ctx, &q, &x, &yf);
    else
      ge_conv2d_ex (&ctx, &q, &x, in, &yf);
    g_assert_true (memcmp (yf.data, y.data, sizeof (float) * ny) == 0);
    g_free (yf.data);
  }
  g_free (what);
  g_free (pk);
  g_free (raw);
  g_free (wq);
  g_free (b);
  g_free (x.data);
  g_free (xm.data);
  g_free (y.data);
  g_free (y0);
}

/* The 8-bit-weight matrix-vector product against two twins: an exact one
 * (the weights and the vector quantized by gemv.h's rules, products summed
 * as 64-bit integers per 256-column block), within 4 ulps of the sum of
 * |products|; and the f32 product, within the two roundings (half a step
 * of each weight and of each input) of it. */
static void
test_int8_gemv (void)
{
  if (!ge_gemv_i8_available ()) {
    g_test_skip ("no AVX512-VNNI on this CPU (or GE_NO_INT8 / GE_NO_AVX512 set)");
    return;
  }
  for (int it = 0; it < 80; it++) {
    const int rows = it < 3 ? 16 * ri (1, 4) : ri (1, 70), cols = ri (1, it < 40 ? 40 : 800);
    const int ld = cols + ri (0, 3);
    float *w = randn ((gsize) rows * ld), *x = randn (cols), *y0 = randn (rows);
    if (it % 7 == 3)            /* a zero row: scale 0, its y unchanged */
      memset (w, 0, sizeof (float) * cols);
    if (it % 11 == 5)           /* a zero vector: y unchanged */
      memset (x, 0, sizeof (float) * cols);
    for (int c = 0; c < cols; c++)      /* magnitudes across decades */
      x[c] *= (float) pow (10.0, ri (-2, 1));
    GeGemvI8 *a = ge_gemv_i8_new (w, rows, cols, ld);
    g_assert_nonnull (a);
    float *y = g_memdup2 (y0, sizeof (float) * rows);
    void *scratch = g_malloc (ge_gemv_i8_scratch_size (a));
    ge_gemv_i8 (a, x, y, scratch);

    float xmax = 0.0f;
    for (int c = 0; c < cols; c++)
      xmax = MAX (xmax, fabsf (x[c]));
    const float sx = xmax / 32767.0f;
    for (int r = 0; r < rows; r++) {
      const float *row = w + (gsize) r * ld;
      float wmax = 0.0f;
      for (int c = 0; c < cols; c++)
        wmax = MAX (wmax, fabsf (row[c]));
      const float sw = wmax / 127.0f;
      g_assert_cmpfloat (ge_gemv_i8_row_scale (a, r), ==, sw);
      double blocks = 0.0, mag = 0.0, f32 = 0.0, quant = 0.0;
      for (int c0 = 0; c0 < cols; c0 += GE_GEMV_I8_BLOCK) {
        gint64 sum = 0;
        for (int c = c0; c < MIN (cols, c0 + GE_GEMV_I8_BLOCK); c++) {
          const gint64 qw = wmax > 0 ? lrintf (row[c] * (127.0f / wmax)) : 0;
          const gint64 qx = xmax > 0 ? lrintf (x[c] * (32767.0f / xmax)) : 0;
          sum += qw * qx;
          mag += (double) ABS (qw * qx);
          f32 += (double) row[c] * x[c];
          quant += fabs (row[c]) * sx / 2 + fabs (x[c]) * sw / 2 + (double) sw * sx / 4;
        }
        blocks += (float) sum;
      }
      const double want = y0[r] + (double) (sw * sx) * blocks;
      const double bound = 4 * 0x1p-23 * ((double) (sw * sx) * mag + fabs (y0[r])) + 1e-30;
      if (fabs (y[r] - want) > bound || fabs (y[r] - (y0[r] + f32)) > quant + bound) {
        g_printerr ("int8 gemv %dx%d row %d: %.9g, exact twin %.9g (bound %.3g), f32 %.9g "
            "(bound %.3g)\n", rows, cols, r, y[r], want, bound, y0[r] + f32, quant + bound);
        g_assert_not_reached ();
      }
    }
    g_free (w), g_free (x), g_free (y0), g_free (y);
    g_free (scratch);
    ge_gemv_i8_free (a);
  }
  const float bad[2] = { 1.0f, NAN };
  g_assert_null (ge_gemv_i8_new (bad, 1, 2, 2));
}

static void
test_conv2d_bf16 (void)
{
  for (int threads = 1; threads <= 3; threads += 2) {
    set_threads (threads);
    /* random shapes: ring (wide rows), copy mode (narrow rows, upsampling),
     * strides 1-3, odd channel counts (a zero partner channel) */
    for (int it = 0; it < 40; it++) {
      const int s = ri (1, 3);
      GeConv2d p = {
        .in_channels = ri (1, 11), .out_channels = ri (1, 19), .kh = ri (1, 4), .kw = ri (1, 4),
        .stride_h = s, .stride_w = s, .pad_top = ri (0, 2), .pad_left = ri (0, 2),
        .pad_bottom = ri (0, 2), .pad_right = ri (0, 2), .dil_h = 1, .dil_w = 1, .groups = 1,
      };
      const int n = ri (1, 2), h = ri (1, 15), w = it % 2 ? ri (60, 140) : ri (1, 40);
      float *scale = randn ((gsize) n * p.in_channels), *shift = randn ((gsize) n * p.in_channels);
      GeConvInput in = { it % 3 ? scale : NULL, it % 3 ? shift : NULL,
        it % 3 == 1 ? GE_ACT_SILU : GE_ACT_NONE, it % 4 == 3 ? 2 : 1 };
      check_conv2d_bf16 (&p, n, h, w, it % 5 ? &in : NULL, it % 7 == 3,
          it % 6 == 5 ? GE_DTYPE_BF16 : it % 6 == 4 ? GE_DTYPE_F16 : GE_DTYPE_F32, it % 2);
      g_free (scale);
      g_free (shift);
    }
    /* the models' shapes: several bands and channel splits, K over one
     * slice (kp > 256), 1x1, the downsamplers, narrow rows */
    GeConv2d a = ge_conv2d_params (64, 48, 3, 1, 1, NULL, NULL);
    check_conv2d_bf16 (&a, 1, 21, 67, NULL, FALSE, GE_DTYPE_F32, TRUE);
    check_conv2d_bf16 (&a, 1, 21, 67, NULL, TRUE, GE_DTYPE_F32, FALSE);
    GeConv2d b = ge_conv2d_params (96, 40, 1, 1, 0, NULL, NULL);
    check_conv2d_bf16 (&b, 2, 12, 37, NULL, FALSE, GE_DTYPE_F32, TRUE);
    check_conv2d_bf16 (&b, 1, 8, 8, NULL, TRUE, GE_DTYPE_F32, TRUE);
    GeConv2d c = ge_conv2d_params (24, 40, 3, 2, 0, NULL, NULL);
    c.pad_bottom = c.pad_right = 1;
    check_conv2d_bf16 (&c, 2, 25, 191, NULL, FALSE, GE_DTYPE_F32, TRUE);
    check_conv2d_bf16 (&c, 1, 16, 16, NULL, FALSE, GE_DTYPE_F32, TRUE);
    GeConv2d d = ge_conv2d_params (200, 24, 3, 1, 1, NULL, NULL);
    check_conv2d_bf16 (&d, 1, 6, 40, NULL, FALSE, GE_DTYPE_BF16, FALSE);
    check_conv2d_bf16 (&d, 1, 4, 4, NULL, FALSE, GE_DTYPE_F32, TRUE);
    float *scale = randn (2 * 33), *shift = randn (2 * 33);
    GeConvInput in = { scale, shift, GE_ACT_SILU, 1 };
    GeConv2d e = ge_conv2d_params (33, 16, 3, 1, 1, NULL, NULL);
    check_conv2d_bf16 (&e, 2, 19, 130, &in, FALSE, GE_DTYPE_F32, TRUE);
    /* narrow rows (img2img's 40x23 level): the copy mode's one pass */
    check_conv2d_bf16 (&e, 2, 23, 40, &in, FALSE, GE_DTYPE_F16, FALSE);
    in.upsample = 2;
    check_conv2d_bf16 (&e, 1, 5, 33, &in, FALSE, GE_DTYPE_F16, FALSE);
    g_free (scale);
    g_free (shift);
  }
}

/* ---- int8 ---- */

static GPtrArray *int8_allocs;

static float *
int8_alloc (gpointer owner, gsize n_floats)
{
  float *p = g_new0 (float, n_floats);
  g_ptr_array_add (int8_allocs, p);
  return p;
}

static double
silu_d (double v)
{
  return v / (1.0 + exp (-v));
}

/* An int8 conv (GE_PRECISION_INT8, p.int8) against twins in double, from
 * the quantization conv2d.c defines (written out here from its comment,
 * not from its code):
 *   weights  sw = max |w| / 127 per output channel, q = rint (w / sw);
 *   input    [lo, hi]: 0 and each channel's raw range through its affine
 *            and activation (SiLU's minimum where the interval holds its
 *            argmin), sx = (hi - lo) / 255 (f32), zp = rint (-lo / sx),
 *            u = clamp (rint (x * (1 / sx)) + zp, 0, 255) in f32;
 *   output   sw sx sum q (u - zp) + bias.
 * Without a transform the input is x itself, so u is the same number and
 * the output must match to f32 rounding; with one (the kernel's SiLU is
 * good to 1e-4) within half a step of each operand; and against the f32
 * numbers within the quantization's bound. */
/* @y = conv (@in (@x)) in int8: the same floats with the channels' ranges
 * given (GeConvInput.lo, hi, as the group norm's pass finds them; here
 * from a naive loop), and with a residual added (ge_conv2d_residual: the
 * float sum res + y, as ge_add makes it), in int8 and in f32. */
static void
check_int8_ranges_residual (const GeConv2d * q, const GeTensor * x, const GeConvInput * in,
    const GeTensor * y)
{
  const gsize plane = (gsize) x->h * x->w, ny = ge_tensor_numel (y);
  float *lo = g_new (float, x->n * x->c), *hi = g_new (float, x->n * x->c);
  for (int bc = 0; bc < x->n * x->c; bc++) {
    lo[bc] = hi[bc] = x->data[bc * plane];
    for (gsize i = 0; i < plane; i++) {
      lo[bc] = MIN (lo[bc], x->data[bc * plane + i]);
      hi[bc] = MAX (hi[bc], x->data[bc * plane + i]);
    }
  }
  GeConvInput ranged = in ? *in : (GeConvInput) { NULL, NULL, GE_ACT_NONE, 1 };
  ranged.lo = lo;
  ranged.hi = hi;
  GeTensor y2 = *y;
  y2.data = g_new (float, ny);
  ge_conv2d_ex (&ctx, q, x, &ranged, &y2);
  g_assert_cmpmem (y2.data, sizeof (float) * ny, y->data, sizeof (float) * ny);

  float *res = randn (ny), *want = g_new (float, ny);
  for (int f32 = 0; f32 < 2; f32++) {
    const GePrecision was = ctx.precision;
    GeTensor yf = *y;
    if (f32) {
      ctx.precision = GE_PRECISION_F32;
      yf.data = g_new (float, ny);
      ge_conv2d_ex (&ctx, q, x, in, &yf);
    }
    for (gsize i = 0; i < ny; i++)
      want[i] = res[i] + yf.data[i];
    ge_conv2d_residual (&ctx, q, x, in, res, &y2);
    g_assert_cmpmem (y2.data, sizeof (float) * ny, want, sizeof (float) * ny);
    if (f32)
      g_free (yf.data);
    ctx.precision = was;
  }
  g_free (res);
  g_free (want);
  g_free (y2.data);
  g_free (lo);
  g_free (hi);
}

static void
check_conv2d_int8 (GeConv2d * p, int n, int h, int w, const GeConvInput * in,
    gboolean accumulate)
{
  if (accumulate)
    in = NULL;
  int oh, ow;
  ge_conv2d_out_size (p, h, w, &oh, &ow);
  const int cin = p->in_channels, cout = p->out_channels, T = p->kh * p->kw;
  float *wt = randn ((gsize) cout * cin * T), *b = randn (cout);
  GeConvCache cache = { NULL, int8_alloc, NULL, NULL };
  GeConv2d q = *p;
  q.weight = wt;
  q.bias = ri (0, 1) ? b : NULL;
  q.packed = NULL;
  q.packed_bf16 = NULL;
  q.cache = &cache;
  q.int8 = TRUE;
  GeTensor x = { randn ((gsize) n * cin * h * w), n, cin, h, w };
  for (gsize i = 0; i < (gsize) n * cin * h * w; i++)
    x.data[i] *= 3.0f;          /* some inputs past SiLU's argmin */
  const gsize ny = (gsize) n * cout * oh * ow;
  GeTensor y = { randn (ny), n, cout, oh, ow };
  float *y0 = g_memdup2 (y.data, sizeof (float) * ny);
  ctx.precision = GE_PRECISION_INT8;
  if (accumulate)
    ge_conv2d_accumulate (&ctx, &q, &x, &y);
  else
    ge_conv2d_ex (&ctx, &q, &x, in, &y);
  if (!accumulate)
    check_int8_ranges_residual (&q, &x, in, &y);
  ctx.precision = GE_PRECISION_F32;

  /* the quantized numbers */
  double *xm = g_new (double, (gsize) n * cin * h * w);
  float lo = 0.0f, hi = 0.0f;
  for (int bc = 0; bc < n * cin; bc++) {
    const float *v = x.data + (gsize) bc * h * w;
    float mn = v[0], mx = v[0];
    for (int i = 0; i < h * w; i++) {
      mn = MIN (mn, v[i]);
      mx = MAX (mx, v[i]);
    }
    const float sc = in && in->scale ? in->scale[bc] : 1.0f, sh = in && in->shift ? in->shift[bc] : 0.0f;
    float a = mn * sc + sh, c = mx * sc + sh;
    if (a > c) {
      const float t = a;
      a = c;
      c = t;
    }
    if (in && in->act == GE_ACT_SILU) {
      const double am = -1.27846454;
      lo = MIN (lo, (float) (a < am && c > am ? silu_d (am) : MIN (silu_d (a), silu_d (c))));
      hi = MAX (hi, (float) MAX (silu_d (a), silu_d (c)));
    } else {
      lo = MIN (lo, a);
      hi = MAX (hi, c);
    }
    for (int i = 0; i < h * w; i++) {
      double t = (double) v[i] * sc + sh;
      xm[(gsize) bc * h * w + i] = in && in->act == GE_ACT_SILU ? silu_d (t) : t;
    }
  }
  const float sx = hi > lo ? (hi - lo) / 255.0f : 1.0f, inv = 1.0f / sx;
  const int zp = (int) CLAMP (rintf (-lo / sx), 0, 255);
  const gboolean exact_input = !in || (!in->scale && !in->shift && in->act == GE_ACT_NONE);
  double *sw = g_new (double, cout);
  for (int co = 0; co < cout; co++) {
    float amax = 0;
    for (int k = 0; k < cin * T; k++)
      amax = MAX (amax, fabsf (wt[(gsize) co * cin * T + k]));
    sw[co] = amax / 127.0f;
  }
  for (int nn = 0; nn < n; nn++)
    for (int co = 0; co < cout; co++)
      for (int oy = 0; oy < oh; oy++)
        for (int ox = 0; ox < ow; ox++) {
          double sq = 0, s32 = 0, bound = 0, mag = 0;
          for (int ci = 0; ci < cin; ci++)
            for (int ky = 0; ky < p->kh; ky++)
              for (int kx = 0; kx < p->kw; kx++) {
                const int iy = oy - p->pad_top + ky, ix = ox - p->pad_left + kx;
                if (iy < 0 || iy >= h || ix < 0 || ix >= w)
                  continue;
                const gsize xi = (((gsize) nn * cin + ci) * h + iy) * w + ix;
                const float wv = wt[((gsize) co * cin + ci) * T + ky * p->kw + kx];
                const double qw = sw[co] > 0 ? CLAMP (rint (wv / (float) sw[co]), -127, 127) : 0;
                const double xv = xm[xi];
                const double u = CLAMP (rintf ((float) xv * inv) + zp, 0, 255);
                sq += qw * (u - zp);
                s32 += (double) wv * xv;
                mag += fabs (qw * sw[co] * sx * (u - zp));
                /* |w - w~| <= sw / 2, |x - x~| <= sx / 2 (and 1e-4 |x| for
                 * the kernel's SiLU) */
                bound += fabs (wv) * (sx / 2 + 2e-4 * fabs (xv) + 1e-6) + fabs (xv) * sw[co] / 2
                    + sw[co] * sx / 4;
              }
          const gsize i = (((gsize) nn * cout + co) * oh + oy) * ow + ox;
          const double base = (q.bias ? q.bias[co] : 0) + (accumulate ? y0[i] : 0);
          const double got = y.data[i];
          const double ref = base + sw[co] * sx * sq;
          const double f32_err = 8 * 0x1p-24 * (mag + sw[co] * sx * zp * cin * T * 127 + fabs (base));
          gboolean bad = fabs (got - (base + s32)) > bound + f32_err;
          if (exact_input)
            bad |= fabs (got - ref) > f32_err;
          if (bad) {
            g_printerr ("int8 conv2d n%d %dx%d %d->%d k%d %s: [%d,%d,%d,%d] %.9g, on the int8 "
                "numbers %.9g, f32 twin %.9g (bound %.3g)\n", n, h, w, cin, cout, p->kh,
                in && in->act ? "silu" : "", nn, co, oy, ox, got, ref, base + s32, bound);
            g_assert_not_reached ();
          }
        }
  g_free (xm);
  g_free (sw);
  g_free (wt);
  g_free (b);
  g_free (x.data);
  g_free (y.data);
  g_free (y0);
}

static void
test_conv2d_int8 (void)
{
  if (!ge_gemm_int8_available ()) {
    g_test_skip ("no AVX512-VNNI: int8 runs as bf16 (the models tests check that)");
    return;
  }
  int8_allocs = g_ptr_array_new_with_free_func (g_free);
  for (int threads = 1; threads <= 3; threads += 2) {
    set_threads (threads);
    for (int it = 0; it < 16; it++) {
      const int k = it % 3 ? 3 : 1;
      GeConv2d p = ge_conv2d_params (ri (1, 13), ri (1, 19), k, 1, k / 2, NULL, NULL);
      /* rows wide enough for the ring (narrower ones run in bf16) */
      const int n = ri (1, 2), h = ri (1, 9), w = 32 * ri (1, 3) + (it % 2 ? 0 : ri (24, 31));
      float *scale = randn ((gsize) n * p.in_channels), *shift = randn ((gsize) n * p.in_channels);
      if (it % 4 == 3)          /* SiLU's inputs past +-88: its exp's clamp runs */
        for (int c = 0; c < n * p.in_channels; c++)
          scale[c] *= 40.0f;
      GeConvInput in = { scale, shift, it % 4 == 1 ? GE_ACT_NONE : GE_ACT_SILU, 1 };
      check_conv2d_int8 (&p, n, h, w, it % 4 == 0 ? NULL : &in, it % 5 == 2);
      g_free (scale);
      g_free (shift);
    }
    /* the SR U-Net's: 32 -> 32 over a 640-pixel row, 64 -> 32 1x1 */
    GeConv2d a = ge_conv2d_params (32, 32, 3, 1, 1, NULL, NULL);
    float *scale = randn (64), *shift = randn (64);
    GeConvInput in = { scale, shift, GE_ACT_SILU, 1 };
    check_conv2d_int8 (&a, 1, 5, 640, &in, FALSE);
    GeConv2d b = ge_conv2d_params (64, 32, 1, 1, 0, NULL, NULL);
    check_conv2d_int8 (&b, 1, 4, 200, NULL, FALSE);
    /* a NaN or an infinity has no range: carried on (by the bf16 path) as
     * f32 would, not quantized into finite numbers */
    for (int k = 0; k < 3; k++) {  /* NaN, +inf, -inf: both ends of SiLU */
      GeConvCache cache = { NULL, int8_alloc, NULL, NULL };
      float *wt = randn (32 * 32 * 9);
      GeConv2d c = ge_conv2d_params (32, 32, 3, 1, 1, wt, NULL);
      c.cache = &cache;
      c.int8 = TRUE;
      GeTensor x = { randn (32 * 4 * 64), 1, 32, 4, 64 }, y = { g_new (float, 32 * 4 * 64), 1, 32, 4, 64 };
      x.data[5 * 256 + 70] = k == 0 ? NAN : k == 1 ? INFINITY : -INFINITY;
      ctx.precision = GE_PRECISION_INT8;
      ge_conv2d_ex (&ctx, &c, &x, &in, &y);
      ctx.precision = GE_PRECISION_F32;
      int bad = 0;
      for (int i = 0; i < 32 * 4 * 64; i++)
        bad += !isfinite (y.data[i]);
      g_assert_cmpint (bad, >, 0);
      g_free (wt);
      g_free (x.data);
      g_free (y.data);
    }
    g_free (scale);
    g_free (shift);
  }
  g_ptr_array_unref (int8_allocs);
}

/* ge_conv2d_phase2x in bf16 against the naive conv on the bf16 numbers
 * (its input is x itself: the rounding is the same number). */
static void
test_conv2d_phase2x_bf16 (void)
{
  static const struct { int n, c, h, w; } shapes[] = {
    { 1, 16, 9, 64 }, { 2, 23, 5, 96 }, { 1, 40, 3, 32 }, { 2, 8, 7, 16 }, { 1, 12, 4, 5 },
  };
  for (int threads = 1; threads <= 3; threads += 2) {
    set_threads (threads);
    for (guint s = 0; s < G_N_ELEMENTS (shapes); s++) {
      const int n = shapes[s].n, c = shapes[s].c, h = shapes[s].h, w = shapes[s].w;
      GeConv2d ph[4];
      float *b = randn (c);
      guint32 *pk[4] = { NULL };
      GeTensor x = { randn ((gsize) n * c * h * w), n, c, h, w };
      GeTensor xq = { g_new (float, (gsize) n * c * h * w), n, c, h, w };
      for (gsize i = 0; i < (gsize) n * c * h * w; i++)
        xq.data[i] = bf16_round (x.data[i]);
      for (int i = 0; i < 4; i++) {
        ph[i] = ge_conv2d_params (c, c, 2, 1, 0, randn ((gsize) c * c * 4), b);
        ph[i].pad_top = 1 - i / 2;
        ph[i].pad_bottom = i / 2;
        ph[i].pad_left = 1 - i % 2;
        ph[i].pad_right = i % 2;
        if (ge_conv2d_packed_bf16_size (&ph[i])) {
          pk[i] = g_new (guint32, ge_conv2d_packed_bf16_size (&ph[i]));
          ge_conv2d_pack_bf16 (&ph[i], pk[i]);
        }
      }
      GeTensor y = { g_new (float, (gsize) n * c * 4 * h * w), n, c, 2 * h, 2 * w };
      const gsize ny = ge_tensor_numel (&y);
      double *ref = g_new (double, ny), *one = g_new (double, (gsize) n * c * h * w);
      for (int i = 0; i < 4; i++) {
        GeConv2d pq = ph[i];
        float *wq = g_new (float, (gsize) c * c * 4);
        for (gsize k = 0; k < (gsize) c * c * 4; k++)
          wq[k] = ge_gemm_bf16_available () ? bf16_round (ph[i].weight[k]) : ph[i].weight[k];
        pq.weight = wq;
        conv2d_naive (&pq, ge_gemm_bf16_available () ? &xq : &x, h, w, one);
        g_free (wq);
        for (gsize nc = 0; nc < (gsize) n * c; nc++)
          for (int yy = 0; yy < h; yy++)
            for (int xx = 0; xx < w; xx++)
              ref[(nc * 2 * h + 2 * yy + i / 2) * 2 * w + 2 * xx + i % 2] = one[(nc * h + yy) * w + xx];
      }
      memset (y.data, 0xff, sizeof (float) * ny);     /* NaNs */
      ctx.precision = GE_PRECISION_BF16;
      ge_conv2d_phase2x (&ctx, ph, &x, &y);
      ctx.precision = GE_PRECISION_F32;
      char *what = g_strdup_printf ("bf16 phase2x n%d c%d %dx%d", n, c, h, w);
      assert_close (what, y.data, ref, ny, 1e-5);
      g_free (what);
      for (int i = 0; i < 4; i++) {
        g_free ((float *) ph[i].weight);
        g_free (pk[i]);
      }
      g_free (b);
      g_free (x.data);
      g_free (xq.data);
      g_free (y.data);
      g_free (ref);
      g_free (one);
    }
  }
}

static void
test_conv1d (void)
{
  set_threads (3);
  for (int it = 0; it < 30; it++) {
    int groups = ri (0, 2) == 0 ? ri (2, 3) : 1;
    GeConv1d p = {
      .in_channels = groups * ri (1, 6), .out_channels = groups * ri (1, 6),
      .k = ri (1, 9), .stride = ri (1, 4), .pad_left = ri (0, 4), .pad_right = ri (0, 4),
      .dil = ri (1, 3), .groups = groups,
    };
    const int n = ri (1, 2), len = ri (1, 100);
    const int ol = ge_conv1d_out_len (&p, len);
    if (ol <= 0)
      continue;
    float *wt = randn ((gsize) p.out_channels * p.in_channels / groups * p.k);
    float *b = randn (p.out_channels);
    p.weight = wt;
    p.bias = b;
    GeTensor x = { randn ((gsize) n * p.in_channels * len), n, p.in_channels, 1, len };
    GeTensor y = { g_new (float, (gsize) n * p.out_channels * ol), n, p.out_channels, 1, ol };
    ge_conv1d (&ctx, &p, &x, &y);
    /* Twin: the 1-D definition, written out. */
    double *ref = g_new0 (double, ge_tensor_numel (&y));
    const int cin_g = p.in_channels / groups, cout_g = p.out_channels / groups;
    for (int bn = 0; bn < n; bn++)
      for (int co = 0; co < p.out_channels; co++)
        for (int o = 0; o < ol; o++) {
          double s = b[co];
          for (int ci = 0; ci < cin_g; ci++)
            for (int k = 0; k < p.k; k++) {
              int i = o * p.stride - p.pad_left + k * p.dil;
              if (i >= 0 && i < len)
                s += (double) x.data[((gsize) bn * p.in_channels + co / cout_g * cin_g + ci) * len + i]
                    * wt[((gsize) co * cin_g + ci) * p.k + k];
            }
          ref[((gsize) bn * p.out_channels + co) * ol + o] = s;
        }
    assert_close ("conv1d", y.data, ref, ge_tensor_numel (&y), 1e-5);
    g_free (wt);
    g_free (b);
    g_free (x.data);
    g_free (y.data);
    g_free (ref);
  }
}

static void
test_conv_transpose2d (void)
{
  for (int threads = 1; threads <= 3; threads += 2) {
    set_threads (threads);
    for (int it = 0; it < 40; it++) {
      int groups = ri (0, 2) == 0 ? ri (2, 3) : 1;
      GeConvTranspose2d p = {
        .in_channels = groups * ri (1, 6), .out_channels = groups * ri (1, 6),
        .kh = ri (1, 5), .kw = ri (1, 5), .stride_h = ri (1, 3), .stride_w = ri (1, 3),
        .pad_h = ri (0, 2), .pad_w = ri (0, 2), .dil_h = ri (1, 2), .dil_w = ri (1, 2),
        .groups = groups,
      };
      p.out_pad_h = ri (0, MAX (p.stride_h, p.dil_h) - 1);
      p.out_pad_w = ri (0, MAX (p.stride_w, p.dil_w) - 1);
      const int n = ri (1, 2), h = ri (1, 13), w = ri (1, 17);
      int oh, ow;
      ge_conv_transpose2d_out_size (&p, h, w, &oh, &ow);
      if (oh <= 0 || ow <= 0)
        continue;
      const int cin_g = p.in_channels / groups, cout_g = p.out_channels / groups;
      float *wt = randn ((gsize) p.in_channels * cout_g * p.kh * p.kw);
      float *b = randn (p.out_channels);
      p.weight = wt;
      p.bias = ri (0, 1) ? b : NULL;
      GeTensor x = { randn ((gsize) n * p.in_channels * h * w), n, p.in_channels, h, w };
      GeTensor y = { g_new (float, (gsize) n * p.out_channels * oh * ow), n, p.out_channels, oh, ow };
      ge_conv_transpose2d (&ctx, &p, &x, &y);
      double *ref = g_new0 (double, ge_tensor_numel (&y));
      for (int bn = 0; bn < n; bn++)
        for (int co = 0; co < p.out_channels; co++)
          for (gsize i = 0; i < (gsize) oh * ow; i++)
            ref[((gsize) bn * p.out_channels + co) * oh * ow + i] = p.bias ? p.bias[co] : 0;
      /* Twin: every input pixel scatters its weighted kernel (PyTorch's definition). */
      for (int bn = 0; bn < n; bn++)
        for (int ci = 0; ci < p.in_channels; ci++) {
          const int g = ci / cin_g;
          for (int iy = 0; iy < h; iy++)
            for (int ix = 0; ix < w; ix++) {
              double xv = x.data[(((gsize) bn * p.in_channels + ci) * h + iy) * w + ix];
              for (int c = 0; c < cout_g; c++)
                for (int ky = 0; ky < p.kh; ky++)
                  for (int kx = 0; kx < p.kw; kx++) {
                    int oy = iy * p.stride_h - p.pad_h + ky * p.dil_h;
                    int ox = ix * p.stride_w - p.pad_w + kx * p.dil_w;
                    if (oy < 0 || oy >= oh || ox < 0 || ox >= ow)
                      continue;
                    ref[(((gsize) bn * p.out_channels + g * cout_g + c) * oh + oy) * ow + ox] +=
                        xv * wt[(((gsize) ci * cout_g + c) * p.kh + ky) * p.kw + kx];
                  }
            }
        }
      assert_close ("conv_transpose2d", y.data, ref, ge_tensor_numel (&y), 1e-5);
      g_free (wt);
      g_free (b);
      g_free (x.data);
      g_free (y.data);
      g_free (ref);
    }
  }
}

/* ---- dense, norms, activations ----------------------------------------- */

static void
test_linear (void)
{
  for (int it = 0; it < 20; it++) {
    int rows = ri (1, 5), in = ri (1, 70), out = ri (1, 70);
    float *x = randn ((gsize) rows * in), *w = randn ((gsize) out * in), *b = randn (out);
    float *y = g_new (float, (gsize) rows * out);
    double *ref = g_new (double, (gsize) rows * out);
    ge_linear (&ctx, x, rows, in, w, b, out, y);
    for (int r = 0; r < rows; r++)
      for (int o = 0; o < out; o++) {
        double s = b[o];
        for (int i = 0; i < in; i++)
          s += (double) x[r * in + i] * w[o * in + i];
        ref[r * out + o] = s;
      }
    assert_close ("linear", y, ref, (gsize) rows * out, 1e-5);
    g_free (x);
    g_free (w);
    g_free (b);
    g_free (y);
    g_free (ref);
  }
}

/* ge_linear_ex with 16-bit W against the naive twin on the converted W,
 * bitwise against ge_linear_ex on the converted W as F32, and against
 * ge_linear (OpenBLAS) on it: those two sum in different orders, so they
 * agree to rounding (~1e-6 of the largest output), not bitwise. */
static void
test_linear_16bit (void)
{
  static const struct { int rows, in, out; } shapes[] = {
    { 1, 320, 1280 }, { 2, 37, 70 }, { 3, 600, 45 }, { 300, 64, 96 }, { 517, 300, 33 },
  };
  for (int threads = 1; threads <= 3; threads += 2) {
    set_threads (threads);
    for (GeDType dt = GE_DTYPE_F16; dt <= GE_DTYPE_BF16; dt++)
      for (guint s = 0; s < G_N_ELEMENTS (shapes); s++) {
        const int rows = shapes[s].rows, in = shapes[s].in, out = shapes[s].out;
        guint8 *raw;
        float *wq;
        const void *w16 = rand16 ((gsize) out * in, dt, &raw, &wq);
        float *x = randn ((gsize) rows * in), *b = s % 2 ? NULL : randn (out);
        float *y = g_new (float, (gsize) rows * out), *yb = g_new (float, (gsize) rows * out);
        double *ref = g_new (double, (gsize) rows * out);
        ge_linear_ex (&ctx, x, rows, in, w16, dt, b, out, y);
        ge_linear (&ctx, x, rows, in, wq, b, out, yb);
        for (int r = 0; r < rows; r++)
          for (int o = 0; o < out; o++) {
            double acc = b ? b[o] : 0;
            for (int i = 0; i < in; i++)
              acc += (double) x[(gsize) r * in + i] * wq[(gsize) o * in + i];
            ref[(gsize) r * out + o] = acc;
          }
        char *what = g_strdup_printf ("%s linear %d x %d -> %d", dt == GE_DTYPE_F16 ? "f16" : "bf16",
            rows, in, out);
        assert_close (what, y, ref, (gsize) rows * out, 1e-5);
        double *dyb = g_new (double, (gsize) rows * out);
        for (gsize i = 0; i < (gsize) rows * out; i++)
          dyb[i] = yb[i];
        assert_close (what, y, dyb, (gsize) rows * out, 2e-6);
        /* F32 W through ge_linear_ex: the same kernel, the same bits
         * (OpenBLAS blocks the 16-bit W's columns, so only close there) */
        ge_linear_ex (&ctx, x, rows, in, wq, GE_DTYPE_F32, b, out, yb);
        if (ge_gemm_packed_available ())
          g_assert_cmpmem (y, sizeof (float) * rows * out, yb, sizeof (float) * rows * out);
        g_free (dyb);
        g_free (what);
        g_free (raw);
        g_free (wq);
        g_free (x);
        g_free (b);
        g_free (y);
        g_free (yb);
        g_free (ref);
      }
  }
}

static void
test_activations (void)
{
  set_threads (3);
  const gsize n = 50000;        /* several chunks */
  for (int a = GE_ACT_NONE; a <= GE_ACT_SIGMOID; a++) {
    float *x = randn (n);
    double *ref = g_new (double, n);
    for (gsize i = 0; i < n; i++) {
      x[i] *= 8;                /* cover the saturating ranges */
      ref[i] = act_ref (x[i], a, 0.2);
    }
    ge_act (&ctx, x, n, a, 0.2f);
    assert_close ("activation", x, ref, n, 1e-6);
    g_free (x);
    g_free (ref);
  }
}

static void
test_group_norm (void)
{
  for (int threads = 1; threads <= 3; threads += 2) {
    set_threads (threads);
    for (int it = 0; it < 20; it++) {
      int groups = ri (1, 4), c = groups * ri (1, 5), n = ri (1, 2), h = ri (1, 19), w = ri (1, 21);
      GeAct act = ri (0, 1) ? GE_ACT_SILU : GE_ACT_NONE;
      GeTensor x = { randn ((gsize) n * c * h * w), n, c, h, w };
      for (gsize i = 0; i < ge_tensor_numel (&x); i++)
        x.data[i] = x.data[i] * 3 + 5;    /* an offset makes naive variance lose digits */
      float *g = randn (c), *b = randn (c);
      GeTensor y = { g_new (float, ge_tensor_numel (&x)), n, c, h, w };
      double *ref = g_new (double, ge_tensor_numel (&x));
      ge_group_norm (&ctx, &x, &y, groups, 1e-5f, g, b, act);
      /* The affine form must describe the same normalisation. */
      float *sc = g_new (float, n * c), *sh = g_new (float, n * c);
      const gsize plane = (gsize) h * w;
      ge_group_norm_affine (&ctx, &x, groups, 1e-5f, g, b, sc, sh, NULL, NULL);
      /* With the channels' ranges: the same affine to the bit, and the
       * ranges of a naive loop, a NaN making its channel's NaN (planes of
       * any width: vectors straddle channels). */
      const int nan_at = it % 3 == 0 ? ri (0, (int) ge_tensor_numel (&x) - 1) : -1;
      float *sc2 = g_new (float, n * c), *sh2 = g_new (float, n * c);
      float *lo = g_new (float, n * c), *hi = g_new (float, n * c);
      GeTensor xn = { g_memdup2 (x.data, sizeof (float) * ge_tensor_numel (&x)), n, c, h, w };
      for (gsize i = 0; i < ge_tensor_numel (&x); i++)
        xn.data[i] += 100.0f * (float) (i / plane);     /* a value in the wrong channel shows */
      if (nan_at >= 0)
        xn.data[nan_at] = NAN;
      ge_group_norm_affine (&ctx, &x, groups, 1e-5f, g, b, sc2, sh2, lo, hi);
      g_assert_cmpmem (sc, sizeof (float) * n * c, sc2, sizeof (float) * n * c);
      g_assert_cmpmem (sh, sizeof (float) * n * c, sh2, sizeof (float) * n * c);
      ge_group_norm_affine (&ctx, &xn, groups, 1e-5f, g, b, sc2, sh2, lo, hi);
      for (int bc = 0; bc < n * c; bc++) {
        const float *p = xn.data + (gsize) bc * h * w;
        float mn = INFINITY, mx = -INFINITY;
        gboolean has_nan = FALSE;
        for (int i = 0; i < h * w; i++) {
          has_nan |= isnan (p[i]);
          mn = MIN (mn, p[i]);
          mx = MAX (mx, p[i]);
        }
        if (has_nan)
          g_assert_true (isnan (lo[bc]) && isnan (hi[bc]));
        else {
          g_assert_cmpfloat (lo[bc], ==, mn);
          g_assert_cmpfloat (hi[bc], ==, mx);
        }
      }
      g_free (xn.data);
      g_free (sc2);
      g_free (sh2);
      g_free (lo);
      g_free (hi);
      const int cg = c / groups;
      for (int bn = 0; bn < n; bn++)
        for (int gr = 0; gr < groups; gr++) {
          const float *xs = x.data + ((gsize) bn * c + gr * cg) * plane;
          double m = 0, v = 0;
          for (gsize i = 0; i < cg * plane; i++)
            m += xs[i];
          m /= cg * plane;
          for (gsize i = 0; i < cg * plane; i++)
            v += (xs[i] - m) * (xs[i] - m);
          v /= cg * plane;
          for (int cc = 0; cc < cg; cc++)
            for (gsize i = 0; i < plane; i++) {
              int ch = gr * cg + cc;
              double r = (xs[cc * plane + i] - m) / sqrt (v + 1e-5) * g[ch] + b[ch];
              ref[((gsize) bn * c + ch) * plane + i] = act_ref (r, act, 0);
            }
        }
      assert_close ("group_norm", y.data, ref, ge_tensor_numel (&x), 1e-5);
      if (act == GE_ACT_NONE) {
        for (int bc = 0; bc < n * c; bc++)
          for (gsize i = 0; i < plane; i++)
            y.data[bc * plane + i] = x.data[bc * plane + i] * sc[bc] + sh[bc];
        assert_close ("group_norm_affine", y.data, ref, ge_tensor_numel (&x), 1e-5);
      }
      g_free (sc);
      g_free (sh);
      g_free (x.data);
      g_free (y.data);
      g_free (ref);
      g_free (g);
      g_free (b);
    }
  }
}

static void
test_layer_norm (void)
{
  int rows = 7, dim = 33;
  float *x = randn (rows * dim), *g = randn (dim), *b = randn (dim), *y = g_new (float, rows * dim);
  double *ref = g_new (double, rows * dim);
  ge_layer_norm (&ctx, x, y, rows, dim, 1e-5f, g, b);
  for (int r = 0; r < rows; r++) {
    double m = 0, v = 0;
    for (int i = 0; i < dim; i++)
      m += x[r * dim + i] / (double) dim;
    for (int i = 0; i < dim; i++)
      v += (x[r * dim + i] - m) * (x[r * dim + i] - m) / dim;
    for (int i = 0; i < dim; i++)
      ref[r * dim + i] = (x[r * dim + i] - m) / sqrt (v + 1e-5) * g[i] + b[i];
  }
  assert_close ("layer_norm", y, ref, rows * dim, 1e-5);
  g_free (x);
  g_free (g);
  g_free (b);
  g_free (y);
  g_free (ref);
}

/* Channel-major tokens: the features of token (n, p) are x[n, :, p]. */
static void
test_layer_norm_channels (void)
{
  for (int threads = 1; threads <= 3; threads += 2) {
    set_threads (threads);
    for (int it = 0; it < 6; it++) {
      const int n = ri (1, 3), c = it == 0 ? 1280 : ri (1, 70), h = ri (1, 13), w = ri (1, 11);
      GeTensor x = { randn ((gsize) n * c * h * w), n, c, h, w };
      const gsize numel = ge_tensor_numel (&x), plane = (gsize) h * w;
      /* An offset much larger than the spread: the mean must not eat the
       * digits of the variance. */
      for (gsize i = 0; i < numel; i++)
        x.data[i] += it % 2 ? 30.0f : 0.0f;
      float *g = it == 1 ? NULL : randn (c), *b = it == 1 ? NULL : randn (c);
      GeTensor y = { g_new (float, numel), n, c, h, w };
      double *ref = g_new (double, numel);
      for (int s = 0; s < n; s++)
        for (gsize p = 0; p < plane; p++) {
          const float *xp = x.data + (gsize) s * c * plane + p;
          double m = 0, v = 0;
          for (int i = 0; i < c; i++)
            m += xp[i * plane] / (double) c;
          for (int i = 0; i < c; i++)
            v += (xp[i * plane] - m) * (xp[i * plane] - m) / c;
          for (int i = 0; i < c; i++)
            ref[(gsize) s * c * plane + i * plane + p] = (xp[i * plane] - m) / sqrt (v + 1e-5)
                * (g ? g[i] : 1.0) + (b ? b[i] : 0.0);
        }
      ge_layer_norm_channels (&ctx, &x, &y, 1e-5f, g, b);
      assert_close ("layer_norm_channels", y.data, ref, numel, 1e-5);
      ge_layer_norm_channels (&ctx, &x, &x, 1e-5f, g, b);     /* in place */
      g_assert_cmpmem (x.data, sizeof (float) * numel, y.data, sizeof (float) * numel);
      g_free (x.data);
      g_free (y.data);
      g_free (g);
      g_free (b);
      g_free (ref);
    }
  }
}

static void
test_geglu (void)
{
  const gsize n = 100003;
  float *a = randn (n), *gate = randn (n), *y = g_new (float, n);
  double *ref = g_new (double, n);
  for (gsize i = 0; i < n; i++) {
    gate[i] *= 12.0f;           /* both tails of the erf */
    ref[i] = a[i] * act_ref (gate[i], GE_ACT_GELU, 0);
  }
  for (int threads = 1; threads <= 3; threads += 2) {
    set_threads (threads);
    ge_geglu (&ctx, a, gate, y, n);
    /* A&S 7.1.26 is within 1.5e-7 of erf: |error| <= |x| * 1e-7 or so. */
    for (gsize i = 0; i < n; i++)
      g_assert_cmpfloat (fabs (y[i] - ref[i]), <=, 2e-7 * fabs (gate[i]) + 1e-6 * fabs (ref[i]));
    assert_close ("geglu", y, ref, n, 1e-6);
  }
  ge_geglu (&ctx, a, gate, a, n);       /* in place */
  g_assert_cmpmem (a, sizeof (float) * n, y, sizeof (float) * n);
  g_free (a);
  g_free (gate);
  g_free (y);
  g_free (ref);
}

static void
test_add_concat (void)
{
  set_threads (3);
  const gsize n = 40000;
  float *a = randn (n), *b = randn (n), *y = g_new (float, n);
  double *ref = g_new (double, n);
  ge_add (&ctx, a, b, y, n, 1.4142135f);
  for (gsize i = 0; i < n; i++)
    ref[i] = ((double) a[i] + b[i]) / 1.4142135f;
  assert_close ("add", y, ref, n, 1e-6);

  GeTensor ta = { a, 2, 3, 5, 7 }, tb = { b, 2, 4, 5, 7 };
  GeTensor tc = { g_new (float, 2 * 7 * 35), 2, 7, 5, 7 };
  ge_concat_channels (&ctx, &ta, &tb, &tc);
  for (int bn = 0; bn < 2; bn++)
    for (int c = 0; c < 7; c++)
      for (int i = 0; i < 35; i++) {
        float want = c < 3 ? a[(bn * 3 + c) * 35 + i] : b[(bn * 4 + c - 3) * 35 + i];
        g_assert_cmpfloat (tc.data[(bn * 7 + c) * 35 + i], ==, want);
      }
  GeTensor tx = { g_memdup2 (a, sizeof (float) * 2 * 3 * 35), 2, 3, 5, 7 };
  float v[6] = { 1, -2, 3, 0.5f, 0, 7 };
  ge_add_channel_bias (&ctx, &tx, v);
  for (int i = 0; i < 2 * 3 * 35; i++)
    g_assert_cmpfloat (tx.data[i], ==, a[i] + v[i / 35]);
  g_free (tx.data);
  g_free (tc.data);
  g_free (a);
  g_free (b);
  g_free (y);
  g_free (ref);
}

/* ---- resampling ----------------------------------------------------------- */

/* Keys' cubic (A = -0.75) weights at fraction t, in float as PyTorch's
 * upsample_bicubic2d computes them. */
static void
keys_weights (float t, float w[4])
{
  const float A = -0.75f;
  const float d[4] = { t + 1.0f, t, 1.0f - t, 2.0f - t };
  for (int k = 0; k < 4; k++)
    w[k] = k == 0 || k == 3 ? ((A * d[k] - 5.0f * A) * d[k] + 8.0f * A) * d[k] - 4.0f * A
        : ((A + 2.0f) * d[k] - (A + 3.0f)) * d[k] * d[k] + 1.0f;
}

/* Bicubic upsampling against a naive float loop of the same sums in the
 * same order (each of an output's four columns blended down its four rows,
 * then across; no fused multiply-adds): the same floats, bit for bit, on the
 * vector path and (ops-no-avx512) the scalar one, at widths that leave
 * partial vectors. */
static void
test_bicubic_bits (void)
{
  for (int threads = 1; threads <= 3; threads += 2) {
    set_threads (threads);
    for (int it = 0; it < 12; it++) {
      const int n = ri (1, 2), c = ri (1, 3), h = ri (1, 13), w = ri (1, 70);
      const int oh = h * ri (1, 4) + ri (0, 1);
      const int ow = it % 4 == 0 ? w + ri (0, 3) : w * ri (2, 4) + ri (0, 5);   /* scale ~1: scalar */
      GeTensor x = { randn ((gsize) n * c * h * w), n, c, h, w };
      GeTensor y = { g_new (float, (gsize) n * c * oh * ow), n, c, oh, ow };
      ge_upsample_bicubic (&ctx, &x, &y);
      for (int i = 0; i < n * c; i++)
        for (int oy = 0; oy < oh; oy++)
          for (int ox = 0; ox < ow; ox++) {
            const float fy = (oy + 0.5f) * ((float) h / oh) - 0.5f;
            const float fx = (ox + 0.5f) * ((float) w / ow) - 0.5f;
            const int iy = (int) floorf (fy), ix = (int) floorf (fx);
            float wy[4], wx[4], col[4];
            keys_weights (fy - iy, wy);
            keys_weights (fx - ix, wx);
            for (int k = 0; k < 4; k++) {
              const int xx = CLAMP (ix - 1 + k, 0, w - 1);
              volatile float acc = 0.0f;      /* volatile: one rounding per step */
              for (int j = 0; j < 4; j++) {
                const int yy = CLAMP (iy - 1 + j, 0, h - 1);
                volatile float prod = wy[j] * x.data[((gsize) i * h + yy) * w + xx];
                acc = j == 0 ? prod : acc + prod;
              }
              col[k] = acc;
            }
            volatile float out = 0.0f;
            for (int k = 0; k < 4; k++) {
              volatile float prod = wx[k] * col[k];
              out = k == 0 ? prod : out + prod;
            }
            const float got = y.data[((gsize) i * oh + oy) * ow + ox];
            if (got != out) {
              g_printerr ("bicubic %dx%d -> %dx%d: [%d,%d,%d] %.9g, naive %.9g\n", h, w, oh, ow,
                  i, oy, ox, got, out);
              g_assert_not_reached ();
            }
          }
      g_free (x.data);
      g_free (y.data);
    }
  }
}

static void
test_resample (void)
{
  set_threads (3);
  for (int it = 0; it < 10; it++) {
    int n = ri (1, 2), c = ri (1, 3), h = ri (1, 9), w = ri (1, 11), f = ri (2, 3);
    GeTensor x = { randn ((gsize) n * c * h * w), n, c, h, w };
    GeTensor y = { g_new (float, (gsize) n * c * h * f * w * f), n, c, h * f, w * f };
    ge_upsample_nearest (&ctx, &x, &y);
    for (int i = 0; i < n * c; i++)
      for (int oy = 0; oy < h * f; oy++)
        for (int ox = 0; ox < w * f; ox++)
          g_assert_cmpfloat (y.data[((gsize) i * h * f + oy) * w * f + ox], ==,
              x.data[((gsize) i * h + oy / f) * w + ox / f]);

    /* Bilinear to an arbitrary size, align_corners=False. */
    int oh = ri (1, 25), ow = ri (1, 25);
    GeTensor yb = { g_new (float, (gsize) n * c * oh * ow), n, c, oh, ow };
    double *ref = g_new (double, ge_tensor_numel (&yb));
    ge_upsample_bilinear (&ctx, &x, &yb);
    for (int i = 0; i < n * c; i++)
      for (int oy = 0; oy < oh; oy++)
        for (int ox = 0; ox < ow; ox++) {
          double sy = fmax ((oy + 0.5) * h / oh - 0.5, 0), sx = fmax ((ox + 0.5) * w / ow - 0.5, 0);
          int y0 = MIN ((int) sy, h - 1), x0 = MIN ((int) sx, w - 1);
          int y1 = MIN (y0 + 1, h - 1), x1 = MIN (x0 + 1, w - 1);
          double fy = sy - y0, fx = sx - x0;
          const float *p = x.data + (gsize) i * h * w;
          ref[((gsize) i * oh + oy) * ow + ox] = (1 - fy) * ((1 - fx) * p[y0 * w + x0] + fx * p[y0 * w + x1])
              + fy * ((1 - fx) * p[y1 * w + x0] + fx * p[y1 * w + x1]);
        }
    assert_close ("bilinear", yb.data, ref, ge_tensor_numel (&yb), 1e-5);

    /* Average pooling. */
    GeTensor yp = { g_new (float, (gsize) n * c * (h / f) * (w / f) + 1), n, c, h / f, w / f };
    if (h / f > 0 && w / f > 0) {
      ge_avg_pool (&ctx, &x, &yp, f);
      double *pr = g_new (double, ge_tensor_numel (&yp));
      for (int i = 0; i < n * c; i++)
        for (int oy = 0; oy < h / f; oy++)
          for (int ox = 0; ox < w / f; ox++) {
            double s = 0;
            for (int dy = 0; dy < f; dy++)
              for (int dx = 0; dx < f; dx++)
                s += x.data[((gsize) i * h + oy * f + dy) * w + ox * f + dx];
            pr[((gsize) i * (h / f) + oy) * (w / f) + ox] = s / (f * f);
          }
      assert_close ("avg_pool", yp.data, pr, ge_tensor_numel (&yp), 1e-6);
      g_free (pr);
    }
    g_free (x.data);
    g_free (y.data);
    g_free (yb.data);
    g_free (yp.data);
    g_free (ref);
  }
}

/* Bicubic and bilinear against PyTorch's interpolate (golden file made by
 * tests/golden/make_ops_golden.py). */
static void
test_resample_golden (void)
{
  char *path = g_test_build_filename (G_TEST_DIST, "..", "golden", "ops", "resample.safetensors", NULL);
  GeSafetensors *st = ge_safetensors_open (path, NULL);
  g_assert_nonnull (st);
  const GeStTensor *xt = ge_safetensors_find (st, "input");
  GeTensor x = { g_new (float, xt->n_elements), 1, 3, (int) xt->shape[2], (int) xt->shape[3] };
  ge_st_tensor_to_f32 (xt, x.data);
  const char *names[] = { "bicubic.x2", "bicubic.x4", "bicubic.odd", "bilinear.x2",
    "bilinear.x4", "bilinear.odd" };
  for (guint i = 0; i < G_N_ELEMENTS (names); i++) {
    const GeStTensor *rt = ge_safetensors_find (st, names[i]);
    g_assert_nonnull (rt);
    GeTensor y = { g_new (float, rt->n_elements), 1, 3, (int) rt->shape[2], (int) rt->shape[3] };
    double *ref = g_new (double, rt->n_elements);
    ge_st_tensor_to_f64 (rt, ref);
    if (g_str_has_prefix (names[i], "bicubic"))
      ge_upsample_bicubic (&ctx, &x, &y);
    else
      ge_upsample_bilinear (&ctx, &x, &y);
    /* A few float ulps: PyTorch sums the 16 taps in another order. */
    assert_close (names[i], y.data, ref, rt->n_elements, 3e-6);
    g_free (y.data);
    g_free (ref);
  }
  g_free (x.data);
  ge_safetensors_free (st);
  g_free (path);
}

static void
test_pixel_shuffle (void)
{
  int n = 2, c = 3, r = 2, h = 5, w = 7;
  GeTensor x = { randn ((gsize) n * c * r * r * h * w), n, c * r * r, h, w };
  GeTensor y = { g_new (float, ge_tensor_numel (&x)), n, c, h * r, w * r };
  GeTensor back = { g_new (float, ge_tensor_numel (&x)), n, c * r * r, h, w };
  ge_pixel_shuffle (&ctx, &x, &y, r);
  /* PyTorch: out[n, c, h*r + i, w*r + j] = in[n, c*r*r + i*r + j, h, w] */
  for (int b = 0; b < n; b++)
    for (int cc = 0; cc < c; cc++)
      for (int i = 0; i < r; i++)
        for (int j = 0; j < r; j++)
          for (int yy = 0; yy < h; yy++)
            for (int xx = 0; xx < w; xx++)
              g_assert_cmpfloat (y.data[(((gsize) b * c + cc) * h * r + yy * r + i) * w * r + xx * r + j],
                  ==, x.data[(((gsize) b * c * r * r + cc * r * r + i * r + j) * h + yy) * w + xx]);
  ge_pixel_unshuffle (&ctx, &y, &back, r);
  g_assert_cmpmem (back.data, sizeof (float) * ge_tensor_numel (&x), x.data,
      sizeof (float) * ge_tensor_numel (&x));
  g_free (x.data);
  g_free (y.data);
  g_free (back.data);
}

/* ---- attention, embeddings -------------------------------------------- */

static void
test_attention (void)
{
  for (int threads = 1; threads <= 3; threads += 2) {
    set_threads (threads);
    /* Self-attention, then cross-attention: Tq queries over Tk keys from
     * another source (77 text tokens, fewer than a block, more, one). */
    for (int it = 0; it < 16; it++) {
      const gboolean cross = it >= 8;
      int heads = ri (1, 4), d = ri (1, 16), T = it == 0 ? 1500 : ri (1, 300);
      int Tk = !cross ? T : it == 8 ? 77 : it == 9 ? 1 : it == 10 ? 700 : ri (1, 300);
      if (it == 8)
        T = 1029;
      gsize n = (gsize) heads * d * T, nk = (gsize) heads * d * Tk;
      float *q = randn (n), *k = randn (nk), *v = randn (nk), *o = g_new (float, n);
      /* Scores up to ~100 on some runs: exp() overflows in float unless the
       * row maximum is subtracted first. */
      const float gain = it % 2 ? 60.0f : 4.0f;
      for (gsize i = 0; i < n; i++)
        q[i] *= gain;
      float scale = 1.0f / sqrtf ((float) d);
      if (cross)
        ge_cross_attention (&ctx, q, T, k, v, Tk, o, heads, d, scale);
      else
        ge_attention (&ctx, q, k, v, o, heads, d, T, scale);
      double *ref = g_new (double, n), *s = g_new (double, Tk);
      for (int hh = 0; hh < heads; hh++)
        for (int i = 0; i < T; i++) {
          double m = -INFINITY, sum = 0;
          for (int j = 0; j < Tk; j++) {
            double dot = 0;
            for (int c = 0; c < d; c++)
              dot += (double) q[((gsize) hh * d + c) * T + i] * k[((gsize) hh * d + c) * Tk + j];
            s[j] = dot * scale;
            m = fmax (m, s[j]);
          }
          for (int j = 0; j < Tk; j++)
            sum += (s[j] = exp (s[j] - m));
          for (int c = 0; c < d; c++) {
            double acc = 0;
            for (int j = 0; j < Tk; j++)
              acc += s[j] / sum * v[((gsize) hh * d + c) * Tk + j];
            ref[((gsize) hh * d + c) * T + i] = acc;
          }
        }
      assert_close (cross ? "cross-attention" : "attention", o, ref, n, 1e-5);
      g_free (q);
      g_free (k);
      g_free (v);
      g_free (o);
      g_free (ref);
      g_free (s);
    }
  }
}

/* bf16 attention (ctx precision) against a double twin on the numbers the
 * kernels read: Q and scale K rounded to bf16, the softmax in double, its
 * weights and V rounded to bf16.  The engine's scores are f32 sums and its
 * exp is good to 5e-5 (its weights are rounded to 8 bits next), so a
 * weight may round to the neighbouring bf16 number: bound 2^-7 + 1e-4
 * times sum |w v| per output, plus the f32 sums.  Against exact attention (moderate
 * scores) the NMSE is of bf16's size. */
static void
test_attention_bf16 (void)
{
  const gboolean on = ge_gemm_bf16_available ();
  for (int threads = 1; threads <= 3; threads += 2) {
    set_threads (threads);
    for (int it = 0; it < 8; it++) {
      const gboolean cross = it >= 4;
      const int heads = ri (1, 3), d = ri (1, 17), T = it == 0 ? 700 : ri (1, 300);
      const int Tk = cross ? (it == 4 ? 77 : it == 5 ? 1 : ri (1, 300)) : T;
      const gsize n = (gsize) heads * d * T, nk = (gsize) heads * d * Tk;
      float *q = randn (n), *k = randn (nk), *v = randn (nk), *o = g_new (float, n);
      const float gain = it % 2 ? 30.0f : 2.0f;
      for (gsize i = 0; i < n; i++)
        q[i] *= gain;
      const float scale = 1.0f / sqrtf ((float) d);
      ctx.precision = GE_PRECISION_BF16;
      ge_cross_attention (&ctx, q, T, k, v, Tk, o, heads, d, scale);
      ctx.precision = GE_PRECISION_F32;
      double *s = g_new (double, Tk), *se = g_new (double, Tk), err = 0, ref2 = 0;
      for (int hh = 0; hh < heads; hh++)
        for (int i = 0; i < T; i++) {
          double m = -INFINITY, me = -INFINITY, sum = 0, sume = 0;
          for (int j = 0; j < Tk; j++) {
            double dot = 0, dote = 0;
            for (int c = 0; c < d; c++) {
              const float qv = q[((gsize) hh * d + c) * T + i], kv = k[((gsize) hh * d + c) * Tk + j];
              dot += on ? (double) bf16_round (qv) * bf16_round (scale * kv) : (double) qv * (scale * kv);
              dote += (double) qv * kv * scale;
            }
            s[j] = dot;
            se[j] = dote;
            m = fmax (m, s[j]);
            me = fmax (me, se[j]);
          }
          for (int j = 0; j < Tk; j++) {
            sum += (s[j] = exp (s[j] - m));
            sume += (se[j] = exp (se[j] - me));
          }
          for (int c = 0; c < d; c++) {
            double acc = 0, mag = 0, exact = 0;
            for (int j = 0; j < Tk; j++) {
              const float vv = v[((gsize) hh * d + c) * Tk + j];
              const double w = on ? bf16_round ((float) (s[j] / sum)) : s[j] / sum;
              acc += w * (on ? bf16_round (vv) : vv);
              mag += fabs (s[j] / sum * vv);
              exact += se[j] / sume * vv;
            }
            const double got = o[((gsize) hh * d + c) * T + i];
            g_assert_false (isnan (got));
            if (fabs (got - acc) > (0x1p-7 + 1e-4 + (d + Tk + 4) * 0x1p-22) * mag + 1e-30) {
              g_printerr ("bf16 attention h%d d%d T%d Tk%d [%d,%d,%d]: %.9g, twin %.9g, sum |wv| %.3g\n",
                  heads, d, T, Tk, hh, c, i, got, acc, mag);
              g_assert_not_reached ();
            }
            err += (got - exact) * (got - exact);
            ref2 += exact * exact;
          }
        }
      if (gain < 10)
        g_assert_cmpfloat (err, <=, 1e-4 * ref2 + 1e-30);
      g_free (q);
      g_free (k);
      g_free (v);
      g_free (o);
      g_free (s);
      g_free (se);
    }
  }
}

/* Token-major attention with an additive mask: batches, cross-attention
 * (tq != tk), no mask, one shared mask, and per-sequence causal + padding
 * masks built as transformers builds them (-FLT_MAX added, -inf where two
 * add up).  Key 0 stays visible to every query, so no row is all masked. */
static void
test_attention_masked (void)
{
  for (int threads = 1; threads <= 3; threads += 2) {
    set_threads (threads);
    for (int it = 0; it < 12; it++) {
      const int n = ri (1, 3), heads = ri (1, 4), d = ri (1, 16), ld = heads * d;
      const int tq = it == 0 ? 600 : ri (1, 90), tk = it % 3 == 1 ? ri (1, 90) : tq;
      const int kind = it % 3;  /* 0: per-sequence causal + padding, 1: none, 2: shared */
      float *q = randn ((gsize) n * tq * ld), *k = randn ((gsize) n * tk * ld);
      float *v = randn ((gsize) n * tk * ld), *o = g_new (float, (gsize) n * tq * ld);
      const float gain = it % 2 ? 40.0f : 3.0f;
      for (gsize i = 0; i < (gsize) n * tq * ld; i++)
        q[i] *= gain;
      float *mask = NULL;
      gsize stride = 0;
      if (kind == 0) {
        stride = (gsize) tq * tk;
        mask = g_new (float, n * stride);
        for (int b = 0; b < n; b++) {
          const int valid = ri (1, tk);
          for (int i = 0; i < tq; i++)
            for (int j = 0; j < tk; j++) {
              const float causal = j > i ? -FLT_MAX : 0.0f, pad = j >= valid ? -FLT_MAX : 0.0f;
              mask[b * stride + (gsize) i * tk + j] = causal + pad;
            }
        }
      } else if (kind == 2) {
        mask = randn ((gsize) tq * tk);
        for (gsize i = 0; i < (gsize) tq * tk; i++)
          mask[i] = i % tk && mask[i] > 0.6f ? -FLT_MAX : 5.0f * mask[i];
      }
      const float scale = 1.0f / sqrtf ((float) d);
      ge_attention_masked (&ctx, q, k, v, o, n, heads, d, tq, tk, scale, mask, stride);
      double *ref = g_new (double, (gsize) n * tq * ld), *s = g_new (double, tk);
      for (int b = 0; b < n; b++)
        for (int hh = 0; hh < heads; hh++)
          for (int i = 0; i < tq; i++) {
            double m = -INFINITY, sum = 0;
            for (int j = 0; j < tk; j++) {
              double dot = 0;
              for (int c = 0; c < d; c++)
                dot += (double) q[((gsize) b * tq + i) * ld + hh * d + c]
                    * k[((gsize) b * tk + j) * ld + hh * d + c];
              s[j] = dot * scale + (mask ? mask[b * stride + (gsize) i * tk + j] : 0.0);
              m = fmax (m, s[j]);
            }
            for (int j = 0; j < tk; j++)
              sum += (s[j] = exp (s[j] - m));
            for (int c = 0; c < d; c++) {
              double acc = 0;
              for (int j = 0; j < tk; j++)
                acc += s[j] / sum * v[((gsize) b * tk + j) * ld + hh * d + c];
              ref[((gsize) b * tq + i) * ld + hh * d + c] = acc;
            }
          }
      assert_close ("attention_masked", o, ref, (gsize) n * tq * ld, 1e-5);
      g_free (q);
      g_free (k);
      g_free (v);
      g_free (o);
      g_free (mask);
      g_free (ref);
      g_free (s);
    }
  }
}

static void
test_timestep_embedding (void)
{
  float t[4] = { 0, 1, 500, 999 };
  for (int flip = 0; flip <= 1; flip++)
    for (int shift = 0; shift <= 1; shift++)
      for (int dim = 31; dim <= 32; dim++) {
        float *out = g_new (float, 4 * dim);
        double *ref = g_new0 (double, 4 * dim);
        ge_timestep_embedding (t, 4, dim, flip, (float) shift, 10000.0f, out);
        int half = dim / 2;
        for (int b = 0; b < 4; b++)
          for (int i = 0; i < half; i++) {
            double f = exp (-log (10000.0) * i / (half - shift)), a = t[b] * f;
            ref[b * dim + (flip ? half + i : i)] = sin (a);
            ref[b * dim + (flip ? i : half + i)] = cos (a);
          }
        /* 1e-4: at t = 999 one float ulp of the frequency moves the phase
         * by ~6e-5, and diffusers computes the frequencies in float. */
        assert_close ("timestep_embedding", out, ref, 4 * dim, 1e-4);
        /* The frequency table on its own, and the one the embedding used
         * (t = 1: sin (f) of the same float f). */
        float *fr = g_new (float, half);
        double *fref = g_new (double, half);
        ge_timestep_frequencies (half, (float) shift, 10000.0f, fr);
        for (int i = 0; i < half; i++) {
          fref[i] = exp (-log (10000.0) * i / (half - shift));
          g_assert_cmpfloat (out[1 * dim + (flip ? half + i : i)], ==, (float) sin (fr[i]));
        }
        assert_close ("timestep_frequencies", fr, fref, half, 1e-6);
        g_free (fr);
        g_free (fref);
        g_free (out);
        g_free (ref);
      }
}

/* ---- arena ------------------------------------------------------------- */

static void
test_arena_plans_once (void)
{
  GeArena *a = ge_arena_new ();
  for (int run = 0; run < 3; run++) {
    gsize m = ge_arena_mark (a);
    float *p1 = ge_arena_alloc (a, 1000);
    float *p2 = ge_arena_alloc (a, 5000);
    g_assert_true (((guintptr) p1 % 64) == 0 && ((guintptr) p2 % 64) == 0);
    g_assert_true (p2 >= p1 + 1000 || p2 + 5000 <= p1);
    ge_arena_release (a, m);
    ge_arena_alloc (a, 3000);
    ge_arena_reset (a);
    if (run == 0)
      g_assert_cmpuint (ge_arena_n_system_allocs (a), >, 0);
  }
  guint after = ge_arena_n_system_allocs (a);
  ge_arena_alloc (a, 6000);
  ge_arena_reset (a);
  g_assert_cmpuint (ge_arena_n_system_allocs (a), ==, after);
  ge_arena_free (a);
}

/* The pool: every task of every job runs exactly once, with the thread
 * index in range, whether the workers keep up or not (more threads than
 * cores: a worker that wakes late must claim nothing of a later job), and
 * the caller returns only when its job is done. */
typedef struct {
  gint *count;
  int n_threads;
  gint bad_thread;
} PoolJob;

static void
pool_task (void *data, int task, int thread)
{
  PoolJob *j = data;
  if (thread < 0 || thread >= j->n_threads)
    g_atomic_int_set (&j->bad_thread, 1);
  g_atomic_int_inc (&j->count[task]);
  if (task == 3)                /* uneven tasks */
    g_usleep (20);
}

static void
test_pool (void)
{
  for (int threads = 2; threads <= 8; threads *= 2) {
    GePool *pool = ge_pool_new (threads);
    gint count[97];
    for (int job = 0; job < 1000; job++) {
      const int n = 1 + (job * 37) % 97;
      memset (count, 0, sizeof count);
      PoolJob j = { count, threads, 0 };
      ge_pool_run (pool, n, pool_task, &j);
      for (int t = 0; t < 97; t++)
        g_assert_cmpint (count[t], ==, t < n ? 1 : 0);
      g_assert_cmpint (j.bad_thread, ==, 0);
    }
    ge_pool_free (pool);
  }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  rng = g_rand_new_with_seed (1234);
  ctx.pool = ge_pool_new (1);
  ctx.arena = ge_arena_new ();
  g_test_add_func ("/ops/conv2d/random", test_conv2d_random);
  g_test_add_func ("/ops/conv2d/model-shapes", test_conv2d_model_shapes);
  g_test_add_func ("/ops/conv2d/input-transform", test_conv2d_input_transform);
  g_test_add_func ("/ops/conv2d/phase2x", test_conv2d_phase2x);
  g_test_add_func ("/ops/conv2d/16-bit-weights", test_conv2d_16bit);
  g_test_add_func ("/ops/bf16/convert", test_bf16_convert);
  g_test_add_func ("/ops/bf16/gemm", test_bf16_gemm);
  g_test_add_func ("/ops/int8/gemm", test_int8_gemm);
  g_test_add_func ("/ops/int8/gemv", test_int8_gemv);
  g_test_add_func ("/ops/bf16/conv2d", test_conv2d_bf16);
  g_test_add_func ("/ops/bf16/phase2x", test_conv2d_phase2x_bf16);
  g_test_add_func ("/ops/int8/conv2d", test_conv2d_int8);
  g_test_add_func ("/ops/conv1d", test_conv1d);
  g_test_add_func ("/ops/conv-transpose2d", test_conv_transpose2d);
  g_test_add_func ("/ops/linear", test_linear);
  g_test_add_func ("/ops/linear/16-bit-weights", test_linear_16bit);
  g_test_add_func ("/ops/activations", test_activations);
  g_test_add_func ("/ops/group-norm", test_group_norm);
  g_test_add_func ("/ops/layer-norm", test_layer_norm);
  g_test_add_func ("/ops/layer-norm-channels", test_layer_norm_channels);
  g_test_add_func ("/ops/geglu", test_geglu);
  g_test_add_func ("/ops/add-concat", test_add_concat);
  g_test_add_func ("/ops/resample", test_resample);
  g_test_add_func ("/ops/bicubic-bits", test_bicubic_bits);
  g_test_add_func ("/ops/resample-golden", test_resample_golden);
  g_test_add_func ("/ops/pixel-shuffle", test_pixel_shuffle);
  g_test_add_func ("/ops/attention", test_attention);
  g_test_add_func ("/ops/bf16/attention", test_attention_bf16);
  g_test_add_func ("/ops/attention-masked", test_attention_masked);
  g_test_add_func ("/ops/timestep-embedding", test_timestep_embedding);
  g_test_add_func ("/arena/plans-once", test_arena_plans_once);
  g_test_add_func ("/pool/each-task-once", test_pool);
  int r = g_test_run ();
  ge_pool_free (ctx.pool);
  ge_arena_free (ctx.arena);
  g_rand_free (rng);
  return r;
}
