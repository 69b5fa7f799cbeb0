#include "ge-error.h"

G_DEFINE_QUARK (ge-error-quark, ge_error)

gboolean
ge_fail (GError ** error, GeErrorCode code, const char *path, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  char *m = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  /* Messages quote what they read (a parser's error quotes the bad
   * token): GError messages must be UTF-8, whatever the file held. */
  char *raw = g_strdup_printf ("%s: %s", path, m);
  char *valid = g_utf8_make_valid (raw, -1);
  g_set_error_literal (error, GE_ERROR, code, valid);
  g_free (valid);
  g_free (raw);
  g_free (m);
  return FALSE;
}
