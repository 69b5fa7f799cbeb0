/* patchmatch.h: exemplar fill of a hole with patches of the pixels around
 * it (internal to the inpainting task, engine/tasks/inpaint.c).
 *
 * Wexler, Shechtman and Irani, "Space-time completion of video" (PAMI 2007),
 * with the nearest-neighbour fields of Barnes et al., "PatchMatch" (SIGGRAPH
 * 2009): coarse to fine over a pyramid, every patch that overlaps the hole
 * looks for the most similar patch of known pixels (sum of squared
 * differences of 8-bit RGB, exact in integers), and each hole pixel is the
 * average of what the patches over it copy (the "vote").  The finest level
 * ends with each hole pixel taken from its own patch's match instead of the
 * vote's average, so that the fill keeps the exemplars' texture: averaging
 * 49 slightly misaligned copies is a blur.
 *
 * Every step is integer arithmetic (or float arithmetic on integers small
 * enough to be exact: patch_scan.h, the coarsest level's exhaustive search)
 * and the draws of the random search come
 * from the engine's counter-based generator (Philox4x32-10 keyed by the
 * seed, stream 2) at the pixel's position in the frame, so the fill is a
 * pure function of the box's bytes, the seed and the box's position: the
 * same on every machine and every thread count (the search runs in a fixed
 * number of row bands, each propagating only within itself), and another
 * seed gives another plausible fill.  tests/golden/make_inpaint_golden.py
 * has an independent numpy implementation.
 */
#pragma once

#include <glib.h>
#include "ge-pool.h"
#include "ge-precision.h"

G_BEGIN_DECLS

/* 7x7 patches. */
#define GE_PATCHMATCH_RADIUS 3

typedef struct {
  int em_iters;                 /* search + vote rounds per level (4) */
  int coarse_em_iters;          /* at the coarsest level (6) */
  int passes;                   /* propagation passes per search, alternating scan order (2) */
  gboolean centre_pick;         /* finest level: each pixel from its own patch's match (TRUE) */
  int coarse_min_side;          /* no level with a side under this (56); the pyramid also
                                 * stops once the hole spans at most two patches */
  GePrecision precision;        /* the onion fill's arithmetic (patch_scan.h): INT8 or
                                 * anything else (F32); the same bytes either way */
} GePatchMatchParams;

void ge_patchmatch_params_init (GePatchMatchParams * p);

/* Bytes of work space ge_patchmatch_fill needs for a @w x @h image on a
 * pool of @n_threads. */
gsize ge_patchmatch_scratch_bytes (int w, int h, int n_threads);

/* Fills the pixels of @rgb (@w x @h, 3 bytes a pixel, 3 @w bytes a row)
 * where @hole is not 0, in place, from patches of its other pixels.
 * (@frame_x0, @frame_y0): the image's position in the frame, which keys the
 * draws.  @scratch: ge_patchmatch_scratch_bytes (@w, @h, threads of @pool)
 * bytes, 8-aligned.
 * Returns FALSE, @rgb untouched, when no 7x7 patch of known pixels fits in
 * the image. */
gboolean ge_patchmatch_fill (GePool * pool, const GePatchMatchParams * params, guint8 * rgb,
    const guint8 * hole, int w, int h, int frame_x0, int frame_y0, guint64 seed,
    void *scratch);

G_END_DECLS
