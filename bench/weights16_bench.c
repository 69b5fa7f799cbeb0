/* weights16_bench: what 16-bit weights in place cost.
 *
 *   weights16_bench ops [--threads N] [--runs N]
 *     time of SD-sized convs and a linear layer with F16 weights (converted
 *     as the kernel packs them) against the f32 packed path; and of the
 *     GEMM of one output row with the conversion inside every call
 *     (ge_gemm_packed16), which is why convs convert once per task.
 *   weights16_bench unet MODEL [--size S] [--threads N]
 *     loads a UNet2DModel, runs one forward on [1, in, S, S] and prints
 *     VmHWM / VmRSS after the load and after the forward, and the weight
 *     file's size.  GE_F32_WEIGHTS=1 gives the old convert-at-load path.
 */
#include "ge-ops.h"
#include "ge-pool.h"
#include "ge-unet2d.h"
#include "gemm.h"

#include <glib/gstdio.h>
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

static guint16 *
to_f16 (const float *w, gsize n)
{
  guint16 *h = g_malloc (2 * n);
  for (gsize i = 0; i < n; i++) {
    _Float16 v = (_Float16) w[i];
    memcpy (&h[i], &v, 2);
  }
  return h;
}

typedef void (*Fn) (void *);

static double
time_ms (Fn f, void *data, int runs)
{
  double t[64];
  f (data);                     /* warm-up */
  runs = MIN (runs, 64);
  for (int r = 0; r < runs; r++) {
    gint64 t0 = g_get_monotonic_time ();
    f (data);
    t[r] = (g_get_monotonic_time () - t0) / 1000.0;
  }
  qsort (t, runs, sizeof (double), cmp_double);
  return t[runs / 2];
}

typedef struct {
  GeCtx *ctx;
  GeConv2d *p;
  GeTensor *x, *y;
  GeConvInput *in;
} ConvRun;

static void
conv_run (void *d)
{
  ConvRun *r = d;
  ge_conv2d_ex (r->ctx, r->p, r->x, r->in, r->y);
}

static void
bench_conv (GeCtx * ctx, int cin, int cout, int k, int hw, gboolean gn, int runs)
{
  GeConv2d p = ge_conv2d_params (cin, cout, k, 1, k / 2, NULL, NULL);
  const gsize wn = (gsize) cin * cout * k * k;
  float *w = filled (wn), *b = filled (cout);
  guint16 *h = to_f16 (w, wn);
  for (gsize i = 0; i < wn; i++) {
    _Float16 v;
    memcpy (&v, &h[i], 2);
    w[i] = (float) v;
  }
  p.weight = w;
  p.bias = b;
  float *packed = g_malloc (sizeof (float) * ge_conv2d_packed_size (&p));
  ge_conv2d_pack (&p, packed);
  GeConv2d p16 = p;
  p16.weight = NULL;
  p16.packed = NULL;
  p16.weight16 = h;
  p16.dtype16 = GE_DTYPE_F16;
  GeTensor x = { filled ((gsize) cin * hw * hw), 1, cin, hw, hw };
  GeTensor y = { g_malloc (sizeof (float) * cout * hw * hw), 1, cout, hw, hw };
  float *scale = filled (cin), *shift = filled (cin);
  GeConvInput in = { scale, shift, GE_ACT_SILU, 1 };
  ConvRun r32 = { ctx, &p, &x, &y, gn ? &in : NULL }, r16 = r32;
  r16.p = &p16;
  double t32 = time_ms (conv_run, &r32, runs), t16 = time_ms (conv_run, &r16, runs);
  printf ("conv %4d->%-4d %dx%d at %3dx%-3d%s  f32 packed %8.2f ms  f16 in place %8.2f ms  %+6.1f %%\n",
      cin, cout, k, k, hw, hw, gn ? " +GN/SiLU" : "         ", t32, t16, 100 * (t16 / t32 - 1));
  g_free (w);
  g_free (b);
  g_free (h);
  g_free (packed);
  g_free (x.data);
  g_free (y.data);
  g_free (scale);
  g_free (shift);
}

typedef struct {
  GeCtx *ctx;
  const float *x;
  int rows, in, out;
  const void *w;
  GeDType dt;
  const float *b;
  float *y;
} LinRun;

static void
lin_run (void *d)
{
  LinRun *r = d;
  ge_linear_ex (r->ctx, r->x, r->rows, r->in, r->w, r->dt, r->b, r->out, r->y);
}

static void
bench_linear (GeCtx * ctx, int rows, int in, int out, int runs)
{
  float *w = filled ((gsize) in * out), *b = filled (out), *x = filled ((gsize) rows * in);
  float *y = g_malloc (sizeof (float) * rows * out);
  guint16 *h = to_f16 (w, (gsize) in * out);
  LinRun r32 = { ctx, x, rows, in, out, w, GE_DTYPE_F32, b, y }, r16 = r32;
  r16.w = h;
  r16.dt = GE_DTYPE_F16;
  double t32 = time_ms (lin_run, &r32, runs), t16 = time_ms (lin_run, &r16, runs);
  /* The same GEMM as a 1x1 conv on [in, rows] (NCHW), f32 packed. */
  GeConv2d p = ge_conv2d_params (in, out, 1, 1, 0, w, b);
  float *packed = g_malloc (sizeof (float) * ge_conv2d_packed_size (&p));
  ge_conv2d_pack (&p, packed);
  double tc = 0;
  if (rows % 64 == 0) {
    GeTensor xt = { x, 1, in, 64, rows / 64 }, yt = { y, 1, out, 64, rows / 64 };
    ConvRun rc = { ctx, &p, &xt, &yt, NULL };
    tc = time_ms (conv_run, &rc, runs);
  }
  printf ("linear %d x %d -> %d  f32 %8.2f ms  f16 in place %8.2f ms  %+6.1f %%  "
      "(1x1 conv f32 packed on NCHW: %.2f ms)\n", rows, in, out, t32, t16, 100 * (t16 / t32 - 1), tc);
  g_free (w);
  g_free (b);
  g_free (x);
  g_free (y);
  g_free (h);
  g_free (packed);
}

typedef struct {
  int m, n, k;
  const float *ap, *b;
  const void *a16;
  const int *boff;
  float *c, *scratch;
  gboolean conv;
} GemmRun;

static void
gemm_run (void *d)
{
  GemmRun *r = d;
  for (int rep = 0; rep < 64; rep++)    /* 64 output rows */
    if (r->conv)
      ge_gemm_packed16 (r->m, r->n, r->k, r->a16, GE_DTYPE_F16, r->k, r->b, r->boff, r->c, r->n,
          NULL, FALSE, r->scratch);
    else
      ge_gemm_packed (r->m, r->n, r->k, r->ap, r->b, r->boff, r->c, r->n, NULL, FALSE);
}

/* One thread's share of a 320->320 3x3 conv at 64x64 on 2 threads: 160
 * output channels, rows of 64 pixels, K = 2880. */
static void
bench_gemm_per_row (int m, int n, int k, int runs)
{
  float *a = filled ((gsize) m * k), *b = filled ((gsize) k * n + 64), *c = g_malloc (4 * m * n);
  float *ap = g_malloc (4 * ge_gemm_packed_a_size (m, k));
  ge_gemm_pack_a (a, m, k, k, ap);
  guint16 *h = to_f16 (a, (gsize) m * k);
  int *boff = g_new (int, k);
  for (int i = 0; i < k; i++)
    boff[i] = i * n / 4 % (k * n / 4);
  float *scratch = g_malloc (4 * ge_gemm_packed16_scratch (m, k));
  GemmRun r32 = { m, n, k, ap, b, h, boff, c, scratch, FALSE }, r16 = r32;
  r16.conv = TRUE;
  double t32 = time_ms (gemm_run, &r32, runs), t16 = time_ms (gemm_run, &r16, runs);
  printf ("gemm per output row (64 rows) m=%d n=%d k=%d  f32 packed %8.2f ms  "
      "converting in every call %8.2f ms  %+6.1f %%\n", m, n, k, t32, t16, 100 * (t16 / t32 - 1));
  g_free (a);
  g_free (b);
  g_free (c);
  g_free (ap);
  g_free (h);
  g_free (boff);
  g_free (scratch);
}

static void
proc_status (const char *when)
{
  char *text = NULL;
  if (!g_file_get_contents ("/proc/self/status", &text, NULL, NULL))
    return;
  printf ("%-14s", when);
  char **lines = g_strsplit (text, "\n", -1);
  for (char **i = lines; *i; i++)
    if (g_str_has_prefix (*i, "VmHWM") || g_str_has_prefix (*i, "VmRSS"))
      printf ("  %s", g_strdelimit (*i, "\t", ' '));
  printf ("\n");
  g_strfreev (lines);
  g_free (text);
}

static int
run_unet (const char *dir, int size, int threads)
{
  char *wpath = g_build_filename (dir, "diffusion_pytorch_model.safetensors", NULL);
  GStatBuf st;
  if (g_stat (wpath, &st) == 0)
    printf ("weights file    %.1f MB\n", st.st_size / 1e6);
  g_free (wpath);
  proc_status ("start");
  GError *err = NULL;
  GeModelFile *mf = ge_model_file_open (dir, &err);
  GeUNet2D *u = mf ? ge_unet2d_new (mf, &err) : NULL;
  if (!u) {
    fprintf (stderr, "%s\n", err->message);
    return 1;
  }
  ge_model_file_unref (mf);
  ge_unet2d_set_n_threads (u, threads);
  printf ("params          %.1f M\n", ge_unet2d_n_params (u) / 1e6);
  proc_status ("after load");
  const int c = ge_unet2d_in_channels (u), oc = ge_unet2d_out_channels (u);
  float *x = filled ((gsize) c * size * size), *out = g_malloc (sizeof (float) * oc * size * size);
  float t = 500;
  gint64 t0 = g_get_monotonic_time ();
  if (!ge_unet2d_forward (u, x, 1, size, size, &t, out, &err)) {
    fprintf (stderr, "%s\n", err->message);
    return 1;
  }
  printf ("forward         %.0f ms, activations planned %.1f MB\n",
      (g_get_monotonic_time () - t0) / 1000.0, ge_unet2d_workspace_bytes (u) / 1e6);
  proc_status ("after forward");
  t0 = g_get_monotonic_time ();   /* the first one faulted the mapping in */
  ge_unet2d_forward (u, x, 1, size, size, &t, out, NULL);
  printf ("again           %.0f ms\n", (g_get_monotonic_time () - t0) / 1000.0);
  ge_unet2d_free (u);
  g_free (x);
  g_free (out);
  return 0;
}

int
main (int argc, char **argv)
{
  int threads = 0, runs = 9, size = 64;
  for (int i = 2; i + 1 < argc; i++) {
    if (strcmp (argv[i], "--threads") == 0)
      threads = atoi (argv[++i]);
    else if (strcmp (argv[i], "--runs") == 0)
      runs = atoi (argv[++i]);
    else if (strcmp (argv[i], "--size") == 0)
      size = atoi (argv[++i]);
  }
  setvbuf (stdout, NULL, _IOLBF, 0);
  if (argc >= 3 && strcmp (argv[1], "unet") == 0)
    return run_unet (argv[2], size, threads);
  if (argc < 2 || strcmp (argv[1], "ops") != 0) {
    fprintf (stderr, "usage: %s ops [--threads N] [--runs N] | unet MODEL [--size S] [--threads N]\n",
        argv[0]);
    return 2;
  }
  if (!ge_gemm_packed_available ()) {
    fprintf (stderr, "no AVX-512: 16-bit weights are converted at load\n");
    return 0;
  }
  GeCtx ctx = { ge_pool_new (threads), ge_arena_new () };
  printf ("threads %d\n", ge_pool_n_threads (ctx.pool));
  if (g_getenv ("SMALL_ONLY") == NULL) {
    bench_conv (&ctx, 320, 320, 3, 64, TRUE, runs);
    bench_conv (&ctx, 320, 320, 3, 64, FALSE, runs);
    bench_conv (&ctx, 640, 640, 3, 32, TRUE, runs);
  }
  bench_conv (&ctx, 1280, 1280, 3, 16, TRUE, runs);
  bench_conv (&ctx, 1280, 1280, 3, 8, TRUE, runs);
  bench_conv (&ctx, 1280, 1280, 3, 4, TRUE, runs);
  bench_conv (&ctx, 2560, 1280, 3, 4, TRUE, runs);
  bench_conv (&ctx, 1920, 640, 3, 16, TRUE, runs);
  bench_conv (&ctx, 320, 320, 1, 64, FALSE, runs);
  bench_linear (&ctx, 4096, 320, 2560, runs);
  bench_linear (&ctx, 1, 320, 1280, runs);
  bench_gemm_per_row (160, 64, 2880, runs);
  bench_gemm_per_row (16, 64, 2880, runs);
  ge_pool_free (ctx.pool);
  ge_arena_free (ctx.arena);
  return 0;
}
