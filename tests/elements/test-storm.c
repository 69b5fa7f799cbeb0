/* test-storm: state and flush storms on every element.
 *
 * Each element runs in a small pipeline (test source ! caps ! element !
 * fakesink) with the tiny models of make_test_models.py, so a frame takes
 * milliseconds.  The main thread makes 1000 random state changes between
 * NULL, READY, PAUSED and PLAYING (sometimes waiting for them, sometimes
 * not), with flushing seeks whenever the target is PAUSED or PLAYING; a
 * second thread meanwhile changes the element's properties (num-steps,
 * strength, seed ... whichever the element has), reads its stats and
 * queries its caps, and for diffusioninpaint links and unlinks a mask
 * stream on its request pad and seeks that stream alone.  Those last three
 * it does as an application must: not while it changes the pipeline's
 * state or seeks it (see prop_thread).  Then:
 *
 *  - no deadlock: a watchdog thread aborts the test (saying what each
 *    thread was doing, and the seed) when either gets stuck for
 *    STORM_WATCHDOG_S seconds; GE_STORM_GDB=1 prints every stack first;
 *  - no ERROR message on the bus (but for one race of GStreamer's own, see
 *    deactivation_race ()), no failed state change, no crash, no GLib
 *    critical;
 *  - no leak: under ASan (the asan-plugin stage of tools/test.sh) LSan
 *    checks the process at exit;
 *  - the stormed pipeline, run once more on 3 fixed frames with the final
 *    property values, gives the bytes a freshly made one gives.
 *
 * test_storm_mask_flushes seeks diffusioninpaint's mask stream alone 2000
 * times while the frames go on; test_storm_caps_queries starts and stops
 * every element 300 times while another thread queries its pads' caps and
 * latency without pause.
 *
 * The storms are random but seeded: GE_STORM_SEED (default below) replays
 * one; GE_STORM_TRANSITIONS changes the count (1000 by default).  Each case
 * prints one line: transitions, seeks, property changes, time.
 */
#include <gst/check/gstcheck.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "elementcheck.h"

#define DEFAULT_SEED 37
#define DEFAULT_TRANSITIONS 1000
/* Longest time either thread may be stuck in one operation.  A state
 * change waits at most WAIT_MS; a frame of the tiny models takes
 * milliseconds, so this only trips on a deadlock (or a machine far too
 * loaded to run the test at all). */
#define STORM_WATCHDOG_S 60
#define WAIT_MS 1000

typedef struct
{
  const gchar *factory;
  /* The pipeline: @MODEL@ is the model's path.  The element is "e", the
   * source "src", the sink "sink"; diffusioninpaint's mask branch ends in
   * "mcaps" (linked to e.mask by the test) and starts at "msrc". */
  const gchar *launch;
  const gchar *model;
  /* The properties the second thread changes (NULL-terminated). */
  const gchar *props[6];
  gboolean mask;
} StormCase;

#define VIDEO(w, h) "videotestsrc name=src pattern=ball ! " \
  "video/x-raw,format=RGB,width=" #w ",height=" #h ",framerate=30/1 ! "
#define SINK " ! fakesink name=sink sync=false"

static const StormCase cases[] = {
  {"diffusionsr", VIDEO (16, 16) "diffusionsr name=e model-file=\"@MODEL@\" "
        "num-steps=2" SINK, "diffusionsr-x2.safetensors",
      {"num-steps", "seed", "n-threads", NULL}},
  {"diffusioninpaint", VIDEO (32, 24) "diffusioninpaint name=e "
        "model-file=\"@MODEL@\" num-steps=2" SINK " videotestsrc name=msrc "
        "pattern=circular ! video/x-raw,format=GRAY8,width=32,height=24,"
        "framerate=30/1 ! capsfilter name=mcaps",
        "diffusioninpaint.safetensors",
      {"num-steps", "seed", "mask-feather", NULL}, TRUE},
  {"diffusionimg2img", VIDEO (32, 24) "diffusionimg2img name=e "
        "model-file=\"@MODEL@\" num-steps=2" SINK, "diffusionimg2img.safetensors",
      {"num-steps", "strength", "seed", "n-threads", NULL}},
  {"vaeencode", VIDEO (32, 32) "vaeencode name=e model-file=\"@MODEL@\"" SINK,
        "vae.safetensors", {"seed", "sample-mode", "tile-size", NULL}},
  {"vaedecode", VIDEO (32, 32) "vaeencode model-file=\"@MODEL@\" ! "
        "vaedecode name=e model-file=\"@MODEL@\"" SINK, "vae.safetensors",
      {"tile-size", "tile-overlap", "n-threads", NULL}},
  {"gansynth", "audiotestsrc name=src wave=sine samplesperbuffer=320 ! "
        "audio/x-raw,format=F32LE,layout=interleaved,rate=16000,channels=1 ! "
        "gansynth name=e model-file=\"@MODEL@\"" SINK, "gansynth.safetensors",
      {"strength", "post-vad-messages", NULL}},
};

typedef struct
{
  const StormCase *c;
  GstElement *pipe, *e;
  /* diffusioninpaint's mask branch: its last pad, the request pad it is
   * linked to (NULL while unlinked) and the probe dropping its frames
   * meanwhile. */
  GstElement *mask_source;
  GstPad *mask_src, *mask_pad;
  gulong mask_block;

  guint32 seed;
  /* What each thread is doing, for the watchdog (atomic). */
  gint main_ticks, prop_ticks;
  const gchar *volatile main_op, *volatile prop_op;
  gint stop_props, stop_watchdog;

  guint transitions, waits, async_left, seeks, seeks_done, core_races;
  guint prop_changes, mask_unlinks, mask_links, mask_seeks, mask_deferred;
  /* The application's: held while it changes the pipeline's state, seeks
   * it, or links, unlinks or seeks the mask branch. */
  GMutex control;
} Storm;

/* ------------------------------------------------------------------------ */

static gchar *
pipeline_desc (const StormCase * c)
{
  gchar *model = test_path ("GE_TEST_MODELS", c->model);
  gchar **parts = g_strsplit (c->launch, "@MODEL@", -1);
  gchar *desc = g_strjoinv (model, parts);

  g_strfreev (parts);
  g_free (model);
  return desc;
}

static GstElement *
by_name (GstElement * pipe, const gchar * name)
{
  GstElement *e = gst_bin_get_by_name (GST_BIN (pipe), name);

  fail_unless (e != NULL, "no element %s", name);
  gst_object_unref (e);         /* the pipeline holds it */
  return e;
}

/* While unlinked, the mask branch's frames go nowhere: dropped (pushing
 * into an unlinked pad would be an error), and slowly, so that the branch
 * does not spin.  (Blocking it instead is no better: a pad blocked in a
 * probe wakes up when the state change deactivates it, right between the
 * capsfilter's source and sink pads, and the events it then pushes fail
 * as not-negotiated: a race of GStreamer's, not the element's.) */
static GstPadProbeReturn
mask_drop (GstPad * pad, GstPadProbeInfo * info, gpointer data)
{
  g_usleep (2000);
  return GST_PAD_PROBE_DROP;
}

static void
mask_link (Storm * s)
{
  s->mask_pad = gst_element_request_pad_simple (s->e, "mask");
  fail_unless (s->mask_pad != NULL);
  fail_unless_equals_int (gst_pad_link (s->mask_src, s->mask_pad),
      GST_PAD_LINK_OK);
  if (s->mask_block) {
    gst_pad_remove_probe (s->mask_src, s->mask_block);
    s->mask_block = 0;
  }
}

/* As an application removes a branch while it may be streaming: its
 * frames dropped first, then the request pad released (which unlinks
 * it). */
static void
mask_unlink (Storm * s)
{
  s->mask_block = gst_pad_add_probe (s->mask_src, GST_PAD_PROBE_TYPE_BUFFER,
      mask_drop, NULL, NULL);
  gst_element_release_request_pad (s->e, s->mask_pad);
  gst_clear_object (&s->mask_pad);
}

static void
storm_build (Storm * s, const StormCase * c)
{
  gchar *desc = pipeline_desc (c);
  GError *err = NULL;

  memset (s, 0, sizeof (*s));
  s->c = c;
  g_mutex_init (&s->control);
  s->pipe = gst_parse_launch (desc, &err);
  fail_unless (s->pipe != NULL, "%s: %s", desc, err ? err->message : "?");
  g_free (desc);
  s->e = by_name (s->pipe, "e");
  if (c->mask) {
    s->mask_source = by_name (s->pipe, "msrc");
    s->mask_src = gst_element_get_static_pad (by_name (s->pipe, "mcaps"),
        "src");
    mask_link (s);
  }
}

static void
storm_free (Storm * s)
{
  fail_unless_equals_int (gst_element_set_state (s->pipe, GST_STATE_NULL),
      GST_STATE_CHANGE_SUCCESS);
  if (s->mask_src) {
    if (s->mask_block)
      gst_pad_remove_probe (s->mask_src, s->mask_block);
    gst_clear_object (&s->mask_pad);
    gst_object_unref (s->mask_src);
  }
  gst_object_unref (s->pipe);
  g_mutex_clear (&s->control);
}

/* ------------------------------------------------------------------------ */
/* the watchdog */

/* GE_STORM_GDB=1: every thread's stack, from gdb, before the abort. */
static void
print_stacks (void)
{
  gchar *cmd = g_strdup_printf ("gdb -p %d -batch -ex \"thread apply all "
      "bt 40\"", (int) getpid ());

#ifdef PR_SET_PTRACER
  prctl (PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0);
#endif
  if (system (cmd) != 0)
    g_printerr ("(%s failed)\n", cmd);
  g_free (cmd);
}

static gpointer
watchdog_thread (gpointer data)
{
  Storm *s = data;
  gint last_main = -1, last_prop = -1;
  gint64 main_since = 0, prop_since = 0;
  const gchar *env = g_getenv ("GE_STORM_WATCHDOG_S");
  const gint seconds = env ? atoi (env) : STORM_WATCHDOG_S;
  const gint64 limit = (gint64) seconds * G_USEC_PER_SEC;

  while (!g_atomic_int_get (&s->stop_watchdog)) {
    gint m = g_atomic_int_get (&s->main_ticks);
    gint p = g_atomic_int_get (&s->prop_ticks);
    gboolean props_on = !g_atomic_int_get (&s->stop_props);
    gint64 now = g_get_monotonic_time ();
    gboolean main_stuck, prop_stuck;

    if (m != last_main) {
      last_main = m;
      main_since = now;
    }
    if (p != last_prop || !props_on) {
      last_prop = p;
      prop_since = now;
    }
    main_stuck = now - main_since > limit;
    prop_stuck = now - prop_since > limit;
    if (main_stuck || prop_stuck) {
      /* Not a check failure: this thread cannot end the test that way
       * while the others hang, so it says why and aborts. */
      g_printerr ("storm %s: DEADLOCK: no progress for %d s (seed %u, "
          "transition %u); main thread in \"%s\"%s, property thread in "
          "\"%s\"%s\n", s->c->factory, seconds, s->seed,
          s->transitions, s->main_op, main_stuck ? " (stuck)" : "",
          s->prop_op, prop_stuck ? " (stuck)" : "");
      if (g_getenv ("GE_STORM_GDB"))
        print_stacks ();
      abort ();
    }
    g_usleep (100 * 1000);
  }
  return NULL;
}

static void
main_op (Storm * s, const gchar * op)
{
  s->main_op = op;
  g_atomic_int_inc (&s->main_ticks);
}

/* ------------------------------------------------------------------------ */
/* the property thread */

static gboolean
set_random (Storm * s, GRand * r, const gchar * name)
{
  GObject *o = G_OBJECT (s->e);

  if (!strcmp (name, "num-steps"))
    g_object_set (o, name, g_rand_int_range (r, 1, 4), NULL);
  else if (!strcmp (name, "strength"))
    g_object_set (o, name, g_rand_int_range (r, 0, 5) / 4.0, NULL);
  else if (!strcmp (name, "seed"))
    g_object_set (o, name, (guint64) g_rand_int_range (r, 0, 4), NULL);
  else if (!strcmp (name, "n-threads"))
    g_object_set (o, name, g_rand_int_range (r, 1, 3), NULL);
  else if (!strcmp (name, "mask-feather"))
    g_object_set (o, name, g_rand_int_range (r, 0, 4), NULL);
  else if (!strcmp (name, "tile-size"))
    g_object_set (o, name, g_rand_boolean (r) ? 0 : 16, NULL);
  else if (!strcmp (name, "tile-overlap"))
    g_object_set (o, name, g_rand_int_range (r, 0, 3) * 4, NULL);
  else if (!strcmp (name, "sample-mode"))
    gst_util_set_object_arg (o, name, g_rand_boolean (r) ? "mean" : "sample");
  else if (!strcmp (name, "post-vad-messages"))
    g_object_set (o, name, g_rand_boolean (r), NULL);
  else
    return FALSE;
  return TRUE;
}

/* No state change under way (ASYNC: one still is). */
static gboolean
pipeline_settled (Storm * s)
{
  GstState state, pending;

  return gst_element_get_state (s->pipe, &state, &pending, 0) ==
      GST_STATE_CHANGE_SUCCESS && pending == GST_STATE_VOID_PENDING;
}

static gpointer
prop_thread (gpointer data)
{
  Storm *s = data;
  GRand *r = g_rand_new_with_seed (s->seed + 1);
  guint n_props = g_strv_length ((gchar **) s->c->props);

  while (!g_atomic_int_get (&s->stop_props)) {
    /* The properties, then (inpaint) the mask link and a seek of the mask
     * stream alone, then the readers. */
    const gint n_mask = s->c->mask ? 2 : 0;
    gint k = g_rand_int_range (r, 0, n_props + n_mask + 2);

    if (k < (gint) n_props) {
      s->prop_op = s->c->props[k];
      fail_unless (set_random (s, r, s->c->props[k]), "no values for %s",
          s->c->props[k]);
      s->prop_changes++;
    } else if (k >= (gint) n_props && k < (gint) n_props + n_mask) {
      /* What the application does to the pipeline's topology and the mask
       * source, it does as GStreamer allows: not while it changes the
       * pipeline's state or seeks it (a bin orders its children once per
       * state change, so a pad linked meanwhile can be deactivated after
       * its peer; two seeks at once of one source may lose a flush), so
       * under the lock the state changes and seeks take, with no state
       * change pending.  Frames flow meanwhile. */
      s->prop_op = "control lock";
      g_mutex_lock (&s->control);
      if (!pipeline_settled (s)) {
        s->mask_deferred++;
      } else if (k == (gint) n_props && s->mask_pad) {
        s->prop_op = "mask unlink";
        mask_unlink (s);
        s->mask_unlinks++;
      } else if (k == (gint) n_props) {
        s->prop_op = "mask link";
        mask_link (s);
        s->mask_links++;
      } else {
        /* The mask clip rewound on its own: a flush of the mask pad only,
         * while the frames go on. */
        s->prop_op = "mask seek";
        if (gst_element_seek_simple (s->mask_source, GST_FORMAT_TIME,
                GST_SEEK_FLAG_FLUSH, 0))
          s->mask_seeks++;
      }
      g_mutex_unlock (&s->control);
    } else if (k == (gint) n_props + n_mask) {
      /* Applications query caps from their own thread. */
      GstPad *pad = gst_element_get_static_pad (s->e, "sink");
      GstCaps *caps;

      s->prop_op = "caps query";
      caps = gst_pad_query_caps (pad, NULL);
      gst_caps_unref (caps);
      gst_object_unref (pad);
    } else {
      /* Readers race the frames too. */
      gchar *stats;
      GstStructure *st;

      s->prop_op = "stats";
      if (G_PARAM_SPEC_VALUE_TYPE (g_object_class_find_property
              (G_OBJECT_GET_CLASS (s->e), "stats")) == G_TYPE_STRING) {
        g_object_get (s->e, "stats", &stats, NULL);
        g_free (stats);
      } else {
        g_object_get (s->e, "stats", &st, NULL);
        gst_structure_free (st);
      }
    }
    s->prop_op = "sleeping";
    g_atomic_int_inc (&s->prop_ticks);
    g_usleep (g_rand_int_range (r, 100, 2000));
  }
  g_rand_free (r);
  return NULL;
}

/* ------------------------------------------------------------------------ */
/* the storm */

/* GStreamer's own race on the way down, not the element's: an element
 * deactivates its source pad before its sink pad, and a SEGMENT (or CAPS)
 * event that upstream pushes in between, as a source restarted by the
 * last flushing seek does, fails in GstBaseTransform's forwarding (the
 * source pad is flushing) as an error, not as flushing; the source then
 * posts "Internal data stream error" with reason error or not-negotiated.
 * Any GstBaseTransform has the window, the capsfilters too.  Tolerated
 * only from a test source, and only while the pipeline goes to READY or
 * NULL. */
static gboolean
deactivation_race (Storm * s, GstMessage * msg, const GError * err,
    const gchar * dbg, GstState target)
{
  const gchar *name = GST_OBJECT_NAME (GST_MESSAGE_SRC (msg));

  return target <= GST_STATE_READY
      && (!strcmp (name, "src") || !strcmp (name, "msrc"))
      && g_error_matches (err, GST_STREAM_ERROR, GST_STREAM_ERROR_FAILED)
      && dbg && (strstr (dbg, "reason error (-5)")
      || strstr (dbg, "reason not-negotiated (-4)"));
}

/* Every message so far, the pipeline going to @target: an ERROR fails the
 * test (but for deactivation_race ()). */
static void
drain_bus (Storm * s, GstState target)
{
  GstBus *bus = gst_element_get_bus (s->pipe);
  GstMessage *msg;

  while ((msg = gst_bus_pop (bus))) {
    if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
      GError *err = NULL;
      gchar *dbg = NULL;

      gst_message_parse_error (msg, &err, &dbg);
      if (deactivation_race (s, msg, err, dbg, target))
        s->core_races++;
      else
        fail ("storm %s (seed %u, transition %u): ERROR from %s: %s (%s)",
            s->c->factory, s->seed, s->transitions,
            GST_OBJECT_NAME (GST_MESSAGE_SRC (msg)), err->message, dbg);
      g_clear_error (&err);
      g_free (dbg);
    }
    gst_message_unref (msg);
  }
  gst_object_unref (bus);
}

static void
maybe_wait (Storm * s, GRand * r, GstStateChangeReturn ret)
{
  if (ret == GST_STATE_CHANGE_ASYNC && g_rand_boolean (r)) {
    main_op (s, "get_state");
    s->waits++;
    if (gst_element_get_state (s->pipe, NULL, NULL,
            WAIT_MS * GST_MSECOND) == GST_STATE_CHANGE_ASYNC)
      s->async_left++;
  }
  /* Some time for frames to flow (or not). */
  if (g_rand_int_range (r, 0, 3) == 0) {
    main_op (s, "sleeping");
    g_usleep (g_rand_int_range (r, 0, 20000));
  }
}

static void
storm_run (Storm * s, guint n)
{
  static const GstState states[] = { GST_STATE_NULL, GST_STATE_READY,
    GST_STATE_PAUSED, GST_STATE_PLAYING
  };
  static const gchar *const names[] = { "set_state NULL", "set_state READY",
    "set_state PAUSED", "set_state PLAYING"
  };
  GRand *r = g_rand_new_with_seed (s->seed);
  GstState target = GST_STATE_NULL;
  GThread *props;

  props = g_thread_new ("storm-props", prop_thread, s);
  while (s->transitions < n) {
    gint k = g_rand_int_range (r, 0, G_N_ELEMENTS (states));
    GstStateChangeReturn ret;

    if (states[k] == target)
      continue;
    target = states[k];
    main_op (s, names[k]);
    g_mutex_lock (&s->control);
    ret = gst_element_set_state (s->pipe, target);
    g_mutex_unlock (&s->control);
    s->transitions++;
    fail_unless (ret != GST_STATE_CHANGE_FAILURE, "storm %s (seed %u, "
        "transition %u): %s failed", s->c->factory, s->seed, s->transitions,
        names[k]);
    maybe_wait (s, r, ret);
    while (target >= GST_STATE_PAUSED && g_rand_int_range (r, 0, 3) > 0) {
      GstSeekFlags flags = GST_SEEK_FLAG_FLUSH | (g_rand_boolean (r) ?
          GST_SEEK_FLAG_ACCURATE : GST_SEEK_FLAG_KEY_UNIT);

      main_op (s, "flushing seek");
      s->seeks++;
      g_mutex_lock (&s->control);
      if (gst_element_seek (s->pipe, 1.0, GST_FORMAT_TIME, flags,
              GST_SEEK_TYPE_SET, g_rand_int_range (r, 0, 100) * GST_SECOND / 10,
              GST_SEEK_TYPE_NONE, GST_CLOCK_TIME_NONE))
        s->seeks_done++;
      g_mutex_unlock (&s->control);
      maybe_wait (s, r, GST_STATE_CHANGE_ASYNC);
    }
    main_op (s, "draining the bus");
    drain_bus (s, target);
  }
  main_op (s, "stopping the property thread");
  g_atomic_int_set (&s->stop_props, 1);
  g_thread_join (props);
  g_rand_free (r);
}

/* ------------------------------------------------------------------------ */
/* the check after the storm */

static void
collect (GstElement * sink, GstBuffer * buf, GstPad * pad, gpointer data)
{
  GByteArray *out = data;
  GstMapInfo map;

  fail_unless (gst_buffer_map (buf, &map, GST_MAP_READ));
  g_byte_array_append (out, map.data, map.size);
  gst_buffer_unmap (buf, &map);
}

/* Runs @s's pipeline from NULL on 3 frames (or 3 audio buffers) to EOS;
 * the bytes it output. */
static GByteArray *
fixed_run (Storm * s)
{
  GByteArray *out = g_byte_array_new ();
  GstElement *sink = by_name (s->pipe, "sink");
  GstBus *bus = gst_element_get_bus (s->pipe);
  GstMessage *msg;
  gulong id;

  fail_unless_equals_int (gst_element_set_state (s->pipe, GST_STATE_NULL),
      GST_STATE_CHANGE_SUCCESS);
  gst_bus_set_flushing (bus, TRUE);     /* the storm's messages */
  gst_bus_set_flushing (bus, FALSE);
  g_object_set (by_name (s->pipe, "src"), "num-buffers", 3, NULL);
  if (s->c->mask)
    g_object_set (by_name (s->pipe, "msrc"), "num-buffers", 3, NULL);
  g_object_set (sink, "signal-handoffs", TRUE, NULL);
  id = g_signal_connect (sink, "handoff", G_CALLBACK (collect), out);
  fail_unless (gst_element_set_state (s->pipe, GST_STATE_PLAYING) !=
      GST_STATE_CHANGE_FAILURE);
  msg = gst_bus_timed_pop_filtered (bus, 60 * GST_SECOND,
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  fail_unless (msg != NULL, "%s: no EOS after the storm", s->c->factory);
  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
    GError *err = NULL;

    gst_message_parse_error (msg, &err, NULL);
    fail ("%s: ERROR after the storm: %s", s->c->factory, err->message);
  }
  gst_message_unref (msg);
  fail_unless_equals_int (gst_element_set_state (s->pipe, GST_STATE_NULL),
      GST_STATE_CHANGE_SUCCESS);
  g_signal_handler_disconnect (sink, id);
  gst_object_unref (bus);
  return out;
}

static void
run_case (const StormCase * c)
{
  const gchar *env_seed = g_getenv ("GE_STORM_SEED");
  const gchar *env_n = g_getenv ("GE_STORM_TRANSITIONS");
  const guint n = env_n ? (guint) g_ascii_strtoull (env_n, NULL, 10) :
      DEFAULT_TRANSITIONS;
  Storm s, fresh;
  GThread *watchdog;
  GByteArray *a, *b;
  GString *line;
  guint out_bytes;
  gint64 t0 = g_get_monotonic_time ();

  storm_build (&s, c);
  s.seed = env_seed ? (guint32) g_ascii_strtoull (env_seed, NULL, 10) :
      DEFAULT_SEED;
  s.seed += (guint32) (c - cases) * 1000;       /* another storm each */
  s.main_op = s.prop_op = "starting";
  watchdog = g_thread_new ("storm-watchdog", watchdog_thread, &s);

  storm_run (&s, n);
  fail_unless_equals_int (s.transitions, n);

  /* The same pipeline, the mask linked again if it was not, against a
   * new one with the final property values. */
  main_op (&s, "the run after the storm");
  if (c->mask && !s.mask_pad)
    mask_link (&s);
  a = fixed_run (&s);
  storm_build (&fresh, c);
  for (guint k = 0; c->props[k]; k++) {
    GValue v = G_VALUE_INIT;

    g_object_get_property (G_OBJECT (s.e), c->props[k], &v);
    g_object_set_property (G_OBJECT (fresh.e), c->props[k], &v);
    g_value_unset (&v);
  }
  main_op (&s, "the fresh pipeline's run");
  b = fixed_run (&fresh);
  fail_unless (a->len > 0, "%s: no output after the storm", c->factory);
  fail_unless (a->len == b->len && !memcmp (a->data, b->data, a->len),
      "storm %s (seed %u): the output after the storm (%u bytes) differs "
      "from a fresh pipeline's (%u bytes)", c->factory, s.seed, a->len,
      b->len);

  out_bytes = a->len;
  main_op (&s, "teardown");
  storm_free (&fresh);
  storm_free (&s);
  g_atomic_int_set (&s.stop_watchdog, 1);
  g_thread_join (watchdog);
  g_byte_array_unref (a);
  g_byte_array_unref (b);

  line = g_string_new (NULL);
  g_string_append_printf (line, "storm %s: seed %u, %u transitions (%u "
      "waited for, %u still async after %d ms), %u flushing seeks (%u "
      "handled), %u property changes", c->factory, s.seed, s.transitions,
      s.waits, s.async_left, WAIT_MS, s.seeks, s.seeks_done, s.prop_changes);
  if (c->mask)
    g_string_append_printf (line, ", mask pad %u unlinks / %u links / %u "
        "seeks (%u put off: state change under way)", s.mask_unlinks,
        s.mask_links, s.mask_seeks, s.mask_deferred);
  if (s.core_races)
    g_string_append_printf (line, ", %u source errors of GStreamer's "
        "deactivation race", s.core_races);
  g_print ("%s; output after the storm = a fresh pipeline's (%u bytes); "
      "%.1f s\n", line->str, out_bytes,
      (g_get_monotonic_time () - t0) / 1e6);
  g_string_free (line, TRUE);
}

#define STORM_TEST(i, name) \
GST_START_TEST (test_storm_##name) \
{ \
  fail_unless (!strcmp (cases[i].factory, #name)); \
  run_case (&cases[i]); \
} \
GST_END_TEST

STORM_TEST (0, diffusionsr);
STORM_TEST (1, diffusioninpaint);
STORM_TEST (2, diffusionimg2img);
STORM_TEST (3, vaeencode);
STORM_TEST (4, vaedecode);
STORM_TEST (5, gansynth);

/* A flush storm on diffusioninpaint's mask pad alone: the mask source
 * seeked over and over while the frames go on, so that the mask pad's
 * flushes (in the mask stream's thread) meet the frames' use of the mask
 * and of the pad's segment (in the aggregate thread). */
GST_START_TEST (test_storm_mask_flushes)
{
  Storm s;
  GRand *r = g_rand_new_with_seed (DEFAULT_SEED);
  GThread *watchdog;
  guint flushes = 0;
  gint64 t0 = g_get_monotonic_time ();

  storm_build (&s, &cases[1]);
  s.seed = DEFAULT_SEED;
  s.stop_props = 1;             /* no property thread */
  s.main_op = s.prop_op = "starting";
  watchdog = g_thread_new ("storm-watchdog", watchdog_thread, &s);
  fail_unless (gst_element_set_state (s.pipe, GST_STATE_PLAYING) !=
      GST_STATE_CHANGE_FAILURE);
  fail_unless_equals_int (gst_element_get_state (s.pipe, NULL, NULL,
          30 * GST_SECOND), GST_STATE_CHANGE_SUCCESS);
  for (guint i = 0; i < 2000; i++) {
    main_op (&s, "mask seek");
    if (gst_element_seek_simple (s.mask_source, GST_FORMAT_TIME,
            GST_SEEK_FLAG_FLUSH, g_rand_int_range (r, 0, 10) * GST_SECOND))
      flushes++;
    main_op (&s, "sleeping");
    g_usleep (g_rand_int_range (r, 0, 2000));
    drain_bus (&s, GST_STATE_PLAYING);
  }
  main_op (&s, "teardown");
  storm_free (&s);
  g_atomic_int_set (&s.stop_watchdog, 1);
  g_thread_join (watchdog);
  g_rand_free (r);
  fail_unless (flushes > 1000, "only %u mask seeks handled", flushes);
  g_print ("storm diffusioninpaint mask pad: %u flushing seeks of the mask "
      "stream alone while playing, %.1f s\n", flushes,
      (g_get_monotonic_time () - t0) / 1e6);
}

GST_END_TEST;

/* Applications query caps (and latency) from their own threads whatever
 * the state: a thread doing nothing else while every element is started
 * and stopped 300 times (the queries reach the element's caps code while
 * start() loads the model and stop() frees it). */
static gpointer
query_thread (gpointer data)
{
  Storm *s = data;
  GstPad *pads[2] = { gst_element_get_static_pad (s->e, "sink"),
    gst_element_get_static_pad (s->e, "src")
  };

  while (!g_atomic_int_get (&s->stop_props)) {
    for (guint k = 0; k < 2; k++) {
      GstCaps *caps = gst_pad_query_caps (pads[k], NULL);
      GstQuery *q = gst_query_new_latency ();

      gst_caps_unref (caps);
      gst_pad_query (pads[k], q);
      gst_query_unref (q);
    }
    s->prop_changes++;
    g_atomic_int_inc (&s->prop_ticks);
    /* Yields: on a loaded machine a plain spin starves the state changes
     * it is meant to meet. */
    g_thread_yield ();
  }
  gst_object_unref (pads[0]);
  gst_object_unref (pads[1]);
  return NULL;
}

GST_START_TEST (test_storm_caps_queries)
{
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    Storm s;
    GThread *watchdog, *queries;
    gint64 t0 = g_get_monotonic_time ();

    storm_build (&s, &cases[i]);
    s.seed = DEFAULT_SEED;
    s.main_op = s.prop_op = "caps and latency queries";
    watchdog = g_thread_new ("storm-watchdog", watchdog_thread, &s);
    queries = g_thread_new ("storm-queries", query_thread, &s);
    for (guint k = 0; k < 300; k++) {
      main_op (&s, "set_state PAUSED");
      fail_unless (gst_element_set_state (s.pipe, GST_STATE_PAUSED) !=
          GST_STATE_CHANGE_FAILURE);
      /* Long enough for the caps to be set most times, not for a
       * preroll that the queries slow down (ASan). */
      gst_element_get_state (s.pipe, NULL, NULL, 20 * GST_MSECOND);
      main_op (&s, "set_state READY");
      fail_unless (gst_element_set_state (s.pipe, GST_STATE_READY) ==
          GST_STATE_CHANGE_SUCCESS);
      drain_bus (&s, GST_STATE_READY);
    }
    g_atomic_int_set (&s.stop_props, 1);
    g_thread_join (queries);
    main_op (&s, "teardown");
    storm_free (&s);
    g_atomic_int_set (&s.stop_watchdog, 1);
    g_thread_join (watchdog);
    g_print ("storm %s: 300 starts and stops, %u caps and latency queries "
        "from another thread meanwhile, %.1f s\n", cases[i].factory,
        s.prop_changes, (g_get_monotonic_time () - t0) / 1e6);
  }
}

GST_END_TEST;

static Suite *
storm_suite (void)
{
  Suite *s = suite_create ("storm");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  /* The watchdog fails a stuck storm well before this. */
  tcase_set_timeout (tc, 900);
  tcase_add_test (tc, test_storm_diffusionsr);
  tcase_add_test (tc, test_storm_diffusioninpaint);
  tcase_add_test (tc, test_storm_diffusionimg2img);
  tcase_add_test (tc, test_storm_vaeencode);
  tcase_add_test (tc, test_storm_vaedecode);
  tcase_add_test (tc, test_storm_gansynth);
  tcase_add_test (tc, test_storm_mask_flushes);
  tcase_add_test (tc, test_storm_caps_queries);
  return s;
}

GST_CHECK_MAIN (storm);
