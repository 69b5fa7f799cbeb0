/* gstmaskfile.c: see gstmaskfile.h. */
#include "gstmaskfile.h"

#include <gio/gio.h>
#include <png.h>
#include <string.h>

static guint8 *
bad (GError ** error, const gchar * path, const gchar * why)
{
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
      "Mask file \"%s\": %s", path, why);
  return NULL;
}

/* PNM header integer after skipping whitespace and # comments; -1 when
 * there is none.  A longer number than fits reads as G_MAXINT, whole (not
 * as two numbers). */
static gint64
pnm_int (const guint8 * d, gsize len, gsize * pos)
{
  gint64 v = -1;
  while (*pos < len) {
    if (d[*pos] == '#') {
      while (*pos < len && d[*pos] != '\n')
        (*pos)++;
    } else if (g_ascii_isspace (d[*pos])) {
      (*pos)++;
    } else {
      break;
    }
  }
  while (*pos < len && g_ascii_isdigit (d[*pos])) {
    v = MIN ((v < 0 ? 0 : v * 10) + (d[*pos] - '0'), (gint64) G_MAXINT);
    (*pos)++;
  }
  return v;
}

static guint8 *
load_pgm (const gchar * path, const guint8 * d, gsize len, gint * width,
    gint * height, GError ** error)
{
  const gboolean ascii = d[1] == '2';
  gsize pos = 2;
  if (pos < len && !g_ascii_isspace (d[pos]) && d[pos] != '#')
    return bad (error, path, "bad PGM header (no whitespace after P2 or P5)");
  gint64 w = pnm_int (d, len, &pos), h = pnm_int (d, len, &pos);
  gint64 maxval = pnm_int (d, len, &pos);
  if (w < 1 || h < 1 || w > 65535 || h > 65535 || maxval < 1 || maxval > 65535)
    return bad (error, path, "bad PGM header (width, height and maximum value "
        "must be 1 to 65535)");
  const gsize n = (gsize) w * h, bpv = maxval > 255 ? 2 : 1;
  if (n > GST_MASK_FILE_MAX_PIXELS)
    return bad (error, path, "PGM has more pixels than a mask may have");
  /* The header alone must not buy a large allocation: the pixels have to
   * be there first (an ASCII value takes a digit and a separator). */
  if (ascii ? (len - pos + 1) / 2 < n : pos >= len || len - pos - 1 < n * bpv)
    return bad (error, path, "PGM pixel data is truncated");
  if (!ascii && !g_ascii_isspace (d[pos]))
    return bad (error, path, "bad PGM header (no whitespace after the "
        "maximum value)");
  guint8 *out = g_malloc (n);
  if (ascii) {
    for (gsize i = 0; i < n; i++) {
      gint64 v = pnm_int (d, len, &pos);
      if (v < 0 || v > maxval) {
        g_free (out);
        return bad (error, path, "PGM pixel data is truncated or out of range");
      }
      out[i] = (guint8) ((v * 255 + maxval / 2) / maxval);
    }
  } else {
    pos++;                      /* the single whitespace after maxval */
    for (gsize i = 0; i < n; i++) {
      guint v = bpv == 2 ? (guint) d[pos + 2 * i] << 8 | d[pos + 2 * i + 1] : d[pos + i];
      out[i] = (guint8) ((MIN (v, (guint) maxval) * 255 + maxval / 2) / maxval);
    }
  }
  *width = (gint) w;
  *height = (gint) h;
  return out;
}

#define PNG_MAX_PIXELS_PER_BYTE (8 * 1032)

static guint8 *
load_png (const gchar * path, const guint8 * d, gsize len, gint * width,
    gint * height, GError ** error)
{
  /* Every chunk must lie inside the file: libpng allocates what a chunk's
   * header claims before it reads the chunk (a 45-byte file claiming a
   * 1.3 GB iTXt chunk took 2 GB). */
  for (gsize pos = 8; pos < len;) {
    if (len - pos < 12)
      return bad (error, path, "PNG is truncated inside a chunk header");
    const guint32 n = (guint32) d[pos] << 24 | (guint32) d[pos + 1] << 16
        | (guint32) d[pos + 2] << 8 | d[pos + 3];
    if (n > len - pos - 12)
      return bad (error, path, "PNG chunk is longer than the rest of the file");
    const gboolean iend = memcmp (d + pos + 4, "IEND", 4) == 0;
    pos += 12 + (gsize) n;
    if (iend)
      break;
  }

  png_image img;
  memset (&img, 0, sizeof (img));
  img.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory (&img, d, len))
    return bad (error, path, img.message);
  if (img.width > 65535 || img.height > 65535
      || (gsize) img.width * img.height > GST_MASK_FILE_MAX_PIXELS) {
    png_image_free (&img);
    return bad (error, path, "PNG is larger than 65535 pixels a side or "
        "has more pixels than a mask may have");
  }
  /* Nor may the header alone buy a large output buffer: a pixel takes at
   * least a bit, deflate packs at most 1032 bytes into one. */
  if ((gsize) img.width * img.height > len * PNG_MAX_PIXELS_PER_BYTE) {
    png_image_free (&img);
    return bad (error, path, "PNG data is too short for its size");
  }
  img.format = PNG_FORMAT_GRAY;
  guint8 *out = g_malloc ((gsize) img.width * img.height);
  png_color black = { 0, 0, 0 };
  if (!png_image_finish_read (&img, &black, out, (png_int_32) img.width, NULL)) {
    g_free (out);
    guint8 *r = bad (error, path, img.message);
    png_image_free (&img);
    return r;
  }
  *width = (gint) img.width;
  *height = (gint) img.height;
  return out;
}

guint8 *
gst_mask_file_parse (const guint8 * d, gsize len, const gchar * path,
    gint * width, gint * height, GError ** error)
{
  if (len >= 2 && d[0] == 'P' && (d[1] == '5' || d[1] == '2'))
    return load_pgm (path, d, len, width, height, error);
  if (len >= 8 && png_sig_cmp (d, 0, 8) == 0)
    return load_png (path, d, len, width, height, error);
  return bad (error, path, "not a PGM (P2, P5) or PNG image");
}

guint8 *
gst_mask_file_load (const gchar * path, gint * width, gint * height,
    GError ** error)
{
  gchar *data = NULL;
  gsize len = 0;
  if (!g_file_get_contents (path, &data, &len, error))
    return NULL;
  guint8 *out = gst_mask_file_parse ((const guint8 *) data, len, path, width,
      height, error);
  g_free (data);
  return out;
}
