/* soak-child: one element of bench/soak.py, in C so that the process's
 * memory is GStreamer's, the plugin's and this loop's alone (an interpreter
 * would add a creep of its own).
 *
 *   soak-child --sample FILE --prep "DECODE CHAIN" --element "ELEMENT ..."
 *       --post "CHAIN" --report OUT.jsonl [--audio] [--dry] [--duration S]
 *       [--window S] [--warmup S] [--leak-per-frame BYTES] [--eos-timeout S]
 *
 * The sample is decoded once (filesrc ! decodebin ! PREP ! appsink); then
 *
 *   appsrc ! queue ! ELEMENT ! POST ! fakesink
 *
 * pushes its buffers again and again with running timestamps for
 * --duration seconds, then EOS.  Pad probes on the element count buffers
 * (and audio samples) in and out, time each frame (video: from its arrival,
 * or the previous output if later, to its output; audio: from a buffer's
 * arrival to the output it gives) and with --dry compare the output with
 * the input bit for bit.  A thread reads /proc/self/status five times a
 * second and writes a JSON line per window: the window's least and largest
 * RSS and RssAnon, malloc's bytes in use (mallinfo2), frames, process CPU
 * seconds, the median frame time, the load average.  The last lines: where
 * the anonymous memory grew after the warm-up (smaps), and the totals. */
#include <gst/gst.h>
#include <gst/app/gstappsrc.h>
#include <gst/base/gstadapter.h>

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "bench-stats.h"

#define AUDIO_CHUNK 1024        /* samples per buffer, as Vorbis decoders give */
#define SAMPLE_US 200000

typedef struct
{
  /* options */
  gchar *sample, *prep, *element, *post, *report;
  gboolean audio, dry;
  gint duration, window, warmup, eos_timeout, leak;

  GstCaps *caps;
  GPtrArray *templates;
  GstElement *pipeline, *src, *el;
  FILE *out;
  gint64 start;

  GMutex lock;
  guint64 frames_in, frames_out, samples_in, samples_out;
  GQueue arrivals;              /* video: arrival (us) of the frames in flight */
  gint64 last_in, last_out;     /* audio: last arrival; video: last output */
  GArray *frame_times;          /* this window's, ms */
  gboolean stopping;
  GstAdapter *pending;          /* dry: input not yet matched */
  guint64 compared, mismatched;
  gint64 first_mismatch;
  gint done;
  GHashTable *smaps_warm;
} Soak;

static Soak S;

static void
json_string (FILE * f, const gchar * s)
{
  fputc ('"', f);
  for (; s && *s; s++) {
    const guchar c = *s;
    if (c == '"' || c == '\\')
      fprintf (f, "\\%c", c);
    else if (c < 0x20)
      fprintf (f, "\\u%04x", c);
    else
      fputc (c, f);
  }
  fputc ('"', f);
}

/* VmRSS, RssAnon, RssFile in bytes. */
static void
read_rss (guint64 * rss, guint64 * anon, guint64 * file)
{
  FILE *f = fopen ("/proc/self/status", "r");
  char line[256];
  *rss = *anon = *file = 0;
  if (!f)
    return;
  while (fgets (line, sizeof line, f)) {
    unsigned long long kb;
    if (sscanf (line, "VmRSS: %llu", &kb) == 1)
      *rss = kb * 1024;
    else if (sscanf (line, "RssAnon: %llu", &kb) == 1)
      *anon = kb * 1024;
    else if (sscanf (line, "RssFile: %llu", &kb) == 1)
      *file = kb * 1024;
  }
  fclose (f);
}

/* Bytes malloc has handed out and not had back, all arenas and mmapped
 * blocks: exact, where the RSS moves by pages and keeps freed ones. */
static guint64
heap_bytes (void)
{
  struct mallinfo2 m = mallinfo2 ();
  return m.uordblks + m.hblkhd;
}

/* Resident anonymous kB per mapping ("start-end name" -> kB). */
static GHashTable *
read_smaps (void)
{
  GHashTable *t = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  FILE *f = fopen ("/proc/self/smaps", "r");
  char line[512], key[512] = "";
  if (!f)
    return t;
  while (fgets (line, sizeof line, f)) {
    char range[64], perms[8], path[400] = "[anon]";
    unsigned long long off, inode, kb;
    char dev[16];
    if (sscanf (line, "%63s %7s %llx %15s %llu %399s", range, perms, &off, dev,
            &inode, path) >= 5 && strchr (range, '-'))
      g_snprintf (key, sizeof key, "%s %s", range, path);
    else if (sscanf (line, "Anonymous: %llu", &kb) == 1 && kb > 0)
      g_hash_table_insert (t, g_strdup (key), GSIZE_TO_POINTER ((gsize) kb));
  }
  fclose (f);
  return t;
}

static gdouble
cpu_seconds (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- the sample, decoded once */

static gboolean
prepare (GError ** error)
{
  gchar *desc = g_strdup_printf ("filesrc location=\"%s\" ! decodebin ! %s "
      "! appsink name=sink sync=false", S.sample, S.prep);
  GstElement *p = gst_parse_launch (desc, error);
  g_free (desc);
  if (!p)
    return FALSE;
  GstElement *sink = gst_bin_get_by_name (GST_BIN (p), "sink");
  GPtrArray *bufs = g_ptr_array_new_with_free_func ((GDestroyNotify) gst_buffer_unref);
  gst_element_set_state (p, GST_STATE_PLAYING);
  GstSample *s;
  while (TRUE) {
    g_signal_emit_by_name (sink, "pull-sample", &s);
    if (!s)
      break;
    if (!S.caps)
      S.caps = gst_caps_ref (gst_sample_get_caps (s));
    g_ptr_array_add (bufs, gst_buffer_ref (gst_sample_get_buffer (s)));
    gst_sample_unref (s);
  }
  GstMessage *msg = gst_bus_pop_filtered (GST_ELEMENT_BUS (p), GST_MESSAGE_ERROR);
  gst_element_set_state (p, GST_STATE_NULL);
  gst_object_unref (sink);
  gst_object_unref (p);
  if (msg || bufs->len == 0) {
    GError *e = NULL;
    if (msg)
      gst_message_parse_error (msg, &e, NULL);
    g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_FAILED,
        "cannot decode %s: %s", S.sample, e ? e->message : "no buffers");
    g_clear_error (&e);
    g_clear_pointer (&msg, gst_message_unref);
    g_ptr_array_unref (bufs);
    return FALSE;
  }
  if (S.audio) {
    /* whole chunks, so that the loop repeats the clip without a seam */
    GstBuffer *all = gst_buffer_new ();
    for (guint i = 0; i < bufs->len; i++)
      all = gst_buffer_append (all, gst_buffer_ref (g_ptr_array_index (bufs, i)));
    g_ptr_array_set_size (bufs, 0);
    const gsize step = AUDIO_CHUNK * 4, size = gst_buffer_get_size (all);
    for (gsize o = 0; o + step <= size; o += step) {
      GstMapInfo m;
      GstBuffer *b = gst_buffer_new_allocate (NULL, step, NULL);
      gst_buffer_map (b, &m, GST_MAP_WRITE);
      gst_buffer_extract (all, o, m.data, step);
      gst_buffer_unmap (b, &m);
      g_ptr_array_add (bufs, b);
    }
    gst_buffer_unref (all);
  }
  S.templates = bufs;
  return TRUE;
}

/* ---- probes (streaming threads) */

static GstPadProbeReturn
on_in (GstPad * pad, GstPadProbeInfo * info, gpointer data)
{
  GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER (info);
  const gint64 now = g_get_monotonic_time ();

  if (S.leak > 0) {
    /* the deliberate leak: written, so that it is resident */
    gpointer p = g_malloc (S.leak);
    memset (p, 0x5a, S.leak);
  }
  g_mutex_lock (&S.lock);
  S.frames_in++;
  if (S.audio) {
    S.samples_in += gst_buffer_get_size (buf) / 4;
    S.last_in = now;
    if (S.dry)
      gst_adapter_push (S.pending, gst_buffer_ref (buf));
  } else {
    g_queue_push_tail (&S.arrivals, GSIZE_TO_POINTER ((gsize) now));
  }
  g_mutex_unlock (&S.lock);
  return GST_PAD_PROBE_OK;
}

/* The dry output against the input not yet matched, bit for bit. */
static void
compare_dry (GstBuffer * buf)
{
  GstMapInfo m;
  gst_buffer_map (buf, &m, GST_MAP_READ);
  const gsize avail = gst_adapter_available (S.pending);
  const gsize n = MIN (avail, m.size);
  if (n > 0) {
    const guint8 *a = gst_adapter_map (S.pending, n);
    if (memcmp (a, m.data, n) != 0) {
      const guint32 *x = (const guint32 *) a, *y = (const guint32 *) m.data;
      for (gsize i = 0; i < n / 4; i++)
        if (x[i] != y[i]) {
          if (S.first_mismatch < 0)
            S.first_mismatch = S.compared + i;
          S.mismatched++;
        }
    }
    gst_adapter_unmap (S.pending);
    gst_adapter_flush (S.pending, n);
    S.compared += n / 4;
  }
  S.mismatched += (m.size - n) / 4;     /* output that had no input */
  gst_buffer_unmap (buf, &m);
}

static GstPadProbeReturn
on_out (GstPad * pad, GstPadProbeInfo * info, gpointer data)
{
  GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER (info);
  const gint64 now = g_get_monotonic_time ();
  gint64 start;

  g_mutex_lock (&S.lock);
  S.frames_out++;
  if (S.audio) {
    S.samples_out += gst_buffer_get_size (buf) / 4;
    start = S.last_in;
    S.last_in = -1;
    if (S.dry)
      compare_dry (buf);
  } else {
    start = g_queue_is_empty (&S.arrivals) ? now :
        (gint64) GPOINTER_TO_SIZE (g_queue_pop_head (&S.arrivals));
    if (S.last_out >= 0)
      start = MAX (start, S.last_out);
    S.last_out = now;
  }
  if (start >= 0 && !S.stopping) {
    const gdouble ms = (now - start) / 1000.0;
    g_array_append_val (S.frame_times, ms);
  }
  g_mutex_unlock (&S.lock);
  return GST_PAD_PROBE_OK;
}

/* ---- the source and the sampler */

static gpointer
feed (gpointer data)
{
  const gint64 deadline = S.start + (gint64) S.duration * G_USEC_PER_SEC;
  const guint n = S.templates->len;
  gint num = 12, den = 1;
  guint64 i = 0, ts = 0;

  if (!S.audio) {
    const GstStructure *st = gst_caps_get_structure (S.caps, 0);
    gint a, b;
    if (gst_structure_get_fraction (st, "framerate", &a, &b) && a > 0 && b > 0)
      num = a, den = b;
  }
  while (g_get_monotonic_time () < deadline && !g_atomic_int_get (&S.done)) {
    GstBuffer *b = gst_buffer_copy (g_ptr_array_index (S.templates, i % n));
    GST_BUFFER_FLAG_UNSET (b, GST_BUFFER_FLAG_DISCONT);
    if (S.audio) {
      GST_BUFFER_PTS (b) = gst_util_uint64_scale_int (ts, GST_SECOND, 48000);
      GST_BUFFER_DURATION (b) = gst_util_uint64_scale_int (ts + AUDIO_CHUNK,
          GST_SECOND, 48000) - GST_BUFFER_PTS (b);
      GST_BUFFER_OFFSET (b) = ts;
      GST_BUFFER_OFFSET_END (b) = ts + AUDIO_CHUNK;
      ts += AUDIO_CHUNK;
    } else {
      GST_BUFFER_PTS (b) = gst_util_uint64_scale_int (i, GST_SECOND * den, num);
      GST_BUFFER_DURATION (b) = gst_util_uint64_scale_int (i + 1,
          GST_SECOND * den, num) - GST_BUFFER_PTS (b);
      GST_BUFFER_OFFSET (b) = i;
    }
    if (gst_app_src_push_buffer (GST_APP_SRC (S.src), b) != GST_FLOW_OK)
      break;
    i++;
  }
  g_mutex_lock (&S.lock);
  S.stopping = TRUE;
  g_mutex_unlock (&S.lock);
  gst_app_src_end_of_stream (GST_APP_SRC (S.src));
  return NULL;
}

static gpointer
sample (gpointer data)
{
  const gint64 win = (gint64) S.window * G_USEC_PER_SEC;
  gint64 t_next = S.start + win, last_t = S.start;
  gdouble last_cpu = cpu_seconds ();
  guint64 last_out = 0, rss, anon, file;
  GArray *times = g_array_sized_new (FALSE, FALSE, sizeof (gdouble), 4096);

  read_rss (&rss, &anon, &file);
  guint64 rss_min = rss, rss_max = rss, anon_min = anon, anon_max = anon;
  guint64 heap = heap_bytes (), heap_min = heap, heap_max = heap;
  while (!g_atomic_int_get (&S.done)) {
    g_usleep (SAMPLE_US);
    read_rss (&rss, &anon, &file);
    heap = heap_bytes ();
    rss_min = MIN (rss_min, rss), rss_max = MAX (rss_max, rss);
    anon_min = MIN (anon_min, anon), anon_max = MAX (anon_max, anon);
    heap_min = MIN (heap_min, heap), heap_max = MAX (heap_max, heap);
    const gint64 now = g_get_monotonic_time ();
    if (now < t_next)
      continue;
    const gdouble cpu = cpu_seconds ();
    guint64 fin, fout, sin, sout;
    g_mutex_lock (&S.lock);
    /* swap the window's frame times out: no allocation once warm */
    g_array_set_size (times, 0);
    g_array_append_vals (times, S.frame_times->data, S.frame_times->len);
    g_array_set_size (S.frame_times, 0);
    fin = S.frames_in, fout = S.frames_out, sin = S.samples_in, sout = S.samples_out;
    g_mutex_unlock (&S.lock);
    gdouble med = -1.0;
    if (times->len > 0) {
      qsort (times->data, times->len, sizeof (gdouble), cmp_double);
      med = g_array_index (times, gdouble, times->len / 2);
    }
    const gdouble t = (now - S.start) / 1e6;
    double load[1] = { 0 };
    if (getloadavg (load, 1) < 1)
      load[0] = -1;
    struct mallinfo2 mi = mallinfo2 ();
    fprintf (S.out, "{\"t\": %.3f, \"dt\": %.3f, \"frames_in\": %" G_GUINT64_FORMAT
        ", \"frames_out\": %" G_GUINT64_FORMAT ", \"samples_in\": %" G_GUINT64_FORMAT
        ", \"samples_out\": %" G_GUINT64_FORMAT ", \"frames\": %" G_GUINT64_FORMAT
        ", \"cpu\": %.4f, \"rss_min\": %" G_GUINT64_FORMAT ", \"rss_max\": %"
        G_GUINT64_FORMAT ", \"anon_min\": %" G_GUINT64_FORMAT ", \"anon_max\": %"
        G_GUINT64_FORMAT ", \"rss_file\": %" G_GUINT64_FORMAT ", \"heap_min\": %"
        G_GUINT64_FORMAT ", \"heap_max\": %" G_GUINT64_FORMAT ", \"malloc_arena\": %zu"
        ", \"malloc_free\": %zu, \"frame_ms\": ", t, (now - last_t) / 1e6, fin, fout,
        sin, sout, fout - last_out, cpu - last_cpu, rss_min, rss_max, anon_min, anon_max,
        file, heap_min, heap_max, mi.arena, mi.fordblks);
    if (med >= 0)
      fprintf (S.out, "%.3f", med);
    else
      fputs ("null", S.out);
    fprintf (S.out, ", \"load\": %.2f}\n", load[0]);
    fflush (S.out);
    if (!S.smaps_warm && t > S.warmup)
      S.smaps_warm = read_smaps ();
    last_cpu = cpu, last_t = now, last_out = fout;
    rss_min = rss_max = rss, anon_min = anon_max = anon, heap_min = heap_max = heap;
    t_next += win;
  }
  g_array_unref (times);
  return NULL;
}

typedef struct
{
  gint64 kb;
  const gchar *key;
} Grew;

static int
cmp_grew (const void *a, const void *b)
{
  const Grew *x = a, *y = b;
  return (y->kb > x->kb) - (y->kb < x->kb);
}

/* Where the resident anonymous memory grew since the warm-up. */
static void
report_smaps (void)
{
  if (!S.smaps_warm)
    return;
  GHashTable *end = read_smaps ();
  GArray *g = g_array_new (FALSE, FALSE, sizeof (Grew));
  GHashTableIter it;
  gpointer k, v;
  g_hash_table_iter_init (&it, end);
  while (g_hash_table_iter_next (&it, &k, &v)) {
    Grew e = { (gint64) GPOINTER_TO_SIZE (v) -
          (gint64) GPOINTER_TO_SIZE (g_hash_table_lookup (S.smaps_warm, k)), k };
    if (e.kb != 0)
      g_array_append_val (g, e);
  }
  g_array_sort (g, cmp_grew);
  fputs ("{\"event\": \"smaps\", \"grew_kb\": [", S.out);
  for (guint i = 0; i < MIN (g->len, 8u); i++) {
    Grew *e = &g_array_index (g, Grew, i);
    fprintf (S.out, "%s[%" G_GINT64_FORMAT ", ", i ? ", " : "", e->kb);
    json_string (S.out, e->key);
    fputc (']', S.out);
  }
  fputs ("]}\n", S.out);
  g_array_unref (g);
  g_hash_table_unref (end);
}

int
main (int argc, char **argv)
{
  GError *error = NULL;
  GOptionEntry entries[] = {
    {"sample", 0, 0, G_OPTION_ARG_FILENAME, &S.sample, "input file", "FILE"},
    {"prep", 0, 0, G_OPTION_ARG_STRING, &S.prep, "after decodebin", "CHAIN"},
    {"element", 0, 0, G_OPTION_ARG_STRING, &S.element, "the element", "DESC"},
    {"post", 0, 0, G_OPTION_ARG_STRING, &S.post, "after the element", "CHAIN"},
    {"report", 0, 0, G_OPTION_ARG_FILENAME, &S.report, "JSON lines out", "FILE"},
    {"audio", 0, 0, G_OPTION_ARG_NONE, &S.audio, "F32 mono 48 kHz audio", NULL},
    {"dry", 0, 0, G_OPTION_ARG_NONE, &S.dry, "output must be the input", NULL},
    {"duration", 0, 0, G_OPTION_ARG_INT, &S.duration, "seconds", "S"},
    {"window", 0, 0, G_OPTION_ARG_INT, &S.window, "seconds per record", "S"},
    {"warmup", 0, 0, G_OPTION_ARG_INT, &S.warmup, "seconds", "S"},
    {"eos-timeout", 0, 0, G_OPTION_ARG_INT, &S.eos_timeout, "seconds", "S"},
    {"leak-per-frame", 0, 0, G_OPTION_ARG_INT, &S.leak, "bytes to leak a buffer", "N"},
    {NULL}
  };
  S.duration = 60, S.window = 2, S.warmup = 15, S.eos_timeout = 120;
  GOptionContext *ctx = g_option_context_new ("- one element of bench/soak.py");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_add_group (ctx, gst_init_get_option_group ());
  if (!g_option_context_parse (ctx, &argc, &argv, &error)
      || !S.sample || !S.prep || !S.element || !S.post || !S.report) {
    g_printerr ("soak-child: %s\n", error ? error->message :
        "--sample, --prep, --element, --post and --report are needed");
    return 2;
  }
  g_option_context_free (ctx);
  gst_init (NULL, NULL);

  S.out = fopen (S.report, "w");
  if (!S.out) {
    g_printerr ("soak-child: cannot write %s\n", S.report);
    return 2;
  }
  g_mutex_init (&S.lock);
  g_queue_init (&S.arrivals);
  S.frame_times = g_array_sized_new (FALSE, FALSE, sizeof (gdouble), 4096);
  S.pending = gst_adapter_new ();
  S.last_in = S.last_out = S.first_mismatch = -1;

  gint64 t0 = g_get_monotonic_time ();
  if (!prepare (&error)) {
    g_printerr ("soak-child: %s\n", error->message);
    return 1;
  }
  gchar *caps = gst_caps_to_string (S.caps);
  fputs ("{\"event\": \"prepared\", \"pipeline\": ", S.out);
  json_string (S.out, S.element);
  fprintf (S.out, ", \"buffers\": %u, \"seconds\": %.3f, \"caps\": ",
      S.templates->len, (g_get_monotonic_time () - t0) / 1e6);
  json_string (S.out, caps);
  fputs ("}\n", S.out);
  g_free (caps);

  gchar *desc = g_strdup_printf ("appsrc name=src format=time is-live=false "
      "block=true max-buffers=2 ! queue max-size-buffers=2 max-size-bytes=0 "
      "max-size-time=0 ! %s name=el ! %s ! fakesink sync=false", S.element, S.post);
  S.pipeline = gst_parse_launch (desc, &error);
  g_free (desc);
  if (!S.pipeline) {
    g_printerr ("soak-child: %s\n", error->message);
    return 1;
  }
  S.src = gst_bin_get_by_name (GST_BIN (S.pipeline), "src");
  S.el = gst_bin_get_by_name (GST_BIN (S.pipeline), "el");
  g_object_set (S.src, "caps", S.caps, NULL);
  GstPad *sink = gst_element_get_static_pad (S.el, "sink");
  GstPad *src = gst_element_get_static_pad (S.el, "src");
  gst_pad_add_probe (sink, GST_PAD_PROBE_TYPE_BUFFER, on_in, NULL, NULL);
  gst_pad_add_probe (src, GST_PAD_PROBE_TYPE_BUFFER, on_out, NULL, NULL);
  gst_object_unref (sink);
  gst_object_unref (src);

  GstBus *bus = gst_element_get_bus (S.pipeline);
  gst_element_set_state (S.pipeline, GST_STATE_PLAYING);
  S.start = g_get_monotonic_time ();
  GThread *sampler = g_thread_new ("soak-sampler", sample, NULL);
  GThread *feeder = g_thread_new ("soak-feeder", feed, NULL);
  const gint64 limit = S.start + (gint64) (S.duration + S.eos_timeout) * G_USEC_PER_SEC;
  GString *errors = g_string_new (NULL);
  gboolean eos = FALSE;
  while (TRUE) {
    GstMessage *msg = gst_bus_timed_pop_filtered (bus, GST_SECOND,
        GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
    if (msg && GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
      GError *e = NULL;
      gchar *dbg = NULL;
      gst_message_parse_error (msg, &e, &dbg);
      g_string_append_printf (errors, "%s (%s)", e->message, dbg ? dbg : "");
      g_clear_error (&e);
      g_free (dbg);
    } else if (msg) {
      eos = TRUE;
    }
    g_clear_pointer (&msg, gst_message_unref);
    if (eos || errors->len)
      break;
    if (g_get_monotonic_time () > limit) {
      g_string_append_printf (errors, "no EOS %d s after the end", S.eos_timeout);
      break;
    }
  }
  g_atomic_int_set (&S.done, 1);
  g_thread_join (sampler);
  report_smaps ();
  gchar *stats = NULL;
  if (g_object_class_find_property (G_OBJECT_GET_CLASS (S.el), "stats")) {
    GValue v = G_VALUE_INIT;
    g_object_get_property (G_OBJECT (S.el), "stats", &v);
    stats = G_VALUE_HOLDS_STRING (&v) ? g_value_dup_string (&v) :
        g_strdup_value_contents (&v);
    g_value_unset (&v);
  }
  /* the feeder ends on its own at EOS or blocks on a pipeline that failed:
   * flushing it out by stopping the pipeline */
  gst_element_set_state (S.pipeline, GST_STATE_NULL);
  g_thread_join (feeder);

  guint64 rss, anon, file;
  read_rss (&rss, &anon, &file);
  g_mutex_lock (&S.lock);
  fprintf (S.out, "{\"event\": \"end\", \"eos\": %s, \"seconds\": %.3f, \"frames_in\": %"
      G_GUINT64_FORMAT ", \"frames_out\": %" G_GUINT64_FORMAT ", \"samples_in\": %"
      G_GUINT64_FORMAT ", \"samples_out\": %" G_GUINT64_FORMAT ", \"rss\": %"
      G_GUINT64_FORMAT ", \"cpu\": %.3f", eos ? "true" : "false",
      (g_get_monotonic_time () - S.start) / 1e6, S.frames_in, S.frames_out,
      S.samples_in, S.samples_out, rss, cpu_seconds ());
  if (S.dry)
    fprintf (S.out, ", \"compared\": %" G_GUINT64_FORMAT ", \"mismatched\": %"
        G_GUINT64_FORMAT ", \"first_mismatch\": %" G_GINT64_FORMAT
        ", \"unmatched_input\": %" G_GSIZE_FORMAT, S.compared, S.mismatched,
        S.first_mismatch, gst_adapter_available (S.pending) / 4);
  fputs (", \"errors\": [", S.out);
  if (errors->len)
    json_string (S.out, errors->str);
  fputs ("], \"stats\": ", S.out);
  if (stats)
    json_string (S.out, stats);
  else
    fputs ("null", S.out);
  fputs ("}\n", S.out);
  g_mutex_unlock (&S.lock);
  fclose (S.out);
  g_free (stats);
  g_string_free (errors, TRUE);
  gst_object_unref (bus);
  gst_object_unref (S.src);
  gst_object_unref (S.el);
  gst_object_unref (S.pipeline);
  return 0;
}
