/* ge-rng.c: see ge-rng.h.
 *
 * Counter layout: one Philox call yields four 32-bit words, i.e. four
 * outputs of a stream.  Element j = offset + i lives in block j / 4, word
 * j % 4.  The 128-bit counter is {block low 32, block high 32, stream, 0}
 * (stream 0 = normals, 1 = uniforms), the key is the 64-bit seed. */
#include "ge-rng.h"
#include "../ops/gemm.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u   /* golden ratio */
#define PHILOX_W1 0xBB67AE85u   /* sqrt(3) - 1 */

enum { STREAM_NORMAL = 0, STREAM_UNIFORM = 1 };

void
ge_philox4x32_10 (const guint32 ctr[4], const guint32 key[2], guint32 out[4])
{
  guint32 c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
  guint32 k0 = key[0], k1 = key[1];
  for (int r = 0; r < 10; r++) {
    if (r > 0) {                /* the key schedule bumps between rounds */
      k0 += PHILOX_W0;
      k1 += PHILOX_W1;
    }
    guint64 p0 = (guint64) PHILOX_M0 * c0;
    guint64 p1 = (guint64) PHILOX_M1 * c2;
    guint32 hi0 = (guint32) (p0 >> 32), lo0 = (guint32) p0;
    guint32 hi1 = (guint32) (p1 >> 32), lo1 = (guint32) p1;
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* The high words of 16 products a * m (m < 2^32): even lanes from one
 * 32 x 32 -> 64 multiply, odd lanes from another. */
__attribute__((target ("avx512f")))
static inline __m512i
mulhi_epu32 (__m512i a, __m512i m)
{
  const __m512i even = _mm512_srli_epi64 (_mm512_mul_epu32 (a, m), 32);
  const __m512i odd = _mm512_mul_epu32 (_mm512_srli_epi64 (a, 32), m);
  return _mm512_mask_blend_epi32 (0xAAAA, even, odd);
}

__attribute__((target ("avx512f")))
static void
philox_x16 (const guint32 ctr[4], const guint32 key[2], guint32 out[4][16])
{
  const __m512i m0 = _mm512_set1_epi32 ((int) PHILOX_M0), m1 = _mm512_set1_epi32 ((int) PHILOX_M1);
  const __m512i lane = _mm512_setr_epi32 (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  __m512i c0 = _mm512_set1_epi32 ((int) ctr[0]);
  __m512i c1 = _mm512_add_epi32 (_mm512_set1_epi32 ((int) ctr[1]), lane);
  __m512i c2 = _mm512_set1_epi32 ((int) ctr[2]), c3 = _mm512_set1_epi32 ((int) ctr[3]);
  guint32 k0 = key[0], k1 = key[1];
  for (int r = 0; r < 10; r++) {
    if (r > 0) {
      k0 += PHILOX_W0;
      k1 += PHILOX_W1;
    }
    const __m512i hi0 = mulhi_epu32 (c0, m0), lo0 = _mm512_mullo_epi32 (c0, m0);
    const __m512i hi1 = mulhi_epu32 (c2, m1), lo1 = _mm512_mullo_epi32 (c2, m1);
    c0 = _mm512_xor_si512 (_mm512_xor_si512 (hi1, c1), _mm512_set1_epi32 ((int) k0));
    c1 = lo1;
    c2 = _mm512_xor_si512 (_mm512_xor_si512 (hi0, c3), _mm512_set1_epi32 ((int) k1));
    c3 = lo0;
  }
  _mm512_storeu_si512 (out[0], c0);
  _mm512_storeu_si512 (out[1], c1);
  _mm512_storeu_si512 (out[2], c2);
  _mm512_storeu_si512 (out[3], c3);
}
#endif

void
ge_philox4x32_10_run (const guint32 ctr[4], const guint32 key[2], int n, guint32 out[4][16])
{
  g_assert (n >= 0 && n <= 16);
#if defined(__x86_64__) && defined(__GNUC__)
  if (ge_gemm_packed_available ()) {
    philox_x16 (ctr, key, out);
    return;
  }
#endif
  for (int i = 0; i < n; i++) {
    const guint32 c[4] = { ctr[0], ctr[1] + (guint32) i, ctr[2], ctr[3] };
    guint32 o[4];
    ge_philox4x32_10 (c, key, o);
    for (int w = 0; w < 4; w++)
      out[w][i] = o[w];
  }
}

static void
block (guint64 seed, guint64 index, guint32 stream, guint32 out[4])
{
  const guint32 ctr[4] = { (guint32) index, (guint32) (index >> 32), stream, 0 };
  const guint32 key[2] = { (guint32) seed, (guint32) (seed >> 32) };
  ge_philox4x32_10 (ctr, key, out);
}

/* (w + 0.5) / 2^32: strictly inside (0, 1), exact in double */
static inline double
open_unit (guint32 w)
{
  return ((double) w + 0.5) * (1.0 / 4294967296.0);
}

/* Words 0,1 of a block give normals 0 (cos) and 1 (sin); words 2,3 give
 * normals 2 and 3. */
static void
normals4 (guint64 seed, guint64 index, float z[4])
{
  guint32 w[4];
  block (seed, index, STREAM_NORMAL, w);
  for (int p = 0; p < 2; p++) {
    double r = sqrt (-2.0 * log (open_unit (w[2 * p])));
    double theta = 2.0 * G_PI * open_unit (w[2 * p + 1]);
    z[2 * p] = (float) (r * cos (theta));
    z[2 * p + 1] = (float) (r * sin (theta));
  }
}

void
ge_rng_normal (guint64 seed, guint64 offset, float *out, gsize n)
{
  gsize i = 0;
  while (i < n) {
    guint64 j = offset + i;
    float z[4];
    normals4 (seed, j >> 2, z);
    for (guint w = (guint) (j & 3); w < 4 && i < n; w++, i++)
      out[i] = z[w];
  }
}

void
ge_rng_uniform (guint64 seed, guint64 offset, float *out, gsize n)
{
  gsize i = 0;
  while (i < n) {
    guint64 j = offset + i;
    guint32 w[4];
    block (seed, j >> 2, STREAM_UNIFORM, w);
    for (guint k = (guint) (j & 3); k < 4 && i < n; k++, i++)
      out[i] = (float) (w[k] >> 8) * (1.0f / 16777216.0f);
  }
}
