/* conv_bench: GFLOP/s of the engine's conv2d against OpenBLAS sgemm on the
 * GEMM a conv of that shape amounts to (M = cout, N = pixels, K = cin*k*k),
 * in the same run, on 1 and 2 threads; medians of repeated runs.  Where
 * the CPU has AVX512-BF16 the conv runs in bf16 too, the two precisions
 * taking turns run by run.
 *
 *   conv_bench [--runs N]
 */
#include "ge-ops.h"
#include "ge-pool.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench-stats.h"

static float *
filled (gsize n)
{
  float *v = g_malloc (n * sizeof (float));
  for (gsize i = 0; i < n; i++)
    v[i] = (float) ((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
  return v;
}

int
main (int argc, char **argv)
{
  int runs = 7;
  for (int i = 1; i < argc; i++)
    if (strcmp (argv[i], "--runs") == 0 && i + 1 < argc)
      runs = atoi (argv[++i]);
  static const struct { int cin, cout, k, h, w; } shapes[] = {
    { 32, 32, 3, 128, 128 }, { 64, 64, 3, 64, 64 }, { 128, 128, 3, 32, 32 },
    { 256, 256, 3, 16, 16 }, { 64, 128, 3, 64, 64 }, { 64, 64, 3, 45, 80 },
    { 16, 16, 3, 360, 640 }, { 48, 16, 3, 360, 640 },
    { 64, 64, 1, 64, 64 }, { 256, 256, 1, 32, 32 },
  };
  GeArena *arena = ge_arena_new ();
  const gboolean bf16 = ge_precision_bf16_available ();
  printf ("| threads | conv | conv GFLOP/s | sgemm GFLOP/s | ratio | bf16 conv GFLOP/s | bf16 / f32 time |\n"
      "|---|---|---|---|---|---|---|\n");
  for (int threads = 1; threads <= 2; threads++) {
    GePool *pool = ge_pool_new (threads);
    GeCtx ctx = { pool, arena };
    for (guint s = 0; s < G_N_ELEMENTS (shapes); s++) {
      const int cin = shapes[s].cin, cout = shapes[s].cout, k = shapes[s].k;
      const int h = shapes[s].h, w = shapes[s].w;
      float *wt = filled ((gsize) cout * cin * k * k), *b = filled (cout);
      GeConv2d p = ge_conv2d_params (cin, cout, k, 1, k / 2, wt, b);
      /* As the models run it: packed weights where the CPU takes them. */
      float *packed = NULL;
      if (ge_conv2d_packed_size (&p))
        ge_conv2d_pack (&p, packed = g_malloc (ge_conv2d_packed_size (&p) * 4));
      guint32 *packed_bf16 = NULL;
      if (ge_conv2d_packed_bf16_size (&p))
        ge_conv2d_pack_bf16 (&p, packed_bf16 = g_malloc (ge_conv2d_packed_bf16_size (&p) * 4));
      GeTensor x = { filled ((gsize) cin * h * w), 1, cin, h, w };
      GeTensor y = { g_malloc ((gsize) cout * h * w * 4), 1, cout, h, w };
      const double flops = 2.0 * cout * cin * k * k * h * w;
      /* Repeat each timing until it lasts ~20 ms so short convs are measurable
       * (the first pass also warms the arena, pool and caches). */
      int reps = 1;
      for (int i = 0; i < 3; i++)
        ge_conv2d (&ctx, &p, &x, &y);
      for (;;) {
        gint64 t0 = g_get_monotonic_time ();
        for (int r = 0; r < reps; r++)
          ge_conv2d (&ctx, &p, &x, &y);
        if (g_get_monotonic_time () - t0 > 20000 || reps > 1 << 16)
          break;
        reps *= 2;
      }
      double *tc = g_new (double, runs), *tg = g_new (double, runs), *tb = g_new (double, runs);
      float *A = filled ((gsize) cout * cin * k * k), *B = filled ((gsize) cin * k * k * h * w);
      float *C = g_malloc ((gsize) cout * h * w * 4);
      for (int r = 0; r < runs; r++) {
        ge_arena_reset (arena);
        gint64 t0 = g_get_monotonic_time ();
        for (int i = 0; i < reps; i++)
          ge_conv2d (&ctx, &p, &x, &y);
        tc[r] = (g_get_monotonic_time () - t0) / 1e6 / reps;
        if (!bf16)
          continue;
        ctx.precision = GE_PRECISION_BF16;
        ge_conv2d (&ctx, &p, &x, &y);
        t0 = g_get_monotonic_time ();
        for (int i = 0; i < reps; i++)
          ge_conv2d (&ctx, &p, &x, &y);
        tb[r] = (g_get_monotonic_time () - t0) / 1e6 / reps;
        ctx.precision = GE_PRECISION_F32;
      }
      /* The anchor: OpenBLAS's own threads for sgemm, as a user of plain
       * im2col + sgemm would run it.  Timed after the conv runs: idle
       * OpenBLAS threads spin for a while after a call and would steal the
       * second core from the engine's pool. */
      openblas_set_num_threads (threads);
      for (int r = 0; r < runs; r++) {
        gint64 t0 = g_get_monotonic_time ();
        for (int i = 0; i < reps; i++)
          cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, cout, h * w, cin * k * k,
              1.0f, A, cin * k * k, B, h * w, 0.0f, C, h * w);
        tg[r] = (g_get_monotonic_time () - t0) / 1e6 / reps;
      }
      openblas_set_num_threads (1);
      g_usleep (300000);        /* let them go back to sleep */
      double gc = flops / median (tc, runs) / 1e9, gg = flops / median (tg, runs) / 1e9;
      printf ("| %d | %dx%d %d->%d @%dx%d | %.1f | %.1f | %.0f %% |", threads, k, k, cin,
          cout, w, h, gc, gg, 100 * gc / gg);
      if (bf16) {
        double rt[64];
        for (int r = 0; r < runs && r < 64; r++)
          rt[r] = tb[r] / tc[r];
        printf (" %.1f | %.2f |\n", flops / median (tb, runs) / 1e9, median (rt, MIN (runs, 64)));
      } else
        printf (" | |\n");
      g_free (tc);
      g_free (tg);
      g_free (tb);
      g_free (packed_bf16);
      g_free (A);
      g_free (B);
      g_free (C);
      g_free (packed);
      g_free (wt);
      g_free (b);
      g_free (x.data);
      g_free (y.data);
    }
    ge_pool_free (pool);
  }
  ge_arena_free (arena);
  return 0;
}
