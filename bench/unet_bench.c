/* unet_bench: times a UNet2DModel forward in the engine, on 1 and 2
 * threads, medians of repeated runs, and checks the output against the
 * PyTorch output of the same weights (made by bench/unet_bench_model.py).
 *
 *   unet_bench MODEL_DIR [--runs N] [--warmup N] [--precision f32|bf16|int8|auto]
 *
 * MODEL_DIR holds config.json, diffusion_pytorch_model.safetensors,
 * input_sample.bin (f32 [1,3,H,W]), input_timestep.bin (i64) and
 * torch_out.bin.  Prints one JSON object.
 */
#include "ge-unet2d.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "bench-stats.h"

static void *
read_bin (const char *dir, const char *name, gsize * len)
{
  char *p = g_build_filename (dir, name, NULL);
  char *data = NULL;
  GError *err = NULL;
  if (!g_file_get_contents (p, &data, len, &err)) {
    fprintf (stderr, "%s\n", err->message);
    exit (1);
  }
  g_free (p);
  return data;
}

int
main (int argc, char **argv)
{
  if (argc < 2) {
    fprintf (stderr, "usage: %s MODEL_DIR [--runs N] [--warmup N]\n", argv[0]);
    return 2;
  }
  int runs = 7, warmup = 2;
  GePrecision precision = GE_PRECISION_F32;
  for (int i = 2; i + 1 < argc; i++) {
    if (strcmp (argv[i], "--runs") == 0)
      runs = atoi (argv[++i]);
    else if (strcmp (argv[i], "--warmup") == 0)
      warmup = atoi (argv[++i]);
    else if (strcmp (argv[i], "--precision") == 0
        && !ge_precision_from_name (argv[++i], &precision)) {
      fprintf (stderr, "--precision: f32, bf16, int8 or auto\n");
      return 2;
    }
  }
  GError *err = NULL;
  GeModelFile *mf = ge_model_file_open (argv[1], &err);
  GeUNet2D *u = mf ? ge_unet2d_new (mf, &err) : NULL;
  if (!u) {
    fprintf (stderr, "%s\n", err->message);
    return 1;
  }
  gsize xl, tl, rl;
  float *x = read_bin (argv[1], "input_sample.bin", &xl);
  gint64 *tv = read_bin (argv[1], "input_timestep.bin", &tl);
  float *ref = read_bin (argv[1], "torch_out.bin", &rl);
  const int c = ge_unet2d_in_channels (u);
  const int side = (int) sqrt ((double) (xl / 4 / c));
  float t = (float) tv[0];
  float *out = g_new (float, rl / 4);

  precision = ge_unet2d_set_precision (u, precision);
  printf ("{\"engine\": \"gst-generative\", \"params\": %" G_GSIZE_FORMAT
      ", \"input\": [1, %d, %d, %d], \"runs\": %d, \"warmup\": %d, \"precision\": \"%s\", "
      "\"threads\": {", ge_unet2d_n_params (u), c, side, side, runs, warmup,
      ge_precision_name (precision));
  for (int threads = 1; threads <= 2; threads++) {
    ge_unet2d_set_n_threads (u, threads);
    double *ms = g_new (double, runs), *cpu = g_new (double, runs);
    for (int r = 0; r < warmup + runs; r++) {
      /* CPU time of the process, all threads: on a shared machine,
       * time-slicing leaves it alone */
      struct timespec c0, c1;
      clock_gettime (CLOCK_PROCESS_CPUTIME_ID, &c0);
      gint64 t0 = g_get_monotonic_time ();
      if (!ge_unet2d_forward (u, x, 1, side, side, &t, out, &err)) {
        fprintf (stderr, "%s\n", err->message);
        return 1;
      }
      clock_gettime (CLOCK_PROCESS_CPUTIME_ID, &c1);
      if (r >= warmup) {
        ms[r - warmup] = (g_get_monotonic_time () - t0) / 1e3;
        cpu[r - warmup] = (c1.tv_sec - c0.tv_sec) * 1e3 + (c1.tv_nsec - c0.tv_nsec) / 1e6;
      }
    }
    double maxdiff = 0;
    for (gsize i = 0; i < rl / 4; i++)
      maxdiff = fmax (maxdiff, fabs (out[i] - ref[i]));
    qsort (ms, runs, sizeof (double), cmp_double);
    qsort (cpu, runs, sizeof (double), cmp_double);
    printf ("%s\"%d\": {\"median_ms\": %.2f, \"min_ms\": %.2f, \"median_cpu_ms\": %.2f, "
        "\"allocs_per_run\": %u, \"workspace_mb\": %.1f, \"max_abs_diff_vs_torch\": %.3g}",
        threads > 1 ? ", " : "", threads,
        runs % 2 ? ms[runs / 2] : 0.5 * (ms[runs / 2 - 1] + ms[runs / 2]), ms[0],
        runs % 2 ? cpu[runs / 2] : 0.5 * (cpu[runs / 2 - 1] + cpu[runs / 2]),
        ge_unet2d_n_allocs (u), ge_unet2d_workspace_bytes (u) / 1048576.0, maxdiff);
    g_free (ms);
    g_free (cpu);
  }
  printf ("}}\n");
  ge_unet2d_free (u);
  ge_model_file_unref (mf);
  g_free (x);
  g_free (tv);
  g_free (ref);
  g_free (out);
  return 0;
}
