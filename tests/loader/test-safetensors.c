/* test-safetensors.c: robustness of the safetensors reader.
 *
 * Every hostile file is tried twice, from memory (ge_safetensors_new_from_bytes)
 * and from disk (ge_safetensors_open), because the two entry points differ in
 * how the bytes arrive (an empty mapping has no data pointer, for one).  Each
 * must fail with the expected GE_ERROR code and a message that starts with
 * the file name, so that an element can pass it on unchanged.  The positive
 * cases check exact values, including the F16/BF16 corner cases.
 */
#include <glib.h>
#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

#include "ge-safetensors.h"

static char *tmpdir;

/* ---------------------------------------------------------------------- */
/* Building files                                                          */

/* 8-byte little-endian @hlen, then @hdr_len bytes of @hdr, then @data_len
 * bytes of @data (zeros when @data is NULL).  @hlen is separate from
 * @hdr_len so that tests can lie about it. */
static GBytes *
make_raw (guint64 hlen, const char *hdr, gsize hdr_len, const void *data,
    gsize data_len)
{
  gsize n = 8 + hdr_len + data_len;
  guint8 *buf = g_malloc0 (n);

  for (int i = 0; i < 8; i++)
    buf[i] = (guint8) (hlen >> (8 * i));
  if (hdr_len)
    memcpy (buf + 8, hdr, hdr_len);
  if (data && data_len)
    memcpy (buf + 8 + hdr_len, data, data_len);
  return g_bytes_new_take (buf, n);
}

/* A well-formed frame around @hdr (a NUL-terminated string). */
static GBytes *
make_file (const char *hdr, const void *data, gsize data_len)
{
  gsize hl = strlen (hdr);

  return make_raw (hl, hdr, hl, data, data_len);
}

static char *
write_temp (const char *basename, GBytes * bytes)
{
  char *path = g_build_filename (tmpdir, basename, NULL);
  gsize n;
  const char *d = g_bytes_get_data (bytes, &n);
  GError *err = NULL;

  g_assert_true (g_file_set_contents (path, d ? d : "", n, &err));
  g_assert_no_error (err);
  return path;
}

static void
assert_error_names_file (const GError * err, const char *name)
{
  char *prefix = g_strconcat (name, ": ", NULL);

  if (!g_str_has_prefix (err->message, prefix))
    g_error ("message \"%s\" does not start with \"%s\"", err->message,
        prefix);
  g_free (prefix);
}

/* ---------------------------------------------------------------------- */
/* Hostile files                                                           */

typedef struct
{
  const char *id;               /* test path component and file name */
  GeErrorCode code;
  const char *hdr;              /* header text; NULL for the raw cases */
  gsize data_len;               /* bytes of zeros after the header */
  GBytes *(*raw) (void);        /* builds the whole file instead */
} Hostile;

static GBytes *
raw_empty (void)
{
  return g_bytes_new (NULL, 0);
}

static GBytes *
raw_short (void)
{
  return g_bytes_new ("\x02\0\0\0\0", 5);
}

static GBytes *
raw_hlen_past_end (void)
{
  return make_raw (100, "{}", 2, NULL, 0);
}

static GBytes *
raw_hlen_max (void)
{
  return make_raw (G_MAXUINT64, "{}", 2, NULL, 0);
}

static GBytes *
raw_hlen_top_bit (void)
{
  /* Would become negative if anything treated it as signed. */
  return make_raw (G_GUINT64_CONSTANT (1) << 63, "{}", 2, NULL, 0);
}

static GBytes *
raw_hlen_zero (void)
{
  return make_raw (0, "", 0, NULL, 4);
}

static GBytes *
raw_hlen_one (void)
{
  return make_raw (1, "{", 1, NULL, 0);
}

static GBytes *
raw_nul_in_header (void)
{
  return make_raw (4, "{\0}  ", 4, NULL, 0);
}

static GBytes *
raw_bad_utf8 (void)
{
  /* A lone continuation byte inside a tensor name. */
  static const char h[] = "{\"\x80\":{\"dtype\":\"F32\",\"shape\":[],"
      "\"data_offsets\":[0,4]}}";
  return make_raw (sizeof h - 1, h, sizeof h - 1, NULL, 4);
}

static GBytes *
raw_overlong_utf8 (void)
{
  /* Overlong encoding of '"': must not end the string early. */
  static const char h[] = "{\"a\xc0\xa2\":1}";
  return make_raw (sizeof h - 1, h, sizeof h - 1, NULL, 0);
}

static GBytes *
raw_deep_nesting (void)
{
  /* Enough '[' to overflow the stack of a recursive JSON parser. */
  gsize n = 1 << 20;
  char *h = g_malloc (n);
  GBytes *b;

  memset (h, '[', n);
  b = make_raw (n, h, n, NULL, 0);
  g_free (h);
  return b;
}

static GBytes *
raw_deep_nesting_in_quotes (void)
{
  /* json-glib accepts single-quoted strings; a depth check that only knows
   * about double quotes must not be fooled by them. */
  gsize n = 1 << 20;
  char *h = g_malloc (n);
  GBytes *b;

  memset (h, '[', n);
  memcpy (h, "{'\"':", 5);
  b = make_raw (n, h, n, NULL, 0);
  g_free (h);
  return b;
}

#define T(name, shape, offs) \
  "{\"" name "\":{\"dtype\":\"F32\",\"shape\":" shape ",\"data_offsets\":" offs "}}"

static const Hostile hostile[] = {
  /* framing */
  {"empty", GE_ERROR_CORRUPT, NULL, 0, raw_empty},
  {"short", GE_ERROR_CORRUPT, NULL, 0, raw_short},
  {"hlen-past-end", GE_ERROR_CORRUPT, NULL, 0, raw_hlen_past_end},
  {"hlen-max", GE_ERROR_CORRUPT, NULL, 0, raw_hlen_max},
  {"hlen-top-bit", GE_ERROR_CORRUPT, NULL, 0, raw_hlen_top_bit},
  {"hlen-zero", GE_ERROR_CORRUPT, NULL, 0, raw_hlen_zero},
  {"hlen-one", GE_ERROR_CORRUPT, NULL, 0, raw_hlen_one},
  {"truncated-data", GE_ERROR_CORRUPT, T ("a", "[4]", "[0,16]"), 8},
  {"truncated-data-empty", GE_ERROR_CORRUPT, T ("a", "[1]", "[0,4]"), 0},
  /* header text */
  {"not-json", GE_ERROR_CORRUPT, "hello world", 0},
  {"json-unterminated", GE_ERROR_CORRUPT, "{\"a\":{\"dtype\":\"F32\"", 0},
  {"json-trailing-garbage", GE_ERROR_CORRUPT, "{} {}", 0},
  {"json-array", GE_ERROR_CORRUPT, "[1,2]", 0},
  {"json-string", GE_ERROR_CORRUPT, "\"{}\"", 0},
  {"json-null", GE_ERROR_CORRUPT, "null", 0},
  {"json-number", GE_ERROR_CORRUPT, "42", 0},
  {"json-trailing-object", GE_ERROR_CORRUPT,
      "{} {\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}",
      4},
  {"json-comment", GE_ERROR_CORRUPT, "{/* x */}", 0},
  {"json-escaped-nul", GE_ERROR_CORRUPT,
      "{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[],"
      "\"data_offsets\":[0,4]}}", 4},
  /* json-glib would turn "\377" into a raw byte that is not UTF-8 */
  {"json-octal-escape", GE_ERROR_CORRUPT,
      "{\"a\\377\":{\"dtype\":\"F32\",\"shape\":[],"
      "\"data_offsets\":[0,4]}}", 4},
  {"json-bad-escape", GE_ERROR_CORRUPT, "{\"a\\q\":1}", 0},
  {"json-short-unicode-escape", GE_ERROR_CORRUPT, "{\"a\\u12\":1}", 0},
  {"json-lone-surrogate", GE_ERROR_CORRUPT,
      "{\"__metadata__\":{\"k\":\"\\udfff\"}}", 0},
  {"json-single-quotes", GE_ERROR_CORRUPT,
      "{'a':{'dtype':'F32','shape':[],'data_offsets':[0,4]}}", 4},
  {"nul-in-header", GE_ERROR_CORRUPT, NULL, 0, raw_nul_in_header},
  {"invalid-utf8", GE_ERROR_CORRUPT, NULL, 0, raw_bad_utf8},
  {"overlong-utf8", GE_ERROR_CORRUPT, NULL, 0, raw_overlong_utf8},
  {"deep-nesting", GE_ERROR_CORRUPT, NULL, 0, raw_deep_nesting},
  {"deep-nesting-quotes", GE_ERROR_CORRUPT, NULL, 0,
      raw_deep_nesting_in_quotes},
  /* entries */
  {"entry-not-object", GE_ERROR_CORRUPT, "{\"a\":[1]}", 0},
  {"entry-null", GE_ERROR_CORRUPT, "{\"a\":null}", 0},
  {"dtype-missing", GE_ERROR_CORRUPT,
      "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4},
  {"dtype-not-string", GE_ERROR_CORRUPT,
      "{\"a\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4},
  {"dtype-unknown", GE_ERROR_UNSUPPORTED,
      "{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1},
  {"dtype-lowercase", GE_ERROR_UNSUPPORTED,
      "{\"a\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4},
  /* shapes */
  {"shape-missing", GE_ERROR_CORRUPT,
      "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4},
  {"shape-not-array", GE_ERROR_CORRUPT, T ("a", "1", "[0,4]"), 4},
  {"shape-negative", GE_ERROR_CORRUPT, T ("a", "[-1]", "[0,4]"), 4},
  {"shape-negative-pair", GE_ERROR_CORRUPT, T ("a", "[-1,-1]", "[0,4]"), 4},
  {"shape-float", GE_ERROR_CORRUPT, T ("a", "[1.5]", "[0,4]"), 4},
  {"shape-string", GE_ERROR_CORRUPT, T ("a", "[\"1\"]", "[0,4]"), 4},
  {"shape-bool", GE_ERROR_CORRUPT, T ("a", "[true]", "[0,4]"), 4},
  {"shape-null", GE_ERROR_CORRUPT, T ("a", "[null]", "[0,4]"), 4},
  {"shape-nested", GE_ERROR_CORRUPT, T ("a", "[[1]]", "[0,4]"), 4},
  {"shape-huge", GE_ERROR_CORRUPT, T ("a", "[9223372036854775807]", "[0,4]"),
      4},
  {"shape-huge-float", GE_ERROR_CORRUPT, T ("a", "[1e300]", "[0,4]"), 4},
  {"shape-2pow63-float", GE_ERROR_CORRUPT,
      T ("a", "[9223372036854775808.0]", "[0,4]"), 4},
  {"shape-beyond-int64", GE_ERROR_CORRUPT,
      T ("a", "[18446744073709551615]", "[0,4]"), 4},
  {"shape-beyond-uint64", GE_ERROR_CORRUPT,
      T ("a", "[36893488147419103232]", "[0,4]"), 4},
  {"shape-too-many-dims", GE_ERROR_CORRUPT,
      T ("a", "[1,1,1,1,1,1,1,1,1]", "[0,4]"), 4},
  {"count-overflow", GE_ERROR_CORRUPT,
      T ("a", "[4294967296,4294967296]", "[0,4]"), 4},
  {"count-overflow-3d", GE_ERROR_CORRUPT,
      T ("a", "[2097152,2097152,4194304]", "[0,4]"), 4},
  {"bytes-overflow", GE_ERROR_CORRUPT,
      T ("a", "[4611686018427387904]", "[0,0]"), 0},
  {"count-overflow-then-zero", GE_ERROR_CORRUPT,
      T ("a", "[4294967296,4294967296,0]", "[0,0]"), 0},
  /* offsets */
  {"offsets-missing", GE_ERROR_CORRUPT,
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4},
  {"offsets-not-array", GE_ERROR_CORRUPT, T ("a", "[1]", "4"), 4},
  {"offsets-one", GE_ERROR_CORRUPT, T ("a", "[1]", "[4]"), 4},
  {"offsets-three", GE_ERROR_CORRUPT, T ("a", "[1]", "[0,4,8]"), 8},
  {"offsets-negative", GE_ERROR_CORRUPT, T ("a", "[1]", "[-4,0]"), 4},
  {"offsets-float", GE_ERROR_CORRUPT, T ("a", "[1]", "[0.5,4.5]"), 8},
  {"offsets-2pow64-float", GE_ERROR_CORRUPT,
      T ("a", "[1]", "[0,18446744073709551616.0]"), 4},
  {"offsets-string", GE_ERROR_CORRUPT, T ("a", "[1]", "[\"0\",\"4\"]"), 4},
  {"offsets-reversed", GE_ERROR_CORRUPT, T ("a", "[1]", "[4,0]"), 4},
  {"offsets-past-end", GE_ERROR_CORRUPT, T ("a", "[1]", "[4,8]"), 4},
  {"offsets-far-past-end", GE_ERROR_CORRUPT,
      T ("a", "[1]", "[9223372036854775800,9223372036854775804]"), 4},
  {"offsets-span-short", GE_ERROR_CORRUPT, T ("a", "[2]", "[0,4]"), 8},
  {"offsets-span-long", GE_ERROR_CORRUPT, T ("a", "[2]", "[0,12]"), 12},
  {"offsets-span-dtype", GE_ERROR_CORRUPT,
      "{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8},
  {"overlap", GE_ERROR_CORRUPT,
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
      "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12},
  {"overlap-same", GE_ERROR_CORRUPT,
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
      "\"b\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8},
  {"overlap-contained", GE_ERROR_CORRUPT,
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
      "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 16},
  /* metadata */
  {"metadata-string", GE_ERROR_CORRUPT, "{\"__metadata__\":\"x\"}", 0},
  {"metadata-array", GE_ERROR_CORRUPT, "{\"__metadata__\":[\"x\"]}", 0},
  {"metadata-null", GE_ERROR_CORRUPT, "{\"__metadata__\":null}", 0},
  {"metadata-number-value", GE_ERROR_CORRUPT,
      "{\"__metadata__\":{\"a\":\"ok\",\"b\":1}}", 0},
  {"metadata-object-value", GE_ERROR_CORRUPT,
      "{\"__metadata__\":{\"a\":{}}}", 0},
  {"metadata-null-value", GE_ERROR_CORRUPT,
      "{\"__metadata__\":{\"a\":null}}", 0},
  {"metadata-bool-value", GE_ERROR_CORRUPT,
      "{\"__metadata__\":{\"a\":true}}", 0},
};

#undef T

static GBytes *
hostile_bytes (const Hostile * h)
{
  if (h->raw)
    return h->raw ();
  return make_file (h->hdr, NULL, h->data_len);
}

static void
test_hostile_memory (gconstpointer p)
{
  const Hostile *h = p;
  GBytes *b = hostile_bytes (h);
  char *name = g_strconcat (h->id, ".safetensors", NULL);
  GError *err = NULL;
  GeSafetensors *st = ge_safetensors_new_from_bytes (b, name, &err);

  g_assert_null (st);
  g_assert_error (err, GE_ERROR, (gint) h->code);
  assert_error_names_file (err, name);
  g_test_message ("%s", err->message);
  g_error_free (err);
  g_free (name);
  g_bytes_unref (b);
}

static void
test_hostile_file (gconstpointer p)
{
  const Hostile *h = p;
  GBytes *b = hostile_bytes (h);
  char *base = g_strconcat (h->id, ".safetensors", NULL);
  char *path = write_temp (base, b);
  GError *err = NULL;
  GeSafetensors *st = ge_safetensors_open (path, &err);

  g_assert_null (st);
  g_assert_error (err, GE_ERROR, (gint) h->code);
  assert_error_names_file (err, path);
  g_test_message ("%s", err->message);
  g_error_free (err);
  g_unlink (path);
  g_free (path);
  g_free (base);
  g_bytes_unref (b);
}

static void
test_directory (void)
{
  char *path = g_build_filename (tmpdir, "a-directory.safetensors", NULL);
  GError *err = NULL;

  g_assert_cmpint (g_mkdir (path, 0700), ==, 0);
  g_assert_null (ge_safetensors_open (path, &err));
  g_assert_error (err, GE_ERROR, GE_ERROR_INVALID);
  assert_error_names_file (err, path);
  g_error_free (err);
  g_rmdir (path);
  g_free (path);
}

static void
test_missing (void)
{
  char *path = g_build_filename (tmpdir, "no-such-file.safetensors", NULL);
  GError *err = NULL;

  g_assert_null (ge_safetensors_open (path, &err));
  g_assert_error (err, GE_ERROR, GE_ERROR_NOT_FOUND);
  assert_error_names_file (err, path);
  g_error_free (err);
  g_free (path);
}

static void
test_missing_parent (void)
{
  char *path = g_build_filename (tmpdir, "no-such-dir", "x.safetensors",
      NULL);
  GError *err = NULL;

  g_assert_null (ge_safetensors_open (path, &err));
  g_assert_error (err, GE_ERROR, GE_ERROR_NOT_FOUND);
  assert_error_names_file (err, path);
  g_error_free (err);
  g_free (path);
}

/* ---------------------------------------------------------------------- */
/* Valid files                                                             */

/* F16 bit patterns and their exact values. */
static const struct
{
  guint16 bits;
  float value;
} f16_cases[] = {
  {0x0000, 0.0f},
  {0x8000, -0.0f},
  {0x3c00, 1.0f},
  {0xc000, -2.0f},
  {0x3555, 0.333251953125f},    /* 1365/4096 */
  {0x7bff, 65504.0f},           /* largest normal */
  {0x0400, 6.103515625e-05f},   /* 2^-14, smallest normal */
  {0x0001, 5.9604644775390625e-08f},    /* 2^-24, smallest subnormal */
  {0x03ff, 6.097555160522461e-05f},     /* 1023 * 2^-24, largest subnormal */
  {0x8200, -3.0517578125e-05f}, /* -512 * 2^-24 */
  {0x7c00, INFINITY},
  {0xfc00, -INFINITY},
};

/* BF16: the top half of an f32. */
static const struct
{
  guint16 bits;
  float value;
} bf16_cases[] = {
  {0x0000, 0.0f},
  {0x8000, -0.0f},
  {0x3f80, 1.0f},
  {0xc040, -3.0f},
  {0x3eab, 0.333984375f},       /* 0x3eab0000 */
  {0x7f7f, 3.3895313892515355e38f},     /* largest finite */
  {0x0080, 1.1754943508222875e-38f},    /* 2^-126, smallest normal */
  {0x0001, 9.183549615799121e-41f},     /* 2^-133, smallest subnormal */
  {0x7f80, INFINITY},
  {0xff80, -INFINITY},
};

static const float f32_values[] = { 1.5f, -0.0f, 3.4028234663852886e38f,
  1.401298464324817e-45f, -7.25f, 1e-3f
};

static const double f64_values[] = { 0.1, -1e300, 4.9406564584124654e-324,
  3.141592653589793
};

static const gint64 i64_values[] = { 0, -1, G_MAXINT64, G_MININT64, 42,
  1000
};

/* F16 and BF16 NaN patterns, appended after the table values. */
static const guint16 f16_nans[] = { 0x7e00, 0xfe01 };
static const guint16 bf16_nans[] = { 0x7fc0, 0xffc1 };

/* Pads @a so that the next tensor starts 8-aligned, or at an odd offset. */
static void
pad (GByteArray * a, gboolean aligned)
{
  while (aligned ? a->len % 8 != 0 : a->len % 2 == 0)
    g_byte_array_append (a, (const guint8 *) "\xee", 1);
}

static void
put_le16 (GByteArray * a, guint16 v)
{
  guint8 b[2] = { v & 0xff, v >> 8 };
  g_byte_array_append (a, b, 2);
}

/* Builds a file holding every value table above in one tensor each, plus a
 * 0-element tensor and metadata.  Data offsets are assigned in the order
 * the tensors are appended; the header lists them in another order to show
 * that nth() sorts by offset.  With @aligned FALSE every tensor starts at an
 * odd offset of an odd-sized header, so every multi-byte load is unaligned
 * (UBSan's alignment check would see a plain dereference). */
static GBytes *
make_valid (gboolean aligned)
{
  GByteArray *data = g_byte_array_new ();
  GString *hdr = g_string_new ("{\"__metadata__\":{\"format\":\"pt\","
      "\"note\":\"caf\xc3\xa9 \\\"quoted\\\"\"},");
  gsize off[6], end[6];

  /* 0: f32 */
  off[0] = data->len;
  g_byte_array_append (data, (const guint8 *) f32_values, sizeof f32_values);
  end[0] = data->len;
  /* 1: f16 */
  pad (data, aligned);
  off[1] = data->len;
  for (guint i = 0; i < G_N_ELEMENTS (f16_cases); i++)
    put_le16 (data, f16_cases[i].bits);
  for (guint i = 0; i < G_N_ELEMENTS (f16_nans); i++)
    put_le16 (data, f16_nans[i]);
  end[1] = data->len;
  /* 2: bf16 */
  pad (data, aligned);
  off[2] = data->len;
  for (guint i = 0; i < G_N_ELEMENTS (bf16_cases); i++)
    put_le16 (data, bf16_cases[i].bits);
  for (guint i = 0; i < G_N_ELEMENTS (bf16_nans); i++)
    put_le16 (data, bf16_nans[i]);
  end[2] = data->len;
  /* 3: f64 */
  pad (data, aligned);
  off[3] = data->len;
  g_byte_array_append (data, (const guint8 *) f64_values, sizeof f64_values);
  end[3] = data->len;
  /* 4: i64 */
  pad (data, aligned);
  off[4] = data->len;
  g_byte_array_append (data, (const guint8 *) i64_values, sizeof i64_values);
  end[4] = data->len;
  /* 5: empty, at the very end of the data section */
  off[5] = end[5] = data->len;

  g_assert_cmpuint (G_N_ELEMENTS (f16_cases) + G_N_ELEMENTS (f16_nans), ==,
      14);
  g_assert_cmpuint (G_N_ELEMENTS (bf16_cases) + G_N_ELEMENTS (bf16_nans), ==,
      12);
  g_string_append_printf (hdr,
      "\"z.empty\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[%"
      G_GSIZE_FORMAT ",%" G_GSIZE_FORMAT "]},"
      "\"i64\":{\"dtype\":\"I64\",\"shape\":[2,3],\"data_offsets\":[%"
      G_GSIZE_FORMAT ",%" G_GSIZE_FORMAT "]},"
      "\"f64\":{\"dtype\":\"F64\",\"shape\":[4],\"data_offsets\":[%"
      G_GSIZE_FORMAT ",%" G_GSIZE_FORMAT "]},"
      "\"bf16\":{\"dtype\":\"BF16\",\"shape\":[3,4],\"data_offsets\":[%"
      G_GSIZE_FORMAT ",%" G_GSIZE_FORMAT "]},"
      "\"f16\":{\"dtype\":\"F16\",\"shape\":[2,7],\"data_offsets\":[%"
      G_GSIZE_FORMAT ",%" G_GSIZE_FORMAT "]},"
      "\"f32\":{\"dtype\":\"F32\",\"shape\":[1,2,3],\"data_offsets\":[%"
      G_GSIZE_FORMAT ",%" G_GSIZE_FORMAT "]}}",
      off[5], end[5], off[4], end[4], off[3], end[3], off[2], end[2],
      off[1], end[1], off[0], end[0]);
  /* Padding with spaces is what writers do to align the data section. */
  if (aligned)
    while ((8 + hdr->len) % 8)
      g_string_append_c (hdr, ' ');
  else if ((8 + hdr->len) % 2 == 0)
    g_string_append_c (hdr, ' ');

  GBytes *b = make_raw (hdr->len, hdr->str, hdr->len, data->data, data->len);
  g_string_free (hdr, TRUE);
  g_byte_array_unref (data);
  return b;
}

static gboolean
same_float (float a, float b)
{
  /* Bitwise, so that -0.0 differs from 0.0. */
  return memcmp (&a, &b, sizeof a) == 0;
}

static void
check_valid (const GeSafetensors * st)
{
  const GeStTensor *t;
  float f[16];
  double d[16];

  g_assert_cmpuint (ge_safetensors_n_tensors (st), ==, 6);
  g_assert_cmpstr (ge_safetensors_metadata (st, "format"), ==, "pt");
  g_assert_cmpstr (ge_safetensors_metadata (st, "note"), ==,
      "caf\xc3\xa9 \"quoted\"");
  g_assert_null (ge_safetensors_metadata (st, "missing"));
  g_assert_null (ge_safetensors_find (st, "missing"));
  g_assert_null (ge_safetensors_find (st, "__metadata__"));
  g_assert_null (ge_safetensors_nth (st, 6));

  /* nth() is in data-offset order; the empty tensor shares its offset with
   * the end of i64 and sorts after it. */
  static const char *order[] = { "f32", "f16", "bf16", "f64", "i64",
    "z.empty"
  };
  for (guint i = 0; i < G_N_ELEMENTS (order); i++) {
    t = ge_safetensors_nth (st, i);
    g_assert_nonnull (t);
    g_assert_cmpstr (t->name, ==, order[i]);
    g_assert_true (ge_safetensors_find (st, order[i]) == t);
  }

  t = ge_safetensors_find (st, "f32");
  g_assert_cmpint (t->dtype, ==, GE_DTYPE_F32);
  g_assert_cmpint (t->ndim, ==, 3);
  g_assert_cmpint (t->shape[0], ==, 1);
  g_assert_cmpint (t->shape[1], ==, 2);
  g_assert_cmpint (t->shape[2], ==, 3);
  g_assert_cmpuint (t->n_elements, ==, 6);
  g_assert_cmpuint (t->n_bytes, ==, 24);
  ge_st_tensor_to_f32 (t, f);
  ge_st_tensor_to_f64 (t, d);
  for (guint i = 0; i < G_N_ELEMENTS (f32_values); i++) {
    g_assert_true (same_float (f[i], f32_values[i]));
    g_assert_true (d[i] == (double) f32_values[i]);
  }

  t = ge_safetensors_find (st, "f16");
  g_assert_cmpint (t->dtype, ==, GE_DTYPE_F16);
  g_assert_cmpint (t->ndim, ==, 2);
  g_assert_cmpuint (t->n_elements, ==, 14);
  g_assert_cmpuint (t->n_bytes, ==, 28);
  ge_st_tensor_to_f32 (t, f);
  ge_st_tensor_to_f64 (t, d);
  for (guint i = 0; i < G_N_ELEMENTS (f16_cases); i++) {
    if (!same_float (f[i], f16_cases[i].value))
      g_error ("f16 0x%04x: got %.9g, want %.9g", f16_cases[i].bits, f[i],
          f16_cases[i].value);
    g_assert_true (d[i] == (double) f16_cases[i].value);
    g_assert_true (!signbit (d[i]) == !signbit (f16_cases[i].value));
  }
  for (guint i = G_N_ELEMENTS (f16_cases); i < 14; i++) {
    g_assert_true (isnan (f[i]));
    g_assert_true (isnan (d[i]));
  }
  g_assert_false (signbit (f[12]));
  g_assert_true (signbit (f[13]));

  t = ge_safetensors_find (st, "bf16");
  g_assert_cmpint (t->dtype, ==, GE_DTYPE_BF16);
  g_assert_cmpuint (t->n_elements, ==, 12);
  ge_st_tensor_to_f32 (t, f);
  ge_st_tensor_to_f64 (t, d);
  for (guint i = 0; i < G_N_ELEMENTS (bf16_cases); i++) {
    if (!same_float (f[i], bf16_cases[i].value))
      g_error ("bf16 0x%04x: got %.9g, want %.9g", bf16_cases[i].bits, f[i],
          bf16_cases[i].value);
    g_assert_true (d[i] == (double) bf16_cases[i].value);
  }
  for (guint i = G_N_ELEMENTS (bf16_cases); i < 12; i++) {
    g_assert_true (isnan (f[i]));
    g_assert_true (isnan (d[i]));
  }

  t = ge_safetensors_find (st, "f64");
  g_assert_cmpint (t->dtype, ==, GE_DTYPE_F64);
  g_assert_cmpint (t->ndim, ==, 1);
  g_assert_cmpuint (t->n_elements, ==, 4);
  ge_st_tensor_to_f64 (t, d);
  for (guint i = 0; i < G_N_ELEMENTS (f64_values); i++)
    g_assert_true (d[i] == f64_values[i]);
  ge_st_tensor_to_f32 (t, f);
  g_assert_true (f[0] == 0.1f);
  g_assert_true (f[1] == -INFINITY);
  g_assert_true (f[2] == 0.0f);

  t = ge_safetensors_find (st, "i64");
  g_assert_cmpint (t->dtype, ==, GE_DTYPE_I64);
  g_assert_cmpuint (t->n_elements, ==, 6);
  for (guint i = 0; i < G_N_ELEMENTS (i64_values); i++)
    g_assert_cmpint (ge_st_tensor_get_int (t, i), ==, i64_values[i]);
  ge_st_tensor_to_f64 (t, d);
  g_assert_true (d[5] == 1000.0);
  g_assert_true (d[1] == -1.0);

  /* Floats read as integers truncate, and NaN or out-of-range values must
   * not be undefined behaviour. */
  t = ge_safetensors_find (st, "f32");
  g_assert_cmpint (ge_st_tensor_get_int (t, 0), ==, 1);
  g_assert_cmpint (ge_st_tensor_get_int (t, 4), ==, -7);
  g_assert_cmpint (ge_st_tensor_get_int (t, 2), ==, G_MAXINT64);
  t = ge_safetensors_find (st, "f64");
  g_assert_cmpint (ge_st_tensor_get_int (t, 1), ==, G_MININT64);
  t = ge_safetensors_find (st, "f16");
  g_assert_cmpint (ge_st_tensor_get_int (t, 12), ==, 0);        /* NaN */
  g_assert_cmpint (ge_st_tensor_get_int (t, 10), ==, G_MAXINT64);

  t = ge_safetensors_find (st, "z.empty");
  g_assert_cmpint (t->ndim, ==, 2);
  g_assert_cmpint (t->shape[0], ==, 0);
  g_assert_cmpint (t->shape[1], ==, 3);
  g_assert_cmpuint (t->n_elements, ==, 0);
  g_assert_cmpuint (t->n_bytes, ==, 0);
  f[0] = 123.0f;
  ge_st_tensor_to_f32 (t, f);
  ge_st_tensor_to_f64 (t, d);
  g_assert_true (f[0] == 123.0f);       /* nothing written */
}

static void
test_valid_memory (gconstpointer aligned)
{
  GBytes *b = make_valid (GPOINTER_TO_INT (aligned));
  GError *err = NULL;
  GeSafetensors *st = ge_safetensors_new_from_bytes (b, "valid", &err);

  g_assert_no_error (err);
  g_assert_nonnull (st);
  g_assert_cmpstr (ge_safetensors_name (st), ==, "valid");
  /* The reader keeps its own reference. */
  g_bytes_unref (b);
  check_valid (st);
  ge_safetensors_free (st);
}

static void
test_valid_misaligned_buffer (void)
{
  /* The whole buffer starts at an odd address too. */
  GBytes *b = make_valid (FALSE);
  gsize n;
  const guint8 *src = g_bytes_get_data (b, &n);
  guint8 *buf = g_malloc (n + 1);
  memcpy (buf + 1, src, n);
  GBytes *whole = g_bytes_new_take (buf, n + 1);
  GBytes *sub = g_bytes_new_from_bytes (whole, 1, n);
  GError *err = NULL;
  GeSafetensors *st = ge_safetensors_new_from_bytes (sub, NULL, &err);

  g_assert_no_error (err);
  g_assert_nonnull (ge_safetensors_name (st));
  check_valid (st);
  ge_safetensors_free (st);
  g_bytes_unref (sub);
  g_bytes_unref (whole);
  g_bytes_unref (b);
}

static void
test_valid_file (void)
{
  GBytes *b = make_valid (FALSE);
  char *path = write_temp ("valid.safetensors", b);
  GError *err = NULL;
  GeSafetensors *st = ge_safetensors_open (path, &err);

  g_assert_no_error (err);
  g_assert_cmpstr (ge_safetensors_name (st), ==, path);
  g_bytes_unref (b);
  check_valid (st);
  ge_safetensors_free (st);
  g_unlink (path);
  g_free (path);
}

static void
test_minimal (void)
{
  static const struct
  {
    const char *hdr;
    gsize data_len;
    guint n_tensors;
  } ok[] = {
    {"{}", 0, 0},
    {"{}", 16, 0},              /* unreferenced trailing data is allowed */
    {"  {}  ", 0, 0},
    {"{\"__metadata__\":{}}", 0, 0},
    {"{\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}", 4, 1},
    {"{\"e\":{\"dtype\":\"F64\",\"shape\":[0],\"data_offsets\":[0,0]}}", 0, 1},
    /* escapes in names: an escaped backslash before "u0000" is no NUL */
    {"{\"a\\\\u0000\\u00e9\":{\"dtype\":\"U8\",\"shape\":[1],"
          "\"data_offsets\":[0,1]}}", 1, 1},
    {"{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
          "\"\":{\"dtype\":\"BOOL\",\"shape\":[2],\"data_offsets\":[1,3]}}",
        3, 2},
  };

  for (guint i = 0; i < G_N_ELEMENTS (ok); i++) {
    GBytes *b = make_file (ok[i].hdr, NULL, ok[i].data_len);
    GError *err = NULL;
    GeSafetensors *st = ge_safetensors_new_from_bytes (b, "min", &err);

    g_assert_no_error (err);
    g_assert_cmpuint (ge_safetensors_n_tensors (st), ==, ok[i].n_tensors);
    for (guint k = 0; k < ok[i].n_tensors; k++) {
      const GeStTensor *t = ge_safetensors_nth (st, k);
      float f[4];
      g_assert_true (ge_safetensors_find (st, t->name) == t);
      ge_st_tensor_to_f32 (t, f);
    }
    ge_safetensors_free (st);
    g_bytes_unref (b);
  }
}

static void
test_dtypes (void)
{
  static const struct
  {
    GeDType d;
    const char *name;
    gsize size;
  } dt[] = {
    {GE_DTYPE_F32, "F32", 4}, {GE_DTYPE_F16, "F16", 2},
    {GE_DTYPE_BF16, "BF16", 2}, {GE_DTYPE_F64, "F64", 8},
    {GE_DTYPE_I64, "I64", 8}, {GE_DTYPE_I32, "I32", 4},
    {GE_DTYPE_I16, "I16", 2}, {GE_DTYPE_I8, "I8", 1},
    {GE_DTYPE_U8, "U8", 1}, {GE_DTYPE_BOOL, "BOOL", 1},
  };

  for (guint i = 0; i < G_N_ELEMENTS (dt); i++) {
    g_assert_cmpstr (ge_dtype_name (dt[i].d), ==, dt[i].name);
    g_assert_cmpuint (ge_dtype_size (dt[i].d), ==, dt[i].size);
  }
}

static void
test_int_dtypes (void)
{
  /* I32 -2, I16 -3, I8 -4, U8 250, BOOL 1, packed at odd offsets. */
  static const guint8 data[] = {
    0xfe, 0xff, 0xff, 0xff, 0xfd, 0xff, 0xfc, 0xfa, 0x01
  };
  GBytes *b = make_file ("{"
      "\"i32\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[0,4]},"
      "\"i16\":{\"dtype\":\"I16\",\"shape\":[1],\"data_offsets\":[4,6]},"
      "\"i8\":{\"dtype\":\"I8\",\"shape\":[1],\"data_offsets\":[6,7]},"
      "\"u8\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[7,8]},"
      "\"b\":{\"dtype\":\"BOOL\",\"shape\":[1],\"data_offsets\":[8,9]}}",
      data, sizeof data);
  GError *err = NULL;
  GeSafetensors *st = ge_safetensors_new_from_bytes (b, "ints", &err);
  static const struct
  {
    const char *name;
    gint64 v;
  } want[] = { {"i32", -2}, {"i16", -3}, {"i8", -4}, {"u8", 250}, {"b", 1} };

  g_assert_no_error (err);
  for (guint i = 0; i < G_N_ELEMENTS (want); i++) {
    const GeStTensor *t = ge_safetensors_find (st, want[i].name);
    float f;
    g_assert_nonnull (t);
    g_assert_cmpint (ge_st_tensor_get_int (t, 0), ==, want[i].v);
    ge_st_tensor_to_f32 (t, &f);
    g_assert_true (f == (float) want[i].v);
  }
  ge_safetensors_free (st);
  g_bytes_unref (b);
}

/* Every .safetensors file among the test fixtures must validate: a check
 * that the strictness above rejects nothing real. */
static void
collect_fixtures (const char *dir, GPtrArray * out)
{
  GDir *d = g_dir_open (dir, 0, NULL);
  const char *n;

  if (!d)
    return;
  while ((n = g_dir_read_name (d))) {
    char *p = g_build_filename (dir, n, NULL);
    if (g_file_test (p, G_FILE_TEST_IS_DIR))
      collect_fixtures (p, out);
    if (g_str_has_suffix (n, ".safetensors"))
      g_ptr_array_add (out, g_steal_pointer (&p));
    g_free (p);
  }
  g_dir_close (d);
}

static void
test_fixtures (void)
{
  const char *dir = g_getenv ("GE_TEST_FIXTURES");
  GPtrArray *files = g_ptr_array_new_with_free_func (g_free);

  if (!dir) {
    g_test_fail_printf ("GE_TEST_FIXTURES is not set");
    g_ptr_array_unref (files);
    return;
  }
  collect_fixtures (dir, files);
  g_assert_cmpuint (files->len, >, 0);
  for (guint i = 0; i < files->len; i++) {
    GError *err = NULL;
    GeSafetensors *st = ge_safetensors_open (files->pdata[i], &err);

    g_assert_no_error (err);
    g_assert_cmpuint (ge_safetensors_n_tensors (st), >, 0);
    for (guint k = 0; k < ge_safetensors_n_tensors (st); k++) {
      const GeStTensor *t = ge_safetensors_nth (st, k);
      g_assert_true (ge_safetensors_find (st, t->name) == t);
    }
    ge_safetensors_free (st);
  }
  g_test_message ("%u fixture files", files->len);
  g_ptr_array_unref (files);
}

/* ---------------------------------------------------------------------- */

static void
rm_rf (const char *dir)
{
  GDir *d = g_dir_open (dir, 0, NULL);
  const char *n;

  if (d) {
    while ((n = g_dir_read_name (d))) {
      char *p = g_build_filename (dir, n, NULL);
      if (g_file_test (p, G_FILE_TEST_IS_DIR))
        rm_rf (p);
      else
        g_unlink (p);
      g_free (p);
    }
    g_dir_close (d);
  }
  g_rmdir (dir);
}

int
main (int argc, char **argv)
{
  GError *err = NULL;
  int ret;

  g_test_init (&argc, &argv, NULL);

  tmpdir = g_dir_make_tmp ("ge-test-safetensors-XXXXXX", &err);
  g_assert_no_error (err);

  for (guint i = 0; i < G_N_ELEMENTS (hostile); i++) {
    char *p = g_strdup_printf ("/safetensors/hostile/memory/%s",
        hostile[i].id);
    g_test_add_data_func (p, &hostile[i], test_hostile_memory);
    g_free (p);
    p = g_strdup_printf ("/safetensors/hostile/file/%s", hostile[i].id);
    g_test_add_data_func (p, &hostile[i], test_hostile_file);
    g_free (p);
  }
  g_test_add_func ("/safetensors/hostile/file/directory", test_directory);
  g_test_add_func ("/safetensors/hostile/file/missing", test_missing);
  g_test_add_func ("/safetensors/hostile/file/missing-parent",
      test_missing_parent);
  g_test_add_data_func ("/safetensors/valid/memory-aligned",
      GINT_TO_POINTER (TRUE), test_valid_memory);
  g_test_add_data_func ("/safetensors/valid/memory-unaligned",
      GINT_TO_POINTER (FALSE), test_valid_memory);
  g_test_add_func ("/safetensors/valid/misaligned-buffer",
      test_valid_misaligned_buffer);
  g_test_add_func ("/safetensors/valid/file", test_valid_file);
  g_test_add_func ("/safetensors/valid/minimal", test_minimal);
  g_test_add_func ("/safetensors/valid/int-dtypes", test_int_dtypes);
  g_test_add_func ("/safetensors/dtypes", test_dtypes);
  g_test_add_func ("/safetensors/fixtures", test_fixtures);

  ret = g_test_run ();
  rm_rf (tmpdir);
  g_free (tmpdir);
  return ret;
}
