/* GStreamer generative plugin
 * Copyright (C) 2025 gst-generative contributors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/* gstlatentcaps.c: see gstlatentcaps.h. */
#include "gstlatentcaps.h"

#include <float.h>
#include <math.h>

gboolean
gst_latent_caps_parse_dims (const gchar * dims, gint * w, gint * h, gint * c)
{
  gchar **parts;
  gint v[4] = { 1, 1, 1, 1 }, n, k;
  gboolean ok = TRUE;

  if (!dims)
    return FALSE;
  parts = g_strsplit (dims, ":", -1);
  n = g_strv_length (parts);
  ok = n >= 3 && n <= 4;
  for (k = 0; ok && k < n; k++) {
    gchar *end;
    gint64 x = g_ascii_strtoll (parts[k], &end, 10);

    ok = end != parts[k] && *end == '\0' && x >= 1 && x <= 65535;
    v[k] = (gint) x;
  }
  g_strfreev (parts);
  if (!ok || v[3] != 1)
    return FALSE;
  *w = v[0];
  *h = v[1];
  *c = v[2];
  return TRUE;
}

/* Sets @out's framerate to @in's as far as it is one of the templates'
 * ([ 0, MAX ], all of it when @in has none); FALSE when none of it is. */
static gboolean
copy_framerate (const GstStructure * in, GstStructure * out)
{
  const GValue *fr = gst_structure_get_value (in, "framerate");
  GValue any = G_VALUE_INIT, both = G_VALUE_INIT;
  gboolean ok = TRUE;

  g_value_init (&any, GST_TYPE_FRACTION_RANGE);
  gst_value_set_fraction_range_full (&any, 0, 1, G_MAXINT, 1);
  if (!fr)
    gst_structure_set_value (out, "framerate", &any);
  else if ((ok = gst_value_intersect (&both, fr, &any)))
    gst_structure_take_value (out, "framerate", &both);
  g_value_unset (&any);
  return ok;
}

/* TRUE with the fixed ints @a and @b of @s, FALSE when either is absent or
 * not fixed; *@bad when both are fixed but not 1 to 65535. */
static gboolean
get_size (const GstStructure * s, const gchar * a, const gchar * b, gint * w,
    gint * h, gboolean * bad)
{
  if (!gst_structure_get_int (s, a, w) || !gst_structure_get_int (s, b, h))
    return FALSE;
  *bad = *w < 1 || *w > 65535 || *h < 1 || *h > 65535;
  return TRUE;
}

GstCaps *
gst_latent_caps_from_video (GstCaps * caps, gint factor, gint channels,
    gdouble scaling)
{
  GstCaps *res = gst_caps_new_empty ();
  const gboolean loaded = factor > 0;
  guint i, n = gst_caps_get_size (caps);

  for (i = 0; i < n; i++) {
    GstStructure *in = gst_caps_get_structure (caps, i);
    GstStructure *out = gst_structure_from_string (GST_VAE_LATENT_CAPS, NULL);
    gint w, h;
    gboolean bad = FALSE, sized = get_size (in, "width", "height", &w, &h,
        &bad);

    if (!copy_framerate (in, out) || bad) {
      gst_structure_free (out);
      continue;
    }
    if (loaded) {
      /* scaling-factor: the model's, for whoever wants the diffusion
       * scale; applied-scaling-factor: what the latents were multiplied
       * by (ours: 1, the autoencoder's own latents). */
      gst_structure_set (out, "downsample-factor", G_TYPE_INT, factor,
          "scaling-factor", G_TYPE_DOUBLE, scaling,
          "applied-scaling-factor", G_TYPE_DOUBLE, 1.0, NULL);
      if (sized) {
        gchar *dims = g_strdup_printf ("%d:%d:%d:1", (w + factor - 1) / factor,
            (h + factor - 1) / factor, channels);

        gst_structure_set (out, "dimensions", G_TYPE_STRING, dims,
            "video-width", G_TYPE_INT, w, "video-height", G_TYPE_INT, h, NULL);
        g_free (dims);
      }
    }
    res = gst_caps_merge_structure (res, out);
  }
  return res;
}

GstCaps *
gst_latent_caps_to_video (GstCaps * caps, gint factor, gint channels)
{
  GstCaps *res = gst_caps_new_empty ();
  const gboolean loaded = factor > 0;
  guint i, n = gst_caps_get_size (caps);

  for (i = 0; i < n; i++) {
    GstStructure *in = gst_caps_get_structure (caps, i);
    GstStructure *out = gst_structure_from_string (GST_VAE_VIDEO_CAPS, NULL);
    gint w, h, lw, lh, lc;
    gboolean bad = FALSE;

    if (!copy_framerate (in, out)) {
      gst_structure_free (out);
      continue;
    }
    if (get_size (in, "video-width", "video-height", &w, &h, &bad)) {
      if (bad) {
        gst_structure_free (out);
        continue;
      }
      gst_structure_set (out, "width", G_TYPE_INT, w, "height", G_TYPE_INT, h,
          NULL);
    } else if (loaded && gst_latent_caps_parse_dims (gst_structure_get_string
            (in, "dimensions"), &lw, &lh, &lc)
        && lw * (gint64) factor <= 65535 && lh * (gint64) factor <= 65535) {
      gst_structure_set (out, "width", G_TYPE_INT, lw * factor, "height",
          G_TYPE_INT, lh * factor, NULL);
    }
    res = gst_caps_merge_structure (res, out);
  }
  return res;
}

GstLatentCapsCheck
gst_latent_caps_check (GstCaps * caps, gint factor, gint channels,
    gint video_w, gint video_h, gint * lw, gint * lh, gint * c, gint * f)
{
  GstStructure *s;
  const gchar *types;
  gint nt = 0;
  gboolean has_f;

  g_return_val_if_fail (factor >= 1, GST_LATENT_CAPS_OTHER_MODEL);
  *lw = *lh = *c = *f = 0;
  if (gst_caps_get_size (caps) < 1)
    return GST_LATENT_CAPS_NOT_TENSOR;
  s = gst_caps_get_structure (caps, 0);
  types = gst_structure_get_string (s, "types");
  if (!gst_structure_get_int (s, "num_tensors", &nt) || nt != 1
      || g_strcmp0 (types, "float32") != 0
      || !gst_latent_caps_parse_dims (gst_structure_get_string (s,
              "dimensions"), lw, lh, c))
    return GST_LATENT_CAPS_NOT_TENSOR;
  has_f = gst_structure_get_int (s, "downsample-factor", f);
  if (!has_f)
    *f = 0;
  if (*c != channels || (has_f && *f != factor))
    return GST_LATENT_CAPS_OTHER_MODEL;
  if ((video_w + (gint64) factor - 1) / factor != *lw
      || (video_h + (gint64) factor - 1) / factor != *lh)
    return GST_LATENT_CAPS_OTHER_SIZE;
  if ((gint64) *lw * factor * *lh * factor > GST_LATENT_MAX_PIXELS)
    return GST_LATENT_CAPS_TOO_LARGE;
  return GST_LATENT_CAPS_OK;
}

gboolean
gst_latent_caps_applied_scaling (GstCaps * caps, gdouble * scaling)
{
  gfloat inverse;

  *scaling = 1.0;
  if (gst_caps_get_size (caps) < 1
      || !gst_structure_has_field (gst_caps_get_structure (caps, 0),
          "applied-scaling-factor"))
    return TRUE;
  if (!gst_structure_get_double (gst_caps_get_structure (caps, 0),
          "applied-scaling-factor", scaling)) {
    *scaling = NAN;             /* a field of another type */
    return FALSE;
  }
  inverse = (gfloat) (1.0 / *scaling);
  return *scaling > 0.0 && isfinite (inverse) && inverse >= FLT_MIN;
}
