/* fft.c: mixed-radix FFT (radices 2, 3, 4, 5) for the short frames of the
 * audio models: 20 ms frames are 320 samples at 16 kHz and 960 at 48 kHz,
 * not powers of two.
 *
 * Decimation in time with kissfft's recursion and its radix-2, 3, 4 and 5
 * butterflies.  A real transform of even length n runs as a complex one of
 * length n / 2 on the even and odd samples as real and imaginary parts,
 * split apart afterwards (half the work of a zero imaginary part; odd n
 * take the full-length complex transform).  This matters: the transforms
 * were a third of gansynth's time per hop with a generic radix-p butterfly
 * on the full length.  The plan is read-only once made, so streams on
 * several threads share it; each caller brings its own scratch of
 * ge_fft_scratch_size() floats.
 */
#include "ge-ops.h"

#include <math.h>
#include <string.h>

#define MAX_FACTORS 32

typedef struct {
  float r, i;
} Cpx;

struct _GeFft {
  int n;                                /* real length */
  int nc;                               /* complex length: n / 2 for even n, else n */
  int factors[2 * MAX_FACTORS];         /* (p, m) pairs: radix, remaining length */
  Cpx *twiddles;                        /* exp (-2 pi i k / nc), k < nc */
  Cpx *split;                           /* even n: exp (-2 pi i k / n), k <= nc / 2 */
};

static gboolean
factorize (int n, int *factors)
{
  static const int radices[] = { 4, 2, 3, 5 };
  int i = 0;
  for (int r = 0; r < 4 && n > 1;) {
    if (n % radices[r] == 0) {
      if (i >= 2 * MAX_FACTORS)
        return FALSE;
      n /= radices[r];
      factors[i++] = radices[r];
      factors[i++] = n;
    } else {
      r++;
    }
  }
  return n == 1;
}

static Cpx
unit (double turns)
{
  const double a = -2.0 * G_PI * turns;
  return (Cpx) { (float) cos (a), (float) sin (a) };
}

GeFft *
ge_fft_new (int n)
{
  if (n < 2)
    return NULL;
  GeFft *f = g_new0 (GeFft, 1);
  f->n = n;
  f->nc = n % 2 == 0 ? n / 2 : n;
  if (!factorize (f->nc, f->factors) && f->nc > 1) {
    g_free (f);
    return NULL;
  }
  if (f->nc == 1)               /* n = 2: a single point, no butterfly */
    f->factors[0] = 1, f->factors[1] = 1;
  f->twiddles = g_new (Cpx, f->nc);
  for (int k = 0; k < f->nc; k++)
    f->twiddles[k] = unit ((double) k / f->nc);
  if (n % 2 == 0) {
    f->split = g_new (Cpx, f->nc / 2 + 1);
    for (int k = 0; k <= f->nc / 2; k++)
      f->split[k] = unit ((double) k / n);
  }
  return f;
}

void
ge_fft_free (GeFft * f)
{
  if (!f)
    return;
  g_free (f->twiddles);
  g_free (f->split);
  g_free (f);
}

int
ge_fft_size (const GeFft * f)
{
  return f->n;
}

gsize
ge_fft_scratch_size (const GeFft * f)
{
  return 4 * (gsize) f->nc;     /* complex input and output */
}

static inline Cpx
cmul (Cpx a, Cpx b)
{
  return (Cpx) { a.r * b.r - a.i * b.i, a.r * b.i + a.i * b.r };
}

static inline Cpx
cadd (Cpx a, Cpx b)
{
  return (Cpx) { a.r + b.r, a.i + b.i };
}

static inline Cpx
csub (Cpx a, Cpx b)
{
  return (Cpx) { a.r - b.r, a.i - b.i };
}

/* The butterflies combine p transforms of length m (at o, o + m, ...);
 * tw steps by @fs per output, the twiddle of the whole length being
 * exp (-2 pi i fs / nc). */
static void
bfly2 (Cpx * o, const Cpx * tw, int fs, int m)
{
  for (int u = 0; u < m; u++) {
    const Cpx t = cmul (o[u + m], tw[u * fs]);
    o[u + m] = csub (o[u], t);
    o[u] = cadd (o[u], t);
  }
}

static void
bfly3 (Cpx * o, const Cpx * tw, int fs, int m)
{
  const float s3 = tw[fs * m].i;        /* sin (-2 pi / 3) */
  for (int u = 0; u < m; u++) {
    const Cpx a = cmul (o[u + m], tw[u * fs]), b = cmul (o[u + 2 * m], tw[2 * u * fs]);
    const Cpx sum = cadd (a, b), dif = csub (a, b);
    const Cpx mid = { o[u].r - 0.5f * sum.r, o[u].i - 0.5f * sum.i };
    o[u] = cadd (o[u], sum);
    o[u + m] = (Cpx) { mid.r - s3 * dif.i, mid.i + s3 * dif.r };
    o[u + 2 * m] = (Cpx) { mid.r + s3 * dif.i, mid.i - s3 * dif.r };
  }
}

static void
bfly4 (Cpx * o, const Cpx * tw, int fs, int m)
{
  for (int u = 0; u < m; u++) {
    const Cpx a = cmul (o[u + m], tw[u * fs]), b = cmul (o[u + 2 * m], tw[2 * u * fs]);
    const Cpx c = cmul (o[u + 3 * m], tw[3 * u * fs]);
    const Cpx s0 = cadd (o[u], b), d0 = csub (o[u], b), s1 = cadd (a, c), d1 = csub (a, c);
    o[u] = cadd (s0, s1);
    o[u + 2 * m] = csub (s0, s1);
    o[u + m] = (Cpx) { d0.r + d1.i, d0.i - d1.r };      /* d0 - i d1 */
    o[u + 3 * m] = (Cpx) { d0.r - d1.i, d0.i + d1.r };
  }
}

static void
bfly5 (Cpx * o, const Cpx * tw, int fs, int m)
{
  const Cpx ya = tw[fs * m], yb = tw[2 * fs * m];       /* exp (-2 pi i / 5), its square */
  for (int u = 0; u < m; u++) {
    const Cpx x0 = o[u];
    const Cpx x1 = cmul (o[u + m], tw[u * fs]), x2 = cmul (o[u + 2 * m], tw[2 * u * fs]);
    const Cpx x3 = cmul (o[u + 3 * m], tw[3 * u * fs]), x4 = cmul (o[u + 4 * m], tw[4 * u * fs]);
    const Cpx s14 = cadd (x1, x4), d14 = csub (x1, x4), s23 = cadd (x2, x3), d23 = csub (x2, x3);
    o[u] = (Cpx) { x0.r + s14.r + s23.r, x0.i + s14.i + s23.i };
    const Cpx a = { x0.r + s14.r * ya.r + s23.r * yb.r, x0.i + s14.i * ya.r + s23.i * yb.r };
    const Cpx b = { d14.i * ya.i + d23.i * yb.i, -d14.r * ya.i - d23.r * yb.i };
    o[u + m] = csub (a, b);
    o[u + 4 * m] = cadd (a, b);
    const Cpx c = { x0.r + s14.r * yb.r + s23.r * ya.r, x0.i + s14.i * yb.r + s23.i * ya.r };
    const Cpx d = { -d14.i * yb.i + d23.i * ya.i, d14.r * yb.i - d23.r * ya.i };
    o[u + 2 * m] = cadd (c, d);
    o[u + 3 * m] = csub (c, d);
  }
}

/* out[0 .. p*m) from in[0, stride, 2 stride, ...]. */
static void
fft_work (const GeFft * f, Cpx * out, const Cpx * in, int stride, const int *factors)
{
  const int p = factors[0], m = factors[1];
  if (m == 1) {
    for (int q = 0; q < p; q++)
      out[q] = in[q * stride];
  } else {
    for (int q = 0; q < p; q++)
      fft_work (f, out + q * m, in + q * stride, stride * p, factors + 2);
  }
  switch (p) {
    case 2:
      bfly2 (out, f->twiddles, stride, m);
      break;
    case 3:
      bfly3 (out, f->twiddles, stride, m);
      break;
    case 4:
      bfly4 (out, f->twiddles, stride, m);
      break;
    case 5:
      bfly5 (out, f->twiddles, stride, m);
      break;
    default:                   /* 1: a single point */
      break;
  }
}

void
ge_fft_forward_real (const GeFft * f, const float *x, float *spec, float *scratch)
{
  const int n = f->n, nc = f->nc;
  Cpx *in = (Cpx *) scratch, *z = (Cpx *) scratch + nc, *X = (Cpx *) spec;
  if (n % 2) {
    for (int i = 0; i < n; i++)
      in[i] = (Cpx) { x[i], 0.0f };
    fft_work (f, z, in, 1, f->factors);
    memcpy (spec, z, sizeof (Cpx) * (n / 2 + 1));
    return;
  }
  /* z = FFT (x[2j] + i x[2j+1]); with E, O the transforms of the even and
   * odd samples, Z[k] = E[k] + i O[k] and X[k] = E[k] + w^k O[k]. */
  fft_work (f, z, (const Cpx *) x, 1, f->factors);
  X[0] = (Cpx) { z[0].r + z[0].i, 0.0f };
  X[nc] = (Cpx) { z[0].r - z[0].i, 0.0f };
  for (int k = 1; k <= nc / 2; k++) {
    const Cpx a = z[k], b = { z[nc - k].r, -z[nc - k].i };      /* Z[k], conj Z[nc-k] */
    const Cpx e = { 0.5f * (a.r + b.r), 0.5f * (a.i + b.i) };
    const Cpx o = { 0.5f * (a.i - b.i), -0.5f * (a.r - b.r) };  /* (a - b) / 2i */
    const Cpx wo = cmul (f->split[k], o);
    X[k] = cadd (e, wo);
    if (nc - k != k)
      X[nc - k] = (Cpx) { e.r - wo.r, -(e.i - wo.i) };  /* conj (E[k] - w^k O[k]) */
  }
}

void
ge_fft_inverse_real (const GeFft * f, const float *spec, float *x, float *scratch)
{
  /* The imaginary parts of DC and Nyquist are ignored, as in numpy's and
   * PyTorch's irfft. */
  const int n = f->n, nc = f->nc;
  Cpx *in = (Cpx *) scratch, *out = (Cpx *) scratch + nc;
  const Cpx *X = (const Cpx *) spec;
  if (n % 2) {
    /* x = Re (conj (FFT (conj (Z)))) / n on the Hermitian extension Z */
    const int half = n / 2;
    for (int k = 0; k <= half; k++)
      in[k] = (Cpx) { X[k].r, -X[k].i };
    in[0].i = 0.0f;
    for (int k = half + 1; k < n; k++)
      in[k] = X[n - k];
    fft_work (f, out, in, 1, f->factors);
    for (int i = 0; i < n; i++)
      x[i] = out[i].r / (float) n;
    return;
  }
  /* The forward split undone: E[k] and O[k] from X[k] and X[nc-k], then
   * z = IFFT (E + i O) holds the even and odd samples.  The inverse runs
   * as the forward transform of the conjugate. */
  /* k = 0: E[0] and O[0] are real, from DC and Nyquist */
  in[0] = (Cpx) { 0.5f * (X[0].r + X[nc].r), -0.5f * (X[0].r - X[nc].r) };
  for (int k = 1; k <= nc / 2; k++) {
    const Cpx a = X[k], b = { X[nc - k].r, -X[nc - k].i };      /* X[k], conj X[nc-k] */
    const Cpx e = { 0.5f * (a.r + b.r), 0.5f * (a.i + b.i) };
    const Cpx wo = { 0.5f * (a.r - b.r), 0.5f * (a.i - b.i) };  /* w^k O[k] */
    const Cpx w = f->split[k], o = cmul ((Cpx) { w.r, -w.i }, wo);
    /* Z[k] = E[k] + i O[k], Z[nc-k] = conj E[k] + i conj O[k]; conjugated */
    in[k] = (Cpx) { e.r - o.i, -(e.i + o.r) };
    if (k != nc - k)
      in[nc - k] = (Cpx) { e.r + o.i, -(-e.i + o.r) };
  }
  fft_work (f, out, in, 1, f->factors);
  const float inv = 1.0f / n;
  for (int j = 0; j < nc; j++) {
    x[2 * j] = 2.0f * out[j].r * inv;
    x[2 * j + 1] = -2.0f * out[j].i * inv;
  }
}
