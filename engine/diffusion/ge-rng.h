/* ge-rng.h: a counter-based random number generator (Philox4x32-10,
 * Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011).
 *
 * There is no state: element i of a stream is a pure function of
 * (seed, offset + i), so a buffer can be filled in any order, in pieces or
 * from several threads, and a pipeline can re-create the noise of any frame
 * from its seed alone.  The integer stream is identical on every machine;
 * the normals use libm's log/cos/sin in double before rounding to float, so
 * two C libraries could differ in the last float bit in rare cases (glibc
 * gives the same results everywhere).
 *
 * The normal and uniform streams of one seed are independent (they use
 * different counters).  They are not torch.randn: the same seed gives other
 * numbers than PyTorch's generator.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* The raw bijection: 10 rounds of Philox4x32 on @ctr under @key. */
void ge_philox4x32_10 (const guint32 ctr[4], const guint32 key[2],
    guint32 out[4]);

/* The same on @n <= 16 consecutive counters: block i is @ctr with ctr[1] +
 * i (wrapping), its word w goes to out[w][i].  With AVX-512 all 16 are
 * made at once (and written). */
void ge_philox4x32_10_run (const guint32 ctr[4], const guint32 key[2], int n,
    guint32 out[4][16]);

/* @n standard normal floats: out[i] depends only on (@seed, @offset + i).
 * Box-Muller in double on two uniforms in (0, 1) built from 32 random bits
 * each (never 0, so log never sees 0). */
void ge_rng_normal (guint64 seed, guint64 offset, float *out, gsize n);

/* @n uniform floats in [0, 1), multiples of 2^-24: out[i] depends only on
 * (@seed, @offset + i). */
void ge_rng_uniform (guint64 seed, guint64 offset, float *out, gsize n);

/* The offset of position (@c, @y, @x) of a noise tensor in the seed's
 * stream, ((c << 16 | y) << 16 | x): the tasks draw their noise by position,
 * so a tile, a frame or a thread draws the same noise at the same place.  A
 * row of n positions is n consecutive elements (x < 65536). */
static inline guint64
ge_rng_position (guint64 c, guint64 y, guint64 x)
{
  return ((c << 16 | y) << 16) | x;
}

G_END_DECLS
