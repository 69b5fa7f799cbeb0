/* ge-image.h: the 8-bit interleaved images the image tasks take and give.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* An interleaved 8-bit image: @pixel_stride bytes per pixel, the colour
 * channels at byte offsets r, g, b, and alpha at @a (-1: none). */
typedef struct {
  guint8 *data;
  int width, height, stride;
  int pixel_stride, r, g, b, a;
} GeImageU8;

/* The models' range: 8-bit 0..255 <-> [-1, 1], rounded half up and clamped
 * on the way back. */
static inline float
ge_u8_to_unit (guint8 v)
{
  return v / 127.5f - 1.0f;
}

static inline guint8
ge_unit_to_u8 (float v)
{
  float f = (v + 1.0f) * 127.5f + 0.5f;
  return f <= 0 ? 0 : f >= 255 ? 255 : (guint8) f;
}

G_END_DECLS
