/* patchmatch.c: exemplar fill of a hole (see patchmatch.h).
 *
 * Per level, coarsest first:
 *   init    coarsest: the hole filled ring by ring, each ring pixel from a
 *           close match of its filled neighbourhood among every source
 *           (onion_fill, patch_scan.h), every target patch matched at random;
 *           finer: the coarser field doubled, then a vote
 *   rounds  search (propagation from the scan's previous neighbours, then
 *           random search in windows halving from the image's size), vote
 *
 * A target is a pixel whose 7x7 patch holds a hole pixel; a source is a
 * pixel whose 7x7 patch lies inside the image and holds none.  Sources never
 * hold hole pixels, so a vote reads only known pixels and can write the hole
 * in place, rows in parallel.
 */
#include "patchmatch.h"
#include "patch_scan.h"
#include "ge-rng.h"

#include <string.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

#define R GE_PATCHMATCH_RADIUS
#define P (2 * R + 1)
#define MAX_LEVELS 8
/* The search's row bands: fixed, so that the result does not depend on the
 * number of threads. */
#define N_BANDS 8
#define VOTE_TASKS 16
/* Stream 2 of the seed's Philox counters (ge-rng.c uses 0 and 1). */
#define PM_STREAM 2u
#define INIT_ROUND 0xFFFFu

void
ge_patchmatch_params_init (GePatchMatchParams * p)
{
  p->em_iters = 4;
  p->coarse_em_iters = 6;
  p->passes = 2;
  p->centre_pick = TRUE;
  p->coarse_min_side = 8 * P;
  p->precision = GE_PRECISION_F32;
}

typedef struct {
  int w, h;
  guint8 *rgb, *hole, *ok;      /* ok: a source */
  gboolean vector;              /* patch_ssd with AVX-512 */
} Level;

typedef struct {
  const GePatchMatchParams *pr;
  GePool *pool;
  Level lv[MAX_LEVELS];
  int n_levels;
  guint8 *target, *state;
  gint32 *nnf, *nnf_prev, *dist, *sources, *sat;
  int n_sources;
  /* the onion fill: patch_scan.h's work space per thread, its kernel */
  guint8 *scan;
  gsize scan_bytes;
  GePatchScanKind scan_kind;
  guint64 seed;
  int fx0, fy0;
  /* the level at work */
  int level, round;
  gboolean backward, centre;
} Fill;

static gsize
align8 (gsize n)
{
  return (n + 7) & ~(gsize) 7;
}

static void
level_dims (int w, int h, int l, int *wl, int *hl)
{
  for (int i = 0; i < l; i++) {
    w = (w + 1) / 2;
    h = (h + 1) / 2;
  }
  *wl = w;
  *hl = h;
}

/* patch_scan.h's work space for one thread at any level. */
static gsize
scan_bytes (int w, int h)
{
  gsize n = 0;
  for (int l = 0; l < MAX_LEVELS; l++) {
    int wl, hl;
    level_dims (w, h, l, &wl, &hl);
    n = MAX (n, ge_patch_scan_bytes (wl));
  }
  return align8 (n);
}

gsize
ge_patchmatch_scratch_bytes (int w, int h, int n_threads)
{
  gsize n = 0;
  for (int l = 0; l < MAX_LEVELS; l++) {
    int wl, hl;
    level_dims (w, h, l, &wl, &hl);
    n += 3 * align8 ((gsize) wl * hl) + align8 (2 * (gsize) wl * hl);
  }
  const gsize plane = (gsize) w * h;
  n += 2 * align8 (plane);                              /* target, state */
  n += 4 * align8 (4 * plane);                          /* nnf, nnf_prev, dist, sources */
  n += align8 (4 * (gsize) (w + 1) * (h + 1));          /* summed-area table */
  n += (gsize) MAX (n_threads, 1) * scan_bytes (w, h);
  return n;
}

/* The draw of the 4 words (pos, tag) of the seed's stream 2. */
static inline void
draw4 (guint64 seed, guint32 pos, guint32 tag, guint32 out[4])
{
  const guint32 ctr[4] = { pos, tag, PM_STREAM, 0 };
  const guint32 key[2] = { (guint32) seed, (guint32) (seed >> 32) };
  ge_philox4x32_10 (ctr, key, out);
}

/* Position of pixel (x, y) of the working level in the frame, as a counter
 * word: ((Y & 0xffff) << 16) | (X & 0xffff) of its top-left frame pixel. */
static inline guint32
frame_pos (const Fill * f, int x, int y)
{
  const guint32 X = (guint32) (f->fx0 + (x << f->level)), Y = (guint32) (f->fy0 + (y << f->level));
  return (Y & 0xFFFFu) << 16 | (X & 0xFFFFu);
}

static inline guint32
tag (int level, int round, int k)
{
  return (guint32) level << 24 | (guint32) round << 8 | (guint32) k;
}

/* uniform integer in [0, n) from a 32-bit word */
static inline int
below (guint32 u, guint32 n)
{
  return (int) (((guint64) u * n) >> 32);
}

/* Summed-area table of @m (w x h, 0/1 bytes): sat[(y + 1) * (w + 1) + x + 1]
 * = sum over [0, x] x [0, y]. */
static void
summed_area (const guint8 * m, int w, int h, gint32 * sat)
{
  memset (sat, 0, sizeof (gint32) * (w + 1));
  for (int y = 0; y < h; y++) {
    gint32 run = 0;
    gint32 *row = sat + (gsize) (y + 1) * (w + 1), *up = row - (w + 1);
    row[0] = 0;
    for (int x = 0; x < w; x++) {
      run += m[(gsize) y * w + x] != 0;
      row[x + 1] = up[x + 1] + run;
    }
  }
}

/* Hole pixels in the window [x - R, x + R] x [y - R, y + R] clipped to the
 * image. */
static inline gint32
window_count (const gint32 * sat, int w, int h, int x, int y)
{
  const int x0 = MAX (x - R, 0), x1 = MIN (x + R, w - 1) + 1;
  const int y0 = MAX (y - R, 0), y1 = MIN (y + R, h - 1) + 1;
  const int s = w + 1;
  return sat[y1 * s + x1] - sat[y0 * s + x1] - sat[y1 * s + x0] + sat[y0 * s + x0];
}

#if defined(__x86_64__) && defined(__GNUC__)
/* patch_ssd with a row of the patch in one masked load of each side; the
 * bound is checked once, after the centre row (a horizontal sum costs more
 * than a row).  A sum stopped early is only ever compared with the bound
 * it reached, so stopping at another row compares the same way. */
__attribute__((target ("avx512f,avx512bw,avx512vl")))
static gint32
patch_ssd_avx512 (const Level * L, int px, int py, int qx, int qy, gint32 bound)
{
  const int w = L->w, h = L->h;
  const int x0 = MAX (px - R, 0), x1 = MIN (px + R, w - 1);
  const __mmask32 m = (__mmask32) ((1u << (3 * (x1 - x0 + 1))) - 1);
  __m512i acc = _mm512_setzero_si512 ();
  for (int dy = -R; dy <= R; dy++) {
    const int ty = py + dy;
    if (ty < 0 || ty >= h)
      continue;
    const guint8 *t = L->rgb + ((gsize) ty * w + x0) * 3;
    const guint8 *s = L->rgb + ((gsize) (qy + dy) * w + qx + (x0 - px)) * 3;
    const __m512i d = _mm512_sub_epi16 (_mm512_cvtepu8_epi16 (_mm256_maskz_loadu_epi8 (m, t)),
        _mm512_cvtepu8_epi16 (_mm256_maskz_loadu_epi8 (m, s)));
    acc = _mm512_add_epi32 (acc, _mm512_madd_epi16 (d, d));
    if (dy == 0 && bound < G_MAXINT32) {
      const gint32 part = _mm512_reduce_add_epi32 (acc);
      if (part >= bound)
        return part;
    }
  }
  return _mm512_reduce_add_epi32 (acc);
}
#endif

/* Sum of squared differences of the target patch at (px, py), clipped to the
 * image, and the source patch at (qx, qy) (inside it); stops once a row's
 * sum reaches @bound, and returns the partial sum then (>= bound). */
static gint32
patch_ssd (const Level * L, int px, int py, int qx, int qy, gint32 bound)
{
#if defined(__x86_64__) && defined(__GNUC__)
  if (L->vector)
    return patch_ssd_avx512 (L, px, py, qx, qy, bound);
#endif
  const int w = L->w, h = L->h;
  const int x0 = MAX (px - R, 0), x1 = MIN (px + R, w - 1);
  gint32 sum = 0;
  for (int dy = -R; dy <= R; dy++) {
    const int ty = py + dy;
    if (ty < 0 || ty >= h)
      continue;
    const guint8 *t = L->rgb + ((gsize) ty * w + x0) * 3;
    const guint8 *s = L->rgb + ((gsize) (qy + dy) * w + qx + (x0 - px)) * 3;
    for (int i = 0; i < 3 * (x1 - x0 + 1); i++) {
      const gint32 d = (gint32) t[i] - (gint32) s[i];
      sum += d * d;
    }
    if (sum >= bound)
      return sum;
  }
  return sum;
}

/* ---- per level --------------------------------------------------------- */

/* Marks targets and sources of the working level; lists the sources. */
static void
mark (Fill * f)
{
  const Level *L = &f->lv[f->level];
  const int w = L->w, h = L->h;
  summed_area (L->hole, w, h, f->sat);
  f->n_sources = 0;
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      const gsize i = (gsize) y * w + x;
      const gint32 n = window_count (f->sat, w, h, x, y);
      f->target[i] = n > 0;
      L->ok[i] = n == 0 && x >= R && y >= R && x < w - R && y < h - R;
      if (L->ok[i])
        f->sources[f->n_sources++] = (gint32) i;
    }
}

static gint32
random_source (const Fill * f, int x, int y)
{
  guint32 u[4];
  draw4 (f->seed, frame_pos (f, x, y), tag (f->level, INIT_ROUND, 0), u);
  return f->sources[below (u[0], (guint32) f->n_sources)];
}

typedef struct {
  Fill *f;
  const gint32 *ring;
  int n;
} RingJob;

/* Sources within the threshold remembered by the counting pass; with more,
 * a third pass finds the pick. */
#define RING_PICKS 64

/* GE_PATCH_SCAN_N ring pixels (a task's group): every source is compared
 * with each pixel's filled neighbourhood (patch_scan.h, exactly); of those
 * within a quarter (plus a level's difference a pixel) of the best, the
 * seed's draw picks one, in source order; the pixel takes the value the
 * match is centred on.  The scores are kept between the passes when the
 * level is one band, computed again per pass when it is more. */
static void
ring_task (void *data, int task, int thread)
{
  const RingJob *j = data;
  Fill *f = j->f;
  const Level *L = &f->lv[f->level];
  const int w = L->w, h = L->h, srows = ge_patch_scan_band_rows (w);
  const int n_bands = (h - 2 * R + srows - 1) / srows;
  void *scratch = f->scan + (gsize) thread * f->scan_bytes;
  GePatchScanGroup g;
  ge_patch_scan_group_init (&g);
  const int k0 = task * GE_PATCH_SCAN_N, n = MIN (j->n - k0, GE_PATCH_SCAN_N);
  for (int t = 0; t < n; t++)
    ge_patch_scan_group_add (&g, L->rgb, f->state, w, h, j->ring[k0 + t] % w, j->ring[k0 + t] / w);

  gint32 best[GE_PATCH_SCAN_N], thr[GE_PATCH_SCAN_N], count[GE_PATCH_SCAN_N] = { 0 };
  gint32 first[GE_PATCH_SCAN_N] = { 0 }, within[GE_PATCH_SCAN_N * RING_PICKS];
  gint32 q[GE_PATCH_SCAN_N];
  for (int t = 0; t < n; t++)
    best[t] = G_MAXINT32;
  /* passes: the best, the count within the threshold (and the first
   * RING_PICKS of them), where needed the pick among more */
  for (int pass = 0; pass < 3; pass++) {
    if (pass == 1)
      for (int t = 0; t < n; t++)
        thr[t] = best[t] + best[t] / 4 + P * P * 3;
    if (pass == 2) {
      gboolean more = FALSE;
      for (int t = 0; t < n; t++) {
        guint32 u[4];
        const gint32 i = j->ring[k0 + t];
        draw4 (f->seed, frame_pos (f, i % w, i / w), tag (f->level, INIT_ROUND, 1), u);
        const gint32 pick = below (u[0], (guint32) count[t]);
        q[t] = pick < RING_PICKS ? within[t * RING_PICKS + pick] : -1;
        /* a template already picked asks for no rank */
        first[t] = q[t] < 0 ? pick : G_MAXINT32;
        count[t] = 0;
        more |= q[t] < 0;
      }
      if (!more)
        break;
    }
    for (int band = 0; band < n_bands; band++) {
      const int y0 = R + band * srows, y1 = MIN (y0 + srows, h - R);
      if (pass == 0 || n_bands > 1)
        ge_patch_scan_band (f->scan_kind, &g, L->rgb, L->hole, L->ok, w, h, y0, y1, scratch);
      if (pass == 0)
        ge_patch_scan_least (f->scan_kind, scratch, L->ok, w, y0, y1, n, best);
      else if (pass == 1)
        ge_patch_scan_within (f->scan_kind, scratch, L->ok, w, y0, y1, n, thr, first, RING_PICKS,
            count, within);
      else
        ge_patch_scan_within (f->scan_kind, scratch, L->ok, w, y0, y1, n, thr, first, 1, count, q);
    }
  }
  for (int t = 0; t < n; t++) {
    const gint32 i = j->ring[k0 + t];
    f->nnf[i] = q[t];
    memcpy (L->rgb + (gsize) i * 3, L->rgb + (gsize) q[t] * 3, 3);
  }
}

/* The coarsest level's hole, ring by ring from its rim inwards: each hole
 * pixel with a filled 8-neighbour (filled before this ring) is matched
 * against every source on its filled pixels alone (ring_task), so that the
 * lines and textures around the hole carry on into it instead of a smooth
 * start that would draw smooth matches.  @ring: a plane of gint32. */
static void
onion_fill (Fill * f, gint32 * ring)
{
  const Level *L = &f->lv[f->level];
  const int w = L->w, h = L->h;
  guint8 *st = f->state;        /* 0 unfilled, 1 filled */
  for (gsize i = 0; i < (gsize) w * h; i++)
    st[i] = L->hole[i] ? 0 : 1;
  for (int t = 0; t < ge_pool_n_threads (f->pool); t++)
    ge_patch_scan_forget (f->scan + (gsize) t * f->scan_bytes);
  for (;;) {
    int n = 0;
    for (int y = 0; y < h; y++)
      for (int x = 0; x < w; x++) {
        const gsize i = (gsize) y * w + x;
        if (st[i] != 0)
          continue;
        gboolean next = FALSE;
        for (int dy = -1; dy <= 1 && !next; dy++)
          for (int dx = -1; dx <= 1; dx++) {
            const int xx = x + dx, yy = y + dy;
            if (xx >= 0 && yy >= 0 && xx < w && yy < h && st[(gsize) yy * w + xx] == 1) {
              next = TRUE;
              break;
            }
          }
        if (next)
          ring[n++] = (gint32) i;
      }
    if (n == 0)
      break;
    RingJob j = { f, ring, n };
    ge_pool_run (f->pool, (n + GE_PATCH_SCAN_N - 1) / GE_PATCH_SCAN_N, ring_task, &j);
    for (int k = 0; k < n; k++)
      st[ring[k]] = 1;
  }
  /* nothing known around a hole pixel at all (cannot happen with a source) */
  for (gsize i = 0; i < (gsize) w * h; i++)
    if (st[i] == 0) {
      L->rgb[i * 3] = L->rgb[i * 3 + 1] = L->rgb[i * 3 + 2] = 128;
      f->nnf[i] = f->sources[0];
    }
}

typedef struct {
  Fill *f;
  int n_tasks;
} Job;

static void
dist_task (void *data, int task, int thread)
{
  const Job *j = data;
  Fill *f = j->f;
  const Level *L = &f->lv[f->level];
  const int w = L->w, h = L->h;
  for (int y = task * h / j->n_tasks; y < (task + 1) * h / j->n_tasks; y++)
    for (int x = 0; x < w; x++) {
      const gsize i = (gsize) y * w + x;
      if (f->target[i]) {
        const gint32 q = f->nnf[i];
        f->dist[i] = patch_ssd (L, x, y, q % w, q / w, G_MAXINT32);
      }
    }
}

/* Each hole pixel: the rounded mean of what the patches over it copy, or
 * (centre) the pixel its own patch's match is centred on. */
static void
vote_task (void *data, int task, int thread)
{
  const Job *j = data;
  Fill *f = j->f;
  const Level *L = &f->lv[f->level];
  const int w = L->w, h = L->h;
  for (int y = task * h / j->n_tasks; y < (task + 1) * h / j->n_tasks; y++)
    for (int x = 0; x < w; x++) {
      const gsize i = (gsize) y * w + x;
      if (!L->hole[i])
        continue;
      if (f->centre) {
        memcpy (L->rgb + i * 3, L->rgb + (gsize) f->nnf[i] * 3, 3);
        continue;
      }
      gint32 sum[3] = { 0, 0, 0 }, n = 0;
      for (int ty = MAX (y - R, 0); ty <= MIN (y + R, h - 1); ty++)
        for (int tx = MAX (x - R, 0); tx <= MIN (x + R, w - 1); tx++) {
          const gint32 q = f->nnf[(gsize) ty * w + tx];
          const int sx = q % w + (x - tx), sy = q / w + (y - ty);
          const guint8 *s = L->rgb + ((gsize) sy * w + sx) * 3;
          sum[0] += s[0];
          sum[1] += s[1];
          sum[2] += s[2];
          n++;
        }
      for (int c = 0; c < 3; c++)
        L->rgb[i * 3 + c] = (guint8) ((sum[c] + n / 2) / n);
    }
}

static void
run_rows (Fill * f, GePoolFunc fn)
{
  const int h = f->lv[f->level].h;
  Job j = { f, MIN (VOTE_TASKS, h) };
  ge_pool_run (f->pool, j.n_tasks, fn, &j);
}

/* The candidate (qx, qy) for the target at (x, y): taken when it is a
 * source other than the best (*bx, *by) and closer than *bd. */
static inline void
try_match (const Level * L, int x, int y, int qx, int qy, int *bx, int *by, gint32 * bd)
{
  const int w = L->w;
  if (qx < 0 || qy < 0 || qx >= w || qy >= L->h || (qx == *bx && qy == *by)
      || !L->ok[(gsize) qy * w + qx])
    return;
  const gint32 d = patch_ssd (L, x, y, qx, qy, *bd);
  if (d < *bd) {
    *bx = qx;
    *by = qy;
    *bd = d;
  }
}

static void
search_pixel (Fill * f, const Level * L, int x, int y, int band_y0, int band_y1)
{
  const int w = L->w, h = L->h;
  const gsize i = (gsize) y * w + x;
  int bx = f->nnf[i] % w, by = f->nnf[i] / w;
  gint32 bd = f->dist[i];
  /* propagation: the neighbour's match, shifted back by one pixel */
  const int s = f->backward ? 1 : -1;
  if (x + s >= 0 && x + s < w && f->target[i + s]) {
    const gint32 q = f->nnf[i + s];
    try_match (L, x, y, q % w - s, q / w, &bx, &by, &bd);
  }
  const gssize j = (gssize) i + (gssize) s * w;
  if (y + s >= band_y0 && y + s < band_y1 && f->target[j]) {
    const gint32 q = f->nnf[j];
    try_match (L, x, y, q % w, q / w - s, &bx, &by, &bd);
  }
  /* random search around the best match, in windows halving in size; the
   * draws (k = 0, 1, ... of the round's tag) 16 at a time */
  const guint32 ctr[4] = { frame_pos (f, x, y), tag (f->level, f->round, 0), PM_STREAM, 0 };
  const guint32 key[2] = { (guint32) f->seed, (guint32) (f->seed >> 32) };
  guint32 u[4][16];
  int k = 0;
  for (int rad = MAX (w, h); rad >= 1; rad /= 2, k++) {
    if (k % 16 == 0) {
      guint32 c[4] = { ctr[0], ctr[1] + (guint32) k, ctr[2], ctr[3] };
      ge_philox4x32_10_run (c, key, 16, u);
    }
    const int cx = CLAMP (bx + below (u[0][k % 16], 2 * rad + 1) - rad, 0, w - 1);
    const int cy = CLAMP (by + below (u[1][k % 16], 2 * rad + 1) - rad, 0, h - 1);
    try_match (L, x, y, cx, cy, &bx, &by, &bd);
  }
  f->nnf[i] = by * w + bx;
  f->dist[i] = bd;
}

static void
search_task (void *data, int band, int thread)
{
  const Job *j = data;
  Fill *f = j->f;
  const Level *L = &f->lv[f->level];
  const int w = L->w, h = L->h;
  const int y0 = band * h / N_BANDS, y1 = (band + 1) * h / N_BANDS;
  if (!f->backward) {
    for (int y = y0; y < y1; y++)
      for (int x = 0; x < w; x++)
        if (f->target[(gsize) y * w + x])
          search_pixel (f, L, x, y, y0, y1);
  } else {
    for (int y = y1 - 1; y >= y0; y--)
      for (int x = w - 1; x >= 0; x--)
        if (f->target[(gsize) y * w + x])
          search_pixel (f, L, x, y, y0, y1);
  }
}

/* ---- the pyramid ------------------------------------------------------- */

/* Level l + 1 from level l: a pixel is hole if any of its (up to) four
 * children is; a known one is the rounded mean of its children (the last
 * row and column repeated on odd sizes). */
static void
downsample (const Level * a, Level * b)
{
  for (int y = 0; y < b->h; y++)
    for (int x = 0; x < b->w; x++) {
      const int xs[2] = { 2 * x, MIN (2 * x + 1, a->w - 1) };
      const int ys[2] = { 2 * y, MIN (2 * y + 1, a->h - 1) };
      gboolean hole = FALSE;
      gint32 sum[3] = { 0, 0, 0 };
      for (int k = 0; k < 4; k++) {
        const gsize i = (gsize) ys[k / 2] * a->w + xs[k % 2];
        hole |= a->hole[i] != 0;
        for (int c = 0; c < 3; c++)
          sum[c] += a->rgb[i * 3 + c];
      }
      const gsize o = (gsize) y * b->w + x;
      b->hole[o] = hole;
      for (int c = 0; c < 3; c++)
        b->rgb[o * 3 + c] = hole ? 0 : (guint8) ((sum[c] + 2) / 4);
    }
}

/* The coarser level's field doubled onto the working level: the target at
 * (x, y) takes the match of (x / 2, y / 2) times 2 plus (x & 1, y & 1), or
 * a random source where that is not a source here. */
static void
upsample_field (Fill * f)
{
  const Level *L = &f->lv[f->level], *C = &f->lv[f->level + 1];
  const int w = L->w, h = L->h;
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      const gsize i = (gsize) y * w + x;
      if (!f->target[i]) {
        f->nnf[i] = -1;
        continue;
      }
      const int cx = MIN (x / 2, C->w - 1), cy = MIN (y / 2, C->h - 1);
      const gint32 cq = f->nnf_prev[(gsize) cy * C->w + cx];
      gint32 q = -1;
      if (cq >= 0) {
        const int qx = 2 * (cq % C->w) + (x & 1), qy = 2 * (cq / C->w) + (y & 1);
        if (qx < w && qy < h && L->ok[(gsize) qy * w + qx])
          q = qy * w + qx;
      }
      f->nnf[i] = q >= 0 ? q : random_source (f, x, y);
    }
}

static gboolean
has_source (Fill * f, int l)
{
  f->level = l;
  mark (f);
  return f->n_sources > 0;
}

gboolean
ge_patchmatch_fill (GePool * pool, const GePatchMatchParams * params, guint8 * rgb,
    const guint8 * hole, int w, int h, int frame_x0, int frame_y0, guint64 seed,
    void *scratch)
{
  Fill f = { .pr = params, .pool = pool, .seed = seed, .fx0 = frame_x0, .fy0 = frame_y0 };
  guint8 *p = scratch;
  const gsize plane = (gsize) w * h;
  /* the hole's extent, to stop the pyramid once the hole is a few patches */
  int hx0 = w, hy0 = h, hx1 = -1, hy1 = -1;
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      if (hole[(gsize) y * w + x]) {
        hx0 = MIN (hx0, x);
        hx1 = MAX (hx1, x);
        hy0 = MIN (hy0, y);
        hy1 = MAX (hy1, y);
      }
  if (hx1 < 0)
    return TRUE;
  const int extent = MAX (hx1 - hx0 + 1, hy1 - hy0 + 1);
  f.n_levels = 1;
  while (f.n_levels < MAX_LEVELS) {
    int wl, hl;
    level_dims (w, h, f.n_levels, &wl, &hl);
    if (MIN (wl, hl) < params->coarse_min_side
        || (extent + (1 << (f.n_levels - 1)) - 1) >> (f.n_levels - 1) <= 2 * P)
      break;
    f.n_levels++;
  }
  f.scan_kind = ge_patch_scan_kind (params->precision);
  for (int l = 0; l < MAX_LEVELS; l++) {
    Level *L = &f.lv[l];
    level_dims (w, h, l, &L->w, &L->h);
    L->vector = f.scan_kind != GE_PATCH_SCAN_SCALAR;
    const gsize n = (gsize) L->w * L->h;
    L->rgb = p;
    p += align8 (3 * n);
    L->hole = p;
    p += align8 (n);
    L->ok = p;
    p += align8 (n);
  }
  f.target = p;
  p += align8 (plane);
  f.state = p;
  p += align8 (plane);
  f.nnf = (gint32 *) p;
  p += align8 (4 * plane);
  f.nnf_prev = (gint32 *) p;
  p += align8 (4 * plane);
  f.dist = (gint32 *) p;
  p += align8 (4 * plane);
  f.sources = (gint32 *) p;
  p += align8 (4 * plane);
  f.sat = (gint32 *) p;
  p += align8 (4 * (gsize) (w + 1) * (h + 1));
  f.scan = p;
  f.scan_bytes = scan_bytes (w, h);

  memcpy (f.lv[0].rgb, rgb, 3 * plane);
  for (gsize i = 0; i < plane; i++) {
    f.lv[0].hole[i] = hole[i] != 0;
    if (hole[i])
      f.lv[0].rgb[i * 3] = f.lv[0].rgb[i * 3 + 1] = f.lv[0].rgb[i * 3 + 2] = 0;
  }
  for (int l = 1; l < f.n_levels; l++)
    downsample (&f.lv[l - 1], &f.lv[l]);
  /* a coarse level without a single source cannot match anything */
  while (f.n_levels > 1 && !has_source (&f, f.n_levels - 1))
    f.n_levels--;
  if (!has_source (&f, f.n_levels - 1))
    return FALSE;

  for (int l = f.n_levels - 1; l >= 0; l--) {
    const Level *L = &f.lv[l];
    f.level = l;
    f.centre = FALSE;
    mark (&f);
    if (l == f.n_levels - 1) {
      /* the known targets at random, the hole ring by ring */
      for (int y = 0; y < L->h; y++)
        for (int x = 0; x < L->w; x++) {
          const gsize i = (gsize) y * L->w + x;
          f.nnf[i] = f.target[i] && !L->hole[i] ? random_source (&f, x, y) : -1;
        }
      onion_fill (&f, f.dist);
    } else {
      upsample_field (&f);
      run_rows (&f, vote_task);
    }
    run_rows (&f, dist_task);
    const int iters = l == f.n_levels - 1 ? params->coarse_em_iters : params->em_iters;
    for (int it = 0; it < iters; it++) {
      for (int pass = 0; pass < params->passes; pass++) {
        f.round = it * params->passes + pass;
        f.backward = f.round & 1;
        Job j = { &f, N_BANDS };
        ge_pool_run (pool, N_BANDS, search_task, &j);
      }
      f.centre = l == 0 && it == iters - 1 && params->centre_pick;
      run_rows (&f, vote_task);
      if (it < iters - 1)
        run_rows (&f, dist_task);
    }
    gint32 *t = f.nnf_prev;
    f.nnf_prev = f.nnf;
    f.nnf = t;
  }
  for (gsize i = 0; i < plane; i++)
    if (hole[i])
      memcpy (rgb + i * 3, f.lv[0].rgb + i * 3, 3);
  return TRUE;
}
