/* test-shared-files.c: the process-wide sharing of opened .safetensors
 * files, and what happens when a file changes on disk while it is open.
 *
 * - Two opens of one file share one copy of its bytes (one mapping for a
 *   large file: /proc/self/maps names it once), reference-counted: the
 *   registry is empty again when the last one is freed.
 * - A file replaced by rename() is a new file to later opens; earlier ones
 *   keep the old bytes (copied or mapped alike).
 * - A small file truncated or rewritten in place cannot touch a copy that
 *   was read before: the open file keeps its values, and a later open of
 *   the truncated file is a clear error.
 * - Read copies are page-aligned, so tensors have the same alignment as in
 *   a mapping (weights used in place stay used in place).
 * - Many threads opening and freeing one file at once.
 * - Model files and diffusers folders open through the same path.
 */
#include <glib.h>
#include <glib/gstdio.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ge-model-file.h"
#include "ge-safetensors.h"

static char *tmpdir;

/* A file with one F32 tensor "w" of @n values base, base+1, ...: a header
 * padded to 8 bytes (as writers do), so the data starts 8-aligned. */
static GBytes *
make_file (int n, float base)
{
  char *hdr = g_strdup_printf ("{\"w\":{\"dtype\":\"F32\",\"shape\":[%d],"
      "\"data_offsets\":[0,%d]}}", n, 4 * n);
  gsize hl = strlen (hdr), padded = (hl + 7) & ~(gsize) 7;
  gsize size = 8 + padded + 4 * (gsize) n;
  guint8 *buf = g_malloc (size);

  for (int i = 0; i < 8; i++)
    buf[i] = (guint8) ((guint64) padded >> (8 * i));
  memset (buf + 8, ' ', padded);
  memcpy (buf + 8, hdr, hl);
  for (int i = 0; i < n; i++) {
    float v = base + (float) i;
    memcpy (buf + 8 + padded + 4 * i, &v, 4);
  }
  g_free (hdr);
  return g_bytes_new_take (buf, size);
}

static void
write_bytes (const char *path, GBytes * bytes)
{
  gsize n;
  const char *d = g_bytes_get_data (bytes, &n);
  GError *err = NULL;

  g_assert_true (g_file_set_contents (path, d, n, &err));
  g_assert_no_error (err);
}

/* @path's bytes rewritten in place (same inode), with a modification time
 * @seconds in the past: an in-place rewrite within one tick of the
 * filesystem clock keeps the same times, and this test must not depend on
 * the tick. */
static void
rewrite_in_place (const char *path, GBytes * bytes, int seconds)
{
  gsize n;
  const char *d = g_bytes_get_data (bytes, &n);
  int fd = open (path, O_WRONLY | O_TRUNC);

  g_assert_cmpint (fd, >=, 0);
  g_assert_cmpint (write (fd, d, n), ==, (gssize) n);
  struct timespec ts[2] = { {time (NULL) - seconds, 0}, {time (NULL) - seconds, 0} };
  g_assert_cmpint (futimens (fd, ts), ==, 0);
  close (fd);
}

static char *
temp_file (const char *name, GBytes * bytes)
{
  char *path = g_build_filename (tmpdir, name, NULL);

  write_bytes (path, bytes);
  return path;
}

/* Lines of /proc/self/maps that map @path. */
static int
count_maps (const char *path)
{
  char *text = NULL;
  int n = 0;

  g_assert_true (g_file_get_contents ("/proc/self/maps", &text, NULL, NULL));
  char **lines = g_strsplit (text, "\n", -1);
  for (char **l = lines; *l; l++) {
    const char *slash = strchr (*l, '/');
    n += slash && (strcmp (slash, path) == 0 || (g_str_has_prefix (slash, path)
            && strcmp (slash + strlen (path), " (deleted)") == 0));
  }
  g_strfreev (lines);
  g_free (text);
  return n;
}

static float
value_at (const GeSafetensors * st, int i)
{
  const GeStTensor *t = ge_safetensors_find (st, "w");
  float v;

  g_assert_nonnull (t);
  g_assert_cmpint (i, <, (int) t->n_elements);
  memcpy (&v, (const guint8 *) t->data + 4 * i, 4);
  return v;
}

static void
check_values (const GeSafetensors * st, int n, float base)
{
  const GeStTensor *t = ge_safetensors_find (st, "w");

  g_assert_nonnull (t);
  g_assert_cmpuint (t->n_elements, ==, (guint) n);
  for (int i = 0; i < n; i++)
    g_assert_cmpfloat (value_at (st, i), ==, base + (float) i);
}

static GeSafetensors *
open_ok (const char *path)
{
  GError *err = NULL;
  GeSafetensors *st = ge_safetensors_open (path, &err);

  g_assert_no_error (err);
  g_assert_nonnull (st);
  return st;
}

/* The tests run with the limit of the mode under test in the environment. */
static void
set_mode (gboolean mapped)
{
  g_setenv ("GE_MODEL_READ_LIMIT", mapped ? "0" : "1M", TRUE);
}

/* ---------------------------------------------------------------------- */

static void
test_read_limit (void)
{
  g_unsetenv ("GE_MODEL_READ_LIMIT");
  g_assert_cmpuint (ge_safetensors_read_limit (), ==, GE_SAFETENSORS_READ_LIMIT);
  g_setenv ("GE_MODEL_READ_LIMIT", "0", TRUE);
  g_assert_cmpuint (ge_safetensors_read_limit (), ==, 0);
  g_setenv ("GE_MODEL_READ_LIMIT", "12345", TRUE);
  g_assert_cmpuint (ge_safetensors_read_limit (), ==, 12345);
  g_setenv ("GE_MODEL_READ_LIMIT", "3K", TRUE);
  g_assert_cmpuint (ge_safetensors_read_limit (), ==, 3072);
  g_setenv ("GE_MODEL_READ_LIMIT", "2M", TRUE);
  g_assert_cmpuint (ge_safetensors_read_limit (), ==, 2u << 20);
  g_setenv ("GE_MODEL_READ_LIMIT", "1G", TRUE);
  g_assert_cmpuint (ge_safetensors_read_limit (), ==, 1u << 30);
  g_unsetenv ("GE_MODEL_READ_LIMIT");
}

/* Two opens, one copy; the registry is empty after the last free. */
static void
test_shared (gconstpointer data)
{
  const gboolean mapped = GPOINTER_TO_INT (data);
  GBytes *bytes = make_file (1000, 1.0f);
  char *path = temp_file (mapped ? "shared-mapped.safetensors"
      : "shared-read.safetensors", bytes);

  set_mode (mapped);
  g_assert_cmpuint (ge_safetensors_n_shared_files (), ==, 0);
  GeSafetensors *a = open_ok (path), *b = open_ok (path);
  g_assert_cmpint (ge_safetensors_is_mapped (a), ==, mapped);
  g_assert_cmpint (ge_safetensors_is_mapped (b), ==, mapped);
  g_assert_true (ge_safetensors_find (a, "w")->data == ge_safetensors_find (b, "w")->data);
  g_assert_cmpuint (ge_safetensors_shared_holders (path), ==, 2);
  g_assert_cmpuint (ge_safetensors_n_shared_files (), ==, 1);
  g_assert_cmpint (count_maps (path), ==, mapped ? 1 : 0);
  check_values (a, 1000, 1.0f);

  ge_safetensors_free (a);
  g_assert_cmpuint (ge_safetensors_shared_holders (path), ==, 1);
  check_values (b, 1000, 1.0f);
  ge_safetensors_free (b);
  g_assert_cmpuint (ge_safetensors_shared_holders (path), ==, 0);
  g_assert_cmpuint (ge_safetensors_n_shared_files (), ==, 0);
  g_assert_cmpint (count_maps (path), ==, 0);

  g_unlink (path);
  g_free (path);
  g_bytes_unref (bytes);
}

/* rename() of another file over an open one: the open one keeps its bytes,
 * a later open gets the new file. */
static void
test_renamed_over (gconstpointer data)
{
  const gboolean mapped = GPOINTER_TO_INT (data);
  GBytes *old_bytes = make_file (1000, 1.0f), *new_bytes = make_file (500, 7.0f);
  char *path = temp_file ("renamed.safetensors", old_bytes);
  char *other = temp_file ("renamed.safetensors.new", new_bytes);

  set_mode (mapped);
  GeSafetensors *a = open_ok (path);
  g_assert_cmpint (g_rename (other, path), ==, 0);
  check_values (a, 1000, 1.0f);
  GeSafetensors *b = open_ok (path);
  check_values (b, 500, 7.0f);
  check_values (a, 1000, 1.0f);
  g_assert_cmpuint (ge_safetensors_n_shared_files (), ==, 2);
  g_assert_cmpuint (ge_safetensors_shared_holders (path), ==, 1);
  ge_safetensors_free (a);
  ge_safetensors_free (b);
  g_assert_cmpuint (ge_safetensors_n_shared_files (), ==, 0);

  g_unlink (path);
  g_free (path);
  g_free (other);
  g_bytes_unref (old_bytes);
  g_bytes_unref (new_bytes);
}

/* A read file truncated in place: the open copy is untouched (a mapping
 * would raise SIGBUS here), and opening the truncated file is an error
 * that names it. */
static void
test_truncated_in_place (void)
{
  GBytes *bytes = make_file (4096, 3.0f);
  char *path = temp_file ("truncated.safetensors", bytes);
  GError *err = NULL;

  set_mode (FALSE);
  GeSafetensors *a = open_ok (path);
  g_assert_false (ge_safetensors_is_mapped (a));
  g_assert_cmpint (truncate (path, 100), ==, 0);
  check_values (a, 4096, 3.0f);
  g_assert_null (ge_safetensors_open (path, &err));
  g_assert_error (err, GE_ERROR, GE_ERROR_CORRUPT);
  g_assert_true (g_str_has_prefix (err->message, path));
  g_clear_error (&err);
  g_assert_cmpint (truncate (path, 0), ==, 0);
  check_values (a, 4096, 3.0f);
  ge_safetensors_free (a);
  g_assert_cmpuint (ge_safetensors_n_shared_files (), ==, 0);

  g_unlink (path);
  g_free (path);
  g_bytes_unref (bytes);
}

/* Rewritten in place with other values of the same size: the open copy
 * keeps the old ones, a later open reads the new ones. */
static void
test_rewritten_in_place (void)
{
  GBytes *old_bytes = make_file (1000, 1.0f), *new_bytes = make_file (1000, 9.0f);
  char *path = temp_file ("rewritten.safetensors", old_bytes);

  set_mode (FALSE);
  GeSafetensors *a = open_ok (path);
  rewrite_in_place (path, new_bytes, 100);
  check_values (a, 1000, 1.0f);
  GeSafetensors *b = open_ok (path);
  check_values (b, 1000, 9.0f);
  g_assert_cmpuint (ge_safetensors_n_shared_files (), ==, 2);
  ge_safetensors_free (a);
  ge_safetensors_free (b);

  g_unlink (path);
  g_free (path);
  g_bytes_unref (old_bytes);
  g_bytes_unref (new_bytes);
}

/* The same tensor addresses modulo a page whether read or mapped. */
static void
test_alignment (void)
{
  GBytes *bytes = make_file (100, 0.0f);
  char *path = temp_file ("aligned.safetensors", bytes);

  set_mode (FALSE);
  GeSafetensors *r = open_ok (path);
  set_mode (TRUE);
  /* Still the read copy: the same file is shared whatever the limit. */
  GeSafetensors *r2 = open_ok (path);
  g_assert_false (ge_safetensors_is_mapped (r2));
  ge_safetensors_free (r2);

  /* A fresh identity for the mapping. */
  char *copy = temp_file ("aligned-mapped.safetensors", bytes);
  GeSafetensors *m = open_ok (copy);
  g_assert_true (ge_safetensors_is_mapped (m));
  const guintptr pr = (guintptr) ge_safetensors_find (r, "w")->data;
  const guintptr pm = (guintptr) ge_safetensors_find (m, "w")->data;
  g_assert_cmpuint (pr % 4096, ==, pm % 4096);
  /* The data starts 8-aligned in the file, so at an 8-aligned address. */
  g_assert_cmpuint (pr % 8, ==, 0);
  ge_safetensors_free (r);
  ge_safetensors_free (m);

  g_unlink (path);
  g_unlink (copy);
  g_free (path);
  g_free (copy);
  g_bytes_unref (bytes);
}

/* Threads opening and freeing one file at once, the opens of each round
 * alive together: they all see one copy. */
#define N_THREADS 8
#define N_ROUNDS 200

typedef struct
{
  const char *path;
  GeSafetensors *opened[N_ROUNDS];
} ThreadArg;

static gpointer
opener (gpointer data)
{
  ThreadArg *arg = data;

  for (int r = 0; r < N_ROUNDS; r++) {
    GError *err = NULL;
    GeSafetensors *st = ge_safetensors_open (arg->path, &err);
    if (!st)
      g_error ("%s", err->message);
    if (value_at (st, 999) != 1000.0f)
      g_error ("round %d: wrong value", r);
    if (r % 2)
      ge_safetensors_free (st);
    else
      arg->opened[r] = st;
  }
  return NULL;
}

static void
test_threads (gconstpointer data)
{
  const gboolean mapped = GPOINTER_TO_INT (data);
  GBytes *bytes = make_file (1000, 1.0f);
  char *path = temp_file ("threads.safetensors", bytes);
  ThreadArg args[N_THREADS];
  GThread *threads[N_THREADS];

  set_mode (mapped);
  for (int i = 0; i < N_THREADS; i++) {
    memset (&args[i], 0, sizeof (args[i]));
    args[i].path = path;
    threads[i] = g_thread_new ("opener", opener, &args[i]);
  }
  for (int i = 0; i < N_THREADS; i++)
    g_thread_join (threads[i]);
  g_assert_cmpuint (ge_safetensors_n_shared_files (), ==, 1);
  g_assert_cmpuint (ge_safetensors_shared_holders (path), ==, N_THREADS * N_ROUNDS / 2);
  g_assert_cmpint (count_maps (path), ==, mapped ? 1 : 0);
  const void *first = ge_safetensors_find (args[0].opened[0], "w")->data;
  for (int i = 0; i < N_THREADS; i++)
    for (int r = 0; r < N_ROUNDS; r += 2) {
      g_assert_true (ge_safetensors_find (args[i].opened[r], "w")->data == first);
      ge_safetensors_free (args[i].opened[r]);
    }
  g_assert_cmpuint (ge_safetensors_n_shared_files (), ==, 0);

  g_unlink (path);
  g_free (path);
  g_bytes_unref (bytes);
}

/* Model files and diffusers folders (what pipeline folders are made of)
 * share the same way: two opens of the fixture U-Net folder hold its
 * weights file once. */
static void
test_model_folder (void)
{
  const char *fixtures = g_getenv ("GE_TEST_FIXTURES");
  if (!fixtures) {
    g_test_skip ("GE_TEST_FIXTURES not set");
    return;
  }
  char *folder = g_build_filename (fixtures, "diffusers", "unet_ddpm_small", NULL);
  char *weights = g_build_filename (folder, "diffusion_pytorch_model.safetensors", NULL);
  GError *err = NULL;

  g_unsetenv ("GE_MODEL_READ_LIMIT");
  GeModelFile *a = ge_model_file_open (folder, &err);
  g_assert_no_error (err);
  GeModelFile *b = ge_model_file_open (folder, &err);
  g_assert_no_error (err);
  g_assert_cmpuint (ge_safetensors_shared_holders (weights), ==, 2);
  g_assert_cmpuint (ge_safetensors_n_shared_files (), ==, 1);
  ge_model_file_unref (a);
  g_assert_cmpuint (ge_safetensors_shared_holders (weights), ==, 1);
  ge_model_file_unref (b);
  g_assert_cmpuint (ge_safetensors_n_shared_files (), ==, 0);
  g_free (folder);
  g_free (weights);
}

int
main (int argc, char **argv)
{
  GError *err = NULL;

  g_test_init (&argc, &argv, NULL);
  tmpdir = g_dir_make_tmp ("ge-shared-XXXXXX", &err);
  g_assert_no_error (err);

  g_test_add_func ("/shared-files/read-limit", test_read_limit);
  g_test_add_data_func ("/shared-files/shared/read", GINT_TO_POINTER (FALSE), test_shared);
  g_test_add_data_func ("/shared-files/shared/mapped", GINT_TO_POINTER (TRUE), test_shared);
  g_test_add_data_func ("/shared-files/renamed-over/read", GINT_TO_POINTER (FALSE),
      test_renamed_over);
  g_test_add_data_func ("/shared-files/renamed-over/mapped", GINT_TO_POINTER (TRUE),
      test_renamed_over);
  g_test_add_func ("/shared-files/truncated-in-place", test_truncated_in_place);
  g_test_add_func ("/shared-files/rewritten-in-place", test_rewritten_in_place);
  g_test_add_func ("/shared-files/alignment", test_alignment);
  g_test_add_data_func ("/shared-files/threads/read", GINT_TO_POINTER (FALSE), test_threads);
  g_test_add_data_func ("/shared-files/threads/mapped", GINT_TO_POINTER (TRUE), test_threads);
  g_test_add_func ("/shared-files/model-folder", test_model_folder);

  int ret = g_test_run ();
  g_rmdir (tmpdir);
  g_free (tmpdir);
  return ret;
}
