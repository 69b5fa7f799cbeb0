/* ge-safetensors.c: see ge-safetensors.h.  Header JSON is parsed with
 * json-glib; every number is range-checked before it becomes a size. */
#include "ge-safetensors.h"

#include <json-glib/json-glib.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A header bigger than this is not a model we want to parse (the largest
 * diffusers checkpoints have headers of a few hundred KiB). */
#define GE_ST_MAX_HEADER (64u * 1024u * 1024u)

typedef struct _SharedFile SharedFile;

struct _GeSafetensors {
  char *name;
  SharedFile *shared;           /* NULL when built from bytes */
  GBytes *bytes;
  GeStTensor *tensors;
  guint n_tensors;
  GHashTable *by_name;          /* name -> GeStTensor* */
  GHashTable *metadata;         /* key -> value, both owned */
  GStringChunk *names;          /* tensor names */
};

static const struct { const char *name; GeDType dtype; gsize size; } dtypes[] = {
  { "F32", GE_DTYPE_F32, 4 }, { "F16", GE_DTYPE_F16, 2 }, { "BF16", GE_DTYPE_BF16, 2 },
  { "F64", GE_DTYPE_F64, 8 }, { "I64", GE_DTYPE_I64, 8 }, { "I32", GE_DTYPE_I32, 4 },
  { "I16", GE_DTYPE_I16, 2 }, { "I8", GE_DTYPE_I8, 1 }, { "U8", GE_DTYPE_U8, 1 },
  { "BOOL", GE_DTYPE_BOOL, 1 },
};

const char *
ge_dtype_name (GeDType dtype)
{
  for (guint i = 0; i < G_N_ELEMENTS (dtypes); i++)
    if (dtypes[i].dtype == dtype)
      return dtypes[i].name;
  return "?";
}

gsize
ge_dtype_size (GeDType dtype)
{
  for (guint i = 0; i < G_N_ELEMENTS (dtypes); i++)
    if (dtypes[i].dtype == dtype)
      return dtypes[i].size;
  return 0;
}

static gboolean
dtype_from_name (const char *s, GeDType * out)
{
  for (guint i = 0; i < G_N_ELEMENTS (dtypes); i++)
    if (strcmp (dtypes[i].name, s) == 0) {
      *out = dtypes[i].dtype;
      return TRUE;
    }
  return FALSE;
}

/* A JSON number that is an exact non-negative integer no larger than @max. */
static gboolean
node_to_size (JsonNode * node, guint64 max, guint64 * out)
{
  if (!node || JSON_NODE_TYPE (node) != JSON_NODE_VALUE)
    return FALSE;
  GType t = json_node_get_value_type (node);
  if (t == G_TYPE_INT64) {
    gint64 v = json_node_get_int (node);
    if (v < 0 || (guint64) v > max)
      return FALSE;
    *out = (guint64) v;
    return TRUE;
  }
  if (t == G_TYPE_DOUBLE) {
    double v = json_node_get_double (node);
    /* (double) G_MAXUINT64 rounds up to 2^64, so "v > (double) max" lets
     * 2^64 through and the cast below would be undefined: bound by 2^64
     * exactly and compare the integer. */
    if (!(v >= 0) || v >= 18446744073709551616.0 || v != floor (v))
      return FALSE;
    if ((guint64) v > max)
      return FALSE;
    *out = (guint64) v;
    return TRUE;
  }
  return FALSE;
}

static int
cmp_offset (gconstpointer a, gconstpointer b)
{
  const GeStTensor *x = a, *y = b;
  const guint8 *px = x->data, *py = y->data;
  if (px != py)
    return px < py ? -1 : 1;
  return x->n_bytes < y->n_bytes ? -1 : x->n_bytes > y->n_bytes;
}

/* json-glib's parser recurses once per nesting level, so a header of a few
 * hundred KiB of '[' overflows the stack.  A valid header nests three deep
 * (root, tensor entry, shape array).  json-glib also accepts more than JSON
 * (single-quoted strings, comments, hex numbers), which would hide brackets
 * from a simple scan; so outside double-quoted strings only the characters
 * of strict JSON are allowed, which makes the depth count below exact.
 * More laxities would let this reader see a different file than other
 * safetensors readers do, so they are rejected here too: json-glib ignores
 * anything after the first complete value ("{} {...}"), cuts names at an
 * escaped NUL ("a\u0000b" reads as "a") and decodes escapes JSON does not
 * have.
 * Returns NULL when @s is acceptable, else a static description. */
#define GE_ST_MAX_DEPTH 64

static const char *
prescan_header (const char *s, gsize n, gsize * pos)
{
  int depth = 0;
  gboolean done = FALSE;        /* the root value has been closed */

  for (gsize i = 0; i < n; i++) {
    char c = s[i];
    *pos = i;
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
      continue;
    if (done)
      return "trailing characters after the header object";
    if (c == '"') {
      for (i++; i < n && s[i] != '"'; i++) {
        if (s[i] != '\\')
          continue;
        *pos = i;
        if (i + 1 >= n)
          break;
        /* json-glib also takes octal escapes ("\377"), which make raw
         * bytes that are not UTF-8: allow JSON's escapes only. */
        if (!strchr ("\"\\/bfnrtu", s[i + 1]) || s[i + 1] == '\0')
          return "invalid escape in a string";
        if (s[i + 1] == 'u') {
          if (n - i < 6 || !g_ascii_isxdigit (s[i + 2])
              || !g_ascii_isxdigit (s[i + 3]) || !g_ascii_isxdigit (s[i + 4])
              || !g_ascii_isxdigit (s[i + 5]))
            return "invalid escape in a string";
          if (memcmp (s + i + 2, "0000", 4) == 0)
            return "escaped NUL in a string";
          i += 4;
        }
        i++;
      }
      continue;                 /* an unterminated string is json-glib's error */
    }
    if (c == '[' || c == '{') {
      if (++depth > GE_ST_MAX_DEPTH)
        return "nested too deeply";
    } else if (c == ']' || c == '}') {
      if (--depth <= 0)
        done = TRUE;
    } else if (c == '\0' || !strchr (",:0123456789+-.eEtruefalsn", c)) {
      return "unexpected character";
    }
  }
  return NULL;
}

#define FAIL(code, ...) do { \
    char *m_ = g_strdup_printf (__VA_ARGS__); \
    g_set_error (error, GE_ERROR, code, "%s: %s", st->name, m_); \
    g_free (m_); goto fail; } while (0)

static gboolean
parse (GeSafetensors * st, const guint8 * data, gsize size, GError ** error)
{
  JsonParser *parser = NULL;
  if (size < 8)
    FAIL (GE_ERROR_CORRUPT, "file too short for a safetensors header "
        "(%" G_GSIZE_FORMAT " bytes)", size);
  guint64 hlen = 0;
  for (int i = 7; i >= 0; i--)
    hlen = (hlen << 8) | data[i];
  if (hlen > size - 8)
    FAIL (GE_ERROR_CORRUPT, "header length %" G_GUINT64_FORMAT
        " runs past the end of the file (%" G_GSIZE_FORMAT " bytes): truncated "
        "or not a safetensors file", hlen, size);
  if (hlen < 2 || hlen > GE_ST_MAX_HEADER)
    FAIL (GE_ERROR_CORRUPT, "implausible header length %" G_GUINT64_FORMAT, hlen);
  const char *hdr = (const char *) data + 8;
  if (memchr (hdr, '\0', hlen))
    FAIL (GE_ERROR_CORRUPT, "header contains a NUL byte");
  if (!g_utf8_validate (hdr, hlen, NULL))
    FAIL (GE_ERROR_CORRUPT, "header is not valid UTF-8");

  const guint8 *base = data + 8 + hlen;
  guint64 data_size = size - 8 - hlen;

  gsize bad_at = 0;
  const char *why = prescan_header (hdr, hlen, &bad_at);
  if (why)
    FAIL (GE_ERROR_CORRUPT, "header is not valid JSON: %s at byte %"
        G_GSIZE_FORMAT, why, bad_at);

  parser = json_parser_new_immutable ();
  GError *jerr = NULL;
  if (!json_parser_load_from_data (parser, hdr, (gssize) hlen, &jerr)) {
    /* json-glib quotes the offending token, which need not be UTF-8. */
    char *m = g_utf8_make_valid (jerr->message, -1);
    g_clear_error (&jerr);
    g_set_error (error, GE_ERROR, GE_ERROR_CORRUPT, "%s: header is not valid JSON: %s",
        st->name, m);
    g_free (m);
    goto fail;
  }
  JsonNode *root = json_parser_get_root (parser);
  if (!root || !JSON_NODE_HOLDS_OBJECT (root))
    FAIL (GE_ERROR_CORRUPT, "header is not a JSON object");
  JsonObject *obj = json_node_get_object (root);

  GList *members = json_object_get_members (obj);
  guint n = g_list_length (members);
  st->tensors = g_new0 (GeStTensor, MAX (n, 1));
  st->by_name = g_hash_table_new (g_str_hash, g_str_equal);
  st->metadata = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);

  for (GList * l = members; l; l = l->next) {
    const char *key = l->data;
    JsonNode *node = json_object_get_member (obj, key);
    /* Escapes such as a lone "\ud800" decode to bytes that are not UTF-8;
     * names end up in messages and caps, so refuse them. */
    if (!g_utf8_validate (key, -1, NULL)) {
      g_list_free (members);
      FAIL (GE_ERROR_CORRUPT, "a tensor name is not valid UTF-8");
    }
    if (strcmp (key, "__metadata__") == 0) {
      if (!JSON_NODE_HOLDS_OBJECT (node)) {
        g_list_free (members);
        FAIL (GE_ERROR_CORRUPT, "__metadata__ is not an object");
      }
      JsonObject *mo = json_node_get_object (node);
      GList *mk = json_object_get_members (mo);
      for (GList * m = mk; m; m = m->next) {
        JsonNode *v = json_object_get_member (mo, m->data);
        if (!g_utf8_validate (m->data, -1, NULL)
            || (JSON_NODE_TYPE (v) == JSON_NODE_VALUE
                && json_node_get_value_type (v) == G_TYPE_STRING
                && !g_utf8_validate (json_node_get_string (v), -1, NULL))) {
          g_list_free (mk);
          g_list_free (members);
          FAIL (GE_ERROR_CORRUPT, "__metadata__ entry is not valid UTF-8");
        }
        if (JSON_NODE_TYPE (v) != JSON_NODE_VALUE
            || json_node_get_value_type (v) != G_TYPE_STRING) {
          char *k = g_strdup (m->data);
          g_list_free (mk);
          g_list_free (members);
          g_set_error (error, GE_ERROR, GE_ERROR_CORRUPT,
              "%s: __metadata__ value \"%s\" is not a string", st->name, k);
          g_free (k);
          goto fail;
        }
        g_hash_table_insert (st->metadata, g_strdup (m->data),
            g_strdup (json_node_get_string (v)));
      }
      g_list_free (mk);
      continue;
    }
    GeStTensor *t = &st->tensors[st->n_tensors];
#define TFAIL(...) do { char *w_ = g_strdup_printf (__VA_ARGS__); \
      g_set_error (error, GE_ERROR, GE_ERROR_CORRUPT, "%s: tensor \"%s\": %s", \
          st->name, key, w_); g_free (w_); g_list_free (members); goto fail; } while (0)
    if (!JSON_NODE_HOLDS_OBJECT (node))
      TFAIL ("entry is not an object");
    JsonObject *to = json_node_get_object (node);
    JsonNode *dn = json_object_get_member (to, "dtype");
    if (!dn || JSON_NODE_TYPE (dn) != JSON_NODE_VALUE
        || json_node_get_value_type (dn) != G_TYPE_STRING)
      TFAIL ("missing dtype");
    if (!dtype_from_name (json_node_get_string (dn), &t->dtype)) {
      char *w = g_strdup_printf ("%s: tensor \"%s\": unknown dtype \"%s\"",
          st->name, key, json_node_get_string (dn));
      g_set_error_literal (error, GE_ERROR, GE_ERROR_UNSUPPORTED, w);
      g_free (w);
      g_list_free (members);
      goto fail;
    }
    JsonNode *sn = json_object_get_member (to, "shape");
    if (!sn || !JSON_NODE_HOLDS_ARRAY (sn))
      TFAIL ("missing shape");
    JsonArray *sa = json_node_get_array (sn);
    guint nd = json_array_get_length (sa);
    if (nd > GE_MAX_DIMS)
      TFAIL ("%u dimensions (at most %d)", nd, GE_MAX_DIMS);
    t->ndim = (int) nd;
    guint64 nel = 1;
    for (guint i = 0; i < nd; i++) {
      guint64 d;
      if (!node_to_size (json_array_get_element (sa, i), G_MAXINT64, &d))
        TFAIL ("shape entry %u is not a non-negative integer", i);
      if (d != 0 && nel > G_MAXUINT64 / d)
        TFAIL ("element count overflows");
      nel *= d;
      t->shape[i] = (gint64) d;
    }
    gsize esz = ge_dtype_size (t->dtype);
    if (nel > G_MAXUINT64 / esz)
      TFAIL ("byte size overflows");
    JsonNode *on = json_object_get_member (to, "data_offsets");
    if (!on || !JSON_NODE_HOLDS_ARRAY (on)
        || json_array_get_length (json_node_get_array (on)) != 2)
      TFAIL ("data_offsets is not a [begin, end] pair");
    guint64 b, e;
    JsonArray *oa = json_node_get_array (on);
    if (!node_to_size (json_array_get_element (oa, 0), G_MAXUINT64, &b)
        || !node_to_size (json_array_get_element (oa, 1), G_MAXUINT64, &e))
      TFAIL ("data_offsets are not non-negative integers");
    if (b > e || e > data_size)
      TFAIL ("data_offsets [%" G_GUINT64_FORMAT ", %" G_GUINT64_FORMAT
          "] outside the data section (%" G_GUINT64_FORMAT " bytes): truncated file?",
          b, e, data_size);
    if (e - b != nel * esz)
      TFAIL ("data_offsets span %" G_GUINT64_FORMAT " bytes but a %s tensor of "
          "that shape needs %" G_GUINT64_FORMAT, e - b, ge_dtype_name (t->dtype),
          nel * esz);
#undef TFAIL
    t->name = key;              /* owned by the parser, kept alive below */
    t->n_elements = (gsize) nel;
    t->n_bytes = (gsize) (e - b);
    t->data = base + b;
    st->n_tensors++;
  }
  g_list_free (members);

  qsort (st->tensors, st->n_tensors, sizeof (GeStTensor), cmp_offset);
  for (guint i = 0; i + 1 < st->n_tensors; i++) {
    const GeStTensor *a = &st->tensors[i], *c = &st->tensors[i + 1];
    if ((const guint8 *) a->data + a->n_bytes > (const guint8 *) c->data)
      FAIL (GE_ERROR_CORRUPT, "tensors \"%s\" and \"%s\" overlap", a->name, c->name);
  }
  /* Names must outlive the parser. */
  st->names = g_string_chunk_new (1024);
  for (guint i = 0; i < st->n_tensors; i++) {
    GeStTensor *t = &st->tensors[i];
    t->name = g_string_chunk_insert (st->names, t->name);
    g_hash_table_insert (st->by_name, (gpointer) t->name, t);
  }
  g_object_unref (parser);
  return TRUE;

fail:
  if (parser)
    g_object_unref (parser);
  return FALSE;
}

#undef FAIL

GeSafetensors *
ge_safetensors_new_from_bytes (GBytes * bytes, const char *name, GError ** error)
{
  GeSafetensors *st = g_new0 (GeSafetensors, 1);
  st->name = g_strdup (name ? name : "(memory)");
  st->bytes = g_bytes_ref (bytes);
  gsize size;
  const guint8 *data = g_bytes_get_data (bytes, &size);
  if (!parse (st, data ? data : (const guint8 *) "", size, error)) {
    ge_safetensors_free (st);
    return NULL;
  }
  return st;
}

/* ------------------------------------------------------------------------ */
/* The process-wide registry of file contents.
 *
 * Every ge_safetensors_open of the same file shares one copy of its bytes,
 * so that two elements (or two pipelines) running one model hold it once.
 * "The same file" is its identity on disk: device, inode, size, and the
 * modification and change times.  A file replaced by rename() is another
 * inode, and one rewritten in place has other times: either is a new
 * entry, while the old bytes live on for whoever holds them.  (A rewrite in
 * place to the same size within one tick of the filesystem's clock keeps
 * the times, and later opens would share the old bytes while they are
 * held: one more reason to replace files with rename().)
 *
 * Small files are read into memory instead of mapped: a mapped file that
 * another process truncates in place kills the reader with SIGBUS on its
 * next access of the lost pages, and a library cannot catch that (it must
 * not install signal handlers).  A read copy is immune to anything done to
 * the file.  Large files are mapped, because a copy costs their whole size
 * in anonymous memory and the read time at every start; truncating one of
 * those in place while it is used is undefined (SIGBUS): replace model files
 * with mv, never overwrite them in place. */

typedef struct {
  dev_t dev;
  ino_t ino;
  gint64 size;
  gint64 mtime_sec, mtime_nsec, ctime_sec, ctime_nsec;
} FileKey;

struct _SharedFile {
  FileKey key;
  GBytes *bytes;                /* the copy or the mapping (which it owns) */
  gboolean mapped;
  guint holders;                /* under registry_lock */
};

static GMutex registry_lock;
static GHashTable *registry;    /* FileKey* (inside the SharedFile) -> SharedFile* */

static guint
key_hash (gconstpointer p)
{
  const FileKey *k = p;
  const guint64 h = (guint64) k->ino ^ ((guint64) k->dev << 17) ^ (guint64) k->size
      ^ (guint64) k->mtime_nsec;
  return (guint) (h ^ (h >> 32));
}

static gboolean
key_equal (gconstpointer a, gconstpointer b)
{
  const FileKey *x = a, *y = b;
  return x->dev == y->dev && x->ino == y->ino && x->size == y->size
      && x->mtime_sec == y->mtime_sec && x->mtime_nsec == y->mtime_nsec
      && x->ctime_sec == y->ctime_sec && x->ctime_nsec == y->ctime_nsec;
}

static void
key_from_stat (FileKey * k, const struct stat *sb)
{
  memset (k, 0, sizeof (*k));
  k->dev = sb->st_dev;
  k->ino = sb->st_ino;
  k->size = (gint64) sb->st_size;
  k->mtime_sec = (gint64) sb->st_mtim.tv_sec;
  k->mtime_nsec = (gint64) sb->st_mtim.tv_nsec;
  k->ctime_sec = (gint64) sb->st_ctim.tv_sec;
  k->ctime_nsec = (gint64) sb->st_ctim.tv_nsec;
}

gsize
ge_safetensors_read_limit (void)
{
  const char *env = g_getenv ("GE_MODEL_READ_LIMIT");
  if (!env || !env[0])
    return GE_SAFETENSORS_READ_LIMIT;
  char *end = NULL;
  guint64 v = g_ascii_strtoull (env, &end, 10);
  guint shift = 0;
  if (end && (*end == 'k' || *end == 'K'))
    shift = 10;
  else if (end && (*end == 'm' || *end == 'M'))
    shift = 20;
  else if (end && (*end == 'g' || *end == 'G'))
    shift = 30;
  if (shift)
    v = v > (G_MAXUINT64 >> shift) ? G_MAXUINT64 : v << shift;
  return (gsize) MIN (v, (guint64) G_MAXSIZE);
}

/* The whole file into a page-aligned buffer: the tensors then have the
 * same alignment as in a mapping, so what is used in place from a mapping
 * (aligned F32, the F16/BF16 views) is used in place from the copy. */
static GBytes *
read_copy (int fd, const char *path, gsize size, GError ** error)
{
  void *buf = NULL;
  if (posix_memalign (&buf, 4096, MAX (size, 1)) != 0) {
    g_set_error (error, GE_ERROR, GE_ERROR_INVALID, "%s: cannot allocate %"
        G_GSIZE_FORMAT " bytes to read it", path, size);
    return NULL;
  }
  gsize got = 0;
  while (got < size) {
    ssize_t r = pread (fd, (char *) buf + got, size - got, (off_t) got);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0) {
      int e = errno;
      g_set_error (error, GE_ERROR, GE_ERROR_CORRUPT, "%s: %s after %" G_GSIZE_FORMAT
          " of %" G_GSIZE_FORMAT " bytes (did the file change while it was read?)",
          path, r < 0 ? g_strerror (e) : "end of file", got, size);
      free (buf);
      return NULL;
    }
    got += (gsize) r;
  }
  return g_bytes_new_with_free_func (buf, size, free, buf);
}

static GBytes *
map_file (int fd, const char *path, GError ** error)
{
  GError *ferr = NULL;
  GMappedFile *mf = g_mapped_file_new_from_fd (fd, FALSE, &ferr);
  if (!mf) {
    g_set_error (error, GE_ERROR, GE_ERROR_INVALID, "%s: cannot map: %s", path,
        ferr->message);
    g_error_free (ferr);
    return NULL;
  }
  GBytes *bytes = g_mapped_file_get_bytes (mf);
  g_mapped_file_unref (mf);
  return bytes;
}

/* The shared contents of @path, one more holder of them. */
static SharedFile *
shared_file_acquire (const char *path, GError ** error)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    int e = errno;
    g_set_error (error, GE_ERROR, e == ENOENT ? GE_ERROR_NOT_FOUND : GE_ERROR_INVALID,
        "%s: cannot open: %s", path, g_strerror (e));
    return NULL;
  }
  struct stat sb;
  if (fstat (fd, &sb) != 0) {
    int e = errno;
    g_set_error (error, GE_ERROR, GE_ERROR_INVALID, "%s: cannot open: %s", path,
        g_strerror (e));
    close (fd);
    return NULL;
  }
  if (!S_ISREG (sb.st_mode)) {
    g_set_error (error, GE_ERROR, GE_ERROR_INVALID, "%s: %s", path,
        S_ISDIR (sb.st_mode) ? "is a directory, not a .safetensors file"
        : "cannot open: not a regular file");
    close (fd);
    return NULL;
  }
  FileKey key;
  key_from_stat (&key, &sb);

  g_mutex_lock (&registry_lock);
  SharedFile *sf = registry ? g_hash_table_lookup (registry, &key) : NULL;
  if (sf)
    sf->holders++;
  g_mutex_unlock (&registry_lock);
  if (sf) {
    close (fd);
    return sf;
  }

  /* Read or map outside the lock: a slow disk must not hold up the other
   * files' opens.  Two first opens of one file may both read it; the
   * second to finish drops its copy below. */
  const gboolean map = (guint64) sb.st_size > (guint64) ge_safetensors_read_limit ();
  GBytes *bytes = map ? map_file (fd, path, error)
      : read_copy (fd, path, (gsize) sb.st_size, error);
  /* A copy taken while someone wrote the file may mix old and new bytes:
   * refuse it rather than keep it under the old identity. */
  struct stat after;
  FileKey now;
  if (bytes && !map && (fstat (fd, &after) != 0
          || (key_from_stat (&now, &after), !key_equal (&key, &now)))) {
    g_set_error (error, GE_ERROR, GE_ERROR_CORRUPT, "%s: the file changed while it "
        "was read", path);
    g_clear_pointer (&bytes, g_bytes_unref);
  }
  close (fd);
  if (!bytes)
    return NULL;

  SharedFile *mine = g_new0 (SharedFile, 1);
  mine->key = key;
  mine->bytes = bytes;
  mine->mapped = map;
  mine->holders = 1;

  g_mutex_lock (&registry_lock);
  if (!registry)
    registry = g_hash_table_new (key_hash, key_equal);
  sf = g_hash_table_lookup (registry, &mine->key);
  if (sf)
    sf->holders++;
  else
    g_hash_table_insert (registry, &mine->key, mine);
  g_mutex_unlock (&registry_lock);
  if (sf) {
    g_bytes_unref (mine->bytes);
    g_free (mine);
    return sf;
  }
  return mine;
}

static void
shared_file_release (SharedFile * sf)
{
  g_mutex_lock (&registry_lock);
  gboolean last = --sf->holders == 0;
  if (last)
    g_hash_table_remove (registry, &sf->key);
  g_mutex_unlock (&registry_lock);
  if (last) {
    g_bytes_unref (sf->bytes);
    g_free (sf);
  }
}

guint
ge_safetensors_n_shared_files (void)
{
  g_mutex_lock (&registry_lock);
  guint n = registry ? g_hash_table_size (registry) : 0;
  g_mutex_unlock (&registry_lock);
  return n;
}

guint
ge_safetensors_shared_holders (const char *path)
{
  struct stat sb;
  if (stat (path, &sb) != 0)
    return 0;
  FileKey key;
  key_from_stat (&key, &sb);
  g_mutex_lock (&registry_lock);
  SharedFile *sf = registry ? g_hash_table_lookup (registry, &key) : NULL;
  guint n = sf ? sf->holders : 0;
  g_mutex_unlock (&registry_lock);
  return n;
}

gboolean
ge_safetensors_is_mapped (const GeSafetensors * st)
{
  return st->shared && st->shared->mapped;
}

GeSafetensors *
ge_safetensors_open (const char *path, GError ** error)
{
  SharedFile *sf = shared_file_acquire (path, error);
  if (!sf)
    return NULL;
  GeSafetensors *st = ge_safetensors_new_from_bytes (sf->bytes, path, error);
  if (st)
    st->shared = sf;
  else
    shared_file_release (sf);
  return st;
}

void
ge_safetensors_free (GeSafetensors * st)
{
  if (!st)
    return;
  if (st->by_name)
    g_hash_table_unref (st->by_name);
  if (st->metadata)
    g_hash_table_unref (st->metadata);
  g_free (st->tensors);
  if (st->names)
    g_string_chunk_free (st->names);
  if (st->bytes)
    g_bytes_unref (st->bytes);
  if (st->shared)
    shared_file_release (st->shared);
  g_free (st->name);
  g_free (st);
}

const char *
ge_safetensors_name (const GeSafetensors * st)
{
  return st->name;
}

guint
ge_safetensors_n_tensors (const GeSafetensors * st)
{
  return st->n_tensors;
}

const GeStTensor *
ge_safetensors_nth (const GeSafetensors * st, guint i)
{
  return i < st->n_tensors ? &st->tensors[i] : NULL;
}

const GeStTensor *
ge_safetensors_find (const GeSafetensors * st, const char *name)
{
  return g_hash_table_lookup (st->by_name, name);
}

const char *
ge_safetensors_metadata (const GeSafetensors * st, const char *key)
{
  return g_hash_table_lookup (st->metadata, key);
}

/* Element @i as double; data may be unaligned, so every read is a memcpy. */
static double
get_f64 (const GeStTensor * t, gsize i)
{
  const guint8 *p = (const guint8 *) t->data + i * ge_dtype_size (t->dtype);
  switch (t->dtype) {
    case GE_DTYPE_F32:{ float v; memcpy (&v, p, 4); return v; }
    case GE_DTYPE_F64:{ double v; memcpy (&v, p, 8); return v; }
    case GE_DTYPE_F16:{ guint16 v; memcpy (&v, p, 2); return ge_f16_to_f32 (v); }
    case GE_DTYPE_BF16:{
      guint16 v; memcpy (&v, p, 2);
      guint32 bits = (guint32) v << 16; float f; memcpy (&f, &bits, 4); return f; }
    case GE_DTYPE_I64:{ gint64 v; memcpy (&v, p, 8); return (double) v; }
    case GE_DTYPE_I32:{ gint32 v; memcpy (&v, p, 4); return v; }
    case GE_DTYPE_I16:{ gint16 v; memcpy (&v, p, 2); return v; }
    case GE_DTYPE_I8: return (gint8) * p;
    case GE_DTYPE_U8:
    case GE_DTYPE_BOOL: return *p;
  }
  return 0;
}

void
ge_st_tensor_to_f32 (const GeStTensor * t, float *dst)
{
  if (t->dtype == GE_DTYPE_F32) {
    memcpy (dst, t->data, t->n_bytes);
    return;
  }
  for (gsize i = 0; i < t->n_elements; i++)
    dst[i] = (float) get_f64 (t, i);
}

void
ge_st_tensor_to_f64 (const GeStTensor * t, double *dst)
{
  for (gsize i = 0; i < t->n_elements; i++)
    dst[i] = get_f64 (t, i);
}

gint64
ge_st_tensor_get_int (const GeStTensor * t, gsize i)
{
  g_return_val_if_fail (i < t->n_elements, 0);
  if (t->dtype == GE_DTYPE_I64) {
    gint64 v;
    memcpy (&v, (const guint8 *) t->data + 8 * i, 8);
    return v;
  }
  /* Casting NaN or an out-of-range double is undefined; a hostile file
   * may hold either in a float tensor. */
  double v = get_f64 (t, i);
  if (isnan (v))
    return 0;
  if (v >= 9223372036854775808.0)
    return G_MAXINT64;
  if (v < -9223372036854775808.0)
    return G_MININT64;
  return (gint64) v;
}
