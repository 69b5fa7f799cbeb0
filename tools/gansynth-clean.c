/* gansynth-clean: cleans speech in audio files with the gansynth model,
 * without GStreamer.
 *
 *   gansynth-clean [-m MODEL] [-s STRENGTH] [-q] IN OUT
 *
 * Reads any file libsndfile reads (WAV, FLAC, Ogg Vorbis/Opus, AIFF ...) at
 * any rate and channel count, and writes OUT in the same container,
 * encoding, rate and channels, with as many samples.  Files at the model's
 * rates go straight through; others are resampled (libsamplerate) to the
 * nearest model rate at or above theirs (16 kHz for narrowband, 48 kHz for
 * the rest) and back.  Each channel is cleaned on its own; the engine's
 * one-frame delay is removed, so OUT lines up with IN sample for sample.
 * Files longer than 30 s show their progress on stderr (-q: never).
 */
#include <math.h>
#include <samplerate.h>
#include <sndfile.h>
#include <stdio.h>
#include <string.h>

#include <glib.h>

#include "ge-speech.h"

#ifndef GANSYNTH_DEFAULT_MODEL
#define GANSYNTH_DEFAULT_MODEL "gansynth.safetensors"
#endif
#define BLOCK_SECONDS 1
#define PROGRESS_MIN_SECONDS 30.0

/* The plugin's model search path: the installed data folder (or the one
 * folder GST_GENERATIVE_MODEL_DIR names instead), then each folder of
 * GST_GENERATIVE_MODEL_PATH. */
static const char *
installed_model_dir (void)
{
  const char *dir = g_getenv ("GST_GENERATIVE_MODEL_DIR");

  return dir && dir[0] ? dir : GANSYNTH_MODEL_DIR;
}

static char *
default_model_path (void)
{
  const char *list = g_getenv ("GST_GENERATIVE_MODEL_PATH");
  char *path = g_build_filename (installed_model_dir (), GANSYNTH_DEFAULT_MODEL, NULL);
  char **dirs;

  if (g_file_test (path, G_FILE_TEST_EXISTS))
    return path;
  g_free (path);
  path = NULL;
  dirs = g_strsplit (list ? list : "", G_SEARCHPATH_SEPARATOR_S, -1);
  for (char **d = dirs; *d && !path; d++) {
    if (!(*d)[0])
      continue;
    path = g_build_filename (*d, GANSYNTH_DEFAULT_MODEL, NULL);
    if (!g_file_test (path, G_FILE_TEST_EXISTS))
      g_clear_pointer (&path, g_free);
  }
  g_strfreev (dirs);
  return path;
}

/* For the error message: where default_model_path looked. */
static const char *
model_search_list (void)
{
  static char buf[4096];
  const char *list = g_getenv ("GST_GENERATIVE_MODEL_PATH");

  if (list && list[0])
    g_snprintf (buf, sizeof buf, "%s and GST_GENERATIVE_MODEL_PATH=%s",
                installed_model_dir (), list);
  else
    g_snprintf (buf, sizeof buf, "%s (GST_GENERATIVE_MODEL_PATH is not set)",
                installed_model_dir ());
  return buf;
}

typedef struct {
  int channels;
  int hop;
  GeSpeechStream **streams;
  float strength;
  float *held;                  /* input not yet a whole hop [hop * channels] */
  int n_held;
  guint64 skip;                 /* start-up samples still to drop */
  GArray *out;                  /* cleaned output, interleaved */
} Cleaner;

/* Appends @n frames of @in; whole hops go through the engine. */
static void
cleaner_push (Cleaner * c, const float *in, gsize n)
{
  const int ch = c->channels;
  float *tmp = g_new (float, (gsize) c->hop * ch);
  while (n > 0) {
    const gsize take = MIN (n, (gsize) (c->hop - c->n_held));
    memcpy (c->held + (gsize) c->n_held * ch, in, take * ch * sizeof (float));
    c->n_held += take;
    in += take * ch;
    n -= take;
    if (c->n_held < c->hop)
      break;
    for (int k = 0; k < ch; k++)
      ge_speech_stream_process (c->streams[k], c->held + k, ch, tmp + k, ch, 1, c->strength);
    c->n_held = 0;
    const guint64 drop = MIN (c->skip, (guint64) c->hop);
    c->skip -= drop;
    g_array_append_vals (c->out, tmp + drop * ch, (c->hop - drop) * ch);
  }
  g_free (tmp);
}

/* Moves the finished output (interleaved frames) out of @c. */
static float *
cleaner_take (Cleaner * c, gsize * n)
{
  *n = c->out->len / c->channels;
  float *d = g_memdup2 (c->out->data, c->out->len * sizeof (float));
  g_array_set_size (c->out, 0);
  return d;
}

static int
pick_rate (const GeSpeechModel * m, int file_rate)
{
  int n;
  const int *rates = ge_speech_model_rates (m, &n);
  for (int i = 0; i < n; i++)
    if (rates[i] >= file_rate)
      return rates[i];
  return rates[n - 1];
}

static gboolean
write_all (SNDFILE * f, const float *d, sf_count_t n, const char *path)
{
  if (n > 0 && sf_writef_float (f, d, n) != n) {
    g_printerr ("gansynth-clean: %s: write failed: %s\n", path, sf_strerror (f));
    return FALSE;
  }
  return TRUE;
}

/* Resamples @n frames with @src (NULL: a copy); end of input when @last. */
static float *
resample (SRC_STATE * src, double ratio, int ch, float *in, gsize n, gboolean last,
    gsize * n_out, const char *path)
{
  if (!src) {
    /* a copy, also of nothing (g_memdup2 gives NULL for 0 bytes) */
    float *copy = g_new (float, MAX (n * ch, 1));
    memcpy (copy, in, n * ch * sizeof (float));
    *n_out = n;
    return copy;
  }
  gsize cap = (gsize) ceil (n * ratio) + 256;
  float *out = g_new (float, cap * ch);
  SRC_DATA d = { 0 };
  *n_out = 0;
  d.data_in = in;
  d.input_frames = n;
  d.src_ratio = ratio;
  d.end_of_input = last;
  do {
    d.data_out = out + *n_out * ch;
    d.output_frames = cap - *n_out;
    int err = src_process (src, &d);
    if (err) {
      g_printerr ("gansynth-clean: %s: resampling failed: %s\n", path, src_strerror (err));
      g_free (out);
      return NULL;
    }
    *n_out += d.output_frames_gen;
    d.data_in += d.input_frames_used * ch;
    d.input_frames -= d.input_frames_used;
    if (*n_out + 256 > cap) {
      cap *= 2;
      out = g_renew (float, out, cap * ch);
    }
  } while (d.input_frames > 0 || (last && d.output_frames_gen > 0));
  return out;
}

int
main (int argc, char **argv)
{
  gchar *model_path = NULL;
  gdouble strength = 1.0;
  gboolean quiet = FALSE;
  gchar *precision_name = NULL;
  GOptionEntry entries[] = {
    {"model", 'm', 0, G_OPTION_ARG_FILENAME, &model_path,
        "Model file (default: the installed " GANSYNTH_DEFAULT_MODEL ")", "FILE"},
    {"strength", 's', 0, G_OPTION_ARG_DOUBLE, &strength,
        "0 = unchanged .. 1 = fully cleaned (default 1)", "S"},
    {"precision", 'p', 0, G_OPTION_ARG_STRING, &precision_name,
        "auto (default: int8 where the model was validated in it), f32 or int8: as the "
          "element's precision", "P"},
    {"quiet", 'q', 0, G_OPTION_ARG_NONE, &quiet, "No progress display", NULL},
    {NULL}
  };
  GOptionContext *ctx = g_option_context_new ("IN OUT - clean speech in an audio file");
  GError *err = NULL;
  int ret = 1;

  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &err) || argc != 3) {
    g_printerr ("gansynth-clean: %s\n", err ? err->message : "need IN and OUT (see --help)");
    g_clear_error (&err);
    g_option_context_free (ctx);
    return 2;
  }
  g_option_context_free (ctx);
  if (!(strength >= 0.0 && strength <= 1.0)) {
    g_printerr ("gansynth-clean: strength must be in [0, 1]\n");
    return 2;
  }
  GePrecision precision = GE_PRECISION_AUTO;
  if (precision_name && !ge_precision_from_name (precision_name, &precision)) {
    g_printerr ("gansynth-clean: precision must be auto, f32, bf16 or int8, not \"%s\"\n",
        precision_name);
    return 2;
  }
  g_free (precision_name);
  const char *in_path = argv[1], *out_path = argv[2];
  if (!model_path && !(model_path = default_model_path ())) {
    g_printerr ("gansynth-clean: no %s in %s (give one with -m)\n",
                GANSYNTH_DEFAULT_MODEL, model_search_list ());
    return 1;
  }

  GeSpeechModel *model = ge_speech_model_new (model_path, &err);
  if (!model) {
    g_printerr ("gansynth-clean: %s\n", err->message);
    g_clear_error (&err);
    g_free (model_path);
    return 1;
  }

  SF_INFO info = { 0 };
  SNDFILE *in = sf_open (in_path, SFM_READ, &info);
  if (!in) {
    g_printerr ("gansynth-clean: %s: %s\n", in_path, sf_strerror (NULL));
    ge_speech_model_free (model);
    g_free (model_path);
    return 1;
  }
  const int ch = info.channels, file_rate = info.samplerate;
  const int rate = pick_rate (model, file_rate);
  SF_INFO oinfo = { .samplerate = file_rate, .channels = ch, .format = info.format };
  SNDFILE *out = NULL;
  if (g_strcmp0 (in_path, out_path) == 0) {
    g_printerr ("gansynth-clean: %s: IN and OUT are the same file\n", in_path);
    goto done_in;
  }
  out = sf_open (out_path, SFM_WRITE, &oinfo);
  if (!out) {
    g_printerr ("gansynth-clean: %s: %s\n", out_path, sf_strerror (NULL));
    goto done_in;
  }
  sf_command (out, SFC_SET_CLIPPING, NULL, SF_TRUE);

  Cleaner c = { .channels = ch, .hop = ge_speech_model_hop (model, rate),
    .strength = (float) strength, .out = g_array_new (FALSE, FALSE, sizeof (float)) };
  c.streams = g_new0 (GeSpeechStream *, ch);
  for (int k = 0; k < ch; k++) {
    c.streams[k] = ge_speech_stream_new (model, rate, NULL);
    ge_speech_stream_set_precision (c.streams[k], precision);
  }
  c.held = g_new0 (float, (gsize) c.hop * ch);
  c.skip = ge_speech_model_delay (model, rate);

  int e1 = 0, e2 = 0;
  SRC_STATE *up = rate != file_rate ? src_new (SRC_SINC_MEDIUM_QUALITY, ch, &e1) : NULL;
  SRC_STATE *down = rate != file_rate ? src_new (SRC_SINC_MEDIUM_QUALITY, ch, &e2) : NULL;
  if (e1 || e2) {
    g_printerr ("gansynth-clean: resampler: %s\n", src_strerror (e1 ? e1 : e2));
    goto done;
  }
  const double ratio = (double) rate / file_rate;
  const gboolean progress = !quiet && info.frames > PROGRESS_MIN_SECONDS * file_rate;
  const gsize block = (gsize) BLOCK_SECONDS * file_rate;
  float *buf = g_new (float, block * ch);
  guint64 frames_in = 0, frames_out = 0;
  gint64 t0 = g_get_monotonic_time ();
  gboolean ok = TRUE;

  for (gboolean last = FALSE; ok && !last;) {
    sf_count_t n = sf_readf_float (in, buf, block);
    last = n < (sf_count_t) block;
    frames_in += n;
    gsize n_up, n_clean, n_down;
    float *x = resample (up, ratio, ch, buf, n, last, &n_up, in_path);
    if (!x) {
      ok = FALSE;
      break;
    }
    cleaner_push (&c, x, n_up);
    g_free (x);
    if (last) {
      /* drain: silence until every input sample has come out */
      const gsize tail = (gsize) c.hop * 4 + ge_speech_model_delay (model, rate);
      float *z = g_new0 (float, tail * ch);
      cleaner_push (&c, z, tail);
      g_free (z);
    }
    float *y = cleaner_take (&c, &n_clean);
    float *w = resample (down, 1.0 / ratio, ch, y, n_clean, last, &n_down, out_path);
    g_free (y);
    if (!w) {
      ok = FALSE;
      break;
    }
    /* as many frames out as came in */
    const gsize keep = last ? (gsize) (frames_in - MIN (frames_out, frames_in)) : n_down;
    const gsize k = MIN (keep, n_down);
    ok = write_all (out, w, k, out_path);
    frames_out += k;
    if (last && ok && frames_out < frames_in) {
      float *pad = g_new0 (float, (frames_in - frames_out) * ch);
      ok = write_all (out, pad, frames_in - frames_out, out_path);
      frames_out = frames_in;
      g_free (pad);
    }
    g_free (w);
    if (progress) {
      const double done_s = (double) frames_in / file_rate;
      const double busy = (g_get_monotonic_time () - t0) / 1e6;
      g_printerr ("\rgansynth-clean: %s: %3.0f%% (%.0f of %.0f s, %.0fx real time)", in_path,
          100.0 * frames_in / MAX (info.frames, 1), done_s, (double) info.frames / file_rate,
          done_s / MAX (busy, 1e-6));
    }
  }
  if (progress)
    g_printerr ("\n");
  g_free (buf);
  if (ok)
    ret = 0;

done:
  if (up)
    src_delete (up);
  if (down)
    src_delete (down);
  for (int k = 0; k < ch; k++)
    ge_speech_stream_free (c.streams[k]);
  g_free (c.streams);
  g_free (c.held);
  g_array_free (c.out, TRUE);
  if (sf_close (out) != 0 && ret == 0) {
    g_printerr ("gansynth-clean: %s: could not finish the file\n", out_path);
    ret = 1;
  }
done_in:
  sf_close (in);
  ge_speech_model_free (model);
  g_free (model_path);
  return ret;
}
