/* gstgenerativeutil.c: see gstgenerativeutil.h. */
#include "gstgenerativeutil.h"

gchar *
gst_generative_model_path (const gchar * model_file, const gchar * name)
{
  const gchar *dir;

  if (model_file && model_file[0])
    return g_strdup (model_file);
  dir = g_getenv ("GST_GENERATIVE_MODEL_DIR");
  if (!dir || !dir[0])
    dir = GST_GENERATIVE_MODEL_DIR;
  return g_build_filename (dir, name, NULL);
}

gboolean
gst_generative_is_running (GstElement * element)
{
  gboolean running;

  GST_OBJECT_LOCK (element);
  running = GST_STATE (element) > GST_STATE_READY
      || GST_STATE_PENDING (element) > GST_STATE_READY;
  GST_OBJECT_UNLOCK (element);
  return running;
}
