/* test-gansynth-clean: the command-line tool on WAV (16-bit, 44.1 kHz
 * stereo: the resampled path) and FLAC (16-bit, 48 kHz mono: the direct
 * path).  At strength 0 the output must be the input (same container,
 * encoding, rate, channels and length, samples equal up to 16-bit rounding
 * or the resampler's round trip), with the small test model and with one
 * that looks two hops ahead (a longer delay); at strength 1 the small test
 * model's output must match the engine run on the same samples. */
#include <math.h>
#include <sndfile.h>
#include <string.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "ge-speech.h"

static char *
source_path (const char *a, const char *b, const char *c)
{
  return g_test_build_filename (G_TEST_DIST, "..", a, b, c, NULL);
}

static float
sig (gint64 i, int c, int rate)
{
  const double t = (double) i / rate;
  return (float) (0.3 * sin (2 * G_PI * 220.0 * (c + 1) * t) + 0.1 * sin (2 * G_PI * 3100.0 * t));
}

static char *
write_input (const char *name, int format, int rate, int ch, gint64 frames)
{
  char *path = g_build_filename (g_get_tmp_dir (), name, NULL);
  SF_INFO info = { .samplerate = rate, .channels = ch, .format = format };
  SNDFILE *f = sf_open (path, SFM_WRITE, &info);
  g_assert_nonnull (f);
  float *d = g_new (float, frames * ch);
  for (gint64 i = 0; i < frames; i++)
    for (int c = 0; c < ch; c++)
      d[i * ch + c] = sig (i, c, rate);
  g_assert_cmpint (sf_writef_float (f, d, frames), ==, frames);
  sf_close (f);
  g_free (d);
  return path;
}

static float *
read_all (const char *path, SF_INFO * info)
{
  memset (info, 0, sizeof *info);
  SNDFILE *f = sf_open (path, SFM_READ, info);
  g_assert_nonnull (f);
  float *d = g_new (float, info->frames * info->channels);
  g_assert_cmpint (sf_readf_float (f, d, info->frames), ==, info->frames);
  sf_close (f);
  return d;
}

/* @model: a file of tests/golden/speech; @precision NULL: the tool's default */
static void
run_tool_at (const char *model_file, const char *in, const char *out, const char *strength,
    const char *precision, gboolean expect_ok)
{
  char *tool = g_build_filename (g_getenv ("GE_TEST_TOOLS"), "gansynth-clean", NULL);
  char *model = source_path ("golden", "speech", model_file);
  const char *argv[] = { tool, "-q", "-m", model, "-s", strength, in, out, NULL, NULL, NULL };
  if (precision) {
    argv[8] = "-p";
    argv[9] = precision;
  }
  char *err_out = NULL;
  int status;
  g_assert_true (g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, NULL,
          &err_out, &status, NULL));
  g_test_message ("%s", err_out);
  if (expect_ok)
    g_assert_true (g_spawn_check_wait_status (status, NULL));
  else
    g_assert_false (g_spawn_check_wait_status (status, NULL));
  g_free (err_out);
  g_free (tool);
  g_free (model);
}

static void
run_tool (const char *model_file, const char *in, const char *out, const char *strength,
    gboolean expect_ok)
{
  run_tool_at (model_file, in, out, strength, NULL, expect_ok);
}

static void
check_identity_with (const char *model_file, const char *name, int format, int rate, int ch,
    gint64 frames, double tol)
{
  char *in = write_input (name, format, rate, ch, frames);
  char *out = g_strconcat (in, ".out", strchr (name, '.'), NULL);
  run_tool (model_file, in, out, "0", TRUE);
  SF_INFO a, b;
  float *x = read_all (in, &a), *y = read_all (out, &b);
  g_assert_cmpint (b.format, ==, a.format);
  g_assert_cmpint (b.samplerate, ==, a.samplerate);
  g_assert_cmpint (b.channels, ==, a.channels);
  g_assert_cmpint (b.frames, ==, a.frames);
  double maxd = 0.0;
  /* the resampler's edges are not the identity: skip 20 ms at each end */
  const gint64 edge = tol > 1e-3 ? rate / 50 : 0;
  for (gint64 i = edge * ch; i < (a.frames - edge) * ch; i++)
    maxd = MAX (maxd, fabs (x[i] - y[i]));
  g_test_message ("%s: max difference %g", name, maxd);
  g_assert_cmpfloat (maxd, <=, tol);
  g_free (x), g_free (y);
  g_unlink (in), g_unlink (out);
  g_free (in), g_free (out);
}

static void
check_identity (const char *name, int format, int rate, int ch, gint64 frames, double tol)
{
  check_identity_with ("model.safetensors", name, format, rate, ch, frames, tol);
}

static void
test_flac_48k (void)
{
  check_identity ("gansynth-clean-in.flac", SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 48000, 1,
      48000 * 3 / 2 + 123, 1.5 / 32768);
}

/* A model that looks two hops ahead: a longer delay to skip and drain. */
static void
test_lookahead (void)
{
  check_identity_with ("modelahead.safetensors", "gansynth-clean-ahead.flac",
      SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 48000, 1, 48000 + 321, 1.5 / 32768);
}

/* A length of whole read blocks (1 s): the last read returns nothing. */
static void
test_whole_blocks (void)
{
  check_identity ("gansynth-clean-blocks.wav", SF_FORMAT_WAV | SF_FORMAT_FLOAT, 48000, 1,
      2 * 48000, 1e-6);
}

static void
test_wav_44k (void)
{
  /* 44.1 -> 48 -> 44.1 kHz with libsamplerate's medium sinc */
  check_identity ("gansynth-clean-in.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 44100, 2,
      44100 * 3 / 2 + 123, 5e-3);
}

/* Strength 1 at a model rate: what the engine gives on the same samples,
 * at the tool's default precision (auto: f32 for the test model, which is
 * not marked) and at int8 (what the engine runs for it on this CPU). */
static void
check_engine_output (const char *precision)
{
  const int rate = 16000;
  char *in = write_input ("gansynth-clean-f.wav", SF_FORMAT_WAV | SF_FORMAT_FLOAT, rate, 1, 8000);
  char *out = g_strconcat (in, ".out.wav", NULL);
  run_tool_at ("model.safetensors", in, out, "1", precision, TRUE);
  SF_INFO a, b;
  float *x = read_all (in, &a), *y = read_all (out, &b);
  g_assert_cmpint (b.frames, ==, a.frames);
  /* reference: the engine, fed the input and then silence, minus its delay */
  char *model_path = source_path ("golden", "speech", "model.safetensors");
  GeSpeechModel *m = ge_speech_model_new (model_path, NULL);
  GeSpeechStream *s = ge_speech_stream_new (m, rate, NULL);
  GePrecision want = GE_PRECISION_AUTO;
  g_assert_true (!precision || ge_precision_from_name (precision, &want));
  g_test_message ("precision %s: %s runs", precision ? precision : "(default)",
      ge_precision_name (ge_speech_stream_set_precision (s, want)));
  const int hop = 160, delay = 160, hops = (8000 + delay) / hop + 1;
  float *xin = g_new0 (float, hops * hop), *ref = g_new (float, hops * hop);
  memcpy (xin, x, 8000 * sizeof (float));
  ge_speech_stream_process (s, xin, 1, ref, 1, hops, 1.0f);
  double maxd = 0.0, energy_diff = 0.0;
  for (int i = 0; i < 8000; i++) {
    maxd = MAX (maxd, fabs (y[i] - ref[i + delay]));
    energy_diff += fabs (y[i] - x[i]);
  }
  g_assert_cmpfloat (maxd, <, 1e-6);
  g_assert_cmpfloat (energy_diff, >, 1.0);   /* it did change the signal */
  ge_speech_stream_free (s);
  ge_speech_model_free (m);
  g_free (model_path), g_free (xin), g_free (ref), g_free (x), g_free (y);
  g_unlink (in), g_unlink (out);
  g_free (in), g_free (out);
}

static void
test_engine_output (void)
{
  check_engine_output (NULL);
  check_engine_output ("int8");
}

static void
test_errors (void)
{
  run_tool ("model.safetensors", "/nonexistent/in.wav", "/tmp/gansynth-clean-never.wav", "1",
      FALSE);
  char *in = write_input ("gansynth-clean-e.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 16000, 1, 100);
  run_tool ("model.safetensors", in, in, "1", FALSE);   /* in place refused, input intact */
  SF_INFO a;
  g_free (read_all (in, &a));
  g_assert_cmpint (a.frames, ==, 100);
  run_tool ("model.safetensors", in, "/nonexistent/dir/out.wav", "1", FALSE);
  run_tool_at ("model.safetensors", in, "/tmp/gansynth-clean-never.wav", "1", "f16", FALSE);
  g_assert_false (g_file_test ("/tmp/gansynth-clean-never.wav", G_FILE_TEST_EXISTS));
  g_unlink (in);
  g_free (in);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/gansynth-clean/flac-48k", test_flac_48k);
  g_test_add_func ("/gansynth-clean/wav-44k", test_wav_44k);
  g_test_add_func ("/gansynth-clean/whole-blocks", test_whole_blocks);
  g_test_add_func ("/gansynth-clean/lookahead", test_lookahead);
  g_test_add_func ("/gansynth-clean/engine-output", test_engine_output);
  g_test_add_func ("/gansynth-clean/errors", test_errors);
  return g_test_run ();
}
