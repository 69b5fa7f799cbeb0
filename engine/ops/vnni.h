/* vnni.h: AVX512-VNNI multiply-adds written out as instructions.
 *
 * gcc 12 copies every accumulator in and out of another register around
 * the _mm512_dpbusd_epi32 / _mm512_dpwssd_epi32 intrinsics (twice the
 * instructions, a third of the speed in a register-tiled kernel); these
 * add into @acc in place.  Only inside functions compiled for
 * AVX512-VNNI. */
#pragma once

/* acc += the four products of @b's unsigned and @a's signed bytes, per lane */
#define GE_DPBUSD(acc, b, a) __asm__ ("vpdpbusd %2, %1, %0" : "+v" (acc) : "v" (b), "v" (a))
/* acc += the two products of @b's and @a's signed 16-bit pairs, per lane */
#define GE_DPWSSD(acc, b, a) __asm__ ("vpdpwssd %2, %1, %0" : "+v" (acc) : "v" (b), "v" (a))
