/* gstgenerativeutil.h: what the elements of the generative plugin share. */
#ifndef __GST_GENERATIVE_UTIL_H__
#define __GST_GENERATIVE_UTIL_H__

#include <gst/gst.h>

G_BEGIN_DECLS

/* Where meson installs the models; GST_GENERATIVE_MODEL_DIR in the
 * environment overrides it, so an uninstalled build can find them. */
#ifndef GST_GENERATIVE_MODEL_DIR
#define GST_GENERATIVE_MODEL_DIR "/usr/local/share/gst-generative/models"
#endif

/* @model_file when set, else the installed model @name. */
gchar *gst_generative_model_path (const gchar * model_file, const gchar * name);

/* TRUE from READY->PAUSED on: properties that start() reads are fixed. */
gboolean gst_generative_is_running (GstElement * element);

G_END_DECLS

#endif /* __GST_GENERATIVE_UTIL_H__ */
