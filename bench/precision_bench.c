/* precision_bench: each element's default model through the engine call
 * the element makes per frame, in f32 and in bf16, the precisions taking
 * turns within each round; 1 and 2 threads; medians of frames per round,
 * printed per round as JSON.
 *
 *   precision_bench [--rounds 5] [--frames 5] [--warmup 1] [--models DIR]
 *                   [--only ELEMENT,...] [--precision f32|bf16]
 *                   [--inpaint-guidance G] [--threads N] [--paired N]
 *
 * The frames are those of the speed benches: diffusionsr 640x360 -> x2
 * (bench/sr_speed.py), diffusioninpaint a 1280x720 frame with a 160x90
 * mask at (1080, 30) (bench/inpaint_speed.py), vaeencode and vaedecode
 * 1280x720 (bench/vae_speed.py), diffusionimg2img 640x360 (no speed bench
 * of its own), gansynth one second of 48 kHz audio a hop at a time as the
 * element feeds it: one channel on one thread, two channels (a stream
 * each, on a pool) on two.  Pictures and sound are synthetic: the time does
 * not depend on them, except inpainting's, whose box comes from the mask
 * only.  Inpainting
 * runs at the model's exemplar guidance (the shipped model's 1: the
 * PatchMatch fill, no U-Net) unless --inpaint-guidance sets another (0:
 * the U-Net alone).
 *
 * Precisions: f32, bf16 and int8 (which runs as bf16 on models without
 * int8 convs, and as bf16 or f32 on CPUs without VNNI or BF16: "runs_as";
 * gansynth runs bf16 as f32).
 *
 * --paired N replaces the rounds: after a warm-up frame of each, N rounds
 * of three frames, f32, bf16 and int8, and per element and thread count
 * the median of the rounds' bf16 / f32 and int8 / f32 ratios (wall and
 * CPU time).  A pair's two frames
 * run a few hundred ms apart, so they share whatever else the host runs
 * then; on a virtual machine whose two CPUs may or may not share a core
 * with other work, per-pair ratios are steadier than ratios of medians
 * taken seconds apart.
 */
#include "ge-img2img.h"
#include "ge-inpaint.h"
#include "ge-pool.h"
#include "ge-speech.h"
#include "ge-sr.h"
#include "ge-vae-codec.h"

#include <math.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "bench-stats.h"

static GeImageU8
picture (int w, int h)
{
  GeImageU8 im = { g_malloc ((gsize) w * h * 3), w, h, w * 3, 3, 0, 1, 2, -1 };
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      for (int c = 0; c < 3; c++)
        im.data[(gsize) y * im.stride + x * 3 + c] =
            (guint8) ((x * (c + 1) + y * 2 + ((x * 7 + y * 13) % 17) * 3) & 255);
  return im;
}

typedef struct {
  const char *name;
  gpointer model;
  GeImageU8 in, out, work;
  guint8 *mask;
  float *latent;
  int lw, lh;
  /* gansynth: a stream per channel, and a pool for two */
  GeSpeechStream *streams[2];
  int n_streams, n_hops;
  GePool *pool;
  float *audio, *audio_out;
} Task;

#define SPEECH_RATE 48000

static void
speech_channel (void *data, int c, int thread)
{
  Task *t = data;
  const gsize n = (gsize) t->n_hops * ge_speech_model_hop (t->model, SPEECH_RATE);
  ge_speech_stream_process (t->streams[c], t->audio, 1, t->audio_out + c * n, 1, t->n_hops,
      1.0f);
}

static void
fail (GError * err)
{
  fprintf (stderr, "%s\n", err->message);
  exit (1);
}

static GePrecision
set (Task * t, int threads, GePrecision p)
{
  if (!strcmp (t->name, "gansynth")) {
    GePrecision runs = GE_PRECISION_F32;
    t->n_streams = threads;
    for (int c = 0; c < threads; c++)
      runs = ge_speech_stream_set_precision (t->streams[c], p);
    return runs;
  }
  if (!strcmp (t->name, "diffusionsr")) {
    ge_sr_set_n_threads (t->model, threads);
    return ge_sr_set_precision (t->model, p);
  }
  if (!strcmp (t->name, "diffusioninpaint")) {
    ge_inpaint_set_n_threads (t->model, threads);
    return ge_inpaint_set_precision (t->model, p);
  }
  if (!strcmp (t->name, "diffusionimg2img")) {
    ge_img2img_set_n_threads (t->model, threads);
    return ge_img2img_set_precision (t->model, p);
  }
  ge_vae_codec_set_n_threads (t->model, threads);
  return ge_vae_codec_set_precision (t->model, p);
}

/* One frame, ms; *@cpu_ms: the process's CPU time (all threads), which
 * time-slicing on a shared machine leaves alone. */
static double
frame (Task * t, double *cpu_ms)
{
  GError *err = NULL;
  gboolean ok;
  struct timespec c0, c1;
  clock_gettime (CLOCK_PROCESS_CPUTIME_ID, &c0);
  const gint64 t0 = g_get_monotonic_time ();
  if (!strcmp (t->name, "diffusionsr"))
    ok = ge_sr_process (t->model, &t->in, &t->out, &err);
  else if (!strcmp (t->name, "diffusioninpaint")) {
    /* in place, on a picture scrolled by 4 pixels a frame as in
     * inpaint_speed.py: no box of the frame before can be reused */
    static int k;
    const int w = t->in.width, sh = 4 * (++k) % w;
    for (int y = 0; y < t->in.height; y++) {
      guint8 *d = t->work.data + (gsize) y * t->in.stride;
      const guint8 *src = t->in.data + (gsize) y * t->in.stride;
      memcpy (d, src + 3 * sh, 3 * (gsize) (w - sh));
      memcpy (d + 3 * (gsize) (w - sh), src, 3 * (gsize) sh);
    }
    ok = ge_inpaint_process (t->model, &t->work, t->mask, t->in.width, &err);
  } else if (!strcmp (t->name, "diffusionimg2img"))
    ok = ge_img2img_process (t->model, &t->in, &t->out, &err);
  else if (!strcmp (t->name, "gansynth")) {
    if (t->n_streams > 1)
      ge_pool_run (t->pool, t->n_streams, speech_channel, t);
    else
      speech_channel (t, 0, 0);
    ok = TRUE;
  }
  else if (!strcmp (t->name, "vaeencode"))
    ok = ge_vae_codec_encode (t->model, &t->in, t->latent, &err);
  else
    ok = ge_vae_codec_decode (t->model, t->latent, t->lw, t->lh, &t->out, &err);
  if (!ok)
    fail (err);
  const double ms = (g_get_monotonic_time () - t0) / 1e3;
  clock_gettime (CLOCK_PROCESS_CPUTIME_ID, &c1);
  if (cpu_ms)
    *cpu_ms = (c1.tv_sec - c0.tv_sec) * 1e3 + (c1.tv_nsec - c0.tv_nsec) / 1e6;
  return ms;
}

int
main (int argc, char **argv)
{
  int rounds = 5, frames = 5, warmup = 1;
  const char *dir = "models", *only = NULL, *only_precision = NULL;
  double inpaint_guidance = -1;
  int only_threads = 0, paired = 0;
  for (int i = 1; i + 1 < argc; i++) {
    if (!strcmp (argv[i], "--rounds"))
      rounds = atoi (argv[++i]);
    else if (!strcmp (argv[i], "--frames"))
      frames = atoi (argv[++i]);
    else if (!strcmp (argv[i], "--warmup"))
      warmup = atoi (argv[++i]);
    else if (!strcmp (argv[i], "--models"))
      dir = argv[++i];
    else if (!strcmp (argv[i], "--only"))
      only = argv[++i];
    else if (!strcmp (argv[i], "--precision"))
      only_precision = argv[++i];
    else if (!strcmp (argv[i], "--paired"))
      paired = atoi (argv[++i]);
    else if (!strcmp (argv[i], "--threads"))
      only_threads = atoi (argv[++i]);
    else if (!strcmp (argv[i], "--inpaint-guidance"))
      inpaint_guidance = atof (argv[++i]);
  }
  GError *err = NULL;
  Task tasks[6] = { {"diffusionsr"}, {"diffusioninpaint"}, {"diffusionimg2img"}, {"vaeencode"},
  {"vaedecode"}, {"gansynth"}
  };
  char *p;
  p = g_build_filename (dir, "sr", "diffusionsr-x2.safetensors", NULL);
  if (!(tasks[0].model = ge_sr_new (p, &err)))
    fail (err);
  g_free (p);
  tasks[0].in = picture (640, 360);
  tasks[0].out = picture (1280, 720);
  p = g_build_filename (dir, "inpaint", "diffusioninpaint.safetensors", NULL);
  if (!(tasks[1].model = ge_inpaint_new (p, &err)))
    fail (err);
  g_free (p);
  if (inpaint_guidance >= 0)
    ge_inpaint_set_exemplar_guidance (tasks[1].model, (float) inpaint_guidance);
  tasks[1].in = picture (1280, 720);
  tasks[1].work = picture (1280, 720);
  tasks[1].mask = g_malloc0 (1280 * 720);
  for (int y = 30; y < 30 + 90; y++)
    memset (tasks[1].mask + y * 1280 + 1080, 255, 160);
  p = g_build_filename (dir, "img2img", "diffusionimg2img.safetensors", NULL);
  if (!(tasks[2].model = ge_img2img_new (p, &err)))
    fail (err);
  g_free (p);
  tasks[2].in = picture (640, 360);
  tasks[2].out = picture (640, 360);
  p = g_build_filename (dir, "vae", "vae.safetensors", NULL);
  if (!(tasks[3].model = ge_vae_codec_new (p, &err)))
    fail (err);
  g_free (p);
  tasks[4].model = tasks[3].model;
  const int f = ge_vae_codec_factor (tasks[3].model), lc = ge_vae_codec_latent_channels (tasks[3].model);
  for (int i = 3; i < 5; i++) {
    tasks[i].in = picture (1280, 720);
    tasks[i].out = picture (1280, 720);
    tasks[i].lw = 1280 / f;
    tasks[i].lh = 720 / f;
  }
  tasks[3].latent = tasks[4].latent = g_new0 (float, (gsize) lc * tasks[3].lw * tasks[3].lh);
  frame (&tasks[3], NULL);      /* a real latent to decode */
  p = g_build_filename (dir, "gansynth", "gansynth.safetensors", NULL);
  if (!(tasks[5].model = ge_speech_model_new (p, &err)))
    fail (err);
  g_free (p);
  tasks[5].n_hops = SPEECH_RATE / ge_speech_model_hop (tasks[5].model, SPEECH_RATE);
  tasks[5].audio = g_new (float, SPEECH_RATE);
  tasks[5].audio_out = g_new (float, 2 * SPEECH_RATE);
  for (int i = 0; i < SPEECH_RATE; i++) {      /* tones and a little noise */
    const double u = (double) ((i * 1103515245u + 12345u) >> 8 & 0xffff) / 65536.0 - 0.5;
    tasks[5].audio[i] = (float) (0.05 * sin (2 * G_PI * 180 * i / SPEECH_RATE)
        + 0.03 * sin (2 * G_PI * 540 * i / SPEECH_RATE) + 0.02 * u);
  }
  for (int c = 0; c < 2; c++)
    if (!(tasks[5].streams[c] = ge_speech_stream_new (tasks[5].model, SPEECH_RATE, &err)))
      fail (err);
  tasks[5].pool = ge_pool_new (2);

  if (paired > 0)
    rounds = frames = 0;
  const GePrecision prec[3] = { GE_PRECISION_F32, GE_PRECISION_BF16, GE_PRECISION_INT8 };
  double *ms = g_new (double, frames), *cpu = g_new (double, frames);
  printf ("{\"rounds\": %d, \"frames\": %d, \"warmup\": %d, \"inpaint_exemplar_guidance\": %g, "
      "\"results\": [", rounds, frames, warmup,
      inpaint_guidance >= 0 ? inpaint_guidance : ge_inpaint_default_exemplar_guidance (tasks[1].model));
  gboolean first = TRUE;
  if (paired > 0) {
    double *rw = g_new (double, paired), *rc = g_new (double, paired);
    double *w32 = g_new (double, paired), *w16 = g_new (double, paired);
    double *w8 = g_new (double, paired), *r8 = g_new (double, paired), *rc8 = g_new (double, paired);
    for (int ti = 0; ti < 6; ti++) {
      if (only && !strstr (only, tasks[ti].name))
        continue;
      for (int threads = 1; threads <= 2; threads++) {
        if (only_threads && threads != only_threads)
          continue;
        GePrecision runs8 = GE_PRECISION_F32;
        for (int pi = 0; pi < 3; pi++) {
          const GePrecision r = set (&tasks[ti], threads, prec[pi]);
          if (pi == 2)
            runs8 = r;
          for (int k = 0; k < warmup; k++)
            frame (&tasks[ti], NULL);
        }
        for (int k = 0; k < paired; k++) {
          double c32, c16, c8;
          set (&tasks[ti], threads, GE_PRECISION_F32);
          w32[k] = frame (&tasks[ti], &c32);
          set (&tasks[ti], threads, GE_PRECISION_BF16);
          w16[k] = frame (&tasks[ti], &c16);
          set (&tasks[ti], threads, GE_PRECISION_INT8);
          w8[k] = frame (&tasks[ti], &c8);
          rw[k] = w16[k] / w32[k];
          rc[k] = c16 / c32;
          r8[k] = w8[k] / w32[k];
          rc8[k] = c8 / c32;
        }
        printf ("%s\n {\"element\": \"%s\", \"threads\": %d, \"pairs\": %d, "
            "\"f32_median_ms\": %.2f, \"bf16_median_ms\": %.2f, \"ratio_wall_median\": %.3f, "
            "\"ratio_cpu_median\": %.3f, \"int8_runs_as\": \"%s\", \"int8_median_ms\": %.2f, "
            "\"int8_ratio_wall_median\": %.3f, \"int8_ratio_cpu_median\": %.3f}", first ? "" : ",",
            tasks[ti].name, threads, paired, median (w32, paired), median (w16, paired),
            median (rw, paired), median (rc, paired), ge_precision_name (runs8),
            median (w8, paired), median (r8, paired), median (rc8, paired));
        first = FALSE;
        fflush (stdout);
      }
    }
    g_free (rw);
    g_free (rc);
    g_free (w32);
    g_free (w16);
    g_free (w8);
    g_free (r8);
    g_free (rc8);
  }
  for (int r = 0; r < rounds; r++)
    for (int ti = 0; ti < 6; ti++) {
      if (only && !strstr (only, tasks[ti].name))
        continue;
      for (int threads = 1; threads <= 2; threads++)
        for (int pi = 0; pi < 3; pi++) {
          if ((only_precision && strcmp (only_precision, ge_precision_name (prec[pi])))
              || (only_threads && threads != only_threads))
            continue;
          const GePrecision runs = set (&tasks[ti], threads, prec[pi]);
          for (int k = 0; k < warmup + frames; k++) {
            double c;
            const double t = frame (&tasks[ti], &c);
            if (k >= warmup) {
              ms[k - warmup] = t;
              cpu[k - warmup] = c;
            }
          }
          printf ("%s\n {\"round\": %d, \"element\": \"%s\", \"threads\": %d, \"precision\": \"%s\", "
              "\"runs_as\": \"%s\", \"median_ms\": %.2f, \"median_cpu_ms\": %.2f}", first ? "" : ",",
              r, tasks[ti].name, threads, ge_precision_name (prec[pi]), ge_precision_name (runs),
              median (ms, frames), median (cpu, frames));
          first = FALSE;
          fflush (stdout);
        }
    }
  printf ("\n]}\n");
  return 0;
}
