/* unet_cond_bench: times a UNet2DConditionModel forward (the Stable
 * Diffusion U-Net) in the engine on 1 and 2 threads, medians of repeated
 * runs, checks the output against PyTorch's on the same weights and inputs,
 * and reports the peak resident memory.  bench/sd_unet_speed.py writes the
 * model folder and runs this program.
 *
 *   unet_cond_bench MODEL_DIR --n N --h H --w W --seq S --ctx D
 *       [--runs N] [--warmup N] [--threads 1,2] [--precision f32|bf16|auto]
 *
 * MODEL_DIR holds config.json, diffusion_pytorch_model.safetensors,
 * input_sample.bin (f32 [N,C,H,W]), input_timestep.bin (f32 [N]),
 * input_context.bin (f32 [N,S,D]), optionally input_class_labels.bin
 * (f32 [N]), and torch_out.bin (f32 [N,C_out,H,W]).  Prints one JSON object.
 *
 * Peak memory is VmHWM from /proc/self/status: once after loading, then
 * restarted from the current RSS (clear_refs 5) so that the second number
 * is the peak while the model is loaded and running.  "derived_mb_load" and
 * "derived_mb" are the packed weight copies the model added to its file's
 * mapping after loading and after the runs (the bf16 copy of f32 weights
 * is made by the first bf16 forward).
 */
#include "ge-unet2d.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench-stats.h"

/* Exits with a message when the file is missing or not @want bytes long
 * (@want 0: any length). */
static void *
read_bin (const char *dir, const char *name, gsize want)
{
  char *p = g_build_filename (dir, name, NULL);
  char *data = NULL;
  gsize len = 0;
  GError *err = NULL;
  if (!g_file_get_contents (p, &data, &len, &err)) {
    fprintf (stderr, "%s\n", err->message);
    exit (1);
  }
  if (want && len != want) {
    fprintf (stderr, "%s: %" G_GSIZE_FORMAT " bytes, expected %" G_GSIZE_FORMAT
        "\n", p, len, want);
    exit (1);
  }
  g_free (p);
  return data;
}

/* VmHWM in bytes, 0 when unknown. */
static gsize
peak_rss_bytes (void)
{
  char *status = NULL;
  gsize kb = 0;
  if (g_file_get_contents ("/proc/self/status", &status, NULL, NULL)) {
    const char *line = strstr (status, "VmHWM:");
    if (line)
      kb = g_ascii_strtoull (line + strlen ("VmHWM:"), NULL, 10);
    g_free (status);
  }
  return kb * 1024;
}

static gboolean
reset_peak_rss (void)
{
  FILE *f = fopen ("/proc/self/clear_refs", "w");
  if (!f)
    return FALSE;
  gboolean ok = fputs ("5", f) >= 0;
  return fclose (f) == 0 && ok;
}

int
main (int argc, char **argv)
{
  if (argc < 2) {
    fprintf (stderr, "usage: %s MODEL_DIR --n N --h H --w W --seq S --ctx D "
        "[--runs N] [--warmup N] [--threads 1,2] [--precision f32|bf16|auto]\n",
        argv[0]);
    return 2;
  }
  int n = 0, h = 0, w = 0, seq = 0, ctx = 0, runs = 3, warmup = 1;
  const char *threads_arg = "1,2";
  GePrecision precision = GE_PRECISION_F32;
  for (int i = 2; i + 1 < argc; i++) {
    const char *a = argv[i], *v = argv[++i];
    if (strcmp (a, "--n") == 0)
      n = atoi (v);
    else if (strcmp (a, "--h") == 0)
      h = atoi (v);
    else if (strcmp (a, "--w") == 0)
      w = atoi (v);
    else if (strcmp (a, "--seq") == 0)
      seq = atoi (v);
    else if (strcmp (a, "--ctx") == 0)
      ctx = atoi (v);
    else if (strcmp (a, "--runs") == 0)
      runs = atoi (v);
    else if (strcmp (a, "--warmup") == 0)
      warmup = atoi (v);
    else if (strcmp (a, "--threads") == 0)
      threads_arg = v;
    else if (strcmp (a, "--precision") == 0) {
      if (!ge_precision_from_name (v, &precision)) {
        fprintf (stderr, "--precision: f32, bf16 or auto\n");
        return 2;
      }
    } else {
      fprintf (stderr, "unknown option %s\n", a);
      return 2;
    }
  }
  if (n <= 0 || h <= 0 || w <= 0 || seq <= 0 || ctx <= 0 || runs <= 0
      || warmup < 0) {
    fprintf (stderr, "--n, --h, --w, --seq, --ctx and --runs must be > 0\n");
    return 2;
  }

  GError *err = NULL;
  gint64 t_load = g_get_monotonic_time ();
  GeModelFile *mf = ge_model_file_open (argv[1], &err);
  GeUNet2D *u = mf ? ge_unet2d_new (mf, &err) : NULL;
  if (!u) {
    fprintf (stderr, "%s\n", err->message);
    return 1;
  }
  double load_s = (g_get_monotonic_time () - t_load) / 1e6;
  const gsize derived_load = ge_model_file_derived_bytes (mf);
  precision = ge_unet2d_set_precision (u, precision);
  const int cin = ge_unet2d_in_channels (u), cout = ge_unet2d_out_channels (u);
  const gsize x_len = (gsize) n * cin * h * w, out_len = (gsize) n * cout * h * w;
  float *x = read_bin (argv[1], "input_sample.bin", x_len * 4);
  float *t = read_bin (argv[1], "input_timestep.bin", (gsize) n * 4);
  float *ehs = read_bin (argv[1], "input_context.bin", (gsize) n * seq * ctx * 4);
  float *ref = read_bin (argv[1], "torch_out.bin", out_len * 4);
  float *labels = NULL;
  char *labels_path = g_build_filename (argv[1], "input_class_labels.bin", NULL);
  if (g_file_test (labels_path, G_FILE_TEST_EXISTS))
    labels = read_bin (argv[1], "input_class_labels.bin", (gsize) n * 4);
  g_free (labels_path);
  float *out = g_new (float, out_len);

  const gsize rss_load = peak_rss_bytes ();
  const gboolean rss_reset = reset_peak_rss ();

  double ref_max = 0;
  for (gsize i = 0; i < out_len; i++)
    ref_max = fmax (ref_max, fabs (ref[i]));

  printf ("{\"engine\": \"gst-generative\", \"params\": %" G_GSIZE_FORMAT
      ", \"input\": [%d, %d, %d, %d], \"context\": [%d, %d, %d], "
      "\"runs\": %d, \"warmup\": %d, \"load_s\": %.2f, \"precision\": \"%s\", "
      "\"threads\": {", ge_unet2d_n_params (u), n, cin, h, w, n, seq, ctx, runs,
      warmup, load_s, ge_precision_name (precision));
  gchar **threads = g_strsplit (threads_arg, ",", -1);
  for (int k = 0; threads[k]; k++) {
    const int n_threads = atoi (threads[k]);
    ge_unet2d_set_n_threads (u, n_threads);
    double *ms = g_new (double, runs);
    for (int r = 0; r < warmup + runs; r++) {
      gint64 t0 = g_get_monotonic_time ();
      if (!ge_unet2d_forward_cond (u, x, n, h, w, t, ehs, seq, labels, out,
              &err)) {
        fprintf (stderr, "%s\n", err->message);
        return 1;
      }
      if (r >= warmup)
        ms[r - warmup] = (g_get_monotonic_time () - t0) / 1e3;
    }
    double maxdiff = 0;
    for (gsize i = 0; i < out_len; i++)
      maxdiff = fmax (maxdiff, fabs (out[i] - ref[i]));
    qsort (ms, runs, sizeof (double), cmp_double);
    printf ("%s\"%d\": {\"median_ms\": %.2f, \"min_ms\": %.2f, "
        "\"allocs_per_run\": %u, \"workspace_mb\": %.1f, "
        "\"max_abs_diff_vs_torch\": %.3g, \"max_rel_err_vs_torch\": %.3g}",
        k ? ", " : "", n_threads,
        runs % 2 ? ms[runs / 2] : 0.5 * (ms[runs / 2 - 1] + ms[runs / 2]),
        ms[0], ge_unet2d_n_allocs (u),
        ge_unet2d_workspace_bytes (u) / 1048576.0, maxdiff,
        ref_max > 0 ? maxdiff / ref_max : maxdiff);
    g_free (ms);
  }
  g_strfreev (threads);
  /* the forward peak is only meaningful when the reset worked */
  printf ("}, \"peak_rss_load_bytes\": %" G_GSIZE_FORMAT
      ", \"peak_rss_bytes\": %" G_GSIZE_FORMAT ", \"peak_rss_forward_bytes\": %"
      G_GSIZE_FORMAT ", \"derived_mb_load\": %.1f, \"derived_mb\": %.1f}\n", rss_load,
      MAX (rss_load, peak_rss_bytes ()), rss_reset ? peak_rss_bytes () : 0,
      derived_load / 1048576.0, ge_model_file_derived_bytes (mf) / 1048576.0);
  ge_unet2d_free (u);
  ge_model_file_unref (mf);
  g_free (x);
  g_free (t);
  g_free (ehs);
  g_free (ref);
  g_free (labels);
  g_free (out);
  return 0;
}
