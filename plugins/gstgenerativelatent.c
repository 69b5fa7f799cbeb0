/* gstgenerativelatent.c: see gstgenerativelatent.h. */
#include "gstgenerativelatent.h"

/* Annotations for gstlatentmeta.h's functions, read by g-ir-scanner. */

/**
 * gst_buffer_add_latent_meta: (skip)
 *
 * For vaeencode: bindings read latents, they do not attach them.
 */

/**
 * gst_latent_meta_api_get_type:
 *
 * Returns: the API type of the latent meta, "GstLatentMetaAPI"
 */

GstLatentMeta *
gst_generative_buffer_get_latent_meta (GstBuffer * buffer)
{
  g_return_val_if_fail (GST_IS_BUFFER (buffer), NULL);

  /* This library registers the API type itself, so a binding can ask
   * before any vaeencode exists: the answer is then simply "none". */
  return (GstLatentMeta *) gst_buffer_get_meta (buffer,
      gst_latent_meta_api_get_type ());
}

const gfloat *
gst_latent_meta_get_values (GstLatentMeta * meta, gsize * n_values)
{
  g_return_val_if_fail (meta != NULL, NULL);

  if (n_values)
    *n_values = meta->data ?
        (gsize) meta->channels * meta->height * meta->width : 0;
  return meta->data;
}

gfloat
gst_latent_meta_get_value (GstLatentMeta * meta, gint channel, gint y, gint x)
{
  g_return_val_if_fail (meta != NULL, 0.0f);

  if (!meta->data || channel < 0 || channel >= meta->channels || y < 0
      || y >= meta->height || x < 0 || x >= meta->width)
    return 0.0f;
  return meta->data[((gsize) channel * meta->height + y) * meta->width + x];
}
