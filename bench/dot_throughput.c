/* dot_throughput: how many multiply-adds this CPU's 512-bit dot-product
 * instructions retire, in a register-only loop (12 independent
 * accumulators, no loads): the ceiling of any kernel built on them.
 *
 *   vfmadd231ps   16 f32 multiply-adds (the f32 kernels)
 *   vdpbf16ps     32 bf16 products added in pairs into f32 (the bf16 path)
 *   vpdpbusd      64 u8 x s8 products added in fours into int32 (VNNI:
 *                 an int8 path would use it)
 *
 *   dot_throughput [--iterations N]
 *
 * Prints instructions per second and multiply-adds per second of each, and
 * their ratios to vfmadd231ps; one thread.  x86-64 with AVX512-BF16 and
 * AVX512-VNNI only (it says so and exits 77 elsewhere).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double
now (void)
{
  struct timespec t;
  clock_gettime (CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

#if defined(__x86_64__) && defined(__GNUC__)
/* 12 instructions of @op on zmm0-11 from zmm30, zmm31, @n / 12 times. */
#define LOOP(op, n) \
  for (long i = 0; i < (n) / 12; i++) \
    __asm__ volatile ( \
        op " %%zmm30, %%zmm31, %%zmm0\n\t" op " %%zmm30, %%zmm31, %%zmm1\n\t" \
        op " %%zmm30, %%zmm31, %%zmm2\n\t" op " %%zmm30, %%zmm31, %%zmm3\n\t" \
        op " %%zmm30, %%zmm31, %%zmm4\n\t" op " %%zmm30, %%zmm31, %%zmm5\n\t" \
        op " %%zmm30, %%zmm31, %%zmm6\n\t" op " %%zmm30, %%zmm31, %%zmm7\n\t" \
        op " %%zmm30, %%zmm31, %%zmm8\n\t" op " %%zmm30, %%zmm31, %%zmm9\n\t" \
        op " %%zmm30, %%zmm31, %%zmm10\n\t" op " %%zmm30, %%zmm31, %%zmm11\n\t" \
        ::: "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", \
        "xmm9", "xmm10", "xmm11")

/* The loops need AVX-512's zmm16-31 names; the caller checks the CPU. */
__attribute__((target ("avx512f,avx512bf16,avx512vnni")))
static void
run (long n, double rate[3])
{
  __asm__ volatile ("vpxord %%zmm30, %%zmm30, %%zmm30\n\tvpxord %%zmm31, %%zmm31, %%zmm31"
      ::: "xmm30", "xmm31");
  for (int rep = 0; rep < 2; rep++) {   /* the first pass warms the clocks up */
    double t0 = now ();
    LOOP ("vfmadd231ps", n);
    double t1 = now ();
    LOOP ("vdpbf16ps", n);
    double t2 = now ();
    LOOP ("vpdpbusd", n);
    double t3 = now ();
    rate[0] = n / (t1 - t0);
    rate[1] = n / (t2 - t1);
    rate[2] = n / (t3 - t2);
  }
}

int
main (int argc, char **argv)
{
  long n = 300000000;
  for (int i = 1; i < argc; i++)
    if (!strcmp (argv[i], "--iterations") && i + 1 < argc)
      n = atol (argv[++i]);
  __builtin_cpu_init ();
  if (!__builtin_cpu_supports ("avx512bf16") || !__builtin_cpu_supports ("avx512vnni")) {
    printf ("this CPU lacks AVX512-BF16 or AVX512-VNNI\n");
    return 77;
  }
  static const struct { const char *name; int macs; } ops[3] = {
    { "vfmadd231ps", 16 }, { "vdpbf16ps", 32 }, { "vpdpbusd", 64 },
  };
  double rate[3];
  run (n, rate);
  printf ("| instruction | per second (G) | multiply-adds per instruction | G multiply-adds/s "
      "| multiply-adds against vfmadd231ps |\n|---|---:|---:|---:|---:|\n");
  for (int k = 0; k < 3; k++)
    printf ("| %s | %.2f | %d | %.1f | %.2f |\n", ops[k].name, rate[k] / 1e9, ops[k].macs,
        rate[k] * ops[k].macs / 1e9, rate[k] * ops[k].macs / (rate[0] * ops[0].macs));
  return 0;
}
#else
int
main (void)
{
  printf ("x86-64 only\n");
  return 77;
}
#endif
