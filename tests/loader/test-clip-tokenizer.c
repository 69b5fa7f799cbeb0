/* test-clip-tokenizer.c: loading and input robustness of the CLIP tokenizer.
 *
 * Each broken tokenizer folder must fail with the expected GE_ERROR code and
 * a message that names the file (and the line or entry where there is
 * one); a prompt that is not UTF-8 is GE_ERROR_INVALID.  The ids of real
 * prompts are checked by the clip_tokenizer_small conformance case; the few
 * ids here follow from that case's vocabulary ("!" is id 0, "!</w>" 256,
 * bos 912, eos 913).
 */
#include <glib.h>
#include <glib/gstdio.h>
#include <string.h>

#include "ge-clip-tokenizer.h"
#include "ge-error.h"

#define BOS 912
#define EOS 913

static char *fixture;           /* clip_tokenizer_small */
static char *tmpdir;
static char *vocab, *merges;    /* the fixture's files */
static gsize vocab_len, merges_len;

/* A fresh folder under tmpdir holding @vocab_json / @merges_txt /
 * @config_json (NULL: not written). */
static char *
make_folder (const char *name, const char *vocab_json, gssize vlen,
    const char *merges_txt, gssize mlen, const char *config_json)
{
  char *dir = g_build_filename (tmpdir, name, NULL);
  g_assert_cmpint (g_mkdir_with_parents (dir, 0700), ==, 0);
  struct { const char *file, *data; gssize len; } f[] = {
    { "vocab.json", vocab_json, vlen },
    { "merges.txt", merges_txt, mlen },
    { "tokenizer_config.json", config_json, -1 },
  };
  for (guint i = 0; i < G_N_ELEMENTS (f); i++) {
    char *p = g_build_filename (dir, f[i].file, NULL);
    if (f[i].data) {
      GError *err = NULL;
      g_assert_true (g_file_set_contents (p, f[i].data, f[i].len, &err));
      g_assert_no_error (err);
    } else
      g_unlink (p);
    g_free (p);
  }
  return dir;
}

/* Loads @dir and checks the error: @code, the message starts with the path
 * of @file in @dir and contains @needle. */
static void
expect_load_error (const char *dir, const char *file, GeErrorCode code,
    const char *needle)
{
  GError *err = NULL;
  GeClipTokenizer *t = ge_clip_tokenizer_new (dir, &err);
  g_assert_null (t);
  g_assert_error (err, GE_ERROR, (gint) code);
  char *path = g_build_filename (dir, file, NULL);
  if (!g_str_has_prefix (err->message, path))
    g_error ("message \"%s\" does not start with \"%s\"", err->message, path);
  if (needle && !strstr (err->message, needle))
    g_error ("message \"%s\" does not mention \"%s\"", err->message, needle);
  g_test_message ("%s", err->message);
  g_free (path);
  g_error_free (err);
}

static void
test_missing_vocab (void)
{
  char *dir = make_folder ("missing-vocab", NULL, 0, merges, merges_len, NULL);
  expect_load_error (dir, "vocab.json", GE_ERROR_NOT_FOUND, NULL);
  g_free (dir);
}

static void
test_missing_merges (void)
{
  char *dir = make_folder ("missing-merges", vocab, vocab_len, NULL, 0, NULL);
  expect_load_error (dir, "merges.txt", GE_ERROR_NOT_FOUND, NULL);
  g_free (dir);
}

static void
test_missing_folder (void)
{
  char *dir = g_build_filename (tmpdir, "no-such-folder", NULL);
  expect_load_error (dir, "vocab.json", GE_ERROR_NOT_FOUND, NULL);
  g_free (dir);
}

static void
test_truncated_vocab (void)
{
  char *dir = make_folder ("truncated-vocab", vocab, vocab_len / 2, merges,
      merges_len, NULL);
  expect_load_error (dir, "vocab.json", GE_ERROR_CORRUPT, "JSON");
  g_free (dir);
}

static void
test_vocab_not_object (void)
{
  char *dir = make_folder ("vocab-array", "[1, 2]", -1, merges, merges_len, NULL);
  expect_load_error (dir, "vocab.json", GE_ERROR_CORRUPT, "object");
  g_free (dir);
}

static void
test_vocab_bad_id (void)
{
  char *dir = make_folder ("vocab-bad-id", "{\"a\": 0, \"b\": \"one\"}", -1,
      "#version: 0.2\n", -1, NULL);
  expect_load_error (dir, "vocab.json", GE_ERROR_CORRUPT, "\"b\"");
  g_free (dir);
  dir = make_folder ("vocab-negative-id", "{\"a\": -3}", -1, "#version: 0.2\n", -1, NULL);
  expect_load_error (dir, "vocab.json", GE_ERROR_CORRUPT, "\"a\"");
  g_free (dir);
}

/* The fixture's merges with line @line (1-based, the header is line 1)
 * replaced by @text. */
static char *
merges_with_line (int line, const char *text)
{
  char **lines = g_strsplit (merges, "\n", -1);
  g_assert_cmpint (g_strv_length (lines), >, line);
  g_free (lines[line - 1]);
  lines[line - 1] = g_strdup (text);
  char *m = g_strjoinv ("\n", lines);
  g_strfreev (lines);
  return m;
}

static void
test_bad_merges_line (void)
{
  static const char *const bad[] = { "i", "i n g", "" };
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++) {
    char *m = merges_with_line (3, bad[i]);
    char *name = g_strdup_printf ("bad-merges-%u", i);
    char *dir = make_folder (name, vocab, vocab_len, m, -1, NULL);
    expect_load_error (dir, "merges.txt", GE_ERROR_CORRUPT, "line 3:");
    g_free (dir);
    g_free (name);
    g_free (m);
  }
}

static void
test_merge_not_in_vocab (void)
{
  char *m = merges_with_line (5, "q \xe2\x82\xac");     /* "q €": no such symbol */
  char *dir = make_folder ("merge-unknown-symbol", vocab, vocab_len, m, -1, NULL);
  expect_load_error (dir, "merges.txt", GE_ERROR_CORRUPT, "line 5:");
  g_free (dir);
  g_free (m);
  /* Both symbols exist, their concatenation does not. */
  m = merges_with_line (5, "q z</w>");
  dir = make_folder ("merge-unknown-result", vocab, vocab_len, m, -1, NULL);
  expect_load_error (dir, "merges.txt", GE_ERROR_CORRUPT, "qz</w>");
  g_free (dir);
  g_free (m);
}

static void
test_merges_not_utf8 (void)
{
  char *m = merges_with_line (4, "i \xff");
  char *dir = make_folder ("merges-not-utf8", vocab, vocab_len, m, -1, NULL);
  expect_load_error (dir, "merges.txt", GE_ERROR_CORRUPT, "UTF-8");
  g_free (dir);
  g_free (m);
}

static void
test_special_not_in_vocab (void)
{
  /* The vocabulary without "<|startoftext|>". */
  char *v = g_strdup (vocab);
  char *p = strstr (v, "\"<|startoftext|>\"");
  g_assert_nonnull (p);
  memcpy (p + 1, "<|startoftexx|>", 15);
  char *dir = make_folder ("no-bos", v, -1, merges, merges_len, NULL);
  expect_load_error (dir, "vocab.json", GE_ERROR_CORRUPT, "bos_token");
  g_free (dir);
  /* A pad token that is nowhere. */
  dir = make_folder ("pad-unknown", vocab, vocab_len, merges, merges_len,
      "{\"pad_token\": \"<|pad|>\"}");
  expect_load_error (dir, "vocab.json", GE_ERROR_CORRUPT, "pad_token");
  g_free (dir);
  g_free (v);
}

static void
test_bad_config (void)
{
  char *dir = make_folder ("bad-config", vocab, vocab_len, merges, merges_len,
      "{\"model_max_length\": 77,");
  expect_load_error (dir, "tokenizer_config.json", GE_ERROR_CORRUPT, "JSON");
  g_free (dir);
  dir = make_folder ("bad-max-length", vocab, vocab_len, merges, merges_len,
      "{\"model_max_length\": 1}");
  expect_load_error (dir, "tokenizer_config.json", GE_ERROR_UNSUPPORTED,
      "model_max_length");
  g_free (dir);
  dir = make_folder ("bad-pad", vocab, vocab_len, merges, merges_len,
      "{\"pad_token\": [1]}");
  expect_load_error (dir, "tokenizer_config.json", GE_ERROR_CORRUPT, "pad_token");
  g_free (dir);
}

static void
test_invalid_utf8_prompt (void)
{
  GError *err = NULL;
  GeClipTokenizer *t = ge_clip_tokenizer_new (fixture, &err);
  g_assert_no_error (err);
  gint32 ids[77];
  static const char *const bad[] = { "caf\xc3", "a\xff" "b", "\xed\xa0\x80",
    "\xc0\xaf"
  };
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++) {
    gboolean truncated = TRUE;
    g_assert_false (ge_clip_tokenizer_encode (t, bad[i], ids, &truncated, &err));
    g_assert_error (err, GE_ERROR, GE_ERROR_INVALID);
    g_assert_true (g_str_has_prefix (err->message, "prompt: "));
    g_clear_error (&err);
  }
  ge_clip_tokenizer_free (t);
}

static void
encode_ok (const GeClipTokenizer * t, const char *text, gint32 * ids,
    gboolean * truncated)
{
  GError *err = NULL;
  g_assert_true (ge_clip_tokenizer_encode (t, text, ids, truncated, &err));
  g_assert_no_error (err);
}

/* The three ways to load give the same tokenizer. */
static void
test_load_variants (void)
{
  GError *err = NULL;
  char *vp = g_build_filename (fixture, "vocab.json", NULL);
  char *mp = g_build_filename (fixture, "merges.txt", NULL);
  GeClipTokenizer *a = ge_clip_tokenizer_new (fixture, &err);
  g_assert_no_error (err);
  GeClipTokenizer *b = ge_clip_tokenizer_new_from_files (vp, mp, &err);
  g_assert_no_error (err);
  GeClipTokenizer *c = ge_clip_tokenizer_new_from_data (vocab, vocab_len,
      merges, merges_len, NULL, 0, &err);
  g_assert_no_error (err);
  const char *text = "a photograph of an astronaut riding a horse";
  gint32 ia[77], ib[77], ic[77];
  encode_ok (a, text, ia, NULL);
  encode_ok (b, text, ib, NULL);
  encode_ok (c, text, ic, NULL);
  g_assert_cmpmem (ia, sizeof ia, ib, sizeof ib);
  g_assert_cmpmem (ia, sizeof ia, ic, sizeof ic);
  g_assert_cmpint (ia[0], ==, BOS);
  g_assert_cmpint (ge_clip_tokenizer_max_length (b), ==, 77);
  g_assert_cmpint (ge_clip_tokenizer_pad_id (c), ==, EOS);
  ge_clip_tokenizer_free (a);
  ge_clip_tokenizer_free (b);
  ge_clip_tokenizer_free (c);
  g_free (vp);
  g_free (mp);
}

/* SD2 tokenizers pad with "!": transformers then makes "!" an added token,
 * so a "!" in the prompt becomes id 0, not the word-final "!</w>" (256);
 * model_max_length sets the length. */
static void
test_pad_bang (void)
{
  GError *err = NULL;
  GeClipTokenizer *t = ge_clip_tokenizer_new_from_data (vocab, vocab_len,
      merges, merges_len, "{\"pad_token\": \"!\", \"model_max_length\": 8}",
      -1, &err);
  g_assert_no_error (err);
  g_assert_cmpint (ge_clip_tokenizer_pad_id (t), ==, 0);
  g_assert_cmpint (ge_clip_tokenizer_max_length (t), ==, 8);
  gint32 ids[8];
  gboolean truncated = TRUE;
  encode_ok (t, "!? !", ids, &truncated);
  const gint32 want[8] = { BOS, 0, 30 + 256, 0, EOS, 0, 0, 0 };
  g_assert_cmpmem (ids, sizeof ids, want, sizeof want);
  g_assert_false (truncated);
  /* Seven content ids do not fit in 8 - 2. */
  encode_ok (t, "!!!!!!!", ids, &truncated);
  g_assert_true (truncated);
  g_assert_cmpint (ids[7], ==, EOS);
  ge_clip_tokenizer_free (t);

  /* The default tokenizer keeps "!?" one piece and "!" word-final. */
  t = ge_clip_tokenizer_new_from_data (vocab, vocab_len, merges, merges_len,
      "{\"model_max_length\": 8}", -1, &err);
  g_assert_no_error (err);
  encode_ok (t, "!", ids, &truncated);
  g_assert_cmpint (ids[1], ==, 256);
  g_assert_cmpint (ids[3], ==, EOS);
  ge_clip_tokenizer_free (t);
}

int
main (int argc, char **argv)
{
  GError *err = NULL;
  g_test_init (&argc, &argv, NULL);

  const char *fx = g_getenv ("GE_TEST_FIXTURES");
  if (!fx) {
    g_printerr ("GE_TEST_FIXTURES is not set\n");
    return 77;
  }
  fixture = g_build_filename (fx, "diffusers", "clip_tokenizer_small", NULL);
  char *vp = g_build_filename (fixture, "vocab.json", NULL);
  char *mp = g_build_filename (fixture, "merges.txt", NULL);
  g_assert_true (g_file_get_contents (vp, &vocab, &vocab_len, &err));
  g_assert_true (g_file_get_contents (mp, &merges, &merges_len, &err));
  g_free (vp);
  g_free (mp);
  tmpdir = g_dir_make_tmp ("ge-test-clip-tokenizer-XXXXXX", &err);
  g_assert_no_error (err);

  g_test_add_func ("/clip-tokenizer/load/missing-vocab", test_missing_vocab);
  g_test_add_func ("/clip-tokenizer/load/missing-merges", test_missing_merges);
  g_test_add_func ("/clip-tokenizer/load/missing-folder", test_missing_folder);
  g_test_add_func ("/clip-tokenizer/load/truncated-vocab", test_truncated_vocab);
  g_test_add_func ("/clip-tokenizer/load/vocab-not-object", test_vocab_not_object);
  g_test_add_func ("/clip-tokenizer/load/vocab-bad-id", test_vocab_bad_id);
  g_test_add_func ("/clip-tokenizer/load/bad-merges-line", test_bad_merges_line);
  g_test_add_func ("/clip-tokenizer/load/merge-not-in-vocab", test_merge_not_in_vocab);
  g_test_add_func ("/clip-tokenizer/load/merges-not-utf8", test_merges_not_utf8);
  g_test_add_func ("/clip-tokenizer/load/special-not-in-vocab", test_special_not_in_vocab);
  g_test_add_func ("/clip-tokenizer/load/bad-config", test_bad_config);
  g_test_add_func ("/clip-tokenizer/load/variants", test_load_variants);
  g_test_add_func ("/clip-tokenizer/encode/invalid-utf8", test_invalid_utf8_prompt);
  g_test_add_func ("/clip-tokenizer/encode/pad-bang", test_pad_bang);

  int ret = g_test_run ();

  /* Best effort: the folders are small and in the temporary directory. */
  char *argv_rm[] = { "rm", "-rf", tmpdir, NULL };
  g_spawn_sync (NULL, argv_rm, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL,
      NULL, NULL, NULL);
  g_free (tmpdir);
  g_free (fixture);
  g_free (vocab);
  g_free (merges);
  return ret;
}
