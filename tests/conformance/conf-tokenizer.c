/* conf-tokenizer.c: tokenizer cases (a transformers tokenizer folder:
 * vocab.json + merges.txt, no model config).
 *
 * Case format (tests/fixtures/diffusers/clip_tokenizer_small/README.md):
 *  - vocab.json, merges.txt, tokenizer_config.json, special_tokens_map.json:
 *    the folder CLIPTokenizer.from_pretrained () loads;
 *  - prompts.json: [{prompt, input_ids, attention_mask, untruncated_length,
 *    ...}] in batch order;
 *  - meta.json: bos/eos/pad_token_id, model_max_length, num_prompts;
 *  - io.safetensors: input_ids and attention_mask, I64 [num_prompts, 77].
 * The ids and masks are compared exactly, as are the special ids and every
 * prompt's untruncated length (which decides the truncation flag).
 *
 * encode () takes a C string, which cannot hold U+0000; the tokenizer drops
 * U+0000 anyway (BasicTokenizer._clean_text), so prompts.json is read with
 * its "\u0000" escapes removed, which is the same input.
 */
#include "conf.h"
#include "ge-clip-tokenizer.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static gint64
member_int (JsonObject * o, const char *key, gint64 dflt)
{
  JsonNode *n = o ? json_object_get_member (o, key) : NULL;
  if (!n || !JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_INT64)
    return dflt;
  return json_node_get_int (n);
}

/* @json without its \u0000 escapes (json-glib would end the string there). */
static char *
drop_nul_escapes (const char *json, gsize len)
{
  char *out = g_malloc (len + 1), *o = out;
  for (gsize i = 0; i < len; i++) {
    if (json[i] == '\\' && i + 1 < len) {
      if (i + 5 < len && memcmp (json + i + 1, "u0000", 5) == 0) {
        i += 5;
        continue;
      }
      *o++ = json[i++];
    }
    *o++ = json[i];
  }
  *o = '\0';
  return out;
}

static void
check_scalar (Conf * c, const char *what, gint64 got, gint64 ref)
{
  gboolean ok = got == ref;
  printf ("%-48s %s (got %" G_GINT64_FORMAT ", reference %" G_GINT64_FORMAT ")\n",
      what, ok ? "exact" : "FAIL", got, ref);
  c->n_checked++;
  if (!ok) {
    c->n_failed++;
    c->worst = INFINITY;
  }
}

void
conf_tokenizer_case (Conf * c)
{
  GError *err = NULL;
  GeClipTokenizer *tok = ge_clip_tokenizer_new (c->dir, &err);
  if (!tok) {
    printf ("%s\n", err->message);
    g_error_free (err);
    c->n_failed++;
    return;
  }

  JsonParser *mp = NULL, *pp = NULL;
  JsonObject *meta = conf_read_json (c, "meta.json", &mp);
  if (meta) {
    check_scalar (c, "bos_token_id", ge_clip_tokenizer_bos_id (tok),
        member_int (meta, "bos_token_id", -1));
    check_scalar (c, "eos_token_id", ge_clip_tokenizer_eos_id (tok),
        member_int (meta, "eos_token_id", -1));
    check_scalar (c, "pad_token_id", ge_clip_tokenizer_pad_id (tok),
        member_int (meta, "pad_token_id", -1));
    check_scalar (c, "model_max_length", ge_clip_tokenizer_max_length (tok),
        member_int (meta, "model_max_length", -1));
  }

  char *path = g_build_filename (c->dir, "prompts.json", NULL), *raw = NULL, *json = NULL;
  gsize raw_len;
  pp = json_parser_new ();
  if (g_file_get_contents (path, &raw, &raw_len, &err))
    json = drop_nul_escapes (raw, raw_len);
  if (!json || !json_parser_load_from_data (pp, json, -1, &err)
      || !JSON_NODE_HOLDS_ARRAY (json_parser_get_root (pp))) {
    printf ("%s: %s\n", path, err ? err->message : "not a JSON array");
    g_clear_error (&err);
    c->n_failed++;
    goto out;
  }
  JsonArray *prompts = json_node_get_array (json_parser_get_root (pp));
  const guint n = json_array_get_length (prompts);
  const int L = ge_clip_tokenizer_max_length (tok);
  gint64 *ids = g_new0 (gint64, (gsize) MAX (n, 1) * L);
  gint64 *mask = g_new0 (gint64, (gsize) MAX (n, 1) * L);
  gint32 *row = g_new (gint32, L), *mrow = g_new (gint32, L);
  int bad_len = 0, bad_prompts = 0;

  for (guint i = 0; i < n; i++) {
    JsonObject *p = json_array_get_object_element (prompts, i);
    const char *text = p ? json_object_get_string_member_with_default (p, "prompt", NULL) : NULL;
    int untrunc = 0;
    gboolean truncated = FALSE;
    if (!text || !ge_clip_tokenizer_encode_full (tok, text, row, mrow, &untrunc,
            &truncated, &err)) {
      printf ("prompt %u: %s\n", i, err ? err->message : "no \"prompt\" string");
      g_clear_error (&err);
      c->n_failed++;
      continue;
    }
    for (int k = 0; k < L; k++) {
      ids[(gsize) i * L + k] = row[k];
      mask[(gsize) i * L + k] = mrow[k];
    }
    gint64 ref_len = member_int (p, "untruncated_length", -1);
    if (untrunc != ref_len || truncated != (ref_len > L)) {
      printf ("prompt %u: untruncated length %d (truncated %d), reference %"
          G_GINT64_FORMAT "\n", i, untrunc, truncated, ref_len);
      bad_len++;
    }
    JsonArray *ref = json_object_get_array_member (p, "input_ids");
    gboolean same = ref && json_array_get_length (ref) == (guint) L;
    for (int k = 0; same && k < L; k++)
      same = json_array_get_int_element (ref, k) == row[k];
    if (!same) {
      GString *s = g_string_new (NULL);
      for (int k = 0; k < L; k++)
        g_string_append_printf (s, " %d", row[k]);
      printf ("prompt %u differs from prompts.json: got%s\n", i, s->str);
      g_string_free (s, TRUE);
      bad_prompts++;
    }
  }
  check_scalar (c, "prompts with a wrong untruncated length", bad_len, 0);
  check_scalar (c, "prompts differing from prompts.json", bad_prompts, 0);
  conf_check_ints (c, "input_ids", ids, (gsize) n * L);
  conf_check_ints (c, "attention_mask", mask, (gsize) n * L);
  g_free (ids);
  g_free (mask);
  g_free (row);
  g_free (mrow);

out:
  g_free (path);
  g_free (raw);
  g_free (json);
  if (mp)
    g_object_unref (mp);
  g_object_unref (pp);
  ge_clip_tokenizer_free (tok);
}
