/* fuzz-clip-tokenizer-load.c: libFuzzer target for the CLIP tokenizer's
 * loader (vocab.json, merges.txt, tokenizer_config.json).
 *
 * The input is the three files separated by NUL bytes: vocab.json, then
 * merges.txt, then (optional) tokenizer_config.json.  A tokenizer that
 * loads must encode a few prompts into max_length ids framed by bos and
 * eos; one that does not must fail with a GE_ERROR whose message names one
 * of the three files.
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

int LLVMFuzzerInitialize (int *argc, char ***argv);
int LLVMFuzzerTestOneInput (const uint8_t * data, size_t size);

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  g_setenv ("G_SLICE", "always-malloc", TRUE);
  g_log_set_always_fatal (G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING);
  return 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t * data, size_t size)
{
  /* Own copies of exactly each part, so ASan sees a read past one. */
  const uint8_t *end = data + size, *p = data;
  char *part[3] = { NULL, NULL, NULL };
  gsize len[3] = { 0, 0, 0 };
  int n = 0;
  while (n < 3) {
    const uint8_t *z = n < 2 ? memchr (p, 0, end - p) : NULL;
    const uint8_t *e = z ? z : end;
    len[n] = e - p;
    part[n] = g_malloc (MAX (len[n], 1));
    memcpy (part[n], p, len[n]);
    n++;
    if (!z)
      break;
    p = z + 1;
  }
  if (n < 2) {
    g_free (part[0]);
    return 0;
  }

  GError *err = NULL;
  GeClipTokenizer *t = ge_clip_tokenizer_new_from_data (part[0], len[0],
      part[1], len[1], part[2], part[2] ? (gssize) len[2] : 0, &err);
  if (t) {
    static const char *const prompts[] = { "", "a photo of an astronaut!",
      "<|startoftext|>x<|endoftext|> don't \xc3\x89T\xc3\x89 \xce\xa3\xce\xa3 1234",
    };
    const int L = ge_clip_tokenizer_max_length (t);
    CHECK (L >= 2);
    gint32 *ids = g_new (gint32, L), *mask = g_new (gint32, L);
    for (guint i = 0; i < G_N_ELEMENTS (prompts); i++) {
      int untrunc = -1;
      gboolean truncated;
      CHECK (ge_clip_tokenizer_encode_full (t, prompts[i], ids, mask, &untrunc,
              &truncated, &err));
      CHECK (err == NULL);
      CHECK (untrunc >= 2 && truncated == (untrunc > L));
      const int used = MIN (untrunc, L);
      CHECK (ids[0] == ge_clip_tokenizer_bos_id (t));
      CHECK (ids[used - 1] == ge_clip_tokenizer_eos_id (t));
      for (int k = 0; k < L; k++) {
        CHECK (mask[k] == (k < used));
        CHECK (k < used || ids[k] == ge_clip_tokenizer_pad_id (t));
        CHECK (ids[k] >= 0);
      }
    }
    g_free (ids);
    g_free (mask);
    ge_clip_tokenizer_free (t);
  } else {
    CHECK (err != NULL && err->domain == GE_ERROR);
    CHECK (g_str_has_prefix (err->message, "vocab.json: ")
        || g_str_has_prefix (err->message, "merges.txt: ")
        || g_str_has_prefix (err->message, "tokenizer_config.json: "));
    CHECK (g_utf8_validate (err->message, -1, NULL));
    g_error_free (err);
  }
  for (int i = 0; i < n; i++)
    g_free (part[i]);
  return 0;
}
