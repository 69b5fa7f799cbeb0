/* fuzz-clip-tokenizer-encode.c: libFuzzer target for CLIP tokenizer
 * prompts, with the tokenizer of tests/fixtures/diffusers/
 * clip_tokenizer_small.
 *
 * The input (up to its first NUL) is the prompt.  Valid UTF-8 must encode
 * into 77 ids from the vocabulary, framed by bos and eos and padded with
 * pad, and the quick path (which stops once the kept ids are known) must
 * give the same ids and truncation flag as the full one; anything else must
 * be a GE_ERROR_INVALID naming the prompt.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "ge-clip-tokenizer.h"
#include "ge-error.h"

#define CHECK(cond) do { if (!(cond)) { \
      g_printerr ("%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond); \
      abort (); } } while (0)

#define VOCAB_SIZE 914

int LLVMFuzzerInitialize (int *argc, char ***argv);
int LLVMFuzzerTestOneInput (const uint8_t * data, size_t size);

static GeClipTokenizer *tok;

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  GError *err = NULL;
  g_setenv ("G_SLICE", "always-malloc", TRUE);
  g_log_set_always_fatal (G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING);
  tok = ge_clip_tokenizer_new (GE_FUZZ_TOKENIZER_DIR, &err);
  if (!tok) {
    g_printerr ("%s\n", err->message);
    abort ();
  }
  return 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t * data, size_t size)
{
  char *text = g_strndup ((const char *) data, size);
  gint32 ids[77], quick[77], mask[77];
  int untrunc = -1;
  gboolean truncated, quick_truncated;
  GError *err = NULL;
  const int L = ge_clip_tokenizer_max_length (tok);

  CHECK (L == 77);
  if (g_utf8_validate (text, -1, NULL)) {
    CHECK (ge_clip_tokenizer_encode_full (tok, text, ids, mask, &untrunc,
            &truncated, &err));
    CHECK (ge_clip_tokenizer_encode (tok, text, quick, &quick_truncated, &err));
    CHECK (err == NULL);
    CHECK (memcmp (ids, quick, sizeof ids) == 0);
    CHECK (truncated == quick_truncated && truncated == (untrunc > L));
    const int used = MIN (untrunc, L);
    CHECK (ids[0] == ge_clip_tokenizer_bos_id (tok));
    CHECK (ids[used - 1] == ge_clip_tokenizer_eos_id (tok));
    for (int k = 0; k < L; k++) {
      CHECK (ids[k] >= 0 && ids[k] < VOCAB_SIZE);
      CHECK (mask[k] == (k < used));
      CHECK (k < used || ids[k] == ge_clip_tokenizer_pad_id (tok));
    }
  } else {
    CHECK (!ge_clip_tokenizer_encode (tok, text, ids, &truncated, &err));
    CHECK (err != NULL && err->domain == GE_ERROR && err->code == GE_ERROR_INVALID);
    CHECK (g_str_has_prefix (err->message, "prompt: "));
    g_error_free (err);
  }
  g_free (text);
  return 0;
}
