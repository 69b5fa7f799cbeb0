/* patch_scan.h: exhaustive patch matching (internal to patchmatch.c).
 *
 * The sums of squared differences of up to GE_PATCH_SCAN_N masked 7x7 RGB
 * templates against the patch at every position of a band of rows of an
 * 8-bit RGB image, exactly.  patchmatch.c's onion fill compares every ring
 * pixel with every source this way.
 *
 * A template is the taps of its patch that are known (mask m = 1) with
 * their values t.  Against a patch s:
 *
 *   sum m (t - s)^2 = sum m t^2 + sum (-2 m t) s + sum m s^2
 *
 * The first sum is the template's own constant.  The other two are one
 * correlation of the template's weights (-2 m t, m) with the image planes
 * (s, s^2): a direct convolution with the templates as output channels,
 * 16 positions of a row in each vector, no im2col.  Every value is an
 * integer, so each arithmetic gives the exact sum:
 *   f32    FMAs on (s, s^2) planes.  Products are at most 2 * 255^2; each
 *          tap adds m ((s - t)^2 - t^2), so every partial sum stays within
 *          147 * 255^2 + 2 * 255^2 < 2^24, where floats are integers.
 *   int8   (the engine's integer precision, AVX512-VNNI) vpdpwssd on 16-bit
 *          pairs (s, s^2 - 32768) x (-2 m t, m): half the instructions of
 *          the f32 FMAs.  The shift keeps s^2 in int16; the constant adds
 *          32768 sum m back.
 *   scalar the same sums per tap in C, where the CPU has no AVX-512.
 * The three agree bit for bit.  Taps no template of the group uses are
 * skipped: near a hole most of a ring pixel's patch is unknown.
 */
#pragma once

#include <glib.h>
#include "ge-precision.h"
#include "patchmatch.h"

G_BEGIN_DECLS

#define GE_PATCH_SCAN_N 8
#define GE_PATCH_SCAN_TAPS ((2 * GE_PATCHMATCH_RADIUS + 1) * (2 * GE_PATCHMATCH_RADIUS + 1) * 3)

typedef enum {
  GE_PATCH_SCAN_SCALAR,
  GE_PATCH_SCAN_F32,
  GE_PATCH_SCAN_INT8,
} GePatchScanKind;

/* The kernel @precision runs here: INT8 where the CPU has AVX512-VNNI (and
 * the engine's int8 is on), F32 where it has AVX-512, SCALAR elsewhere. */
GePatchScanKind ge_patch_scan_kind (GePrecision precision);

/* A group of templates, with their union of used taps. */
typedef struct {
  int n, n_taps;
  guint8 tap[GE_PATCH_SCAN_TAPS];       /* used taps: ((dy + R) * P + dx + R) * 3 + c */
  guint8 m[GE_PATCH_SCAN_N][GE_PATCH_SCAN_TAPS], t[GE_PATCH_SCAN_N][GE_PATCH_SCAN_TAPS];
  gint64 c[GE_PATCH_SCAN_N];    /* sum m t^2 */
} GePatchScanGroup;

/* Starts an empty group. */
void ge_patch_scan_group_init (GePatchScanGroup * g);
/* Adds the template of the patch of @rgb (@w x @h) centred on (@px, @py):
 * its taps are the pixels inside the image where @known is not 0.  At most
 * GE_PATCH_SCAN_N a group. */
void ge_patch_scan_group_add (GePatchScanGroup * g, const guint8 * rgb, const guint8 * known,
    int w, int h, int px, int py);

/* The rows of a band for images @w wide, and the bytes of work space a
 * band needs (one per thread). */
int ge_patch_scan_band_rows (int w);
gsize ge_patch_scan_bytes (int w);

/* The scores of the group against the patches centred on rows [@y0, @y1)
 * (within [R, h - R), at most ge_patch_scan_band_rows (w) of them) and
 * columns [R, w - R): sum m (t - s)^2, exactly, where pixels of @hole (not
 * 0) read as 0 and are not read at all: the caller may be filling them.
 * Only positions where @ok (w x h bytes) is not 0 are asked for later;
 * runs of positions without one may be left out.
 * @scratch: the band's work space (8-byte aligned). */
void ge_patch_scan_band (GePatchScanKind kind, const GePatchScanGroup * g, const guint8 * rgb,
    const guint8 * hole, const guint8 * ok, int w, int h, int y0, int y1, void *scratch);

/* The band's planes of the image are made on its first call after this
 * and kept while the band stays the same: between calls only pixels of
 * @hole may change (the fill writes nothing else).  Call it on new work
 * space, and before a new image or level. */
void ge_patch_scan_forget (void *scratch);

/* Over the band's positions where @ok (the image's w x h bytes) is not 0,
 * for each of the group's @n templates: @best[j] lowers to the least
 * score; then, in ge_patch_scan_within, @count[j] grows by the positions
 * whose score is at most @thr[j], and those of rank (in raster order,
 * counting the bands before) [@first[j], @first[j] + @cap) are written,
 * as pixel indices y w + x, to @out[j * cap + rank - first[j]].  @kind:
 * the band's. */
void ge_patch_scan_least (GePatchScanKind kind, const void *scratch, const guint8 * ok, int w,
    int y0, int y1, int n, gint32 * best);
void ge_patch_scan_within (GePatchScanKind kind, const void *scratch, const guint8 * ok, int w,
    int y0, int y1, int n, const gint32 * thr, const gint32 * first, int cap, gint32 * count,
    gint32 * out);

G_END_DECLS
