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

GType
gst_generative_precision_get_type (void)
{
  static gsize type = 0;
  static const GEnumValue values[] = {
    {GE_PRECISION_AUTO, "bf16 where the model was validated in it and the CPU "
          "has AVX512-BF16, else f32", "auto"},
    {GE_PRECISION_F32, "f32 (the reference)", "f32"},
    {GE_PRECISION_BF16, "bf16 convolutions (f32 sums) where the CPU has "
          "AVX512-BF16, else f32", "bf16"},
    {0, NULL, NULL},
  };
  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstGenerativePrecision", values);
    g_once_init_leave (&type, t);
  }
  return (GType) type;
}

void
gst_generative_install_precision (GObjectClass * klass, guint prop_id)
{
  g_object_class_install_property (klass, prop_id,
      g_param_spec_enum ("precision", "Precision",
          "Arithmetic of the model's convolutions: bf16 runs them about twice "
          "as fast on CPUs with AVX512-BF16, within the accuracy budget the "
          "model card reports", GST_TYPE_GENERATIVE_PRECISION, GE_PRECISION_AUTO,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING));
}
