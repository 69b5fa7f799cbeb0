/* ge-arena.h: per-model scratch memory, planned once per input shape.
 *
 * An allocator over one block, with frees in any order.  The first run at
 * a new shape may spill into extra blocks; ge_arena_reset() then regrows
 * the block to the peak it saw, so every later run of the same shape
 * allocates nothing (whisper.cpp's rule: no allocations at run time).
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _GeArena GeArena;

GeArena *ge_arena_new (void);
void ge_arena_free (GeArena * arena);
/* 64-byte aligned, uninitialised; never fails (aborts on OOM like g_malloc). */
float *ge_arena_alloc (GeArena * arena, gsize n_floats);
/* Frees one allocation (freed space is reused by later ones). */
void ge_arena_free_floats (GeArena * arena, float *p);
gsize ge_arena_mark (const GeArena * arena);
/* Frees everything allocated after @mark that is still live. */
void ge_arena_release (GeArena * arena, gsize mark);
/* Ends a run: everything is released, the block grows to the peak if needed. */
void ge_arena_reset (GeArena * arena);
/* Number of system allocations made so far (tests check it stays put). */
guint ge_arena_n_system_allocs (const GeArena * arena);
gsize ge_arena_capacity (const GeArena * arena);

G_END_DECLS
