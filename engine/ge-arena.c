#include "ge-arena.h"

#include <stdlib.h>

#define ALIGN 64

struct _GeArena {
  char *block;
  gsize capacity;               /* bytes in block */
  gsize used;                   /* logical bytes in use, spills included */
  gsize peak;
  GSList *spills;               /* blocks that did not fit, freed at reset */
  guint n_system_allocs;
};

GeArena *
ge_arena_new (void)
{
  return g_new0 (GeArena, 1);
}

void
ge_arena_free (GeArena * arena)
{
  if (!arena)
    return;
  g_slist_free_full (arena->spills, free);
  free (arena->block);
  g_free (arena);
}

static void *
aligned (gsize bytes)
{
  void *p = NULL;
  if (posix_memalign (&p, ALIGN, MAX (bytes, ALIGN)) != 0)
    g_error ("out of memory allocating %" G_GSIZE_FORMAT " bytes", bytes);
  return p;
}

float *
ge_arena_alloc (GeArena * arena, gsize n_floats)
{
  gsize bytes = (n_floats * sizeof (float) + ALIGN - 1) & ~(gsize) (ALIGN - 1);
  void *p;
  if (arena->used + bytes <= arena->capacity)
    p = arena->block + arena->used;
  else {
    p = aligned (bytes);
    arena->n_system_allocs++;
    arena->spills = g_slist_prepend (arena->spills, p);
  }
  arena->used += bytes;
  arena->peak = MAX (arena->peak, arena->used);
  return p;
}

gsize
ge_arena_mark (const GeArena * arena)
{
  return arena->used;
}

void
ge_arena_release (GeArena * arena, gsize mark)
{
  /* Spilled blocks stay allocated until reset: only the first run spills. */
  if (mark < arena->used)
    arena->used = mark;
}

void
ge_arena_reset (GeArena * arena)
{
  arena->used = 0;
  if (!arena->spills)
    return;
  g_slist_free_full (arena->spills, free);
  arena->spills = NULL;
  free (arena->block);
  arena->capacity = arena->peak;
  arena->block = aligned (arena->capacity);
  arena->n_system_allocs++;
}

guint
ge_arena_n_system_allocs (const GeArena * arena)
{
  return arena->n_system_allocs;
}

gsize
ge_arena_capacity (const GeArena * arena)
{
  return arena->capacity;
}
