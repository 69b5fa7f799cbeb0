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
 * plugin-generative:
 *
 * Elements that run diffusion, VAE and GAN models (super-resolution,
 * inpainting, img2img, latent encode/decode, audio synthesis) on the
 * gst-generative engine.
 */

/* PACKAGE, PACKAGE_VERSION, GST_LICENSE, GST_PACKAGE_NAME and
 * GST_PACKAGE_ORIGIN come from plugins/meson.build. */
#include <gst/gst.h>

/* Each element file adds its GST_ELEMENT_REGISTER_DECLARE (name) here, e.g.
 *   GST_ELEMENT_REGISTER_DECLARE (diffusionsr);
GST_ELEMENT_REGISTER_DECLARE (diffusioninpaint);
 * and a matching GST_ELEMENT_REGISTER (name, plugin) in plugin_init. */
GST_ELEMENT_REGISTER_DECLARE (diffusionsr);
GST_ELEMENT_REGISTER_DECLARE (diffusioninpaint);
GST_ELEMENT_REGISTER_DECLARE (vaeencode);
GST_ELEMENT_REGISTER_DECLARE (vaedecode);
GST_ELEMENT_REGISTER_DECLARE (diffusionimg2img);
GST_ELEMENT_REGISTER_DECLARE (gansynth);

static gboolean
plugin_init (GstPlugin * plugin)
{
  gboolean ret = FALSE;

  ret |= GST_ELEMENT_REGISTER (diffusionsr, plugin);
  ret |= GST_ELEMENT_REGISTER (diffusioninpaint, plugin);
  ret |= GST_ELEMENT_REGISTER (vaeencode, plugin);
  ret |= GST_ELEMENT_REGISTER (vaedecode, plugin);
  ret |= GST_ELEMENT_REGISTER (diffusionimg2img, plugin);
  ret |= GST_ELEMENT_REGISTER (gansynth, plugin);

  return ret;
}

GST_PLUGIN_DEFINE (GST_VERSION_MAJOR,
    GST_VERSION_MINOR,
    generative,
    "Diffusion, VAE and GAN model inference",
    plugin_init, PACKAGE_VERSION, GST_LICENSE, GST_PACKAGE_NAME,
    GST_PACKAGE_ORIGIN)
