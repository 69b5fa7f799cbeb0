/* gstgenerativeutil.c: see gstgenerativeutil.h. */
#include "gstgenerativeutil.h"

#include <glib/gstdio.h>
#ifdef G_OS_UNIX
#include <unistd.h>
#else
#define R_OK 4
#endif

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

void
gst_generative_frame_image (GstVideoFrame * frame, GeImageU8 * img)
{
  guint8 *base = GST_VIDEO_FRAME_PLANE_DATA (frame, 0);

  img->data = base;
  img->width = GST_VIDEO_FRAME_WIDTH (frame);
  img->height = GST_VIDEO_FRAME_HEIGHT (frame);
  img->stride = GST_VIDEO_FRAME_PLANE_STRIDE (frame, 0);
  img->pixel_stride = GST_VIDEO_FRAME_COMP_PSTRIDE (frame, 0);
  /* Byte offsets inside a pixel, from the component pointers: the plane
   * pointer already includes the plane offset that COMP_OFFSET adds. */
  img->r = (guint8 *) GST_VIDEO_FRAME_COMP_DATA (frame, GST_VIDEO_COMP_R)
      - base;
  img->g = (guint8 *) GST_VIDEO_FRAME_COMP_DATA (frame, GST_VIDEO_COMP_G)
      - base;
  img->b = (guint8 *) GST_VIDEO_FRAME_COMP_DATA (frame, GST_VIDEO_COMP_B)
      - base;
  img->a = GST_VIDEO_INFO_HAS_ALPHA (&frame->info) ?
      (guint8 *) GST_VIDEO_FRAME_COMP_DATA (frame, GST_VIDEO_COMP_A) - base : -1;
}

gboolean
gst_generative_check_model_file (GstElement * element, const gchar * path,
    const gchar * kind)
{
  if (!g_file_test (path, G_FILE_TEST_EXISTS)) {
    GST_ELEMENT_ERROR (element, RESOURCE, NOT_FOUND,
        ("Model file \"%s\" not found.", path),
        ("Set model-file to %s; the default ones are installed in %s", kind,
            GST_GENERATIVE_MODEL_DIR));
    return FALSE;
  }
  if (g_access (path, R_OK) != 0) {
    GST_ELEMENT_ERROR (element, RESOURCE, OPEN_READ,
        ("Could not read model file \"%s\".", path), GST_ERROR_SYSTEM);
    return FALSE;
  }
  return TRUE;
}
