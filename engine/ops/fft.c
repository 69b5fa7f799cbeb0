/* fft.c: mixed-radix FFT (radices 2, 3, 4, 5) for the short frames of the
 * audio models: 20 ms frames are 320 samples at 16 kHz and 960 at 48 kHz,
 * not powers of two.
 *
 * Decimation in time with kissfft's recursion and a generic radix-p
 * butterfly: O(n * sum of the factors), a few tens of thousands of flops
 * for a 960-sample frame, far below the network that follows.  Real
 * transforms run through the complex one with a zero imaginary part
 * (simplicity over a 2x that does not matter here).  The plan is read-only
 * once made, so streams on several threads share it; each caller brings
 * its own scratch of ge_fft_scratch_size() floats.
 */
#include "ge-ops.h"

#include <math.h>
#include <string.h>

#define MAX_FACTORS 32
#define MAX_RADIX 5

struct _GeFft {
  int n;
  int factors[2 * MAX_FACTORS];         /* (p, m) pairs: radix, remaining length */
  float *twiddles;                      /* exp (-2 pi i k / n), k < n, interleaved */
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

GeFft *
ge_fft_new (int n)
{
  GeFft *f = g_new0 (GeFft, 1);
  if (n < 2 || !factorize (n, f->factors)) {
    g_free (f);
    return NULL;
  }
  f->n = n;
  f->twiddles = g_new (float, 2 * n);
  for (int k = 0; k < n; k++) {
    double a = -2.0 * G_PI * k / n;
    f->twiddles[2 * k] = (float) cos (a);
    f->twiddles[2 * k + 1] = (float) sin (a);
  }
  return f;
}

void
ge_fft_free (GeFft * f)
{
  if (!f)
    return;
  g_free (f->twiddles);
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
  return 4 * (gsize) f->n;      /* complex input and output */
}

/* out[0 .. p*m) from in[0, stride, 2 stride, ...] (complex interleaved). */
static void
fft_work (const GeFft * f, float *out, const float *in, int stride, const int *factors)
{
  const int p = factors[0], m = factors[1];
  float *o = out;
  if (m == 1) {
    for (int q = 0; q < p; q++, in += 2 * stride, o += 2) {
      o[0] = in[0];
      o[1] = in[1];
    }
  } else {
    for (int q = 0; q < p; q++, in += 2 * stride, o += 2 * m)
      fft_work (f, o, in, stride * p, factors + 2);
  }

  /* Generic radix-p butterfly: stride is n / (p * m). */
  float s[2 * MAX_RADIX];
  for (int u = 0; u < m; u++) {
    for (int q = 0, k = u; q < p; q++, k += m) {
      s[2 * q] = out[2 * k];
      s[2 * q + 1] = out[2 * k + 1];
    }
    for (int q1 = 0, k = u; q1 < p; q1++, k += m) {
      float re = s[0], im = s[1];
      int tw = 0;
      for (int q = 1; q < p; q++) {
        tw += stride * k;
        if (tw >= f->n)
          tw -= f->n;
        const float wr = f->twiddles[2 * tw], wi = f->twiddles[2 * tw + 1];
        re += s[2 * q] * wr - s[2 * q + 1] * wi;
        im += s[2 * q] * wi + s[2 * q + 1] * wr;
      }
      out[2 * k] = re;
      out[2 * k + 1] = im;
    }
  }
}

void
ge_fft_forward_real (const GeFft * f, const float *x, float *spec, float *scratch)
{
  const int n = f->n;
  float *in = scratch, *out = scratch + 2 * n;
  for (int i = 0; i < n; i++) {
    in[2 * i] = x[i];
    in[2 * i + 1] = 0.0f;
  }
  fft_work (f, out, in, 1, f->factors);
  memcpy (spec, out, sizeof (float) * 2 * (n / 2 + 1));
}

void
ge_fft_inverse_real (const GeFft * f, const float *spec, float *x, float *scratch)
{
  /* x = Re (conj (FFT (conj (Z)))) / n on the Hermitian extension Z of
   * spec; the imaginary parts of DC and Nyquist are ignored, as in numpy's
   * and PyTorch's irfft. */
  const int n = f->n, half = n / 2;
  float *in = scratch, *out = scratch + 2 * n;
  for (int k = 0; k <= half; k++) {
    in[2 * k] = spec[2 * k];
    in[2 * k + 1] = -spec[2 * k + 1];
  }
  in[1] = 0.0f;
  if (n % 2 == 0)
    in[2 * half + 1] = 0.0f;
  for (int k = half + 1; k < n; k++) {
    in[2 * k] = spec[2 * (n - k)];
    in[2 * k + 1] = spec[2 * (n - k) + 1];
  }
  fft_work (f, out, in, 1, f->factors);
  const float inv = 1.0f / n;
  for (int i = 0; i < n; i++)
    x[i] = out[2 * i] * inv;
}
