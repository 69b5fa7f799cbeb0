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
  const gchar *installed, *list;
  gchar **dirs, **d;
  GString *looked;
  gchar *path;

  if (model_file && model_file[0])
    return g_strdup (model_file);

  /* The installed data folder (or the one folder that replaces it), then
   * each folder of GST_GENERATIVE_MODEL_PATH in order, as GST_PLUGIN_PATH
   * lists plugin folders: the source tree keeps each element's model in a
   * folder of its own (models/sr, models/vae ...), which one folder cannot
   * hold.  The first folder that has the file wins. */
  installed = g_getenv ("GST_GENERATIVE_MODEL_DIR");
  if (!installed || !installed[0])
    installed = GST_GENERATIVE_MODEL_DIR;
  path = g_build_filename (installed, name, NULL);
  if (g_file_test (path, G_FILE_TEST_EXISTS))
    return path;
  g_free (path);

  list = g_getenv ("GST_GENERATIVE_MODEL_PATH");
  dirs = g_strsplit (list ? list : "", G_SEARCHPATH_SEPARATOR_S, -1);
  for (d = dirs; *d; d++) {
    if (!(*d)[0])
      continue;
    path = g_build_filename (*d, name, NULL);
    if (g_file_test (path, G_FILE_TEST_EXISTS)) {
      g_strfreev (dirs);
      return path;
    }
    g_free (path);
  }
  g_strfreev (dirs);

  /* Found nowhere: what the element shows as the missing file (in its
   * NOT_FOUND error, and as model-file's value) says where it looked. */
  looked = g_string_new (name);
  g_string_append_printf (looked, " (looked in %s", installed);
  if (list && list[0])
    g_string_append_printf (looked, " and GST_GENERATIVE_MODEL_PATH=%s)",
        list);
  else
    g_string_append (looked, "; GST_GENERATIVE_MODEL_PATH is not set)");
  return g_string_free (looked, FALSE);
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
gst_generative_check_frame (GstElement * element, const GstVideoInfo * info,
    GstBuffer * buf)
{
  GstVideoMeta *meta = gst_buffer_get_video_meta (buf);
  const gsize size = gst_buffer_get_size (buf);
  const gint w = GST_VIDEO_INFO_WIDTH (info), h = GST_VIDEO_INFO_HEIGHT (info);
  const gsize row = (gsize) w * GST_VIDEO_INFO_COMP_PSTRIDE (info, 0);
  gsize need = GST_VIDEO_INFO_SIZE (info);

  if (meta) {
    if (meta->format != GST_VIDEO_INFO_FORMAT (info) || meta->n_planes != 1
        || (gint) meta->width != w || (gint) meta->height != h) {
      GST_ELEMENT_ERROR (element, STREAM, FORMAT,
          ("A frame's video meta (%s %ux%u) does not match the caps "
              "(%s %dx%d).", gst_video_format_to_string (meta->format),
              meta->width, meta->height, GST_VIDEO_INFO_NAME (info), w, h),
          (NULL));
      return FALSE;
    }
    if (meta->stride[0] < 0 || (gsize) meta->stride[0] < row) {
      GST_ELEMENT_ERROR (element, STREAM, FORMAT,
          ("A frame's stride of %d bytes is less than its rows of %"
              G_GSIZE_FORMAT " bytes.", meta->stride[0], row), (NULL));
      return FALSE;
    }
    need = meta->offset[0] + (gsize) meta->stride[0] * (h - 1) + row;
  }
  if (size < need) {
    GST_ELEMENT_ERROR (element, STREAM, FORMAT,
        ("A frame of %" G_GSIZE_FORMAT " bytes is too short for %dx%d %s "
            "(%" G_GSIZE_FORMAT " bytes).", size, w, h,
            GST_VIDEO_INFO_NAME (info), need), (NULL));
    return FALSE;
  }
  return TRUE;
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

void
gst_generative_post_load_progress (GstElement * element, GstProgressType type,
    const gchar * path)
{
  const gchar *verb = type == GST_PROGRESS_TYPE_START ? "Loading" :
      type == GST_PROGRESS_TYPE_COMPLETE ? "Loaded" : "Failed to load";
  gchar *text = g_strdup_printf ("%s model %s", verb, path);

  gst_element_post_message (element, gst_message_new_progress (GST_OBJECT
          (element), type, "load-model", text));
  g_free (text);
}

gboolean
gst_generative_timing_frame (GstGenerativeTiming * t, gdouble ms)
{
  GstClockTime estimate;

  t->frames++;
  t->total_ms += ms;
  t->max_ms = MAX (t->max_ms, ms);
  t->avg_ms = t->frames == 1 ? ms : 0.8 * t->avg_ms + 0.2 * ms;
  estimate = (GstClockTime) (t->avg_ms * GST_MSECOND);
  if (t->latency != 0
      && ABS ((gdouble) estimate - (gdouble) t->latency) <= 0.25 * t->latency)
    return FALSE;
  t->latency = estimate;
  return TRUE;
}

void
gst_generative_timing_to_structure (const GstGenerativeTiming * t,
    GstStructure * s)
{
  gst_structure_set (s, "frames", G_TYPE_UINT64, t->frames,
      "dropped", G_TYPE_UINT64, t->dropped,
      "mean-ms", G_TYPE_DOUBLE, t->frames ? t->total_ms / t->frames : 0.0,
      "max-ms", G_TYPE_DOUBLE, t->max_ms,
      "load-ms", G_TYPE_DOUBLE, t->load_ms, NULL);
}

void
gst_generative_latency_add (GstQuery * query, GstClockTime ours)
{
  GstClockTime min, max;
  gboolean live;

  gst_query_parse_latency (query, &live, &min, &max);
  min += ours;
  if (GST_CLOCK_TIME_IS_VALID (max))
    max += ours;
  gst_query_set_latency (query, live, min, max);
}

gboolean
gst_generative_qos_dropped (GstBaseTransform * trans, GstFlowReturn ret)
{
  return (ret == GST_FLOW_OK || ret == GST_BASE_TRANSFORM_FLOW_DROPPED)
      && trans->queued_buf == NULL;
}

GstFlowReturn
gst_generative_checked_transform (GstBaseTransform * trans, GstBuffer * inbuf,
    GstBuffer * outbuf)
{
  GstBaseTransformClass *video_filter =
      g_type_class_peek (GST_TYPE_VIDEO_FILTER);

  if (!gst_generative_check_frame (GST_ELEMENT (trans),
          &GST_VIDEO_FILTER (trans)->in_info, inbuf))
    return GST_FLOW_ERROR;
  return video_filter->transform (trans, inbuf, outbuf);
}
