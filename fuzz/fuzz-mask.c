/* fuzz-mask.c: libFuzzer target for the inpainting mask files
 * (plugins/gstmaskfile.c: binary and ASCII PGM of 8 or 16 bits, PNG of any
 * colour type through libpng).
 *
 * The input is the file's contents.  A mask that parses must be 1 to 65535
 * pixels a side and at most GST_MASK_FILE_MAX_PIXELS, every pixel readable,
 * and read back the same when written out as an 8-bit binary PGM; one that
 * does not must fail with G_IO_ERROR_INVALID_DATA whose message is valid
 * UTF-8 and names the file.  Never a crash, a leak, undefined behaviour or
 * an allocation the input's size does not justify (-rss_limit_mb catches
 * what libpng allocates).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <gio/gio.h>

#include "gstmaskfile.h"

#define CHECK(cond) do { if (!(cond)) { \
      g_printerr ("%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond); \
      abort (); } } while (0)

#define NAME "fuzz.mask"

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
  GError *err = NULL;
  gint w = -1, h = -1;
  /* A copy of exactly @size bytes, so that ASan sees any read past it. */
  guint8 *copy = g_memdup2 (data, size);
  guint8 *mask = gst_mask_file_parse (copy, size, NAME, &w, &h, &err);

  g_free (copy);
  if (!mask) {
    CHECK (err != NULL);
    CHECK (g_error_matches (err, G_IO_ERROR, G_IO_ERROR_INVALID_DATA));
    CHECK (g_utf8_validate (err->message, -1, NULL));
    CHECK (strstr (err->message, NAME) != NULL);
    g_error_free (err);
    return 0;
  }
  CHECK (err == NULL);
  CHECK (w >= 1 && w <= 65535 && h >= 1 && h <= 65535);
  CHECK ((gsize) w * h <= GST_MASK_FILE_MAX_PIXELS);
  /* What the input justifies: a PGM has a byte (or an ASCII digit and a
   * separator) per pixel, a PNG at least a bit per pixel deflated at most
   * 1032 to 1. */
  CHECK ((gsize) w * h <= size * 8 * 1032);

  /* Written out as P5 and read again: the same pixels. */
  gchar *header = g_strdup_printf ("P5\n%d %d\n255\n", w, h);
  const gsize hl = strlen (header), n = (gsize) w * h;
  guint8 *pgm = g_malloc (hl + n);
  memcpy (pgm, header, hl);
  memcpy (pgm + hl, mask, n);
  gint w2 = -1, h2 = -1;
  guint8 *again = gst_mask_file_parse (pgm, hl + n, NAME, &w2, &h2, &err);
  CHECK (again != NULL && err == NULL);
  CHECK (w2 == w && h2 == h);
  CHECK (memcmp (again, mask, n) == 0);
  g_free (again);
  g_free (pgm);
  g_free (header);
  g_free (mask);
  return 0;
}
