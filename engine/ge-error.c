#include "ge-error.h"

G_DEFINE_QUARK (ge-error-quark, ge_error)

gboolean
ge_fail (GError ** error, GeErrorCode code, const char *path, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  char *m = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error (error, GE_ERROR, code, "%s: %s", path, m);
  g_free (m);
  return FALSE;
}
