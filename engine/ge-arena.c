/* ge-arena.c: a first-fit allocator over one block, planned by replay.
 *
 * Offsets are assigned in a virtual space (best fit among freed holes,
 * else at the top), whether or not the block is big enough yet; what does
 * not fit is malloc'd for this run only.  The same sequence of calls gives
 * the same offsets, so after one run the block is resized to the peak and
 * later runs of the same shapes fit exactly, allocating nothing.  Freed
 * memory is reused while it is still in cache, which a pure stack cannot
 * do for tensors that die out of order (U-Net skips).
 */
#include "ge-arena.h"

#include <stdlib.h>
#include <string.h>
#ifdef __linux__
#include <sys/mman.h>
#endif

#define ALIGN 64

typedef struct {
  gsize offset, size;
  void *spill;                  /* malloc'd when it did not fit */
  gboolean live;
} Rec;

typedef struct {
  gsize offset, size;
} Hole;

struct _GeArena {
  char *block;
  gsize capacity;
  gsize top, peak;              /* virtual space */
  Rec *recs;                    /* in allocation order */
  guint n_recs, cap_recs;
  Hole *holes;                  /* sorted by offset, all below top */
  guint n_holes, cap_holes;
  guint n_system_allocs;
};

/* The bookkeeping arrays grow during the first runs only; growth counts
 * as a system allocation like any other. */
#define RESERVE(a, arr, n, cap) do { if ((a)->n == (a)->cap) { \
      (a)->cap = MAX (64, 2 * (a)->cap); \
      (a)->arr = g_renew (__typeof__ (*(a)->arr), (a)->arr, (a)->cap); \
      (a)->n_system_allocs++; } } while (0)

GeArena *
ge_arena_new (void)
{
  return g_new0 (GeArena, 1);
}

static void
drop_spills (GeArena * a, guint from)
{
  for (guint i = from; i < a->n_recs; i++) {
    free (a->recs[i].spill);
    a->recs[i].spill = NULL;
  }
}

void
ge_arena_free (GeArena * arena)
{
  if (!arena)
    return;
  drop_spills (arena, 0);
  g_free (arena->recs);
  g_free (arena->holes);
  free (arena->block);
  g_free (arena);
}

#define HUGE_PAGE (2u << 20)

/* Activations are tens of MB, and a convolution's taps hop between rows
 * of them: on 4 KB pages a frame pays a TLB miss per tap row and, the
 * first time, a page fault per 4 KB (a third of a 640x360 x2 frame went
 * there).  Big buffers are aligned to 2 MB and offered to transparent
 * huge pages. */
static void *
aligned (gsize bytes)
{
  void *p = NULL;
  const gsize align = bytes >= HUGE_PAGE ? HUGE_PAGE : ALIGN;
  if (posix_memalign (&p, align, MAX (bytes, ALIGN)) != 0)
    g_error ("out of memory allocating %" G_GSIZE_FORMAT " bytes", bytes);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (bytes >= HUGE_PAGE)
    madvise (p, (bytes + HUGE_PAGE - 1) & ~(gsize) (HUGE_PAGE - 1), MADV_HUGEPAGE);
#endif
  return p;
}

static void
remove_hole (GeArena * a, guint i)
{
  memmove (a->holes + i, a->holes + i + 1, sizeof (Hole) * (a->n_holes - i - 1));
  a->n_holes--;
}

static gsize
place (GeArena * a, gsize bytes)
{
  guint best = G_MAXUINT;
  for (guint i = 0; i < a->n_holes; i++)
    if (a->holes[i].size >= bytes && (best == G_MAXUINT || a->holes[i].size < a->holes[best].size))
      best = i;
  if (best == G_MAXUINT) {
    gsize off = a->top;
    a->top += bytes;
    a->peak = MAX (a->peak, a->top);
    return off;
  }
  Hole *h = &a->holes[best];
  gsize off = h->offset;
  h->offset += bytes;
  h->size -= bytes;
  if (h->size == 0)
    remove_hole (a, best);
  return off;
}

float *
ge_arena_alloc (GeArena * arena, gsize n_floats)
{
  gsize bytes = (n_floats * sizeof (float) + ALIGN - 1) & ~(gsize) (ALIGN - 1);
  if (bytes == 0)
    bytes = ALIGN;
  Rec r = { place (arena, bytes), bytes, NULL, TRUE };
  if (r.offset + bytes > arena->capacity) {
    r.spill = aligned (bytes);
    arena->n_system_allocs++;
  }
  RESERVE (arena, recs, n_recs, cap_recs);
  arena->recs[arena->n_recs++] = r;
  return r.spill ? r.spill : (float *) (arena->block + r.offset);
}

/* Returns [offset, offset + size) to the holes, merging neighbours, and
 * lowers the top when the hole reaches it. */
static void
unplace (GeArena * a, gsize offset, gsize size)
{
  guint i = 0;
  while (i < a->n_holes && a->holes[i].offset < offset)
    i++;
  Hole h = { offset, size };
  if (i > 0 && a->holes[i - 1].offset + a->holes[i - 1].size == offset) {
    h.offset = a->holes[i - 1].offset;
    h.size += a->holes[i - 1].size;
    remove_hole (a, --i);
  }
  if (i < a->n_holes && h.offset + h.size == a->holes[i].offset) {
    h.size += a->holes[i].size;
    remove_hole (a, i);
  }
  if (h.offset + h.size == a->top) {
    a->top = h.offset;
    /* The hole below may now touch the top too. */
    if (i > 0 && a->holes[i - 1].offset + a->holes[i - 1].size == a->top) {
      a->top = a->holes[i - 1].offset;
      remove_hole (a, i - 1);
    }
    return;
  }
  RESERVE (a, holes, n_holes, cap_holes);
  memmove (a->holes + i + 1, a->holes + i, sizeof (Hole) * (a->n_holes - i));
  a->holes[i] = h;
  a->n_holes++;
}

static void
release_rec (GeArena * a, Rec * r)
{
  if (!r->live)
    return;
  r->live = FALSE;
  free (r->spill);
  r->spill = NULL;
  unplace (a, r->offset, r->size);
}

void
ge_arena_free_floats (GeArena * arena, float *p)
{
  for (guint i = arena->n_recs; i-- > 0;) {
    Rec *r = &arena->recs[i];
    if (r->live && (r->spill ? r->spill == (void *) p
            : (char *) p == arena->block + r->offset)) {
      release_rec (arena, r);
      return;
    }
  }
  g_critical ("ge_arena_free_floats: %p is not a live allocation", (void *) p);
}

gsize
ge_arena_mark (const GeArena * arena)
{
  return arena->n_recs;
}

void
ge_arena_release (GeArena * arena, gsize mark)
{
  for (guint i = arena->n_recs; i-- > mark;)
    release_rec (arena, &arena->recs[i]);
  arena->n_recs = MIN (mark, arena->n_recs);
}

void
ge_arena_reset (GeArena * arena)
{
  gboolean spilled = FALSE;
  for (guint i = 0; i < arena->n_recs; i++)
    spilled |= arena->recs[i].spill != NULL;
  drop_spills (arena, 0);
  arena->n_recs = 0;
  arena->n_holes = 0;
  arena->top = 0;
  if (spilled || arena->peak > arena->capacity) {
    free (arena->block);
    arena->capacity = arena->peak;
    arena->block = aligned (arena->capacity);
    arena->n_system_allocs++;
  }
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
