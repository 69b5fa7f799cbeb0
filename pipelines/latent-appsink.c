/* latent-appsink: read the latents that vaeencode attaches to video frames.
 *
 *   latent-appsink VIDEO_FILE [MAX_FRAMES]
 *
 * Runs `filesrc ! decodebin ! videoconvert ! vaeencode output-mode=attach !
 * appsink` and prints, for each frame, its time, the latent's size and the
 * mean and standard deviation of each latent channel, read from the
 * GstLatentMeta with nothing but the installed header gstlatentmeta.h: an
 * application that indexes frames by their latents (similarity search,
 * scene-change detection) starts from here.
 */
#include <gst/gst.h>
#include <gst/app/gstappsink.h>
#include <math.h>
#include <stdlib.h>

#include "gstlatentmeta.h"

int
main (int argc, char **argv)
{
  GstElement *pipe, *sink;
  GError *err = NULL;
  gchar *launch;
  int max_frames, n = 0, status = 0;

  gst_init (&argc, &argv);
  if (argc < 2) {
    g_printerr ("usage: %s VIDEO_FILE [MAX_FRAMES]\n", argv[0]);
    return 2;
  }
  max_frames = argc > 2 ? atoi (argv[2]) : 10;
  launch = g_strdup_printf ("filesrc location=\"%s\" ! decodebin ! "
      "videoconvert ! vaeencode output-mode=attach ! appsink name=sink "
      "sync=false", argv[1]);
  pipe = gst_parse_launch (launch, &err);
  g_free (launch);
  if (!pipe) {
    g_printerr ("pipeline: %s\n", err->message);
    return 1;
  }
  sink = gst_bin_get_by_name (GST_BIN (pipe), "sink");
  gst_element_set_state (pipe, GST_STATE_PLAYING);

  while (n < max_frames) {
    GstSample *sample = gst_app_sink_pull_sample (GST_APP_SINK (sink));
    GstBuffer *buf;
    GstLatentMeta *m;

    if (!sample)
      break;                    /* EOS or error */
    buf = gst_sample_get_buffer (sample);
    m = gst_buffer_get_latent_meta (buf);
    if (!m) {
      g_printerr ("frame without a latent\n");
      status = 1;
      gst_sample_unref (sample);
      break;
    }
    g_print ("%" GST_TIME_FORMAT "  latent %dx%dx%d (factor %d)",
        GST_TIME_ARGS (GST_BUFFER_PTS (buf)), m->width, m->height,
        m->channels, m->factor);
    for (int c = 0; c < m->channels; c++) {
      const gsize plane = (gsize) m->width * m->height;
      const gfloat *z = m->data + c * plane;
      double s = 0, s2 = 0;

      for (gsize i = 0; i < plane; i++) {
        s += z[i];
        s2 += (double) z[i] * z[i];
      }
      s /= plane;
      g_print ("  c%d %+.3f/%.3f", c, s, sqrt (MAX (s2 / plane - s * s, 0)));
    }
    g_print ("\n");
    gst_sample_unref (sample);
    n++;
  }

  {
    GstBus *bus = gst_element_get_bus (pipe);
    GstMessage *msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);

    if (msg) {
      gchar *dbg = NULL;

      gst_message_parse_error (msg, &err, &dbg);
      g_printerr ("error: %s (%s)\n", err->message, dbg ? dbg : "");
      g_clear_error (&err);
      g_free (dbg);
      gst_message_unref (msg);
      status = 1;
    }
    gst_object_unref (bus);
  }
  if (n == 0)
    status = 1;
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (sink);
  gst_object_unref (pipe);
  return status;
}
