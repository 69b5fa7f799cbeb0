/* ge-clip-tokenizer.c: CLIP's byte-level BPE, as transformers' slow
 * CLIPTokenizer runs it without ftfy.  ge-clip-tokenizer.h lists the steps
 * and where this differs from transformers.
 *
 * vocab.json strings are interned to dense symbol indices once, so the BPE
 * loop compares integers; two vocab strings sharing an id stay two symbols,
 * as they are two strings in python.  The merges live in an open-addressing
 * table keyed by the (left, right) symbol pair.  encode () only reads the
 * tokenizer: python's per-word cache is an optimisation that cannot change a
 * result, so there is none and no locking.
 */
#include "ge-clip-tokenizer.h"
#include "ge-error.h"

#include <json-glib/json-glib.h>
#include <string.h>

#define EOW "</w>"
#define DEFAULT_MAX_LENGTH 77
/* transformers reads merges.txt lines [1, 49152 - 256 - 2 + 1). */
#define MAX_MERGES (49152 - 256 - 2)
/* Larger model_max_length values are transformers' "unset" (1e30). */
#define MAX_MODEL_LENGTH 1000000
#define SOT "<|startoftext|>"
#define EOT "<|endoftext|>"

#define NO_SYMBOL (-1)

typedef struct {
  gint32 a, b;                  /* symbol pair; a == NO_SYMBOL: empty slot */
  gint32 rank, merged;
} Merge;

typedef struct {
  char *content;
  gsize len;
  gint32 id;
} Added;

struct _GeClipTokenizer {
  GHashTable *sym_index;        /* vocab string -> symbol index + 1 */
  GArray *sym_id;               /* gint32 per symbol: the id it becomes */
  gint32 byte_sym[256];         /* symbol of a byte, NO_SYMBOL when absent */
  gint32 byte_sym_eow[256];     /* the same with "</w>" */
  Merge *merges;
  guint32 merge_mask;
  GArray *added;                /* Added, longest first */
  gboolean added_first[256];    /* some added token starts with this byte */
  gint32 bos, eos, pad, unk;
  gint32 sot_id, eot_id;        /* the ids the regex pieces SOT / EOT become */
  int max_length;
};

/* ---------------------------------------------------------------------- */
/* Unicode helpers: python's notion of each property                       */

/* str.isspace (): bidi class WS, B or S, or category Zs. */
static gboolean
py_isspace (gunichar c)
{
  if ((c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85)
    return TRUE;
  switch (g_unichar_type (c)) {
    case G_UNICODE_SPACE_SEPARATOR:
    case G_UNICODE_LINE_SEPARATOR:
    case G_UNICODE_PARAGRAPH_SEPARATOR:
      return TRUE;
    default:
      return FALSE;
  }
}

/* BasicTokenizer's _is_control: category C*, but \t \n \r. */
static gboolean
bt_is_control (gunichar c)
{
  if (c == '\t' || c == '\n' || c == '\r')
    return FALSE;
  switch (g_unichar_type (c)) {
    case G_UNICODE_CONTROL:
    case G_UNICODE_FORMAT:
    case G_UNICODE_UNASSIGNED:
    case G_UNICODE_PRIVATE_USE:
    case G_UNICODE_SURROGATE:
      return TRUE;
    default:
      return FALSE;
  }
}

/* BasicTokenizer's _is_whitespace. */
static gboolean
bt_is_whitespace (gunichar c)
{
  return c == ' ' || c == '\t' || c == '\n' || c == '\r'
      || g_unichar_type (c) == G_UNICODE_SPACE_SEPARATOR;
}

static gboolean
is_cjk (gunichar c)
{
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF)
      || (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F)
      || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF)
      || (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* Unicode's Case_Ignorable, which python's lower () skips around a capital
 * sigma: Mn Me Cf Lm Sk plus the Word_Break MidLetter / MidNumLet /
 * Single_Quote punctuation. */
static gboolean
case_ignorable (gunichar c)
{
  static const gunichar mid[] = { 0x27, 0x2e, 0x3a, 0xb7, 0x387, 0x55f, 0x5f4,
    0x2018, 0x2019, 0x2024, 0x2027, 0xfe13, 0xfe52, 0xfe55, 0xff07, 0xff0e,
    0xff1a
  };
  switch (g_unichar_type (c)) {
    case G_UNICODE_NON_SPACING_MARK:
    case G_UNICODE_ENCLOSING_MARK:
    case G_UNICODE_FORMAT:
    case G_UNICODE_MODIFIER_LETTER:
    case G_UNICODE_MODIFIER_SYMBOL:
      return TRUE;
    default:
      break;
  }
  for (guint i = 0; i < G_N_ELEMENTS (mid); i++)
    if (c == mid[i])
      return TRUE;
  return FALSE;
}

/* Unicode's Cased, for characters that are not case-ignorable: Lu Ll Lt
 * plus the Other_Lowercase / Other_Uppercase letters of other categories. */
static gboolean
cased (gunichar c)
{
  switch (g_unichar_type (c)) {
    case G_UNICODE_UPPERCASE_LETTER:
    case G_UNICODE_LOWERCASE_LETTER:
    case G_UNICODE_TITLECASE_LETTER:
      return TRUE;
    default:
      break;
  }
  return c == 0xaa || c == 0xba || (c >= 0x2160 && c <= 0x217f)
      || (c >= 0x24b6 && c <= 0x24e9) || (c >= 0x1f130 && c <= 0x1f149)
      || (c >= 0x1f150 && c <= 0x1f169) || (c >= 0x1f170 && c <= 0x1f189);
}

/* The CLIP pattern's classes as python's regex module (IGNORECASE) has
 * them: \\s is White_Space (str.isspace () without U+001C..U+001F), and
 * U+0345, a mark whose case fold is the letter iota, is in none of the
 * classes, so findall () skips it. */
static gboolean
rx_space (gunichar c)
{
  return py_isspace (c) && !(c >= 0x1c && c <= 0x1f);
}

static gboolean
rx_letter (gunichar c)
{
  switch (g_unichar_type (c)) {
    case G_UNICODE_UPPERCASE_LETTER:
    case G_UNICODE_LOWERCASE_LETTER:
    case G_UNICODE_TITLECASE_LETTER:
    case G_UNICODE_MODIFIER_LETTER:
    case G_UNICODE_OTHER_LETTER:
      return TRUE;
    default:
      return FALSE;
  }
}

static gboolean
rx_number (gunichar c)
{
  switch (g_unichar_type (c)) {
    case G_UNICODE_DECIMAL_NUMBER:
    case G_UNICODE_LETTER_NUMBER:
    case G_UNICODE_OTHER_NUMBER:
      return TRUE;
    default:
      return FALSE;
  }
}

static gboolean
rx_other (gunichar c)
{
  return !rx_space (c) && !rx_letter (c) && !rx_number (c) && c != 0x345;
}

/* Length of the ASCII literal @lit matched caselessly at @p, or 0.
 * IGNORECASE also lets U+017F (long s) match "s" and U+212A (Kelvin) "k". */
static gsize
rx_literal (const char *p, const char *end, const char *lit)
{
  const char *q = p;
  for (; *lit; lit++) {
    if (q >= end)
      return 0;
    gunichar c = g_utf8_get_char (q);
    c = c == 0x17f ? 's' : c == 0x212a ? 'k' : c < 0x80 ? (gunichar) g_ascii_tolower (c) : c;
    if (c != (guchar) * lit)
      return 0;
    q = g_utf8_next_char (q);
  }
  return q - p;
}

/* re.findall () of the CLIP pattern
 *   <\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d
 *   |[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+
 * (IGNORECASE): the length of the match at @p (alternatives in order,
 * greedy runs), or 0 when none matches there.  Written out rather than
 * through GRegex: GRegex re-validates the whole subject as UTF-8 for every
 * match, which makes findall () quadratic in the text length. */
static gsize
rx_match (const char *p, const char *end)
{
  static const char *const lits[] = { "<|startoftext|>", "<|endoftext|>",
    "'s", "'t", "'re", "'ve", "'m", "'ll", "'d"
  };
  for (guint i = 0; i < G_N_ELEMENTS (lits); i++) {
    gsize n = rx_literal (p, end, lits[i]);
    if (n)
      return n;
  }
  gunichar c = g_utf8_get_char (p);
  gboolean (*in_class) (gunichar);
  if (rx_letter (c))
    in_class = rx_letter;
  else if (rx_number (c))
    return g_utf8_next_char (p) - p;
  else if (rx_other (c))
    in_class = rx_other;
  else
    return 0;
  const char *q = g_utf8_next_char (p);
  while (q < end && in_class (g_utf8_get_char (q)))
    q = g_utf8_next_char (q);
  return q - p;
}

/* Python's str.lower () of the word [w, end), appended to @out.  GLib's
 * g_unichar_tolower () agrees with it for every character but U+0130 (two
 * code points in python), the Roman numerals and the circled letters (not
 * letters, so GLib leaves them), and the final sigma (context). */
static void
py_lower (GString * out, const char *w, const char *end)
{
  for (const char *q = w; q < end; q = g_utf8_next_char (q)) {
    gunichar c = g_utf8_get_char (q), l;

    if (c == 0x130) {
      g_string_append (out, "i\xcc\x87");
      continue;
    }
    if (c >= 0x2160 && c <= 0x216f)
      l = c + 0x10;
    else if (c >= 0x24b6 && c <= 0x24cf)
      l = c + 0x1a;
    else if (c == 0x3a3) {
      /* Final when a cased letter precedes and none follows, skipping
       * case-ignorable characters both ways. */
      gboolean final = FALSE;
      const char *r = q;
      while (r > w) {
        r = g_utf8_prev_char (r);
        gunichar p = g_utf8_get_char (r);
        if (!case_ignorable (p)) {
          final = cased (p);
          break;
        }
      }
      if (final) {
        for (r = g_utf8_next_char (q); r < end; r = g_utf8_next_char (r)) {
          gunichar n = g_utf8_get_char (r);
          if (!case_ignorable (n)) {
            final = !cased (n);
            break;
          }
        }
      }
      l = final ? 0x3c2 : 0x3c3;
    } else
      l = g_unichar_tolower (c);
    g_string_append_unichar (out, l);
  }
}

/* GPT-2's bytes_to_unicode (): printable bytes map to themselves, the
 * others to U+0100 onwards in byte order. */
static gunichar
byte_char (int b)
{
  if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))
    return (gunichar) b;
  int n = 0;
  for (int i = 0; i < b; i++)
    if (!((i >= 33 && i <= 126) || (i >= 161 && i <= 172) || (i >= 174 && i <= 255)))
      n++;
  return 256 + (gunichar) n;
}

/* ---------------------------------------------------------------------- */
/* Tables                                                                  */

static gint32
sym_lookup (const GeClipTokenizer * t, const char *s)
{
  gpointer v = g_hash_table_lookup (t->sym_index, s);
  return v ? GPOINTER_TO_INT (v) - 1 : NO_SYMBOL;
}

static guint32
pair_hash (gint32 a, gint32 b)
{
  guint32 h = (guint32) a * 0x9E3779B1u;
  h ^= (guint32) b * 0x85EBCA77u;
  return h ^ (h >> 15);
}

static Merge *
merge_slot (const GeClipTokenizer * t, gint32 a, gint32 b)
{
  guint32 i = pair_hash (a, b) & t->merge_mask;
  for (;;) {
    Merge *m = &t->merges[i];
    if (m->a == NO_SYMBOL || (m->a == a && m->b == b))
      return m;
    i = (i + 1) & t->merge_mask;
  }
}

/* The added-token or vocabulary id of @s, as convert_tokens_to_ids looks
 * it up; -1 when it is neither. */
static gint32
token_id (const GeClipTokenizer * t, GHashTable * added_map, const char *s)
{
  gpointer v;
  if (added_map && g_hash_table_lookup_extended (added_map, s, NULL, &v))
    return GPOINTER_TO_INT (v);
  gint32 sym = sym_lookup (t, s);
  return sym == NO_SYMBOL ? -1 : g_array_index (t->sym_id, gint32, sym);
}

/* ---------------------------------------------------------------------- */
/* Loading                                                                 */

static JsonParser *
parse_json_object (const char *name, const char *data, gssize len,
    JsonObject ** obj, GError ** error)
{
  JsonParser *p = json_parser_new ();
  GError *e = NULL;
  if (!json_parser_load_from_data (p, data, len, &e)) {
    ge_fail (error, GE_ERROR_CORRUPT, name, "not valid JSON: %s", e->message);
    g_error_free (e);
    g_object_unref (p);
    return NULL;
  }
  JsonNode *root = json_parser_get_root (p);
  if (!root || !JSON_NODE_HOLDS_OBJECT (root)) {
    ge_fail (error, GE_ERROR_CORRUPT, name, "not a JSON object");
    g_object_unref (p);
    return NULL;
  }
  *obj = json_node_get_object (root);
  return p;
}

static gboolean
load_vocab (GeClipTokenizer * t, const char *name, const char *data,
    gssize len, GError ** error)
{
  JsonObject *o;
  JsonParser *p = parse_json_object (name, data, len, &o, error);
  if (!p)
    return FALSE;
  gboolean ok = TRUE;
  GList *members = json_object_get_members (o);
  for (GList * l = members; l; l = l->next) {
    const char *key = l->data;
    JsonNode *n = json_object_get_member (o, key);
    if (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_INT64
        || json_node_get_int (n) < 0 || json_node_get_int (n) > G_MAXINT32) {
      ok = ge_fail (error, GE_ERROR_CORRUPT, name,
          "entry \"%s\": expected an integer id in [0, 2^31)", key);
      break;
    }
    gint32 id = (gint32) json_node_get_int (n);
    gpointer old;
    if (g_hash_table_lookup_extended (t->sym_index, key, NULL, &old)) {
      /* A repeated key: the last value wins, as in json.load. */
      g_array_index (t->sym_id, gint32, GPOINTER_TO_INT (old) - 1) = id;
      continue;
    }
    g_hash_table_insert (t->sym_index, g_strdup (key),
        GINT_TO_POINTER ((int) t->sym_id->len + 1));
    g_array_append_val (t->sym_id, id);
  }
  g_list_free (members);
  g_object_unref (p);
  return ok;
}

/* Splits [s, end) on python whitespace into at most @max fields; returns the
 * number of fields found (counting past @max). */
static int
split_fields (const char *s, const char *end, const char **f, gsize *flen,
    int max)
{
  int n = 0;
  const char *q = s;
  while (q < end) {
    while (q < end && py_isspace (g_utf8_get_char (q)))
      q = g_utf8_next_char (q);
    if (q >= end)
      break;
    const char *b = q;
    while (q < end && !py_isspace (g_utf8_get_char (q)))
      q = g_utf8_next_char (q);
    if (n < max) {
      f[n] = b;
      flen[n] = q - b;
    }
    n++;
  }
  return n;
}

static gboolean
load_merges (GeClipTokenizer * t, const char *name, const char *data,
    gssize len, GError ** error)
{
  if (len < 0)
    len = strlen (data);
  if (!g_utf8_validate_len (data, len, NULL))
    return ge_fail (error, GE_ERROR_CORRUPT, name, "not UTF-8 text");

  /* Python's universal newlines, then read ().strip ().split ("\n"). */
  char *text = g_malloc (len + 1);
  gsize n = 0;
  for (gssize i = 0; i < len; i++) {
    if (data[i] == '\r') {
      text[n++] = '\n';
      if (i + 1 < len && data[i + 1] == '\n')
        i++;
    } else
      text[n++] = data[i];
  }
  text[n] = '\0';
  const char *s = text, *end = text + n;
  int line_no = 1;              /* of the line starting at s, 1-based */
  while (s < end && py_isspace (g_utf8_get_char (s))) {
    if (*s == '\n')
      line_no++;
    s = g_utf8_next_char (s);
  }
  while (end > s) {
    const char *prev = g_utf8_prev_char (end);
    if (!py_isspace (g_utf8_get_char (prev)))
      break;
    end = prev;
  }

  /* Count the merge lines first, to size the table. */
  int n_lines = 0;
  for (const char *q = s; q < end; q++)
    n_lines += *q == '\n';
  int n_merges = MIN (n_lines, MAX_MERGES);
  guint32 size = 16;
  while (size < 2u * (guint32) n_merges)
    size *= 2;
  t->merges = g_new (Merge, size);
  t->merge_mask = size - 1;
  for (guint32 i = 0; i < size; i++)
    t->merges[i].a = NO_SYMBOL;

  gboolean ok = TRUE;
  const char *q = memchr (s, '\n', end - s);        /* line 0 is skipped */
  GString *buf = g_string_new (NULL);
  for (int rank = 0; q && q < end && rank < MAX_MERGES; rank++) {
    const char *b = q + 1;
    const char *e = memchr (b, '\n', end - b);
    if (!e)
      e = end;
    q = e < end ? e : NULL;
    int ln = line_no + 1 + rank;

    const char *f[2];
    gsize fl[2];
    int nf = split_fields (b, e, f, fl, 2);
    if (nf != 2) {
      ok = ge_fail (error, GE_ERROR_CORRUPT, name,
          "line %d: expected two symbols separated by a space, found %d", ln, nf);
      break;
    }
    gint32 sym[3];
    for (int k = 0; k < 3; k++) {
      g_string_truncate (buf, 0);
      if (k < 2)
        g_string_append_len (buf, f[k], fl[k]);
      else
        g_string_append_len (g_string_append_len (buf, f[0], fl[0]), f[1], fl[1]);
      sym[k] = sym_lookup (t, buf->str);
      if (sym[k] == NO_SYMBOL) {
        ok = ge_fail (error, GE_ERROR_CORRUPT, name,
            "line %d: %s \"%s\" is not in vocab.json", ln,
            k < 2 ? "symbol" : "merged symbol", buf->str);
        break;
      }
    }
    if (!ok)
      break;
    /* A repeated pair takes its last rank, as dict (zip ()) does. */
    Merge *m = merge_slot (t, sym[0], sym[1]);
    m->a = sym[0];
    m->b = sym[1];
    m->rank = rank;
    m->merged = sym[2];
  }
  g_string_free (buf, TRUE);
  g_free (text);
  return ok;
}

static const char *const special_keys[] = {
  "bos_token", "eos_token", "unk_token", "sep_token", "pad_token",
  "cls_token", "mask_token",
};

enum { BOS, EOS, UNK, SEP, PAD, CLS, MASK, N_SPECIAL };

/* A special token entry: a string or an AddedToken object with "content";
 * *content is NULL for JSON null. */
static gboolean
token_content (const char *file, const char *key, JsonNode * n,
    const char **content, GError ** error)
{
  if (JSON_NODE_HOLDS_NULL (n)) {
    *content = NULL;
    return TRUE;
  }
  if (JSON_NODE_HOLDS_OBJECT (n)) {
    JsonNode *c = json_object_get_member (json_node_get_object (n), "content");
    if (c && JSON_NODE_HOLDS_VALUE (c) && json_node_get_value_type (c) == G_TYPE_STRING) {
      *content = json_node_get_string (c);
      return TRUE;
    }
  } else if (JSON_NODE_HOLDS_VALUE (n) && json_node_get_value_type (n) == G_TYPE_STRING) {
    *content = json_node_get_string (n);
    return TRUE;
  }
  return ge_fail (error, GE_ERROR_CORRUPT, file,
      "\"%s\": expected a string or an object with \"content\"", key);
}

typedef struct {
  const char *vocab_name;
  const char *config_name;
  JsonObject *config;           /* tokenizer_config.json, or NULL */
  const char *map_name;
  JsonObject *map;              /* special_tokens_map.json, or NULL */
  const char *added_name;
  JsonObject *added;            /* added_tokens.json, or NULL */
} Configs;

static void
add_token (GeClipTokenizer * t, GHashTable * added_map, const char *content,
    gint32 id)
{
  if (!content[0] || g_hash_table_contains (added_map, content))
    return;
  g_hash_table_insert (added_map, g_strdup (content), GINT_TO_POINTER (id));
}

static gint
added_longer_first (gconstpointer a, gconstpointer b)
{
  const Added *x = a, *y = b;
  return x->len < y->len ? 1 : x->len > y->len ? -1 : strcmp (x->content, y->content);
}

/* Special and added tokens, in transformers' order: added_tokens_decoder
 * (or the legacy added_tokens.json), then the special tokens that are not
 * added tokens yet, with their vocabulary ids. */
static gboolean
load_specials (GeClipTokenizer * t, const Configs * cf, GError ** error)
{
  const char *content[N_SPECIAL] = { SOT, EOT, EOT, NULL, EOT, NULL, NULL };
  const char *source[N_SPECIAL];
  GPtrArray *extra = g_ptr_array_new ();        /* additional_special_tokens */
  GHashTable *added_map = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  gboolean ok = TRUE;
  JsonNode *decoder = cf->config ? json_object_get_member (cf->config,
      "added_tokens_decoder") : NULL;
  if (decoder && JSON_NODE_HOLDS_NULL (decoder))
    decoder = NULL;

  for (int k = 0; k < N_SPECIAL; k++)
    source[k] = "CLIPTokenizer defaults";

  /* special_tokens_map.json only counts without added_tokens_decoder, and
   * then overrides tokenizer_config.json. */
  JsonObject *layers[2] = { cf->config, decoder ? NULL : cf->map };
  const char *layer_names[2] = { cf->config_name, cf->map_name };
  for (int L = 0; L < 2 && ok; L++) {
    if (!layers[L])
      continue;
    for (int k = 0; k < N_SPECIAL && ok; k++) {
      JsonNode *n = json_object_get_member (layers[L], special_keys[k]);
      if (n) {
        ok = token_content (layer_names[L], special_keys[k], n, &content[k], error);
        source[k] = layer_names[L];
      }
    }
    JsonNode *n = json_object_get_member (layers[L], "additional_special_tokens");
    if (ok && n && JSON_NODE_HOLDS_ARRAY (n)) {
      JsonArray *a = json_node_get_array (n);
      g_ptr_array_set_size (extra, 0);
      for (guint i = 0; ok && i < json_array_get_length (a); i++) {
        const char *c;
        ok = token_content (layer_names[L], "additional_special_tokens",
            json_array_get_element (a, i), &c, error);
        if (ok && c)
          g_ptr_array_add (extra, (gpointer) c);
      }
    }
  }

  if (ok && decoder) {
    if (!JSON_NODE_HOLDS_OBJECT (decoder))
      ok = ge_fail (error, GE_ERROR_CORRUPT, cf->config_name,
          "\"added_tokens_decoder\" is not an object");
    GList *members = ok ? json_object_get_members (json_node_get_object (decoder)) : NULL;
    for (GList * l = members; ok && l; l = l->next) {
      const char *key = l->data, *c;
      char *kend;
      gint64 id = g_ascii_strtoll (key, &kend, 10);
      if (kend == key || *kend || id < 0 || id > G_MAXINT32) {
        ok = ge_fail (error, GE_ERROR_CORRUPT, cf->config_name,
            "added_tokens_decoder: key \"%s\" is not an id", key);
        break;
      }
      JsonNode *v = json_object_get_member (json_node_get_object (decoder), key);
      char *what = g_strdup_printf ("added_tokens_decoder.%s", key);
      ok = token_content (cf->config_name, what, v, &c, error);
      g_free (what);
      if (ok && c)
        add_token (t, added_map, c, (gint32) id);
    }
    g_list_free (members);
  } else if (ok && cf->added) {
    GList *members = json_object_get_members (cf->added);
    for (GList * l = members; ok && l; l = l->next) {
      JsonNode *v = json_object_get_member (cf->added, l->data);
      if (!JSON_NODE_HOLDS_VALUE (v) || json_node_get_value_type (v) != G_TYPE_INT64
          || json_node_get_int (v) < 0 || json_node_get_int (v) > G_MAXINT32)
        ok = ge_fail (error, GE_ERROR_CORRUPT, cf->added_name,
            "entry \"%s\": expected an integer id", (const char *) l->data);
      else
        add_token (t, added_map, l->data, (gint32) json_node_get_int (v));
    }
    g_list_free (members);
  }

  /* The special tokens themselves. */
  for (int k = 0; ok && k < N_SPECIAL + (int) extra->len; k++) {
    const char *c = k < N_SPECIAL ? content[k] : g_ptr_array_index (extra, k - N_SPECIAL);
    const char *what = k < N_SPECIAL ? special_keys[k] : "additional_special_tokens";
    const char *src = k < N_SPECIAL ? source[k] : "additional_special_tokens";
    if (!c || !c[0]) {
      if (k == BOS || k == EOS || k == UNK || k == PAD)
        ok = ge_fail (error, GE_ERROR_UNSUPPORTED, src, "%s is %s", what,
            c ? "empty" : "null");
      continue;
    }
    if (g_hash_table_contains (added_map, c))
      continue;
    gint32 sym = sym_lookup (t, c);
    if (sym == NO_SYMBOL) {
      ok = ge_fail (error, GE_ERROR_CORRUPT, cf->vocab_name,
          "%s \"%s\" (from %s) is not in the vocabulary", what, c, src);
      break;
    }
    add_token (t, added_map, c, g_array_index (t->sym_id, gint32, sym));
  }

  if (ok) {
    gpointer v;
    g_hash_table_lookup_extended (added_map, content[BOS], NULL, &v);
    t->bos = GPOINTER_TO_INT (v);
    g_hash_table_lookup_extended (added_map, content[EOS], NULL, &v);
    t->eos = GPOINTER_TO_INT (v);
    g_hash_table_lookup_extended (added_map, content[UNK], NULL, &v);
    t->unk = GPOINTER_TO_INT (v);
    g_hash_table_lookup_extended (added_map, content[PAD], NULL, &v);
    t->pad = GPOINTER_TO_INT (v);

    GHashTableIter it;
    gpointer key;
    g_hash_table_iter_init (&it, added_map);
    while (g_hash_table_iter_next (&it, &key, &v)) {
      Added a = { g_strdup (key), strlen (key), GPOINTER_TO_INT (v) };
      g_array_append_val (t->added, a);
      t->added_first[(guint8) a.content[0]] = TRUE;
      /* BPE output is converted with the added tokens first. */
      gint32 sym = sym_lookup (t, key);
      if (sym != NO_SYMBOL)
        g_array_index (t->sym_id, gint32, sym) = a.id;
    }
    g_array_sort (t->added, added_longer_first);

    gint32 id = token_id (t, NULL, SOT);
    t->sot_id = id < 0 ? t->unk : id;
    id = token_id (t, NULL, EOT);
    t->eot_id = id < 0 ? t->unk : id;
  }
  g_hash_table_unref (added_map);
  g_ptr_array_free (extra, TRUE);
  return ok;
}

static gboolean
load_max_length (GeClipTokenizer * t, const Configs * cf, GError ** error)
{
  t->max_length = DEFAULT_MAX_LENGTH;
  JsonNode *n = cf->config ? json_object_get_member (cf->config, "model_max_length") : NULL;
  if (!n || JSON_NODE_HOLDS_NULL (n))
    return TRUE;
  double v;
  if (JSON_NODE_HOLDS_VALUE (n) && json_node_get_value_type (n) == G_TYPE_INT64)
    v = (double) json_node_get_int (n);
  else if (JSON_NODE_HOLDS_VALUE (n) && json_node_get_value_type (n) == G_TYPE_DOUBLE)
    v = json_node_get_double (n);
  else
    return ge_fail (error, GE_ERROR_CORRUPT, cf->config_name,
        "\"model_max_length\" is not a number");
  if (v > MAX_MODEL_LENGTH)
    return TRUE;
  if (v < 2 || v != (int) v)
    return ge_fail (error, GE_ERROR_UNSUPPORTED, cf->config_name,
        "\"model_max_length\" %g: need an integer >= 2 (bos and eos)", v);
  t->max_length = (int) v;
  return TRUE;
}

static GeClipTokenizer *
tokenizer_load (const char *vocab_name, const char *vocab, gssize vocab_len,
    const char *merges_name, const char *merges, gssize merges_len,
    const Configs * cf, GError ** error)
{
  GeClipTokenizer *t = g_new0 (GeClipTokenizer, 1);
  t->sym_index = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  t->sym_id = g_array_new (FALSE, FALSE, sizeof (gint32));
  t->added = g_array_new (FALSE, FALSE, sizeof (Added));

  if (!load_vocab (t, vocab_name, vocab, vocab_len, error)
      || !load_merges (t, merges_name, merges, merges_len, error)
      || !load_specials (t, cf, error) || !load_max_length (t, cf, error)) {
    ge_clip_tokenizer_free (t);
    return NULL;
  }

  for (int b = 0; b < 256; b++) {
    char s[16];
    int n = g_unichar_to_utf8 (byte_char (b), s);
    strcpy (s + n, EOW);
    t->byte_sym_eow[b] = sym_lookup (t, s);
    s[n] = '\0';
    t->byte_sym[b] = sym_lookup (t, s);
  }

  return t;
}

/* Reads @path; a missing optional file gives *data = NULL and TRUE. */
static gboolean
read_file (const char *path, gboolean optional, char **data, gsize * len,
    GError ** error)
{
  GError *e = NULL;
  *data = NULL;
  if (optional && !g_file_test (path, G_FILE_TEST_EXISTS))
    return TRUE;
  if (!g_file_get_contents (path, data, len, &e)) {
    gboolean missing = g_error_matches (e, G_FILE_ERROR, G_FILE_ERROR_NOENT);
    ge_fail (error, missing ? GE_ERROR_NOT_FOUND : GE_ERROR_CORRUPT, path,
        "cannot read: %s", e->message);
    g_error_free (e);
    return FALSE;
  }
  return TRUE;
}

static GeClipTokenizer *
load_paths (const char *vocab_path, const char *merges_path,
    const char *folder, GError ** error)
{
  char *vocab = NULL, *merges = NULL, *data[3] = { NULL, NULL, NULL };
  char *paths[3] = { NULL, NULL, NULL };
  JsonParser *parsers[3] = { NULL, NULL, NULL };
  JsonObject *objs[3] = { NULL, NULL, NULL };
  GeClipTokenizer *t = NULL;
  gsize vlen, mlen;

  if (!read_file (vocab_path, FALSE, &vocab, &vlen, error)
      || !read_file (merges_path, FALSE, &merges, &mlen, error))
    goto out;
  if (folder) {
    static const char *const names[3] = { "tokenizer_config.json",
      "special_tokens_map.json", "added_tokens.json"
    };
    for (int i = 0; i < 3; i++) {
      gsize n;
      paths[i] = g_build_filename (folder, names[i], NULL);
      if (!read_file (paths[i], TRUE, &data[i], &n, error))
        goto out;
      if (data[i] && !(parsers[i] = parse_json_object (paths[i], data[i], n, &objs[i], error)))
        goto out;
    }
  }
  Configs cf = { vocab_path, paths[0], objs[0], paths[1], objs[1], paths[2], objs[2] };
  t = tokenizer_load (vocab_path, vocab, vlen, merges_path, merges, mlen, &cf, error);

out:
  for (int i = 0; i < 3; i++) {
    if (parsers[i])
      g_object_unref (parsers[i]);
    g_free (data[i]);
    g_free (paths[i]);
  }
  g_free (vocab);
  g_free (merges);
  return t;
}

GeClipTokenizer *
ge_clip_tokenizer_new (const char *folder, GError ** error)
{
  g_return_val_if_fail (folder != NULL, NULL);
  char *v = g_build_filename (folder, "vocab.json", NULL);
  char *m = g_build_filename (folder, "merges.txt", NULL);
  GeClipTokenizer *t = load_paths (v, m, folder, error);
  g_free (v);
  g_free (m);
  return t;
}

GeClipTokenizer *
ge_clip_tokenizer_new_from_files (const char *vocab_json, const char *merges_txt,
    GError ** error)
{
  g_return_val_if_fail (vocab_json != NULL && merges_txt != NULL, NULL);
  return load_paths (vocab_json, merges_txt, NULL, error);
}

GeClipTokenizer *
ge_clip_tokenizer_new_from_data (const char *vocab_json, gssize vocab_len,
    const char *merges_txt, gssize merges_len, const char *tokenizer_config_json,
    gssize config_len, GError ** error)
{
  g_return_val_if_fail (vocab_json != NULL && merges_txt != NULL, NULL);
  Configs cf = { "vocab.json", "tokenizer_config.json", NULL, "special_tokens_map.json", NULL,
    "added_tokens.json", NULL
  };
  JsonParser *p = NULL;
  if (tokenizer_config_json
      && !(p = parse_json_object (cf.config_name, tokenizer_config_json,
              config_len, &cf.config, error)))
    return NULL;
  GeClipTokenizer *t = tokenizer_load ("vocab.json", vocab_json, vocab_len,
      "merges.txt", merges_txt, merges_len, &cf, error);
  if (p)
    g_object_unref (p);
  return t;
}

void
ge_clip_tokenizer_free (GeClipTokenizer * t)
{
  if (!t)
    return;
  if (t->sym_index)
    g_hash_table_unref (t->sym_index);
  if (t->sym_id)
    g_array_free (t->sym_id, TRUE);
  if (t->added) {
    for (guint i = 0; i < t->added->len; i++)
      g_free (g_array_index (t->added, Added, i).content);
    g_array_free (t->added, TRUE);
  }
  g_free (t->merges);
  g_free (t);
}

int
ge_clip_tokenizer_max_length (const GeClipTokenizer * t)
{
  return t->max_length;
}

gint32
ge_clip_tokenizer_bos_id (const GeClipTokenizer * t)
{
  return t->bos;
}

gint32
ge_clip_tokenizer_eos_id (const GeClipTokenizer * t)
{
  return t->eos;
}

gint32
ge_clip_tokenizer_pad_id (const GeClipTokenizer * t)
{
  return t->pad;
}

/* ---------------------------------------------------------------------- */
/* Encoding                                                                */

typedef struct {
  GString *clean, *lower;
  GArray *word;                 /* gint32 symbols of the piece in BPE */
  GArray *ids;                  /* content ids */
  guint limit;                  /* stop once this many content ids */
} Scratch;

/* bpe (): merges the lowest-ranked adjacent pair, every occurrence left to
 * right, until no pair has a rank. */
static void
bpe_piece (const GeClipTokenizer * t, const guint8 * p, gsize n, Scratch * s)
{
  g_array_set_size (s->word, n);
  gint32 *w = (gint32 *) s->word->data;
  for (gsize i = 0; i + 1 < n; i++)
    w[i] = t->byte_sym[p[i]];
  w[n - 1] = t->byte_sym_eow[p[n - 1]];

  gsize len = n;
  while (len > 1) {
    const Merge *best = NULL;
    for (gsize i = 0; i + 1 < len; i++) {
      if (w[i] == NO_SYMBOL || w[i + 1] == NO_SYMBOL)
        continue;
      const Merge *m = merge_slot (t, w[i], w[i + 1]);
      if (m->a != NO_SYMBOL && (!best || m->rank < best->rank))
        best = m;
    }
    if (!best)
      break;
    gsize j = 0;
    for (gsize i = 0; i < len;) {
      if (i + 1 < len && w[i] == best->a && w[i + 1] == best->b) {
        w[j++] = best->merged;
        i += 2;
      } else
        w[j++] = w[i++];
    }
    len = j;
  }
  for (gsize i = 0; i < len; i++) {
    gint32 id = w[i] == NO_SYMBOL ? t->unk : g_array_index (t->sym_id, gint32, w[i]);
    g_array_append_val (s->ids, id);
  }
}

/* _tokenize () of the text between two added tokens. */
static void
tokenize_segment (const GeClipTokenizer * t, const char *seg, gsize len,
    Scratch * s)
{
  if (len == 0 || s->ids->len >= s->limit)
    return;

  /* BasicTokenizer: _clean_text and _tokenize_chinese_chars. */
  g_string_truncate (s->clean, 0);
  for (const char *q = seg; q < seg + len; q = g_utf8_next_char (q)) {
    gunichar c = g_utf8_get_char (q);
    if (c == 0 || c == 0xFFFD || bt_is_control (c))
      continue;
    if (bt_is_whitespace (c))
      g_string_append_c (s->clean, ' ');
    else if (is_cjk (c)) {
      g_string_append_c (s->clean, ' ');
      g_string_append_unichar (s->clean, c);
      g_string_append_c (s->clean, ' ');
    } else
      g_string_append_unichar (s->clean, c);
  }
  if (s->clean->len == 0)
    return;
  char *nfc = g_utf8_normalize (s->clean->str, s->clean->len, G_NORMALIZE_NFC);

  /* Whitespace split, str.lower () per word, " ".join. */
  g_string_truncate (s->lower, 0);
  const char *w = nfc;
  while (*w) {
    while (*w && py_isspace (g_utf8_get_char (w)))
      w = g_utf8_next_char (w);
    if (!*w)
      break;
    const char *b = w;
    while (*w && !py_isspace (g_utf8_get_char (w)))
      w = g_utf8_next_char (w);
    if (s->lower->len)
      g_string_append_c (s->lower, ' ');
    py_lower (s->lower, b, w);
  }
  g_free (nfc);

  const char *q = s->lower->str, *end = s->lower->str + s->lower->len;
  while (q < end && s->ids->len < s->limit) {
    gsize n = rx_match (q, end);
    if (n == 0) {
      q = g_utf8_next_char (q);
      continue;
    }
    /* bpe ()'s cache starts with these two, mapped to themselves. */
    gint32 id = -1;
    if (n == strlen (SOT) && memcmp (q, SOT, n) == 0)
      id = t->sot_id;
    else if (n == strlen (EOT) && memcmp (q, EOT, n) == 0)
      id = t->eot_id;
    if (id >= 0)
      g_array_append_val (s->ids, id);
    else
      bpe_piece (t, (const guint8 *) q, n, s);
    q += n;
  }
}

static const Added *
added_at (const GeClipTokenizer * t, const char *p)
{
  if (!t->added_first[(guint8) * p])
    return NULL;
  for (guint i = 0; i < t->added->len; i++) {
    const Added *a = &g_array_index (t->added, Added, i);
    if (strncmp (p, a->content, a->len) == 0)
      return a;
  }
  return NULL;
}

gboolean
ge_clip_tokenizer_encode_full (const GeClipTokenizer * t, const char *text,
    gint32 * ids, gint32 * attention_mask, int *n_untruncated,
    gboolean * truncated, GError ** error)
{
  g_return_val_if_fail (t != NULL && ids != NULL, FALSE);
  const char *bad;
  if (!text)
    return ge_fail (error, GE_ERROR_INVALID, "prompt", "no text (NULL)");
  if (!g_utf8_validate (text, -1, &bad))
    return ge_fail (error, GE_ERROR_INVALID, "prompt",
        "not valid UTF-8 (at byte %" G_GSIZE_FORMAT ")", (gsize) (bad - text));

  const guint keep = (guint) t->max_length - 2;
  Scratch s = {
    .clean = g_string_new (NULL),
    .lower = g_string_new (NULL),
    .word = g_array_new (FALSE, FALSE, sizeof (gint32)),
    .ids = g_array_sized_new (FALSE, FALSE, sizeof (gint32), t->max_length),
    .limit = n_untruncated ? G_MAXUINT : keep + 1,
  };

  /* PreTrainedTokenizer.tokenize: added tokens first, leftmost-longest. */
  const char *p = text, *seg = text;
  while (*p && s.ids->len < s.limit) {
    const Added *a = added_at (t, p);
    if (!a) {
      p++;
      continue;
    }
    tokenize_segment (t, seg, p - seg, &s);
    if (s.ids->len < s.limit)
      g_array_append_val (s.ids, a->id);
    p += a->len;
    seg = p;
  }
  tokenize_segment (t, seg, strlen (seg), &s);

  const guint n = s.ids->len;
  const guint kept = MIN (n, keep);
  ids[0] = t->bos;
  memcpy (ids + 1, s.ids->data, kept * sizeof (gint32));
  ids[kept + 1] = t->eos;
  for (int i = kept + 2; i < t->max_length; i++)
    ids[i] = t->pad;
  if (attention_mask)
    for (int i = 0; i < t->max_length; i++)
      attention_mask[i] = i < (int) kept + 2;
  if (n_untruncated)
    *n_untruncated = (int) MIN (n, (guint) G_MAXINT - 2) + 2;
  if (truncated)
    *truncated = n > keep;

  g_string_free (s.clean, TRUE);
  g_string_free (s.lower, TRUE);
  g_array_free (s.word, TRUE);
  g_array_free (s.ids, TRUE);
  return TRUE;
}

gboolean
ge_clip_tokenizer_encode (const GeClipTokenizer * t, const char *text,
    gint32 * ids, gboolean * truncated, GError ** error)
{
  return ge_clip_tokenizer_encode_full (t, text, ids, NULL, NULL, truncated, error);
}
