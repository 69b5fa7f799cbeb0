/* gstgenerativeutil.h: what the elements of the generative plugin share. */
#ifndef __GST_GENERATIVE_UTIL_H__
#define __GST_GENERATIVE_UTIL_H__

#include <gst/gst.h>
#include <gst/base/gstbasetransform.h>
#include <gst/video/video.h>

#include "ge-image.h"

G_BEGIN_DECLS

/* Where meson installs the models; GST_GENERATIVE_MODEL_DIR in the
 * environment replaces this one folder (tests point it at their models). */
#ifndef GST_GENERATIVE_MODEL_DIR
#define GST_GENERATIVE_MODEL_DIR "/usr/local/share/gst-generative/models"
#endif

/* @model_file when set, else the default model @name from the search path:
 * the installed data folder (GST_GENERATIVE_MODEL_DIR; the environment
 * variable of that name replaces it), then each folder listed in
 * GST_GENERATIVE_MODEL_PATH (separated by G_SEARCHPATH_SEPARATOR, ':' on
 * Unix; "meson devenv" lists the source tree's model folders there).  When
 * no folder has @name, the string returned is no file: it names @name and
 * the folders searched, so the element's "not found" error says where it
 * looked. */
gchar *gst_generative_model_path (const gchar * model_file, const gchar * name);

/* TRUE from READY->PAUSED on: properties that start() reads are fixed. */
gboolean gst_generative_is_running (GstElement * element);

/* The engine's view of a mapped packed RGB frame (RGB, BGR, RGBx, BGRx,
 * RGBA, BGRA ...): strides and channel offsets from the frame's info. */
void gst_generative_frame_image (GstVideoFrame * frame, GeImageU8 * img);

/* Checks that @buf holds the packed (one-plane) frame @info describes,
 * before it is mapped: gst_video_frame_map() trusts a GstVideoMeta's
 * offset and stride, so a buffer cut short, or a meta whose rows overlap or
 * run past the end, would be read out of bounds (and GstVideoFilter turns a
 * frame it cannot map into a warning and an uninitialised output frame).
 * Posts STREAM/FORMAT naming the sizes and returns FALSE when it does not
 * hold it. */
gboolean gst_generative_check_frame (GstElement * element,
    const GstVideoInfo * info, GstBuffer * buf);
/* GstBaseTransform::transform of GstVideoFilter subclasses: the input
 * checked as above, then GstVideoFilter's own (maps, calls
 * transform_frame). */
GstFlowReturn gst_generative_checked_transform (GstBaseTransform * trans,
    GstBuffer * inbuf, GstBuffer * outbuf);

/* Posts RESOURCE/NOT_FOUND or RESOURCE/OPEN_READ naming @path when the
 * model file is missing or unreadable (the engine reports both as "not
 * found", the user needs to know which); @kind says what model the element
 * wants ("a vaeencode model").  FALSE when it posted. */
gboolean gst_generative_check_model_file (GstElement * element,
    const gchar * path, const gchar * kind);

/* Posts the PROGRESS message of a model load (code "load-model"): START,
 * COMPLETE or ERROR, with "Loading / Loaded / Failed to load model PATH". */
void gst_generative_post_load_progress (GstElement * element,
    GstProgressType type, const gchar * path);

/* Frame statistics and the processing-time latency of an element; the
 * element's object lock guards them. */
typedef struct
{
  guint64 frames, dropped;
  gdouble total_ms, max_ms, load_ms;
  gdouble avg_ms;               /* running average: follows load changes */
  GstClockTime latency;         /* the processing time reported */
} GstGenerativeTiming;

/* Counts a frame that took @ms; TRUE when the running average has moved
 * more than 25 % away from the reported latency, which it then becomes:
 * the caller posts a LATENCY message (after releasing the lock). */
gboolean gst_generative_timing_frame (GstGenerativeTiming * t, gdouble ms);
/* Sets frames, dropped, mean-ms, max-ms and load-ms on @s. */
void gst_generative_timing_to_structure (const GstGenerativeTiming * t,
    GstStructure * s);

/* Adds @ours to the min and max of a latency query answered upstream: a
 * frame's output is ready one processing time after its input. */
void gst_generative_latency_add (GstQuery * query, GstClockTime ours);

/* After chaining up submit_input_buffer: TRUE when the base class dropped
 * the frame for QoS (it tells subclasses nothing, leaving nothing queued). */
gboolean gst_generative_qos_dropped (GstBaseTransform * trans,
    GstFlowReturn ret);

G_END_DECLS

#endif /* __GST_GENERATIVE_UTIL_H__ */
