/* GStreamer generative plugin
 * Copyright (C) 2025 gst-generative contributors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */
#ifndef __GST_GANSYNTH_H__
#define __GST_GANSYNTH_H__

#include <gst/gst.h>
#include <gst/audio/audio.h>
#include <gst/audio/gstaudiofilter.h>
#include <gst/base/gstadapter.h>

#include "ge-pool.h"
#include "ge-speech.h"
#include "gstgenerativecore.h"

G_BEGIN_DECLS

#define GST_TYPE_GANSYNTH (gst_gansynth_get_type ())
G_DECLARE_FINAL_TYPE (GstGanSynth, gst_gansynth, GST, GANSYNTH, GstAudioFilter);

struct _GstGanSynth
{
  GstAudioFilter parent;

  /* Properties (object lock); model_file NULL = the installed model. */
  gchar *model_file;
  gdouble strength;             /* controllable */
  gint n_threads;
  gboolean post_vad;
  GstGenerativePrecisionState precision;   /* .value: the property */

  /* Between start() and stop() (model) or setup() (the rest); only the
   * streaming thread uses them, but for caps and latency queries, which
   * come from any thread: model is set and cleared under the object lock,
   * and they read it under it. */
  GeSpeechModel *model;
  gchar *loaded_path;
  GeSpeechStream **streams;     /* one per channel */
  gint n_streams;
  GePool *pool;
  gint hop, delay;              /* samples per hop; the streams' delay in samples */
  GstClockTime latency;         /* object lock: hop + delay; NONE before setup() */
  GstAdapter *adapter;
  gfloat *out;                  /* [hops * hop * channels], grown when needed */
  gsize out_size;

  /* Timeline of the current run (since the last reset): the output sample
   * j has the timestamp base_ts + j / rate, the same as input sample j. */
  GstClockTime base_ts;
  guint64 base_offset;
  guint64 samples_in;           /* samples per channel pushed to the engine */
  guint64 samples_out;          /* samples per channel pushed downstream */
  guint64 skip;                 /* start-up samples still to drop */
  GstClockTime next_in_ts;      /* where the next input buffer should start */
  gboolean speech;              /* VAD state (hysteresis) */
  gboolean warned_slow;

  /* Statistics (object lock). */
  guint64 hops;
  gdouble busy_s, audio_s, max_hop_ms, vad;
};

GST_ELEMENT_REGISTER_DECLARE (gansynth);

G_END_DECLS

#endif /* __GST_GANSYNTH_H__ */
