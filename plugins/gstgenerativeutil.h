/* gstgenerativeutil.h: what the elements of the generative plugin share. */
#ifndef __GST_GENERATIVE_UTIL_H__
#define __GST_GENERATIVE_UTIL_H__

#include <gst/gst.h>
#include <gst/video/video.h>

#include "ge-image.h"

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

/* The engine's view of a mapped packed RGB frame (RGB, BGR, RGBx, BGRx,
 * RGBA, BGRA ...): strides and channel offsets from the frame's info. */
void gst_generative_frame_image (GstVideoFrame * frame, GeImageU8 * img);

/* Posts RESOURCE/NOT_FOUND or RESOURCE/OPEN_READ naming @path when the
 * model file is missing or unreadable (the engine reports both as "not
 * found", the user needs to know which); @kind says what model the element
 * wants ("a vaeencode model").  FALSE when it posted. */
gboolean gst_generative_check_model_file (GstElement * element,
    const gchar * path, const gchar * kind);

G_END_DECLS

#endif /* __GST_GENERATIVE_UTIL_H__ */
