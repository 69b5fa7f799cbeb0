/* GStreamer generative plugin
 * Copyright (C) 2025 gst-generative contributors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/**
 * SECTION:element-gansynth
 * @title: gansynth
 * @see_also: webrtcdsp, audioresample
 *
 * Cleans speech: removes noise, hum, music beds and room tone with a
 * causal network trained adversarially (models/gansynth), keeping the
 * voice.  Each channel is cleaned on its own.  The model runs at its own
 * rates (the installed one: 16 kHz for voice, 48 kHz for podcasts, where
 * the band above 8 kHz follows the gain of 6-8 kHz); put audioresample in
 * front for other rates.
 *
 * The output is time-aligned with the input: the element holds back the
 * model's latency (the installed one: 40 ms, a 20 ms frame and 20 ms of
 * lookahead; reported in the latency query), drops the start-up samples
 * and drains the tail at EOS, so every input sample comes out once, at its
 * own timestamp.  A flush or a discontinuity starts afresh; a discontinuity,
 * a GAP event, new caps (another rate or channel count) and EOS first let
 * out what is held.  GAP buffers are silence, whatever their bytes; NaN and
 * infinite samples are taken as silence and samples beyond +-8 are clipped
 * to it, so the output is always finite.
 * #GstGanSynth:strength blends the cleaned signal with the original
 * (controllable); #GstGanSynth:precision picks the network's arithmetic
 * (auto: 8-bit weights where the model was validated in them and the CPU
 * has AVX512-VNNI, about twice as fast); with
 * #GstGanSynth:post-vad-messages the element posts "gansynth-vad" element
 * messages when speech starts and stops.
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 filesrc location=podcast.ogg ! decodebin ! audioconvert ! audioresample ! gansynth ! audioconvert ! flacenc ! filesink location=clean.flac
 * ]| Cleans a recording.
 * |[
 * gst-launch-1.0 autoaudiosrc ! audioconvert ! audioresample ! audio/x-raw,rate=16000 ! gansynth ! audioconvert ! autoaudiosink
 * ]| Cleans a live microphone.
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <math.h>
#include <string.h>

#include "gstgansynth.h"
#include "gstgenerativeutil.h"

GST_DEBUG_CATEGORY_STATIC (gst_gansynth_debug);
#define GST_CAT_DEFAULT gst_gansynth_debug

#define MODEL_NAME "gansynth.safetensors"
#define DEFAULT_STRENGTH 1.0
#define DEFAULT_N_THREADS 1
#define DEFAULT_POST_VAD FALSE
/* Voice activity hysteresis of the messages. */
#define VAD_ON 0.6
#define VAD_OFF 0.4
/* Real-time check: after this much audio, warn once when slower. */
#define SLOW_CHECK_SECONDS 2.0
/* Input timestamps further than this from where the previous buffer ended
 * are a discontinuity (audiobasesink's alignment threshold). */
#define RESYNC_THRESHOLD (40 * GST_MSECOND)

enum
{
  PROP_0,
  PROP_MODEL_FILE,
  PROP_STRENGTH,
  PROP_N_THREADS,
  PROP_POST_VAD,
  PROP_STATS,
  PROP_PRECISION,
};

#define CAPS_STR \
  "audio/x-raw, format = (string) " GST_AUDIO_NE (F32) ", " \
  "layout = (string) interleaved, rate = (int) { 16000, 48000 }, " \
  "channels = (int) [ 1, MAX ]"

#define gst_gansynth_parent_class parent_class
G_DEFINE_TYPE (GstGanSynth, gst_gansynth, GST_TYPE_AUDIO_FILTER);
GST_ELEMENT_REGISTER_DEFINE (gansynth, "gansynth", GST_RANK_NONE,
    GST_TYPE_GANSYNTH);

static void
gst_gansynth_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstGanSynth *self = GST_GANSYNTH (object);

  if (prop_id == PROP_MODEL_FILE
      && gst_generative_is_running (GST_ELEMENT (self))) {
    GST_WARNING_OBJECT (self, "model-file can only change in the NULL or "
        "READY state; ignored");
    return;
  }
  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_MODEL_FILE:
      g_free (self->model_file);
      self->model_file = g_value_dup_string (value);
      break;
    case PROP_STRENGTH:
      self->strength = g_value_get_double (value);
      break;
    case PROP_N_THREADS:
      self->n_threads = g_value_get_int (value);
      break;
    case PROP_POST_VAD:
      self->post_vad = g_value_get_boolean (value);
      break;
    case PROP_PRECISION:
      self->precision.value = g_value_get_enum (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static GstStructure *
stats_structure (GstGanSynth * self)
{
  /* object lock held */
  return gst_structure_new ("gansynth-stats",
      "hops", G_TYPE_UINT64, self->hops,
      "audio-seconds", G_TYPE_DOUBLE, self->audio_s,
      "real-time-factor", G_TYPE_DOUBLE,
      self->audio_s > 0.0 ? self->busy_s / self->audio_s : 0.0,
      "max-hop-ms", G_TYPE_DOUBLE, self->max_hop_ms,
      "speech-probability", G_TYPE_DOUBLE, self->vad,
      "precision", G_TYPE_STRING, ge_precision_name (self->precision.in_use), NULL);
}

static void
gst_gansynth_get_property (GObject * object, guint prop_id, GValue * value,
    GParamSpec * pspec)
{
  GstGanSynth *self = GST_GANSYNTH (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_MODEL_FILE:
      g_value_set_string (value, self->model_file);
      break;
    case PROP_STRENGTH:
      g_value_set_double (value, self->strength);
      break;
    case PROP_N_THREADS:
      g_value_set_int (value, self->n_threads);
      break;
    case PROP_POST_VAD:
      g_value_set_boolean (value, self->post_vad);
      break;
    case PROP_STATS:
      g_value_take_boxed (value, stats_structure (self));
      break;
    case PROP_PRECISION:
      g_value_set_enum (value, self->precision.value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
free_streams (GstGanSynth * self)
{
  for (gint c = 0; c < self->n_streams; c++)
    ge_speech_stream_free (self->streams[c]);
  g_clear_pointer (&self->streams, g_free);
  self->n_streams = 0;
  g_clear_pointer (&self->pool, ge_pool_free);
}

/* A fresh run: engine state, adapter and timeline (flush, discont, caps). */
static void
reset_run (GstGanSynth * self)
{
  for (gint c = 0; c < self->n_streams; c++)
    ge_speech_stream_reset (self->streams[c]);
  gst_adapter_clear (self->adapter);
  self->base_ts = GST_CLOCK_TIME_NONE;
  self->base_offset = 0;
  self->samples_in = self->samples_out = 0;
  self->skip = self->delay;
  self->next_in_ts = GST_CLOCK_TIME_NONE;
  self->speech = FALSE;
}

static gboolean
gst_gansynth_start (GstBaseTransform * trans)
{
  GstGanSynth *self = GST_GANSYNTH (trans);
  GError *err = NULL;
  GeSpeechModel *model;
  gchar *path;

  GST_OBJECT_LOCK (self);
  path = gst_generative_model_path (self->model_file, MODEL_NAME);
  GST_OBJECT_UNLOCK (self);

  gst_generative_post_load_progress (GST_ELEMENT (self),
      GST_PROGRESS_TYPE_START, path);
  if (!gst_generative_check_model_file (GST_ELEMENT (self), path,
          "a gansynth model (a speech enhancer)"))
    goto failed;
  model = ge_speech_model_new (path, &err);
  GST_OBJECT_LOCK (self);
  self->model = model;
  GST_OBJECT_UNLOCK (self);
  if (!model) {
    GST_ELEMENT_ERROR (self, STREAM, WRONG_TYPE,
        ("\"%s\" is not a usable speech enhancement model.", path),
        ("%s", err->message));
    g_clear_error (&err);
    goto failed;
  }
  g_free (self->loaded_path);
  self->loaded_path = path;
  GST_OBJECT_LOCK (self);
  self->hops = 0;
  self->busy_s = self->audio_s = self->max_hop_ms = self->vad = 0.0;
  GST_OBJECT_UNLOCK (self);
  self->warned_slow = FALSE;
  gst_generative_post_load_progress (GST_ELEMENT (self),
      GST_PROGRESS_TYPE_COMPLETE, path);
  return TRUE;

failed:
  gst_generative_post_load_progress (GST_ELEMENT (self),
      GST_PROGRESS_TYPE_ERROR, path);
  g_free (path);
  return FALSE;
}

static gboolean
gst_gansynth_stop (GstBaseTransform * trans)
{
  GstGanSynth *self = GST_GANSYNTH (trans);
  GeSpeechModel *model;

  free_streams (self);
  GST_OBJECT_LOCK (self);
  model = self->model;
  self->model = NULL;
  self->latency = GST_CLOCK_TIME_NONE;
  GST_OBJECT_UNLOCK (self);
  g_clear_pointer (&model, ge_speech_model_free);
  g_clear_pointer (&self->out, g_free);
  self->out_size = 0;
  gst_adapter_clear (self->adapter);
  return TRUE;
}

/* The template lists the installed model's rates; a model with fewer
 * narrows them.  Caps queries come from any thread, stop() may be freeing
 * the model meanwhile: its rates are read under the object lock. */
static GstCaps *
gst_gansynth_transform_caps (GstBaseTransform * trans, GstPadDirection dir,
    GstCaps * caps, GstCaps * filter)
{
  GstGanSynth *self = GST_GANSYNTH (trans);
  GstCaps *res = gst_caps_copy (caps);
  GValue list = G_VALUE_INIT;

  GST_OBJECT_LOCK (self);
  if (self->model) {
    GValue v = G_VALUE_INIT;
    gint n;
    const gint *rates = ge_speech_model_rates (self->model, &n);

    gst_value_list_init (&list, n);
    g_value_init (&v, G_TYPE_INT);
    for (gint i = 0; i < n; i++) {
      g_value_set_int (&v, rates[i]);
      gst_value_list_append_value (&list, &v);
    }
    g_value_unset (&v);
  }
  GST_OBJECT_UNLOCK (self);
  if (G_IS_VALUE (&list)) {
    GstCaps *model_caps = gst_caps_from_string ("audio/x-raw");

    gst_caps_set_value (model_caps, "rate", &list);
    g_value_unset (&list);
    GstCaps *t = gst_caps_intersect (res, model_caps);
    gst_caps_unref (res);
    gst_caps_unref (model_caps);
    res = t;
  }
  if (filter) {
    GstCaps *t = gst_caps_intersect_full (filter, res, GST_CAPS_INTERSECT_FIRST);
    gst_caps_unref (res);
    res = t;
  }
  return res;
}

static GstFlowReturn drain (GstGanSynth * self);

static gboolean
gst_gansynth_setup (GstAudioFilter * filter, const GstAudioInfo * info)
{
  GstGanSynth *self = GST_GANSYNTH (filter);
  const gint rate = GST_AUDIO_INFO_RATE (info);
  const gint channels = GST_AUDIO_INFO_CHANNELS (info);
  gint n_threads;

  if (!ge_speech_model_supports_rate (self->model, rate)) {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
        ("The model \"%s\" does not run at %d Hz.", self->loaded_path, rate),
        ("Put audioresample before gansynth; the caps list the model's rates"));
    return FALSE;
  }
  /* New caps mid-stream (another rate or channel count): what is held
   * comes out first, at the old caps, which are still the source pad's. */
  if (self->n_streams > 0)
    drain (self);
  free_streams (self);
  self->hop = ge_speech_model_hop (self->model, rate);
  self->delay = ge_speech_model_delay (self->model, rate);
  self->streams = g_new0 (GeSpeechStream *, channels);
  for (gint c = 0; c < channels; c++)
    self->streams[c] = ge_speech_stream_new (self->model, rate, NULL);
  self->n_streams = channels;
  self->precision.applied = -1;         /* new streams: f32 until told */
  GST_OBJECT_LOCK (self);
  n_threads = self->n_threads;
  /* The hop being filled and the stream's delay (the overlap-add's
   * frame - hop and the model's lookahead hops). */
  self->latency = gst_util_uint64_scale_round (self->delay + self->hop,
      GST_SECOND, rate);
  GST_OBJECT_UNLOCK (self);
  if (n_threads <= 0)
    n_threads = (gint) g_get_num_processors ();
  if (MIN (n_threads, channels) > 1)
    self->pool = ge_pool_new (MIN (n_threads, channels));
  reset_run (self);
  GST_INFO_OBJECT (self, "%d Hz, %d channels: %d-sample hops, latency %d "
      "samples", rate, channels, self->hop, self->delay + self->hop);
  gst_element_post_message (GST_ELEMENT (self),
      gst_message_new_latency (GST_OBJECT (self)));
  return TRUE;
}

static gboolean
gst_gansynth_query (GstBaseTransform * trans, GstPadDirection dir,
    GstQuery * query)
{
  GstGanSynth *self = GST_GANSYNTH (trans);
  GstClockTime ours;

  /* Latency queries come from any thread: the stream's latency is read
   * under the object lock (what setup() computed, while it stands). */
  GST_OBJECT_LOCK (self);
  ours = self->latency;
  GST_OBJECT_UNLOCK (self);
  if (GST_QUERY_TYPE (query) == GST_QUERY_LATENCY && dir == GST_PAD_SRC
      && GST_CLOCK_TIME_IS_VALID (ours)) {
    GstClockTime min, max;
    gboolean live;

    if (!gst_pad_peer_query (GST_BASE_TRANSFORM_SINK_PAD (trans), query))
      return FALSE;
    gst_query_parse_latency (query, &live, &min, &max);
    GST_DEBUG_OBJECT (self, "latency %" GST_TIME_FORMAT, GST_TIME_ARGS (ours));
    min += ours;
    if (GST_CLOCK_TIME_IS_VALID (max))
      max += ours;
    gst_query_set_latency (query, live, min, max);
    return TRUE;
  }
  return GST_BASE_TRANSFORM_CLASS (parent_class)->query (trans, dir, query);
}

typedef struct
{
  GstGanSynth *self;
  const gfloat *in;
  gint n_hops;
  gfloat strength;
  gfloat vad[64];
} Job;

static void
process_channel (void *data, int c, int thread)
{
  Job *j = data;
  GstGanSynth *self = j->self;
  const gint ch = self->n_streams;

  const gfloat vad = ge_speech_stream_process (self->streams[c], j->in + c, ch,
      self->out + c, ch, j->n_hops, j->strength);
  if (c < (int) G_N_ELEMENTS (j->vad))
    j->vad[c] = vad;            /* the first 64 channels vote on speech */
}

static void
post_vad (GstGanSynth * self, gfloat vad, GstClockTime ts)
{
  gboolean speech = self->speech ? vad > VAD_OFF : vad > VAD_ON;
  if (speech == self->speech)
    return;
  self->speech = speech;
  gst_element_post_message (GST_ELEMENT (self),
      gst_message_new_element (GST_OBJECT (self),
          gst_structure_new ("gansynth-vad", "speech", G_TYPE_BOOLEAN, speech,
              "probability", G_TYPE_DOUBLE, (gdouble) vad,
              "timestamp", G_TYPE_UINT64, ts, NULL)));
}

/* Runs @n_hops hops from @in through the streams into self->out and
 * returns a buffer of the time-aligned output (NULL when it is all
 * start-up), at most @limit samples per channel. */
static GstBuffer *
run_hops (GstGanSynth * self, const gfloat * in, gint n_hops, guint64 limit)
{
  const gint ch = self->n_streams, rate = GST_AUDIO_FILTER_RATE (self);
  const gsize n = (gsize) n_hops * self->hop;
  gboolean post;
  gint64 t0;
  Job job;

  if (self->out_size < n * ch) {
    g_free (self->out);
    self->out_size = n * ch;
    self->out = g_new (gfloat, self->out_size);
  }
  if (GST_CLOCK_TIME_IS_VALID (self->base_ts))
    gst_object_sync_values (GST_OBJECT (self), self->base_ts +
        gst_util_uint64_scale_int (self->samples_in, GST_SECOND, rate));
  GST_OBJECT_LOCK (self);
  job.strength = (gfloat) self->strength;
  post = self->post_vad;
  GST_OBJECT_UNLOCK (self);
  GePrecision precision;
  if (gst_generative_precision_changed (GST_ELEMENT (self), &self->precision,
          &precision)) {
    GePrecision in_use = GE_PRECISION_F32;
    for (gint c = 0; c < ch; c++)
      in_use = ge_speech_stream_set_precision (self->streams[c], precision);
    gst_generative_precision_applied (GST_ELEMENT (self), &self->precision, in_use);
  }
  job.self = self;
  job.in = in;
  job.n_hops = n_hops;

  t0 = g_get_monotonic_time ();
  if (self->pool)
    ge_pool_run (self->pool, ch, process_channel, &job);
  else
    for (gint c = 0; c < ch; c++)
      process_channel (&job, c, 0);
  const gdouble busy = (g_get_monotonic_time () - t0) / 1e6;
  self->samples_in += n;

  gfloat vad = 0.0f;
  for (gint c = 0; c < MIN (ch, (gint) G_N_ELEMENTS (job.vad)); c++)
    vad = MAX (vad, job.vad[c]);
  GST_OBJECT_LOCK (self);
  self->hops += n_hops;
  self->busy_s += busy;
  self->audio_s += (gdouble) n / rate;
  self->max_hop_ms = MAX (self->max_hop_ms, busy * 1000.0 / n_hops);
  self->vad = vad;
  const gboolean slow = !self->warned_slow && self->audio_s > SLOW_CHECK_SECONDS
      && self->busy_s > self->audio_s;
  const gdouble rtf = self->busy_s / MAX (self->audio_s, 1e-9);
  GST_OBJECT_UNLOCK (self);
  if (slow) {
    self->warned_slow = TRUE;
    GST_ELEMENT_WARNING (self, RESOURCE, FAILED,
        ("Cleaning speech is slower than real time (%.2f x).", rtf),
        ("%d channels at %d Hz; live pipelines will fall behind (raise "
            "n-threads for several channels)", ch, rate));
  }

  /* drop the start-up, keep at most @limit */
  gsize first = MIN ((guint64) n, self->skip);
  self->skip -= first;
  gsize count = MIN (n - first, limit);
  if (post)
    post_vad (self, vad, GST_CLOCK_TIME_IS_VALID (self->base_ts) ?
        self->base_ts + gst_util_uint64_scale_int (self->samples_out,
            GST_SECOND, rate) : GST_CLOCK_TIME_NONE);
  if (count == 0)
    return NULL;

  GstBuffer *buf = gst_buffer_new_memdup (self->out + first * ch,
      count * ch * sizeof (gfloat));
  if (GST_CLOCK_TIME_IS_VALID (self->base_ts)) {
    GST_BUFFER_PTS (buf) = self->base_ts +
        gst_util_uint64_scale_int (self->samples_out, GST_SECOND, rate);
    GST_BUFFER_DURATION (buf) = self->base_ts +
        gst_util_uint64_scale_int (self->samples_out + count, GST_SECOND,
        rate) - GST_BUFFER_PTS (buf);
  }
  GST_BUFFER_OFFSET (buf) = self->base_offset + self->samples_out;
  GST_BUFFER_OFFSET_END (buf) = GST_BUFFER_OFFSET (buf) + count;
  if (self->samples_out == 0)
    GST_BUFFER_FLAG_SET (buf, GST_BUFFER_FLAG_DISCONT);
  self->samples_out += count;
  return buf;
}

/* Everything still held comes out: the adapter's rest and the overlap-add
 * tail, fed with silence until each input sample has its output. */
static GstFlowReturn
drain (GstGanSynth * self)
{
  const gint ch = self->n_streams;
  if (ch == 0 || !self->adapter)
    return GST_FLOW_OK;
  const gsize rest = gst_adapter_available (self->adapter) / (ch * sizeof (gfloat));
  const guint64 total = self->samples_in + rest;
  if (total == self->samples_out) {
    gst_adapter_clear (self->adapter);
    return GST_FLOW_OK;
  }
  const guint64 need = total + self->delay - self->samples_in;
  const gint n_hops = (gint) ((need + self->hop - 1) / self->hop);
  gfloat *in = g_new0 (gfloat, (gsize) n_hops * self->hop * ch);
  if (rest > 0)
    gst_adapter_copy (self->adapter, in, 0, rest * ch * sizeof (gfloat));
  gst_adapter_clear (self->adapter);
  GstBuffer *buf = run_hops (self, in, n_hops, total - self->samples_out);
  g_free (in);
  GST_DEBUG_OBJECT (self, "drained %" G_GSIZE_FORMAT " held samples", rest);
  if (!buf)
    return GST_FLOW_OK;
  return gst_pad_push (GST_BASE_TRANSFORM_SRC_PAD (self), buf);
}

static gboolean
timestamp_jump (GstGanSynth * self, GstClockTime ts)
{
  if (!GST_CLOCK_TIME_IS_VALID (ts) || !GST_CLOCK_TIME_IS_VALID (self->next_in_ts))
    return FALSE;
  return ABS (GST_CLOCK_DIFF (self->next_in_ts, ts)) > RESYNC_THRESHOLD;
}

static GstFlowReturn
gst_gansynth_submit_input_buffer (GstBaseTransform * trans,
    gboolean is_discont, GstBuffer * input)
{
  GstGanSynth *self = GST_GANSYNTH (trans);
  const gint rate = GST_AUDIO_FILTER_RATE (self);
  const gint bpf = GST_AUDIO_FILTER_BPF (self);
  GstClockTime ts = GST_BUFFER_PTS (input);
  GstFlowReturn ret = GST_FLOW_OK;

  if (self->n_streams == 0) {
    gst_buffer_unref (input);
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, (NULL),
        ("buffer before caps"));
    return GST_FLOW_NOT_NEGOTIATED;
  }
  if (gst_buffer_get_size (input) % bpf != 0) {
    GST_ELEMENT_ERROR (self, STREAM, FORMAT, (NULL),
        ("buffer of %" G_GSIZE_FORMAT " bytes is not a whole number of "
            "%d-byte frames", gst_buffer_get_size (input), bpf));
    gst_buffer_unref (input);
    return GST_FLOW_ERROR;
  }

  /* A GAP buffer holds media neutral data that elements may ignore: it
   * is silence whatever its bytes are, so junk in it never comes out. */
  if (GST_BUFFER_FLAG_IS_SET (input, GST_BUFFER_FLAG_GAP)
      && gst_buffer_get_size (input) > 0) {
    GstBuffer *silence = gst_buffer_new_allocate (NULL,
        gst_buffer_get_size (input), NULL);

    gst_buffer_memset (silence, 0, 0, gst_buffer_get_size (input));
    gst_buffer_copy_into (silence, input, GST_BUFFER_COPY_METADATA, 0, -1);
    gst_buffer_unref (input);
    input = silence;
  }

  /* A discontinuity (flagged, or a timestamp off by more than
   * RESYNC_THRESHOLD) ends the run: what is held comes out, then a fresh
   * start. */
  if (self->samples_in + gst_adapter_available (self->adapter) / bpf > 0
      && (GST_BUFFER_IS_DISCONT (input) || timestamp_jump (self, ts))) {
    GST_DEBUG_OBJECT (self, "discontinuity at %" GST_TIME_FORMAT,
        GST_TIME_ARGS (ts));
    ret = drain (self);
    reset_run (self);
    if (ret != GST_FLOW_OK) {
      gst_buffer_unref (input);
      return ret;
    }
  }
  if (!GST_CLOCK_TIME_IS_VALID (self->base_ts) && GST_CLOCK_TIME_IS_VALID (ts)) {
    /* timestamps count from the first buffer of the run */
    const guint64 held = self->samples_in +
        gst_adapter_available (self->adapter) / bpf;
    const GstClockTime back = gst_util_uint64_scale_int (held, GST_SECOND, rate);
    self->base_ts = ts >= back ? ts - back : 0;
    self->base_offset = GST_BUFFER_OFFSET_IS_VALID (input) ?
        GST_BUFFER_OFFSET (input) - MIN (GST_BUFFER_OFFSET (input), held) : 0;
  }
  if (GST_CLOCK_TIME_IS_VALID (ts))
    self->next_in_ts = ts + gst_util_uint64_scale_int (gst_buffer_get_size
        (input) / bpf, GST_SECOND, rate);
  gst_adapter_push (self->adapter, input);
  return GST_FLOW_OK;
}

static GstFlowReturn
gst_gansynth_generate_output (GstBaseTransform * trans, GstBuffer ** outbuf)
{
  GstGanSynth *self = GST_GANSYNTH (trans);
  const gint ch = self->n_streams;

  *outbuf = NULL;
  if (ch == 0)
    return GST_FLOW_OK;
  const gsize bytes_per_hop = (gsize) self->hop * ch * sizeof (gfloat);
  const gint n_hops = gst_adapter_available (self->adapter) / bytes_per_hop;
  if (n_hops == 0)
    return GST_FLOW_OK;
  const gfloat *in = gst_adapter_map (self->adapter, n_hops * bytes_per_hop);
  *outbuf = run_hops (self, in, n_hops, G_MAXUINT64);
  gst_adapter_unmap (self->adapter);
  gst_adapter_flush (self->adapter, n_hops * bytes_per_hop);
  return GST_FLOW_OK;
}

static gboolean
gst_gansynth_sink_event (GstBaseTransform * trans, GstEvent * event)
{
  GstGanSynth *self = GST_GANSYNTH (trans);

  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_EOS:
      drain (self);
      reset_run (self);
      break;
    case GST_EVENT_FLUSH_STOP:
      reset_run (self);
      break;
    case GST_EVENT_GAP:
      /* the held audio comes before the gap: out first, then a new run */
      drain (self);
      reset_run (self);
      break;
    case GST_EVENT_SEGMENT:
      /* a new segment is a new timeline: what is held belongs to the old */
      drain (self);
      reset_run (self);
      break;
    default:
      break;
  }
  return GST_BASE_TRANSFORM_CLASS (parent_class)->sink_event (trans, event);
}

static void
gst_gansynth_finalize (GObject * object)
{
  GstGanSynth *self = GST_GANSYNTH (object);

  free_streams (self);
  g_clear_pointer (&self->model, ge_speech_model_free);
  g_clear_object (&self->adapter);
  g_free (self->out);
  g_free (self->model_file);
  g_free (self->loaded_path);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_gansynth_class_init (GstGanSynthClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);
  GstAudioFilterClass *filter_class = GST_AUDIO_FILTER_CLASS (klass);
  GstCaps *caps;

  GST_DEBUG_CATEGORY_INIT (gst_gansynth_debug, "gansynth", 0,
      "GAN-trained speech enhancement");

  gobject_class->set_property = gst_gansynth_set_property;
  gobject_class->get_property = gst_gansynth_get_property;
  gobject_class->finalize = gst_gansynth_finalize;

  g_object_class_install_property (gobject_class, PROP_MODEL_FILE,
      g_param_spec_string ("model-file", "Model file",
          "Speech enhancement model (.safetensors); NULL = the installed "
          MODEL_NAME, NULL,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_STRENGTH,
      g_param_spec_double ("strength", "Strength",
          "How much of the cleaning to apply: 0 = the input unchanged, "
          "1 = fully cleaned (dry/wet)", 0.0, 1.0, DEFAULT_STRENGTH,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_CONTROLLABLE | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_N_THREADS,
      g_param_spec_int ("n-threads", "Threads",
          "Threads for the channels (0 = one per core); a channel runs on "
          "one thread", 0, 256, DEFAULT_N_THREADS,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_POST_VAD,
      g_param_spec_boolean ("post-vad-messages", "Post VAD messages",
          "Post a \"gansynth-vad\" element message (speech, probability, "
          "timestamp) when speech starts or stops", DEFAULT_POST_VAD,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));
  /**
   * GstGanSynth:precision:
   *
   * The arithmetic of the network's matrix-vector products.  int8 keeps
   * the weights in 8 bits per row and each product's input in 16 bits
   * (AVX512-VNNI's vpdpwssd), a quarter of f32's weight bytes, so they stay
   * in the core's L2: about twice as fast a hop, within the SI-SDRi budget
   * the model card reports.  auto is int8 for model files validated in it
   * ("precision_auto" metadata), f32 otherwise; bf16 runs f32 (there is no
   * bf16 path: the products are bound by reading the weights, which bf16
   * only halves); int8 runs f32 where the CPU lacks AVX512-VNNI (or the
   * environment sets GE_NO_INT8).  The stats say which one runs.  A change
   * in PLAYING takes effect on the next buffer.
   */
  g_object_class_install_property (gobject_class, PROP_PRECISION,
      g_param_spec_enum ("precision", "Precision",
          "Arithmetic of the network's products: int8 (8-bit weights) is "
          "about twice as fast on CPUs with AVX512-VNNI, within the model "
          "card's accuracy budget (auto: what the model was validated in, "
          "f32 otherwise; bf16 runs f32)", GST_TYPE_GENERATIVE_PRECISION,
          GST_GENERATIVE_PRECISION_AUTO, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_STATS,
      g_param_spec_boxed ("stats", "Statistics",
          "hops, audio-seconds, real-time-factor (processing time / audio "
          "time), max-hop-ms, the last speech-probability and the precision "
          "running",
          GST_TYPE_STRUCTURE, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  gst_element_class_set_static_metadata (element_class,
      "GAN speech enhancement", "Filter/Effect/Audio",
      "Removes noise, hum, music and room tone from speech with a causal "
      "GAN-trained network", "gst-generative contributors");

  caps = gst_caps_from_string (CAPS_STR);
  gst_audio_filter_class_add_pad_templates (filter_class, caps);
  gst_caps_unref (caps);

  trans_class->start = GST_DEBUG_FUNCPTR (gst_gansynth_start);
  trans_class->stop = GST_DEBUG_FUNCPTR (gst_gansynth_stop);
  trans_class->transform_caps = GST_DEBUG_FUNCPTR (gst_gansynth_transform_caps);
  trans_class->query = GST_DEBUG_FUNCPTR (gst_gansynth_query);
  trans_class->submit_input_buffer =
      GST_DEBUG_FUNCPTR (gst_gansynth_submit_input_buffer);
  trans_class->generate_output = GST_DEBUG_FUNCPTR (gst_gansynth_generate_output);
  trans_class->sink_event = GST_DEBUG_FUNCPTR (gst_gansynth_sink_event);
  trans_class->passthrough_on_same_caps = FALSE;
  filter_class->setup = GST_DEBUG_FUNCPTR (gst_gansynth_setup);
}

static void
gst_gansynth_init (GstGanSynth * self)
{
  self->strength = DEFAULT_STRENGTH;
  self->n_threads = DEFAULT_N_THREADS;
  self->post_vad = DEFAULT_POST_VAD;
  gst_generative_precision_init (&self->precision);
  self->adapter = gst_adapter_new ();
  self->base_ts = GST_CLOCK_TIME_NONE;
  self->next_in_ts = GST_CLOCK_TIME_NONE;
  self->latency = GST_CLOCK_TIME_NONE;
}
