/* speech_bench: times the speech enhancer on one channel, a hop at a time
 * as the element runs it (OpenBLAS on one thread).
 *
 *   speech_bench MODEL RATE IN.f32 ROUNDS [PRECISION]
 *
 * IN.f32: raw float32 mono samples; PRECISION: f32 (default), int8, auto
 * (ge_speech_stream_set_precision).  Prints one line per round: the
 * processing milliseconds of the whole file; then, on stderr, the precision
 * that ran. */
#include <stdio.h>
#include <stdlib.h>

#include <glib.h>

#include "ge-pool.h"
#include "ge-speech.h"

int
main (int argc, char **argv)
{
  GePrecision want = GE_PRECISION_F32;
  if ((argc != 5 && argc != 6) || (argc == 6 && !ge_precision_from_name (argv[5], &want))) {
    fprintf (stderr, "usage: %s MODEL RATE IN.f32 ROUNDS [f32|int8|auto]\n", argv[0]);
    return 2;
  }
  GError *err = NULL;
  GeSpeechModel *m = ge_speech_model_new (argv[1], &err);
  if (!m) {
    fprintf (stderr, "%s\n", err->message);
    return 1;
  }
  const int rate = atoi (argv[2]), rounds = atoi (argv[4]);
  gchar *data;
  gsize len;
  if (!g_file_get_contents (argv[3], &data, &len, &err)) {
    fprintf (stderr, "%s\n", err->message);
    return 1;
  }
  /* one thread for OpenBLAS, as the element has (a pool sets it) */
  ge_pool_free (ge_pool_new (1));
  const int hop = ge_speech_model_hop (m, rate);
  const int n_hops = (int) (len / sizeof (float) / hop);
  float *out = g_new (float, (gsize) n_hops * hop);
  GeSpeechStream *s = ge_speech_stream_new (m, rate, &err);
  if (!s) {
    fprintf (stderr, "%s\n", err->message);
    return 1;
  }
  fprintf (stderr, "precision %s\n", ge_precision_name (ge_speech_stream_set_precision (s, want)));
  for (int r = 0; r < rounds; r++) {
    ge_speech_stream_reset (s);
    gint64 t0 = g_get_monotonic_time ();
    for (int h = 0; h < n_hops; h++)
      ge_speech_stream_process (s, (const float *) data + (gsize) h * hop, 1,
          out + (gsize) h * hop, 1, 1, 1.0f);
    printf ("%.3f\n", (g_get_monotonic_time () - t0) / 1000.0);
    fflush (stdout);
  }
  ge_speech_stream_free (s);
  ge_speech_model_free (m);
  g_free (out);
  g_free (data);
  return 0;
}
