/* gstmaskfile.h: reading inpainting masks from image files (PGM, PNG). */
#ifndef __GST_MASK_FILE_H__
#define __GST_MASK_FILE_H__

#include <glib.h>

G_BEGIN_DECLS

/* Reads @path as an 8-bit grey mask: binary or ASCII PGM (8 or 16 bits,
 * scaled to 8) or PNG of any colour type (converted to grey, alpha
 * composited on black).  On failure returns NULL with @error naming the
 * file and the cause (G_FILE_ERROR for a file that cannot be read,
 * G_IO_ERROR_INVALID_DATA for one that is not a mask image). */
guint8 *gst_mask_file_load (const gchar * path, gint * width, gint * height,
    GError ** error);

/* The same for the @len bytes at @data, the contents of a file named @name
 * (for the messages).  Masks are at most 65535 pixels a side and
 * GST_MASK_FILE_MAX_PIXELS in all: a small file never makes a huge
 * allocation. */
#define GST_MASK_FILE_MAX_PIXELS (1 << 28)
guint8 *gst_mask_file_parse (const guint8 * data, gsize len,
    const gchar * name, gint * width, gint * height, GError ** error);

G_END_DECLS

#endif /* __GST_MASK_FILE_H__ */
