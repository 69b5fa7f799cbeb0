/* sr_bench: diffusionsr's engine frame (ge_sr_process: 8-bit in, 8-bit
 * out, the model's default steps, no tiling) at each precision, 1 and 2
 * threads, with the time of each stage (ge_sr_last_times): the U-Net, the
 * sampler's updates, bicubic, noise, conversions.  The precisions take
 * turns within each round; each number is a median over the round's frames,
 * and the medians over rounds are printed as JSON; "cpu" is the process's
 * CPU time of the frame (all threads), which time-slicing on a shared
 * machine leaves alone.
 *
 *   sr_bench MODEL [--width 640] [--height 360] [--frames 7] [--warmup 2]
 *            [--rounds 5] [--precisions f32,bf16]
 */
#include "ge-sr.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "bench-stats.h"

#define N_STAGES 7
static const char *stage_names[N_STAGES] = { "total", "unet", "step", "bicubic", "noise",
  "convert", "cpu"
};

static void
stages (const GeSrTimes * t, double *v)
{
  v[0] = t->total_ms;
  v[1] = t->unet_ms;
  v[2] = t->step_ms;
  v[3] = t->bicubic_ms;
  v[4] = t->noise_ms;
  v[5] = t->convert_ms;
}

int
main (int argc, char **argv)
{
  if (argc < 2) {
    fprintf (stderr, "usage: %s MODEL [--width W] [--height H] [--frames N] [--warmup N] "
        "[--rounds N] [--precisions f32,bf16]\n", argv[0]);
    return 2;
  }
  int W = 640, H = 360, frames = 7, warmup = 2, rounds = 5;
  const char *precisions = "f32,bf16";
  for (int i = 2; i + 1 < argc; i++) {
    if (!strcmp (argv[i], "--width"))
      W = atoi (argv[++i]);
    else if (!strcmp (argv[i], "--height"))
      H = atoi (argv[++i]);
    else if (!strcmp (argv[i], "--frames"))
      frames = atoi (argv[++i]);
    else if (!strcmp (argv[i], "--warmup"))
      warmup = atoi (argv[++i]);
    else if (!strcmp (argv[i], "--rounds"))
      rounds = atoi (argv[++i]);
    else if (!strcmp (argv[i], "--precisions"))
      precisions = argv[++i];
  }
  char **names = g_strsplit (precisions, ",", -1);
  const int np = g_strv_length (names);
  GePrecision *prec = g_new (GePrecision, np);
  for (int p = 0; p < np; p++)
    if (!ge_precision_from_name (names[p], &prec[p])) {
      fprintf (stderr, "unknown precision %s\n", names[p]);
      return 2;
    }
  GError *err = NULL;
  GeSr *sr = ge_sr_new (argv[1], &err);
  if (!sr) {
    fprintf (stderr, "%s\n", err->message);
    return 1;
  }
  const int s = ge_sr_scale (sr);
  /* A smooth picture with texture: the time does not depend on it. */
  GeImageU8 in = { g_malloc ((gsize) W * H * 3), W, H, W * 3, 3, 0, 1, 2, -1 };
  GeImageU8 out = { g_malloc ((gsize) W * s * H * s * 3), W * s, H * s, W * s * 3, 3, 0, 1, 2, -1 };
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++)
      for (int c = 0; c < 3; c++)
        in.data[(gsize) y * in.stride + x * 3 + c] =
            (guint8) ((x * (c + 1) + y * 2 + ((x * 7 + y * 13) % 17) * 3) & 255);
  /* [threads][precision][stage][round] */
  double *rec = g_new0 (double, 2 * np * N_STAGES * rounds);
#define REC(t, p, st, r) rec[(((t) * np + (p)) * N_STAGES + (st)) * rounds + (r)]
  double *fr = g_new (double, N_STAGES * frames);
  for (int r = 0; r < rounds; r++)
    for (int t = 0; t < 2; t++) {
      ge_sr_set_n_threads (sr, t + 1);
      for (int p = 0; p < np; p++) {
        ge_sr_set_precision (sr, prec[p]);
        for (int f = 0; f < warmup + frames; f++) {
          struct timespec c0, c1;
          clock_gettime (CLOCK_PROCESS_CPUTIME_ID, &c0);
          if (!ge_sr_process (sr, &in, &out, &err)) {
            fprintf (stderr, "%s\n", err->message);
            return 1;
          }
          clock_gettime (CLOCK_PROCESS_CPUTIME_ID, &c1);
          if (f >= warmup) {
            double v[N_STAGES];
            stages (ge_sr_last_times (sr), v);
            v[6] = (c1.tv_sec - c0.tv_sec) * 1e3 + (c1.tv_nsec - c0.tv_nsec) / 1e6;
            for (int st = 0; st < N_STAGES; st++)
              fr[st * frames + f - warmup] = v[st];
          }
        }
        for (int st = 0; st < N_STAGES; st++)
          REC (t, p, st, r) = median (fr + st * frames, frames);
      }
    }
  printf ("{\"model\": \"%s\", \"input\": [%d, %d], \"scale\": %d, \"steps\": %d, "
      "\"frames\": %d, \"warmup\": %d, \"rounds\": %d, \"threads\": {", argv[1], W, H, s,
      ge_sr_default_steps (sr), frames, warmup, rounds);
  for (int t = 0; t < 2; t++) {
    printf ("%s\"%d\": {", t ? ", " : "", t + 1);
    for (int p = 0; p < np; p++) {
      ge_sr_set_precision (sr, prec[p]);
      printf ("%s\"%s\": {\"runs_as\": \"%s\"", p ? ", " : "", names[p],
          ge_precision_name (ge_sr_set_precision (sr, prec[p])));
      for (int st = 0; st < N_STAGES; st++) {
        printf (", \"%s_ms\": [", stage_names[st]);
        for (int r = 0; r < rounds; r++)
          printf ("%s%.2f", r ? ", " : "", REC (t, p, st, r));
        printf ("]");
      }
      printf ("}");
    }
    printf ("}");
  }
  printf ("}}\n");
  ge_sr_free (sr);
  g_free (rec);
  g_free (fr);
  g_free (prec);
  g_strfreev (names);
  g_free (in.data);
  g_free (out.data);
  return 0;
}
