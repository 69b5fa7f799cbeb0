/* sd_pipeline_bench: one whole Stable Diffusion image through the engine,
 * with the time of each stage and the peak resident memory.
 *
 *   sd_pipeline_bench FOLDER [--size 512] [--steps 20] [--guidance 7.5]
 *       [--scheduler dpmpp-2m] [--threads 2] [--prompt TEXT]
 *
 * FOLDER is a diffusers StableDiffusionPipeline folder (bench/sd_pipeline.py
 * writes a random-weight one of SD 1.5's size).  Load, text encode, each
 * U-Net step (with guidance: a batch of 2), VAE decode; VmHWM and VmRSS
 * from /proc/self/status.  Prints one JSON object.
 */
#include "ge-sd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench-stats.h"

typedef struct {
  gint64 start, last;
  GArray *steps;                /* ms per step */
  double decode_ms;
} Clock;

static void
on_tap (const char *name, const float *data, int n, int c, int h, int w, void *user)
{
  Clock *k = user;
  const gint64 now = g_get_monotonic_time ();
  if (g_str_has_prefix (name, "step") && g_str_has_suffix (name, ".latents")) {
    double ms = (now - k->last) / 1000.0;
    g_array_append_val (k->steps, ms);
    k->last = now;
  } else if (strcmp (name, "final.decoded") == 0) {
    k->decode_ms = (now - k->last) / 1000.0;
    k->last = now;
  }
}

static long
status_kb (const char *field)
{
  char *text = NULL;
  long kb = -1;
  if (g_file_get_contents ("/proc/self/status", &text, NULL, NULL)) {
    const char *p = strstr (text, field);
    if (p)
      kb = strtol (p + strlen (field) + 1, NULL, 10);
  }
  g_free (text);
  return kb;
}

int
main (int argc, char **argv)
{
  if (argc < 2) {
    fprintf (stderr, "usage: %s FOLDER [--size N] [--steps N] [--guidance G] "
        "[--scheduler NAME] [--threads N] [--prompt TEXT]\n", argv[0]);
    return 2;
  }
  const char *folder = argv[1], *scheduler = "dpmpp-2m";
  const char *prompt = "a photograph of an astronaut riding a horse";
  int size = 512, steps = 20, threads = 2;
  double guidance = 7.5;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (!strcmp (argv[i], "--size"))
      size = atoi (argv[i + 1]);
    else if (!strcmp (argv[i], "--steps"))
      steps = atoi (argv[i + 1]);
    else if (!strcmp (argv[i], "--guidance"))
      guidance = atof (argv[i + 1]);
    else if (!strcmp (argv[i], "--scheduler"))
      scheduler = argv[i + 1];
    else if (!strcmp (argv[i], "--threads"))
      threads = atoi (argv[i + 1]);
    else if (!strcmp (argv[i], "--prompt"))
      prompt = argv[i + 1];
  }

  GError *err = NULL;
  Clock k = { 0 };
  k.steps = g_array_new (FALSE, FALSE, sizeof (double));
  gint64 t0 = g_get_monotonic_time ();
  GePipeline *p = ge_pipeline_open (folder, &err);
  GeSd *sd = p ? ge_sd_new (p, GE_SD_TEXT2IMG, &err) : NULL;
  if (!sd || !ge_sd_set_scheduler (sd, scheduler, &err)
      || !ge_sd_set_num_steps (sd, steps, &err)) {
    fprintf (stderr, "%s\n", err->message);
    return 1;
  }
  ge_sd_set_n_threads (sd, threads);
  ge_sd_set_guidance (sd, (float) guidance, 1.0f);
  const double load_ms = (g_get_monotonic_time () - t0) / 1000.0;
  const long rss_loaded = status_kb ("VmRSS:");

  t0 = g_get_monotonic_time ();
  if (!ge_sd_set_prompt (sd, prompt, "", NULL, &err)) {
    fprintf (stderr, "%s\n", err->message);
    return 1;
  }
  const double text_ms = (g_get_monotonic_time () - t0) / 1000.0;

  guint64 seed = 0;
  float *out = g_new (float, (gsize) 3 * size * size);
  ge_sd_set_tap (sd, on_tap, &k);
  k.start = k.last = g_get_monotonic_time ();
  if (!ge_sd_process (sd, NULL, NULL, size, size, ge_sd_noise_seeded, &seed, out, &err)) {
    fprintf (stderr, "%s\n", err->message);
    return 1;
  }
  const double image_ms = (g_get_monotonic_time () - k.start) / 1000.0;
  double *st = (double *) k.steps->data, sum = 0;
  for (guint i = 0; i < k.steps->len; i++)
    sum += st[i];
  double *sorted = g_memdup2 (st, sizeof (double) * k.steps->len);
  qsort (sorted, k.steps->len, sizeof (double), cmp_double);
  gboolean finite = TRUE;
  for (gsize i = 0; i < (gsize) 3 * size * size; i++)
    finite &= out[i] == out[i];

  printf ("{\"folder\": \"%s\", \"size\": %d, \"steps\": %d, \"guidance\": %g, "
      "\"scheduler\": \"%s\", \"threads\": %d,\n"
      " \"load_ms\": %.1f, \"text_encode_ms\": %.1f, \"step_ms_median\": %.1f, "
      "\"steps_ms_total\": %.1f, \"first_step_ms\": %.1f, \"vae_decode_ms\": %.1f, "
      "\"image_ms\": %.1f, \"total_ms\": %.1f,\n"
      " \"rss_after_load_mib\": %.1f, \"peak_rss_mib\": %.1f, \"output_finite\": %s}\n",
      folder, size, steps, guidance, scheduler, threads, load_ms, text_ms,
      sorted[k.steps->len / 2], sum, st[0], k.decode_ms, image_ms,
      load_ms + text_ms + image_ms, rss_loaded / 1024.0, status_kb ("VmHWM:") / 1024.0,
      finite ? "true" : "false");
  g_free (sorted);
  g_free (out);
  g_array_unref (k.steps);
  ge_sd_free (sd);
  ge_pipeline_free (p);
  return 0;
}
