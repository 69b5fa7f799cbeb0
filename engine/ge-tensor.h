/* ge-tensor.h: the engine's activation tensor: f32, NCHW, contiguous.
 * Tensors do not own memory; models carve them from their GeArena. */
#pragma once

#include <glib.h>
#include "ge-arena.h"
#include "ge-precision.h"

G_BEGIN_DECLS

typedef struct {
  float *data;
  int n, c, h, w;
} GeTensor;

static inline gsize
ge_tensor_numel (const GeTensor * t)
{
  return (gsize) t->n * t->c * t->h * t->w;
}

static inline GeTensor
ge_tensor_new (GeArena * arena, int n, int c, int h, int w)
{
  GeTensor t = { ge_arena_alloc (arena, (gsize) n * c * h * w), n, c, h, w };
  return t;
}

/* Everything an op needs besides its operands: threads, scratch and the
 * precision the convolutions run in (F32 or BF16, never AUTO: models
 * resolve that; zero-initialised, F32). */
typedef struct _GePool GePool;
typedef struct {
  GePool *pool;
  GeArena *arena;
  GePrecision precision;
} GeCtx;

G_END_DECLS
