/* GStreamer generative plugin
 * Copyright (C) 2025 gst-generative contributors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 *
 * This library is distributed in the hope that it will be useful,
 * but WITHOUT ANY WARRANTY; without even the implied warranty of
 * MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.  See the GNU
 * Library General Public License for more details.
 *
 * You should have received a copy of the GNU Library General Public
 * License along with this library; if not, write to the
 * Free Software Foundation, Inc., 51 Franklin St, Fifth Floor,
 * Boston, MA 02110-1301, USA.
 */

/**
 * SECTION:element-diffusioninpaint
 * @title: diffusioninpaint
 * @see_also: cccombiner, videobox
 *
 * Regenerates the masked regions of video frames and images with a
 * conditional diffusion model: a station logo or a watermark goes, an
 * object is erased, the regions a detector marks are filled.  Only boxes
 * around the mask (with context) are diffused; every pixel further than
 * #GstDiffusionInpaint:mask-feather + 1 from the mask leaves the element
 * exactly as it came in.
 *
 * The mask (#GstDiffusionInpaint:mask-source) comes from:
 * - `pad`: a second stream on the request pad `mask` (GRAY8 or GRAY16_LE).
 *   Each frame uses the newest mask whose running time is not after the
 *   frame's; a mask stream that pauses or ends keeps its last mask.  Frames
 *   before the first mask pass through unchanged, with one WARNING: the
 *   video must not stall on a mask that may never come.  (Not live, the
 *   element waits, as every GstAggregator does, until the mask stream has
 *   a buffer queued or has ended; live, it goes on at the latency deadline.)
 * - `alpha`: the frame's alpha channel (RGBA, BGRA).
 * - `roi-meta`: the rectangles of the frame's GstVideoRegionOfInterestMeta.
 * - `file`: #GstDiffusionInpaint:mask-file, a PGM or PNG image, read at
 *   READY->PAUSED (a change to the file is picked up at the next start).
 * - `auto` (default): the pad when one was requested, else the file when
 *   one is set, else alpha when the format has it, else ROI metas.
 * Late frames are dropped (QoS, as GstBaseTransform does), and the measured
 * time per frame is reported as latency.
 * A mask of another size than the frame is scaled (nearest) when its aspect
 * ratio is the frame's, and is an error otherwise.  Mask values above
 * #GstDiffusionInpaint:mask-threshold are regenerated
 * (#GstDiffusionInpaint:invert-mask swaps that).
 *
 * A plain diffusers UNet2DModel (3 channels in and out, epsilon prediction,
 * converted to .safetensors) inpaints with RePaint: #GstDiffusionInpaint:num-steps
 * (default 50) with jumps (#GstDiffusionInpaint:repaint-jump-length,
 * #GstDiffusionInpaint:repaint-jump-n-sample); slow, but any such
 * checkpoint works.
 *
 * The noise of each pixel depends only on #GstDiffusionInpaint:seed and the
 * pixel's position, so a static mask on video gives the same fill every
 * frame while the content around it does not change; a box whose pixels and
 * mask are exactly those of the frame before gets its last fill back without
 * running the model (the same bytes it would compute).
 *
 * #GstDiffusionInpaint:model-file may also be a diffusers pipeline folder
 * (model_index.json): StableDiffusionInpaintPipeline
 * (runwayml/stable-diffusion-inpainting: 9-channel U-Net, mask and
 * masked-image latents as diffusers prepares them) or StableDiffusionPipeline
 * (any SD checkpoint: the known region pasted back at every step), with
 * #GstDiffusionInpaint:prompt and the guidance properties.  The whole frame
 * (padded to the U-Net's multiple, tiled above #GstDiffusionInpaint:tile-size)
 * goes through the pipeline; its pixels replace the masked ones with the
 * same feathered blend, tiles without a masked pixel are not run, and a
 * frame whose pixels, mask and settings are those of the frame before gets
 * the last output back without a run.  RePaintPipeline folders (and
 * DDPMPipeline / DDIMPipeline ones, as diffusers' RePaint example uses
 * google/ddpm-ema-celebahq-256) inpaint with RePaint in pixels, with
 * #GstDiffusionInpaint:repaint-jump-length and
 * #GstDiffusionInpaint:repaint-jump-n-sample as the pipeline's jump_length
 * and jump_n_sample; they take no prompt (the prompt and guidance
 * properties are ignored for them) and run with eta 0.  Other classes are
 * an error that lists the supported ones.
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 filesrc location=clip.mp4 ! decodebin ! videoconvert ! diffusioninpaint mask-file=logo-mask.png ! videoconvert ! autovideosink
 * ]| Removes a station logo that logo-mask.png marks.
 * |[
 * gst-launch-1.0 filesrc location=clip.mp4 ! decodebin ! videoconvert ! diffusioninpaint model-file=stable-diffusion-inpainting mask-file=logo-mask.png prompt="brick wall" num-steps=20 ! videoconvert ! autovideosink
 * ]| The same with a Stable Diffusion inpainting pipeline folder and a prompt.
 * |[
 * gst-launch-1.0 filesrc location=photo.png ! pngdec ! videoconvert ! diffusioninpaint name=ip ! videoconvert ! pngenc ! filesink location=out.png \
 *     filesrc location=mask.png ! pngdec ! videoconvert ! video/x-raw,format=GRAY8 ! ip.mask
 * ]| Erases what mask.png marks, the mask coming in on the mask pad.
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <string.h>

#include "gstdiffusioninpaint.h"
#include "gstgenerativeutil.h"
#include "gstmaskfile.h"

GST_DEBUG_CATEGORY_STATIC (gst_diffusion_inpaint_debug);
#define GST_CAT_DEFAULT gst_diffusion_inpaint_debug

#define DEFAULT_MASK_SOURCE GST_DIFFUSION_INPAINT_MASK_AUTO
#define DEFAULT_MASK_THRESHOLD 127
#define DEFAULT_FEATHER 4
#define DEFAULT_JUMP_LENGTH 10
#define DEFAULT_JUMP_N_SAMPLE 3
#define DEFAULT_EXEMPLAR_GUIDANCE -1.0

enum
{
  PROP_0,
  PROP_MASK_SOURCE,
  PROP_MASK_FILE,
  PROP_MASK_THRESHOLD,
  PROP_INVERT_MASK,
  PROP_MASK_FEATHER,
  PROP_JUMP_LENGTH,
  PROP_JUMP_N_SAMPLE,
  PROP_EXEMPLAR_GUIDANCE,
  PROP_CORE,                    /* the core's from here on */
};

static void gst_diffusion_inpaint_add_stats (GstElement * element,
    GstStructure * s);
static void gst_diffusion_inpaint_latency_changed (GstElement * element,
    GstClockTime latency);

static const GstGenerativeCoreSpec core_spec = {
  .props = GST_GENERATIVE_PROP_MODEL_FILE | GST_GENERATIVE_PROP_N_THREADS
      | GST_GENERATIVE_PROP_SEED | GST_GENERATIVE_PROP_NUM_STEPS
      | GST_GENERATIVE_PROP_STATS | GST_GENERATIVE_PROP_TILING
      | GST_GENERATIVE_PROP_TEXT | GST_GENERATIVE_PROP_PRECISION,
  .model_name = "diffusioninpaint.safetensors",
  .model_blurb = "Inpainting model (.safetensors) or diffusers pipeline "
      "folder (StableDiffusionInpaintPipeline, StableDiffusionPipeline); "
      "unset: the installed diffusioninpaint.safetensors",
  .model_kind = "a diffusioninpaint model",
  .tile_overlap = 32,
  .tile_max = 65535,
  .tile_blurb = "Pipeline folders: side of the tiles in pixels (0 = whole "
      "frames up to 1280x720, tiles of 512 above); tiles without a masked "
      "pixel are not run",
  .auto_whole_pixels = 1280 * 720,
  .auto_tile = 512,
  .steps_blurb = "Sampling steps (0: the model's default)",
  .seed_blurb = "Noise seed: the same seed, mask and frame give the same "
      "bytes",
  .guidance_scale = 7.5,
  .stats_name = "diffusioninpaint-stats",
  .stats_blurb = "frames, passed-through (no mask yet), dropped (late, QoS), "
      "masked-pixels, diffused-pixels and reused-boxes (unchanged since the "
      "frame before: last fill put back) of the last frame, precision "
      "(running), mean-ms, max-ms, load-ms",
  .add_stats = gst_diffusion_inpaint_add_stats,
  .latency_changed = gst_diffusion_inpaint_latency_changed,
};

#define FORMATS "{ RGB, BGR, RGBx, BGRx, RGBA, BGRA }"

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK,
    GST_PAD_ALWAYS,
    GST_STATIC_CAPS (GST_VIDEO_CAPS_MAKE (FORMATS)));

static GstStaticPadTemplate mask_template = GST_STATIC_PAD_TEMPLATE ("mask",
    GST_PAD_SINK,
    GST_PAD_REQUEST,
    GST_STATIC_CAPS (GST_VIDEO_CAPS_MAKE ("{ GRAY8, GRAY16_LE }")));

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC,
    GST_PAD_ALWAYS,
    GST_STATIC_CAPS (GST_VIDEO_CAPS_MAKE (FORMATS)));

#define gst_diffusion_inpaint_parent_class parent_class
G_DEFINE_TYPE (GstDiffusionInpaint, gst_diffusion_inpaint, GST_TYPE_AGGREGATOR);
GST_ELEMENT_REGISTER_DEFINE (diffusioninpaint, "diffusioninpaint",
    GST_RANK_NONE, GST_TYPE_DIFFUSION_INPAINT);

GType
gst_diffusion_inpaint_mask_source_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {GST_DIFFUSION_INPAINT_MASK_AUTO,
        "The mask pad if requested, else mask-file if set, else alpha if the "
          "format has it, else ROI metas", "auto"},
    {GST_DIFFUSION_INPAINT_MASK_PAD, "The mask pad's stream", "pad"},
    {GST_DIFFUSION_INPAINT_MASK_ALPHA, "The frame's alpha channel", "alpha"},
    {GST_DIFFUSION_INPAINT_MASK_ROI_META,
        "The frame's region-of-interest metas", "roi-meta"},
    {GST_DIFFUSION_INPAINT_MASK_FILE, "mask-file", "file"},
    {0, NULL, NULL},
  };

  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstDiffusionInpaintMaskSource", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

/* ------------------------------------------------------------------------ */
/* properties */

static void
gst_diffusion_inpaint_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstDiffusionInpaint *self = GST_DIFFUSION_INPAINT (object);

  if (gst_generative_core_set_property (&self->core, prop_id, value, pspec))
    return;
  if (prop_id == PROP_MASK_FILE
      && gst_generative_is_running (GST_ELEMENT (self))) {
    /* Loaded in start(). */
    GST_WARNING_OBJECT (self, "%s can only change in the NULL or READY "
        "state; ignored", pspec->name);
    return;
  }
  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_MASK_SOURCE:
      self->mask_source = g_value_get_enum (value);
      break;
    case PROP_MASK_FILE:
      g_free (self->mask_file);
      self->mask_file = g_value_dup_string (value);
      break;
    case PROP_MASK_THRESHOLD:
      self->mask_threshold = g_value_get_uint (value);
      break;
    case PROP_INVERT_MASK:
      self->invert_mask = g_value_get_boolean (value);
      break;
    case PROP_MASK_FEATHER:
      self->feather = g_value_get_int (value);
      break;
    case PROP_JUMP_LENGTH:
      self->jump_length = g_value_get_int (value);
      break;
    case PROP_JUMP_N_SAMPLE:
      self->jump_n_sample = g_value_get_int (value);
      break;
    case PROP_EXEMPLAR_GUIDANCE:
      self->exemplar_guidance = g_value_get_double (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

/* The element's fields of the stats; object lock held. */
static void
gst_diffusion_inpaint_add_stats (GstElement * element, GstStructure * s)
{
  GstDiffusionInpaint *self = GST_DIFFUSION_INPAINT (element);

  gst_structure_set (s, "passed-through", G_TYPE_UINT64, self->passed_through,
      "masked-pixels", G_TYPE_UINT64, self->masked_pixels,
      "diffused-pixels", G_TYPE_UINT64, self->diffused_pixels,
      "reused-boxes", G_TYPE_UINT64, self->reused_boxes, NULL);
}

static void
gst_diffusion_inpaint_latency_changed (GstElement * element,
    GstClockTime latency)
{
  gst_aggregator_set_latency (GST_AGGREGATOR (element), latency, latency);
}

static void
gst_diffusion_inpaint_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstDiffusionInpaint *self = GST_DIFFUSION_INPAINT (object);

  if (gst_generative_core_get_property (&self->core, prop_id, value, pspec))
    return;
  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_MASK_SOURCE:
      g_value_set_enum (value, self->mask_source);
      break;
    case PROP_MASK_FILE:
      g_value_set_string (value, self->mask_file);
      break;
    case PROP_MASK_THRESHOLD:
      g_value_set_uint (value, self->mask_threshold);
      break;
    case PROP_INVERT_MASK:
      g_value_set_boolean (value, self->invert_mask);
      break;
    case PROP_MASK_FEATHER:
      g_value_set_int (value, self->feather);
      break;
    case PROP_JUMP_LENGTH:
      g_value_set_int (value, self->jump_length);
      break;
    case PROP_JUMP_N_SAMPLE:
      g_value_set_int (value, self->jump_n_sample);
      break;
    case PROP_EXEMPLAR_GUIDANCE:
      g_value_set_double (value, self->exemplar_guidance);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

/* ------------------------------------------------------------------------ */
/* start / stop */

static gboolean
gst_diffusion_inpaint_load (GstElement * element, const gchar * path,
    gpointer user_data, GError ** error)
{
  GstDiffusionInpaint *self = GST_DIFFUSION_INPAINT (element);

  if (gst_generative_is_pipeline_folder (path))
    /* The classes of ge_sd_supported_classes (GE_SD_INPAINT), and
     * RePaintPipeline (DDPMPipeline / DDIMPipeline folders as RePaint). */
    return gst_generative_core_open_pipeline (&self->core, path,
        GE_SD_INPAINT, "our diffusioninpaint models", NULL);
  self->ip = ge_inpaint_new (path, error);
  return self->ip != NULL;
}

static gboolean
gst_diffusion_inpaint_start (GstAggregator * agg)
{
  GstDiffusionInpaint *self = GST_DIFFUSION_INPAINT (agg);
  GError *err = NULL;
  gchar *mask_file;
  GstDiffusionInpaintMaskSource source;

  GST_OBJECT_LOCK (self);
  mask_file = g_strdup (self->mask_file);
  source = self->mask_source;
  GST_OBJECT_UNLOCK (self);

  if (source == GST_DIFFUSION_INPAINT_MASK_FILE && !(mask_file && mask_file[0])) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
        ("mask-source is \"file\" but mask-file is not set."), (NULL));
    goto failed;
  }
  if (mask_file && mask_file[0] && (source == GST_DIFFUSION_INPAINT_MASK_FILE
          || source == GST_DIFFUSION_INPAINT_MASK_AUTO)) {
    self->file_mask = gst_mask_file_load (mask_file, &self->file_w,
        &self->file_h, &err);
    if (!self->file_mask) {
      if (err->domain == G_FILE_ERROR)
        GST_ELEMENT_ERROR (self, RESOURCE, NOT_FOUND,
            ("Could not read mask file \"%s\".", mask_file), ("%s",
                err->message));
      else
        GST_ELEMENT_ERROR (self, STREAM, DECODE,
            ("Mask file \"%s\" is not a PGM or PNG mask.", mask_file), ("%s",
                err->message));
      g_clear_error (&err);
      goto failed;
    }
  }

  if (!gst_generative_core_start (&self->core, gst_diffusion_inpaint_load,
          NULL))
    goto failed;
  GST_OBJECT_LOCK (self);
  self->passed_through = 0;
  self->masked_pixels = self->diffused_pixels = self->reused_boxes = 0;
  GST_OBJECT_UNLOCK (self);
  self->warned_no_mask = FALSE;
  self->have_vinfo = self->have_minfo = FALSE;
  g_free (mask_file);
  return TRUE;

failed:
  g_clear_pointer (&self->file_mask, g_free);
  g_free (mask_file);
  return FALSE;
}

static gboolean
gst_diffusion_inpaint_stop (GstAggregator * agg)
{
  GstDiffusionInpaint *self = GST_DIFFUSION_INPAINT (agg);

  g_clear_pointer (&self->ip, ge_inpaint_free);
  gst_generative_core_stop (&self->core);
  g_clear_pointer (&self->file_mask, g_free);
  g_clear_pointer (&self->mask, g_free);
  self->mask_len = 0;
  gst_clear_buffer (&self->mask_buf);
  g_atomic_int_set (&self->mask_flushed, FALSE);
  return TRUE;
}

/* ------------------------------------------------------------------------ */
/* pads, caps, events */

static GstAggregatorPad *
gst_diffusion_inpaint_create_new_pad (GstAggregator * agg,
    GstPadTemplate * templ, const gchar * req_name, const GstCaps * caps)
{
  GstDiffusionInpaint *self = GST_DIFFUSION_INPAINT (agg);
  GstAggregatorPad *pad = NULL;

  if (templ->direction != GST_PAD_SINK
      || g_strcmp0 (GST_PAD_TEMPLATE_NAME_TEMPLATE (templ), "mask") != 0)
    return NULL;
  GST_OBJECT_LOCK (self);
  if (!self->maskpad) {
    pad = g_object_new (GST_TYPE_AGGREGATOR_PAD, "name", "mask",
        "direction", GST_PAD_SINK, "template", templ, NULL);
    self->maskpad = pad;
  }
  GST_OBJECT_UNLOCK (self);
  if (!pad)
    GST_WARNING_OBJECT (self, "there is only one mask pad");
  return pad;
}

static void
gst_diffusion_inpaint_release_pad (GstElement * element, GstPad * pad)
{
  GstDiffusionInpaint *self = GST_DIFFUSION_INPAINT (element);

  GST_OBJECT_LOCK (self);
  if (pad == GST_PAD (self->maskpad))
    self->maskpad = NULL;
  GST_OBJECT_UNLOCK (self);
  GST_ELEMENT_CLASS (parent_class)->release_pad (element, pad);
}

static gboolean
gst_diffusion_inpaint_sink_event (GstAggregator * agg,
    GstAggregatorPad * pad, GstEvent * event)
{
  GstDiffusionInpaint *self = GST_DIFFUSION_INPAINT (agg);

  if (GST_EVENT_TYPE (event) == GST_EVENT_CAPS) {
    GstCaps *caps;
    GstVideoInfo info;

    gst_event_parse_caps (event, &caps);
    if (!gst_video_info_from_caps (&info, caps)) {
      GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, (NULL),
          ("invalid caps %" GST_PTR_FORMAT " on %s", caps, GST_PAD_NAME (pad)));
      gst_event_unref (event);
      return FALSE;
    }
    if (pad == self->sinkpad) {
      self->vinfo = info;
      self->have_vinfo = TRUE;
      gst_pad_mark_reconfigure (GST_AGGREGATOR_SRC_PAD (agg));
    } else {
      self->minfo = info;
      self->have_minfo = TRUE;
    }
  } else if (GST_EVENT_TYPE (event) == GST_EVENT_FLUSH_STOP
      && pad != self->sinkpad) {
    /* A flushed mask stream starts over: its old mask is gone.  This runs
     * in the mask stream's thread, and a flush of that pad alone (its
     * source seeked) does not stop the frames: the aggregate thread, which
     * owns mask_buf, drops it before its next frame. */
    g_atomic_int_set (&self->mask_flushed, TRUE);
  }
  return GST_AGGREGATOR_CLASS (parent_class)->sink_event (agg, pad, event);
}

/* QoS, as GstBaseTransform does it: a frame whose running time is before
 * the last QoS event's timestamp + 2 * jitter (when late) is already too
 * late to show, so it is dropped instead of inpainted. */
static gboolean
gst_diffusion_inpaint_src_event (GstAggregator * agg, GstEvent * event)
{
  GstDiffusionInpaint *self = GST_DIFFUSION_INPAINT (agg);

  gst_generative_core_qos_event (&self->core, event);
  return GST_AGGREGATOR_CLASS (parent_class)->src_event (agg, event);
}

/* The output has the input's caps. */
static GstFlowReturn
gst_diffusion_inpaint_update_src_caps (GstAggregator * agg, GstCaps * caps,
    GstCaps ** ret)
{
  GstDiffusionInpaint *self = GST_DIFFUSION_INPAINT (agg);
  GstCaps *in;

  if (!self->have_vinfo)
    return GST_AGGREGATOR_FLOW_NEED_DATA;
  in = gst_pad_get_current_caps (GST_PAD (self->sinkpad));
  if (!in)
    return GST_AGGREGATOR_FLOW_NEED_DATA;
  *ret = gst_caps_intersect (in, caps);
  gst_caps_unref (in);
  if (gst_caps_is_empty (*ret)) {
    gst_caps_replace (ret, NULL);
    return GST_FLOW_NOT_NEGOTIATED;
  }
  return GST_FLOW_OK;
}

/* Caps queries on the video pad ask downstream (the output has the input's
 * caps); the mask pad takes any grey frame. */
static gboolean
gst_diffusion_inpaint_sink_query (GstAggregator * agg,
    GstAggregatorPad * pad, GstQuery * query)
{
  GstDiffusionInpaint *self = GST_DIFFUSION_INPAINT (agg);

  if (GST_QUERY_TYPE (query) == GST_QUERY_CAPS && pad == self->sinkpad) {
    GstCaps *filter, *templ, *peer, *result;

    gst_query_parse_caps (query, &filter);
    templ = gst_pad_get_pad_template_caps (GST_PAD (pad));
    peer = gst_pad_peer_query_caps (GST_AGGREGATOR_SRC_PAD (agg), templ);
    result = filter ? gst_caps_intersect_full (filter, peer,
        GST_CAPS_INTERSECT_FIRST) : gst_caps_ref (peer);
    gst_query_set_caps_result (query, result);
    gst_caps_unref (result);
    gst_caps_unref (peer);
    gst_caps_unref (templ);
    return TRUE;
  }
  if (GST_QUERY_TYPE (query) == GST_QUERY_ACCEPT_CAPS && pad == self->sinkpad) {
    GstCaps *caps, *templ, *allowed;
    gboolean ok;

    gst_query_parse_accept_caps (query, &caps);
    templ = gst_pad_get_pad_template_caps (GST_PAD (pad));
    allowed = gst_pad_peer_query_caps (GST_AGGREGATOR_SRC_PAD (agg), templ);
    ok = gst_caps_is_subset (caps, templ) && gst_caps_can_intersect (caps, allowed);
    gst_caps_unref (allowed);
    gst_caps_unref (templ);
    gst_query_set_accept_caps_result (query, ok);
    return TRUE;
  }
  return GST_AGGREGATOR_CLASS (parent_class)->sink_query (agg, pad, query);
}

/* ------------------------------------------------------------------------ */
/* the mask */

static GstDiffusionInpaintMaskSource
gst_diffusion_inpaint_resolve_source (GstDiffusionInpaint * self)
{
  GstDiffusionInpaintMaskSource s;
  gboolean have_pad;

  GST_OBJECT_LOCK (self);
  s = self->mask_source;
  have_pad = self->maskpad != NULL;
  GST_OBJECT_UNLOCK (self);
  if (s != GST_DIFFUSION_INPAINT_MASK_AUTO)
    return s;
  if (have_pad)
    return GST_DIFFUSION_INPAINT_MASK_PAD;
  if (self->file_mask)
    return GST_DIFFUSION_INPAINT_MASK_FILE;
  if (GST_VIDEO_INFO_HAS_ALPHA (&self->vinfo))
    return GST_DIFFUSION_INPAINT_MASK_ALPHA;
  return GST_DIFFUSION_INPAINT_MASK_ROI_META;
}

/* The running time of @ts on @pad's segment; NONE without a time segment.
 * The segment is read under the pad's lock: a flush of that pad alone,
 * from its upstream thread while the frames go on, resets it meanwhile. */
static GstClockTime
gst_diffusion_inpaint_running_time (GstAggregatorPad * pad, GstClockTime ts)
{
  GstClockTime rt = GST_CLOCK_TIME_NONE;

  GST_OBJECT_LOCK (pad);
  if (pad->segment.format == GST_FORMAT_TIME)
    rt = gst_segment_to_running_time (&pad->segment, GST_FORMAT_TIME, ts);
  GST_OBJECT_UNLOCK (pad);
  return rt;
}

/* Takes from the mask pad every mask whose running time is not after
 * @rt (the frame's); the newest becomes the mask in force. */
static void
gst_diffusion_inpaint_update_pad_mask (GstDiffusionInpaint * self,
    GstClockTime rt)
{
  GstAggregatorPad *mp;
  GstBuffer *b;

  if (g_atomic_int_compare_and_exchange (&self->mask_flushed, TRUE, FALSE))
    gst_clear_buffer (&self->mask_buf);
  GST_OBJECT_LOCK (self);
  mp = self->maskpad ? gst_object_ref (self->maskpad) : NULL;
  GST_OBJECT_UNLOCK (self);
  if (!mp)
    return;
  while ((b = gst_aggregator_pad_peek_buffer (mp))) {
    GstClockTime mrt = gst_diffusion_inpaint_running_time (mp,
        GST_BUFFER_PTS (b));
    if (GST_CLOCK_TIME_IS_VALID (rt) && GST_CLOCK_TIME_IS_VALID (mrt)
        && mrt > rt) {
      gst_buffer_unref (b);
      break;
    }
    gst_buffer_unref (b);
    b = gst_aggregator_pad_pop_buffer (mp);
    if (!self->have_minfo) {    /* a buffer before caps: not a mask */
      gst_buffer_unref (b);
      continue;
    }
    gst_clear_buffer (&self->mask_buf);
    self->mask_buf = b;
    self->mask_buf_info = self->minfo;
  }
  gst_object_unref (mp);
}

/* Fills self->mask (frame size, 0 or 1) from an 8- or 16-bit grey plane
 * of @mw x @mh, scaled (nearest) when the sizes differ. */
static gboolean
gst_diffusion_inpaint_fill_mask (GstDiffusionInpaint * self, const guint8 * m,
    gint mw, gint mh, gint mstride, gint bytes, gint step)
{
  const gint W = GST_VIDEO_INFO_WIDTH (&self->vinfo);
  const gint H = GST_VIDEO_INFO_HEIGHT (&self->vinfo);
  guint threshold;
  gboolean invert;

  /* Same aspect within one pixel of rounding either way. */
  if ((mw != W || mh != H)
      && ABS ((gint64) mw * H - (gint64) mh * W) > MAX (mw, W)) {
    GST_ELEMENT_ERROR (self, STREAM, FORMAT,
        ("The mask is %dx%d but the frame is %dx%d: the aspect ratios "
            "differ, so it cannot be scaled to fit.", mw, mh, W, H), (NULL));
    return FALSE;
  }
  GST_OBJECT_LOCK (self);
  threshold = self->mask_threshold;
  invert = self->invert_mask;
  GST_OBJECT_UNLOCK (self);
  if (bytes == 2)
    threshold = threshold * 257 + 128;  /* the same level on 16 bits */
  for (gint y = 0; y < H; y++) {
    const guint8 *row = m + (gsize) ((gint64) y * mh / H) * mstride;
    guint8 *out = self->mask + (gsize) y * W;
    for (gint x = 0; x < W; x++) {
      const guint8 *p = row + (gsize) ((gint64) x * mw / W) * step;
      const guint v = bytes == 2 ? GST_READ_UINT16_LE (p) : p[0];
      out[x] = (v > threshold) != invert;
    }
  }
  return TRUE;
}

static gboolean
gst_diffusion_inpaint_make_mask (GstDiffusionInpaint * self,
    GstVideoFrame * frame, GstBuffer * buf, gboolean * have_mask)
{
  const gint W = GST_VIDEO_FRAME_WIDTH (frame), H = GST_VIDEO_FRAME_HEIGHT (frame);
  GstDiffusionInpaintMaskSource source = gst_diffusion_inpaint_resolve_source (self);
  gboolean ok = TRUE;

  if (self->mask_len != (gsize) W * H) {
    g_free (self->mask);
    self->mask_len = (gsize) W * H;
    self->mask = g_malloc (self->mask_len);
  }
  *have_mask = TRUE;
  switch (source) {
    case GST_DIFFUSION_INPAINT_MASK_PAD:{
      GstVideoFrame mf;
      if (!self->mask_buf) {
        *have_mask = FALSE;
        break;
      }
      if (!gst_video_frame_map (&mf, &self->mask_buf_info, self->mask_buf,
              GST_MAP_READ)) {
        GST_ELEMENT_ERROR (self, STREAM, FAILED, (NULL),
            ("could not map the mask buffer"));
        return FALSE;
      }
      ok = gst_diffusion_inpaint_fill_mask (self,
          GST_VIDEO_FRAME_PLANE_DATA (&mf, 0), GST_VIDEO_FRAME_WIDTH (&mf),
          GST_VIDEO_FRAME_HEIGHT (&mf), GST_VIDEO_FRAME_PLANE_STRIDE (&mf, 0),
          GST_VIDEO_FRAME_COMP_PSTRIDE (&mf, 0),
          GST_VIDEO_FRAME_COMP_PSTRIDE (&mf, 0));
      gst_video_frame_unmap (&mf);
      break;
    }
    case GST_DIFFUSION_INPAINT_MASK_FILE:
      if (!self->file_mask) {   /* set after start(): not loaded */
        *have_mask = FALSE;
        break;
      }
      ok = gst_diffusion_inpaint_fill_mask (self, self->file_mask,
          self->file_w, self->file_h, self->file_w, 1, 1);
      break;
    case GST_DIFFUSION_INPAINT_MASK_ALPHA:
      if (!GST_VIDEO_INFO_HAS_ALPHA (&self->vinfo)) {
        GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
            ("mask-source is \"alpha\" but %s has no alpha channel.",
                GST_VIDEO_INFO_NAME (&self->vinfo)), (NULL));
        return FALSE;
      }
      /* Opaque (255) keeps, transparent regenerates: invert the level. */
      {
        const guint8 *a = GST_VIDEO_FRAME_COMP_DATA (frame, 3);
        const gint st = GST_VIDEO_FRAME_PLANE_STRIDE (frame, 0);
        const gint ps = GST_VIDEO_FRAME_COMP_PSTRIDE (frame, 3);
        guint threshold;
        gboolean invert;
        GST_OBJECT_LOCK (self);
        threshold = self->mask_threshold;
        invert = self->invert_mask;
        GST_OBJECT_UNLOCK (self);
        for (gint y = 0; y < H; y++)
          for (gint x = 0; x < W; x++)
            self->mask[(gsize) y * W + x] =
                ((guint) (255 - a[(gsize) y * st + (gsize) x * ps]) > threshold)
                != invert;
      }
      break;
    case GST_DIFFUSION_INPAINT_MASK_ROI_META:{
      gpointer state = NULL;
      GstMeta *meta;
      gboolean invert;
      GST_OBJECT_LOCK (self);
      invert = self->invert_mask;
      GST_OBJECT_UNLOCK (self);
      memset (self->mask, invert, self->mask_len);
      while ((meta = gst_buffer_iterate_meta_filtered (buf, &state,
                  GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE))) {
        GstVideoRegionOfInterestMeta *roi = (GstVideoRegionOfInterestMeta *) meta;
        const gint x0 = MIN (roi->x, (guint) W), y0 = MIN (roi->y, (guint) H);
        const gint x1 = MIN ((guint64) roi->x + roi->w, (guint64) W);
        const gint y1 = MIN ((guint64) roi->y + roi->h, (guint64) H);
        for (gint y = y0; y < y1; y++)
          memset (self->mask + (gsize) y * W + x0, !invert, MAX (x1 - x0, 0));
      }
      break;
    }
    case GST_DIFFUSION_INPAINT_MASK_AUTO:
      g_assert_not_reached ();
  }
  return ok;
}

/* ------------------------------------------------------------------------ */
/* processing */

static GstFlowReturn
gst_diffusion_inpaint_aggregate (GstAggregator * agg, gboolean timeout)
{
  GstDiffusionInpaint *self = GST_DIFFUSION_INPAINT (agg);
  GstBuffer *buf;
  GstVideoFrame frame;
  GstClockTime rt;
  gboolean have_mask;
  gint64 t0;

  buf = gst_aggregator_pad_pop_buffer (self->sinkpad);
  if (!buf)
    return gst_aggregator_pad_is_eos (self->sinkpad) ? GST_FLOW_EOS :
        GST_FLOW_OK;
  if (!self->have_vinfo) {
    gst_buffer_unref (buf);
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, (NULL),
        ("a frame came before the caps"));
    return GST_FLOW_NOT_NEGOTIATED;
  }
  rt = gst_diffusion_inpaint_running_time (self->sinkpad, GST_BUFFER_PTS (buf));
  gst_diffusion_inpaint_update_pad_mask (self, rt);
  {
    GstClockTime end = rt;
    if (GST_CLOCK_TIME_IS_VALID (rt) && GST_BUFFER_DURATION_IS_VALID (buf))
      end = rt + GST_BUFFER_DURATION (buf);
    if (gst_generative_core_qos_too_late (&self->core, end)) {
      GST_DEBUG_OBJECT (self, "dropping a late frame (running time %" GST_TIME_FORMAT
          ")", GST_TIME_ARGS (rt));
      gst_element_post_message (GST_ELEMENT (self), gst_message_new_qos (GST_OBJECT (self),
              FALSE, rt, GST_CLOCK_TIME_NONE, GST_BUFFER_PTS (buf),
              GST_BUFFER_DURATION (buf)));
      gst_buffer_unref (buf);
      return GST_FLOW_OK;
    }
  }

  if (!gst_generative_check_frame (GST_ELEMENT (self), &self->vinfo, buf)) {
    gst_buffer_unref (buf);
    return GST_FLOW_ERROR;
  }
  buf = gst_buffer_make_writable (buf);
  if (!gst_video_frame_map (&frame, &self->vinfo, buf, GST_MAP_READWRITE)) {
    gst_buffer_unref (buf);
    GST_ELEMENT_ERROR (self, STREAM, FAILED, (NULL), ("could not map frame"));
    return GST_FLOW_ERROR;
  }
  t0 = g_get_monotonic_time ();
  if (!gst_diffusion_inpaint_make_mask (self, &frame, buf, &have_mask)) {
    gst_video_frame_unmap (&frame);
    gst_buffer_unref (buf);
    return GST_FLOW_ERROR;
  }
  if (!have_mask) {
    if (!self->warned_no_mask) {
      GST_ELEMENT_WARNING (self, STREAM, DEMUX,
          ("No mask yet: frames pass through unchanged until the first mask "
              "arrives."), ("waiting would stall the video on a mask that "
              "may never come"));
      self->warned_no_mask = TRUE;
    }
    GST_OBJECT_LOCK (self);
    self->passed_through++;
    GST_OBJECT_UNLOCK (self);
  } else {
    GeImageU8 img;
    GError *err = NULL;
    guint64 masked = 0;
    gint steps, feather, n_threads, jump_length, jump_n_sample;
    GePrecision precision;
    gdouble guidance;
    guint64 seed;

    gst_generative_frame_image (&frame, &img);

    for (gsize i = 0; i < self->mask_len; i++)
      masked += self->mask[i];
    if (gst_generative_core_has_pipeline (&self->core)) {
      guint64 area;
      gboolean reused;
      GstSegment segment;

      GST_OBJECT_LOCK (self->sinkpad);
      segment = self->sinkpad->segment;
      GST_OBJECT_UNLOCK (self->sinkpad);
      gst_generative_core_sync_values (&self->core, &segment,
          GST_BUFFER_PTS (buf));
      GST_OBJECT_LOCK (self);
      feather = self->feather;
      jump_length = self->jump_length;
      jump_n_sample = self->jump_n_sample;
      GST_OBJECT_UNLOCK (self);
      gst_generative_core_sd_set_jumps (&self->core, jump_length,
          jump_n_sample);
      if (!gst_generative_core_sd_process (&self->core, &img, self->mask,
              feather, &img)) {
        gst_video_frame_unmap (&frame);
        gst_buffer_unref (buf);
        return GST_FLOW_ERROR;
      }
      gst_generative_core_sd_last (&self->core, &area, &reused);
      GST_OBJECT_LOCK (self);
      self->masked_pixels = masked;
      self->diffused_pixels = reused ? 0 : area;
      self->reused_boxes = reused ? 1 : 0;
      GST_OBJECT_UNLOCK (self);
      goto done;
    }
    GST_OBJECT_LOCK (self);
    steps = self->core.num_steps;
    feather = self->feather;
    n_threads = self->core.n_threads;
    seed = self->core.seed;
    jump_length = self->jump_length;
    jump_n_sample = self->jump_n_sample;
    guidance = self->exemplar_guidance;
    GST_OBJECT_UNLOCK (self);
    ge_inpaint_set_num_steps (self->ip, steps);
    ge_inpaint_set_repaint_jumps (self->ip, jump_length, jump_n_sample);
    ge_inpaint_set_feather (self->ip, feather);
    ge_inpaint_set_n_threads (self->ip, n_threads);
    if (gst_generative_core_precision_changed (&self->core, &precision))
      gst_generative_core_precision_applied (&self->core,
          ge_inpaint_set_precision (self->ip, precision));
    ge_inpaint_set_seed (self->ip, seed);
    ge_inpaint_set_exemplar_guidance (self->ip, (float) guidance);
    if (!ge_inpaint_process (self->ip, &img, self->mask,
            GST_VIDEO_FRAME_WIDTH (&frame), &err)) {
      GST_ELEMENT_ERROR (self, STREAM, FAILED,
          ("Inpainting failed with model \"%s\".", self->core.loaded_path),
          ("%s", err->message));
      g_clear_error (&err);
      gst_video_frame_unmap (&frame);
      gst_buffer_unref (buf);
      return GST_FLOW_ERROR;
    }
    GST_OBJECT_LOCK (self);
    self->masked_pixels = masked;
    self->diffused_pixels = ge_inpaint_last_area (self->ip);
    self->reused_boxes = ge_inpaint_last_reused (self->ip);
    GST_OBJECT_UNLOCK (self);
  }
done:
  gst_video_frame_unmap (&frame);
  gst_generative_core_frame_done (&self->core,
      (g_get_monotonic_time () - t0) / 1000.0);
  return gst_aggregator_finish_buffer (agg, buf);
}

/* ------------------------------------------------------------------------ */

static void
gst_diffusion_inpaint_finalize (GObject * object)
{
  GstDiffusionInpaint *self = GST_DIFFUSION_INPAINT (object);

  gst_generative_core_finalize (&self->core);
  g_free (self->mask_file);
  g_free (self->file_mask);
  g_free (self->mask);
  gst_clear_buffer (&self->mask_buf);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_diffusion_inpaint_class_init (GstDiffusionInpaintClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstAggregatorClass *agg_class = GST_AGGREGATOR_CLASS (klass);
  const GParamFlags rw = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS;

  GST_DEBUG_CATEGORY_INIT (gst_diffusion_inpaint_debug, "diffusioninpaint", 0,
      "diffusion inpainting");

  gobject_class->set_property = gst_diffusion_inpaint_set_property;
  gobject_class->get_property = gst_diffusion_inpaint_get_property;
  gobject_class->finalize = gst_diffusion_inpaint_finalize;

  g_object_class_install_property (gobject_class, PROP_MASK_SOURCE,
      g_param_spec_enum ("mask-source", "Mask source",
          "Where the mask comes from", GST_TYPE_DIFFUSION_INPAINT_MASK_SOURCE,
          DEFAULT_MASK_SOURCE, rw | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_MASK_FILE,
      g_param_spec_string ("mask-file", "Mask file",
          "Mask image (PGM or PNG; grey, or colour taken as grey), read at "
          "READY->PAUSED; changes to the file while playing are ignored "
          "until the next start", NULL, rw | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_MASK_THRESHOLD,
      g_param_spec_uint ("mask-threshold", "Mask threshold",
          "Mask values above this (8-bit scale; alpha: transparency) are "
          "regenerated", 0, 254, DEFAULT_MASK_THRESHOLD,
          rw | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_INVERT_MASK,
      g_param_spec_boolean ("invert-mask", "Invert mask",
          "Regenerate where the mask is at or below the threshold instead",
          FALSE, rw | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_MASK_FEATHER,
      g_param_spec_int ("mask-feather", "Mask feather",
          "Width in pixels of the blend outside the mask (0: hard edge)",
          0, 64, DEFAULT_FEATHER, rw | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_JUMP_LENGTH,
      g_param_spec_int ("repaint-jump-length", "RePaint jump length",
          "RePaint (unconditional models only): steps each jump goes back",
          1, 1000, DEFAULT_JUMP_LENGTH, rw | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_JUMP_N_SAMPLE,
      g_param_spec_int ("repaint-jump-n-sample", "RePaint jumps",
          "RePaint (unconditional models only): passes over each jumped "
          "stretch (1: no jumps)", 1, 100, DEFAULT_JUMP_N_SAMPLE,
          rw | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_EXEMPLAR_GUIDANCE,
      g_param_spec_double ("exemplar-guidance", "Exemplar guidance",
          "Pull of every sampling step towards a PatchMatch fill made of "
          "patches of the frame around the mask: 0 the model alone (a smooth "
          "fill), 1 the frame's own texture (-1: the model's default)",
          -1.0, 1.0, DEFAULT_EXEMPLAR_GUIDANCE, rw | GST_PARAM_MUTABLE_PLAYING));
  /* model-file, num-steps, seed, n-threads and stats:
   * gstgenerativecore.h. */
  gst_generative_core_install_properties (gobject_class, PROP_CORE,
      &core_spec);

  gst_element_class_add_static_pad_template_with_gtype (element_class,
      &sink_template, GST_TYPE_AGGREGATOR_PAD);
  gst_element_class_add_static_pad_template_with_gtype (element_class,
      &mask_template, GST_TYPE_AGGREGATOR_PAD);
  gst_element_class_add_static_pad_template_with_gtype (element_class,
      &src_template, GST_TYPE_AGGREGATOR_PAD);
  gst_element_class_set_static_metadata (element_class,
      "Diffusion inpainting", "Filter/Effect/Video",
      "Regenerates masked regions of video frames with a diffusion model",
      "gst-generative contributors");
  element_class->release_pad =
      GST_DEBUG_FUNCPTR (gst_diffusion_inpaint_release_pad);

  agg_class->start = GST_DEBUG_FUNCPTR (gst_diffusion_inpaint_start);
  agg_class->stop = GST_DEBUG_FUNCPTR (gst_diffusion_inpaint_stop);
  agg_class->aggregate = GST_DEBUG_FUNCPTR (gst_diffusion_inpaint_aggregate);
  agg_class->sink_event = GST_DEBUG_FUNCPTR (gst_diffusion_inpaint_sink_event);
  agg_class->sink_query = GST_DEBUG_FUNCPTR (gst_diffusion_inpaint_sink_query);
  agg_class->src_event = GST_DEBUG_FUNCPTR (gst_diffusion_inpaint_src_event);
  agg_class->update_src_caps =
      GST_DEBUG_FUNCPTR (gst_diffusion_inpaint_update_src_caps);
  agg_class->create_new_pad =
      GST_DEBUG_FUNCPTR (gst_diffusion_inpaint_create_new_pad);

  gst_type_mark_as_plugin_api (GST_TYPE_DIFFUSION_INPAINT_MASK_SOURCE, 0);
}

static void
gst_diffusion_inpaint_init (GstDiffusionInpaint * self)
{
  GstPadTemplate *templ = gst_static_pad_template_get (&sink_template);

  self->sinkpad = g_object_new (GST_TYPE_AGGREGATOR_PAD, "name", "sink",
      "direction", GST_PAD_SINK, "template", templ, NULL);
  gst_object_unref (templ);
  gst_element_add_pad (GST_ELEMENT (self), GST_PAD (self->sinkpad));

  self->mask_source = DEFAULT_MASK_SOURCE;
  self->mask_threshold = DEFAULT_MASK_THRESHOLD;
  self->feather = DEFAULT_FEATHER;
  self->jump_length = DEFAULT_JUMP_LENGTH;
  self->jump_n_sample = DEFAULT_JUMP_N_SAMPLE;
  self->exemplar_guidance = DEFAULT_EXEMPLAR_GUIDANCE;
  gst_generative_core_init (&self->core, GST_ELEMENT (self), PROP_CORE,
      &core_spec);
}
