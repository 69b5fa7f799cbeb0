/* ge-error.h: the engine's error domain.
 *
 * Every fallible engine call takes a GError ** last and returns NULL/FALSE on
 * failure.  Messages name the file (when there is one) and the cause, so an
 * element can hand them to GST_ELEMENT_ERROR unchanged.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define GE_ERROR (ge_error_quark ())
GQuark ge_error_quark (void);

typedef enum {
  GE_ERROR_NOT_FOUND,     /* file or tensor missing */
  GE_ERROR_CORRUPT,       /* file malformed: truncated, bad header, bad offsets */
  GE_ERROR_UNSUPPORTED,   /* well-formed but not something we run: dtype, architecture, config key */
  GE_ERROR_SHAPE,         /* tensor or input of the wrong shape */
  GE_ERROR_INVALID,       /* bad argument from the caller */
} GeErrorCode;

/* Sets @error to "<path>: <message>" with @code in GE_ERROR and returns
 * FALSE, for `return ge_fail (...)`. */
gboolean ge_fail (GError ** error, GeErrorCode code, const char *path, const char *fmt, ...)
    G_GNUC_PRINTF (4, 5);

G_END_DECLS
