/* gstlatentmeta.c: see gstlatentmeta.h. */
#include "gstlatentmeta.h"

#include <string.h>
#include <gst/video/video.h>

GType
gst_latent_meta_api_get_type (void)
{
  static GType type = 0;
  static const gchar *tags[] = { GST_META_TAG_VIDEO_STR,
    GST_META_TAG_VIDEO_SIZE_STR, GST_META_TAG_VIDEO_ORIENTATION_STR, NULL
  };

  if (g_once_init_enter (&type)) {
    GType t = gst_meta_api_type_register (GST_LATENT_META_API_NAME, tags);
    g_once_init_leave (&type, t);
  }
  return type;
}

static gboolean
gst_latent_meta_init (GstMeta * meta, gpointer params, GstBuffer * buffer)
{
  GstLatentMeta *m = (GstLatentMeta *) meta;

  m->width = m->height = m->channels = m->factor = 0;
  m->scaling_factor = 1.0;
  m->data = NULL;
  return TRUE;
}

static void
gst_latent_meta_free (GstMeta * meta, GstBuffer * buffer)
{
  g_clear_pointer (&((GstLatentMeta *) meta)->data, g_free);
}

/* Only whole-buffer copies keep the latent: a region copy, a scale or any
 * other transformation would leave it describing other pixels. */
static gboolean
gst_latent_meta_transform (GstBuffer * dest, GstMeta * meta,
    GstBuffer * buffer, GQuark type, gpointer data)
{
  GstLatentMeta *m = (GstLatentMeta *) meta;

  if (!GST_META_TRANSFORM_IS_COPY (type))
    return FALSE;
  if (((GstMetaTransformCopy *) data)->region)
    return FALSE;
  return gst_buffer_add_latent_meta (dest, m->width, m->height, m->channels,
      m->factor, m->scaling_factor, m->data) != NULL;
}

const GstMetaInfo *
gst_latent_meta_get_info (void)
{
  static const GstMetaInfo *info = NULL;

  if (g_once_init_enter ((GstMetaInfo **) & info)) {
    const GstMetaInfo *mi = gst_meta_register (gst_latent_meta_api_get_type (),
        "GstLatentMeta", sizeof (GstLatentMeta), gst_latent_meta_init,
        gst_latent_meta_free, gst_latent_meta_transform);
    g_once_init_leave ((GstMetaInfo **) & info, (GstMetaInfo *) mi);
  }
  return info;
}

GstLatentMeta *
gst_buffer_add_latent_meta (GstBuffer * buffer, gint width, gint height,
    gint channels, gint factor, gdouble scaling_factor, const gfloat * data)
{
  GstLatentMeta *m;
  gsize n = 0, bytes = 0;

  g_return_val_if_fail (GST_IS_BUFFER (buffer), NULL);
  g_return_val_if_fail (width > 0 && height > 0 && channels > 0, NULL);
  g_return_val_if_fail (data != NULL, NULL);
  /* Three ints can overflow a size: the copy would then be shorter than
   * the latent the meta describes. */
  g_return_val_if_fail (g_size_checked_mul (&n, width, height)
      && g_size_checked_mul (&n, n, channels)
      && g_size_checked_mul (&bytes, n, sizeof (gfloat)), NULL);
  m = (GstLatentMeta *) gst_buffer_add_meta (buffer,
      gst_latent_meta_get_info (), NULL);
  if (!m)
    return NULL;
  m->width = width;
  m->height = height;
  m->channels = channels;
  m->factor = factor;
  m->scaling_factor = scaling_factor;
  m->data = g_memdup2 (data, bytes);
  return m;
}
