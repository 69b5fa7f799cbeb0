/* test-inpaint: the inpainting task against PyTorch goldens made from the
 * specification in ge-inpaint.h with the engine's noise
 * (tests/golden/make_inpaint_golden.py) for the plain, the residual (the
 * shipped formulation), the shipped model itself and the RePaint models, plus what must hold whatever the
 * model: pixels away from the mask untouched, boxes not the whole frame,
 * determinism, planned memory, strides, errors. */
#include "ge-inpaint.h"
#include "ge-pool.h"
#include "ge-safetensors.h"
#include "patchmatch.h"
#include "patch_scan.h"
#include "ops/gemm.h"

#include <glib/gstdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FEATHER 3

static char *
path_of (const char *a, const char *b, const char *c)
{
  return g_test_build_filename (G_TEST_DIST, "..", a, b, c, NULL);
}

typedef struct {
  GeSafetensors *st;
  const guint8 *img, *mask, *ref;
  int w, h;
} Golden;

static void
golden_load (Golden * g, const char *name)
{
  char *p = path_of ("golden", "inpaint", "diffusioninpaint.safetensors");
  g->st = ge_safetensors_open (p, NULL);
  g_assert_nonnull (g->st);
  char *k[3] = { g_strdup_printf ("%s.img", name), g_strdup_printf ("%s.mask", name),
    g_strdup_printf ("%s.out", name)
  };
  const GeStTensor *img = ge_safetensors_find (g->st, k[0]);
  const GeStTensor *mask = ge_safetensors_find (g->st, k[1]);
  const GeStTensor *out = ge_safetensors_find (g->st, k[2]);
  g_assert_true (img && mask && out && img->dtype == GE_DTYPE_U8 && mask->dtype == GE_DTYPE_U8
      && out->dtype == GE_DTYPE_U8);
  g->h = (int) img->shape[0];
  g->w = (int) img->shape[1];
  g_assert_cmpint (mask->shape[0], ==, g->h);
  g_assert_cmpint (mask->shape[1], ==, g->w);
  g->img = img->data;
  g->mask = mask->data;
  g->ref = out->data;
  for (int i = 0; i < 3; i++)
    g_free (k[i]);
  g_free (p);
}

/* "shipped": the default model of models/inpaint/; else a test model of
 * tests/elements/models/. */
static GeInpaint *
model (const char *name)
{
  char *p = strcmp (name, "shipped") == 0
      ? g_test_build_filename (G_TEST_DIST, "..", "..", "models", "inpaint",
      "diffusioninpaint.safetensors", NULL)
      : path_of ("elements", "models", name);
  GError *err = NULL;
  GeInpaint *ip = ge_inpaint_new (p, &err);
  g_assert_no_error (err);
  g_free (p);
  ge_inpaint_set_seed (ip, 7);
  ge_inpaint_set_feather (ip, FEATHER);
  return ip;
}

/* A copy of the golden's image, inpainted (packed RGB). */
static guint8 *
run (GeInpaint * ip, const Golden * g, const guint8 * mask)
{
  guint8 *o = g_memdup2 (g->img, (gsize) g->w * g->h * 3);
  GeImageU8 img = { o, g->w, g->h, g->w * 3, 3, 0, 1, 2, -1 };
  GError *err = NULL;
  g_assert_true (ge_inpaint_process (ip, &img, mask, g->w, &err));
  g_assert_no_error (err);
  return o;
}

/* Is (x, y) within @r pixels (Chebyshev) of a mask pixel?  The naive way. */
static gboolean
near_mask (const Golden * g, int x, int y, int r)
{
  for (int yy = MAX (y - r, 0); yy <= MIN (y + r, g->h - 1); yy++)
    for (int xx = MAX (x - r, 0); xx <= MIN (x + r, g->w - 1); xx++)
      if (g->mask[yy * g->w + xx])
        return TRUE;
  return FALSE;
}

/* The engine reproduces the PyTorch reference up to rounding, changes no
 * pixel further than feather + 1 from the mask, and diffuses boxes, not the
 * frame. */
/* Golden case name -> the test model it was made with. */
static const char *
model_of_case (const char *name)
{
  return strcmp (name, "s") == 0 || strcmp (name, "e") == 0 ? "diffusioninpaint.safetensors"
      : strcmp (name, "d") == 0 ? "shipped" : "inpaint-x0.safetensors";
}

static void
test_golden (gconstpointer data)
{
  const char *name = data;
  Golden g;
  golden_load (&g, name);
  GeInpaint *ip = model (model_of_case (name));
  if (strcmp (name, "e") == 0)
    ge_inpaint_set_exemplar_guidance (ip, 0.75f);
  guint8 *o = run (ip, &g, g.mask);
  const gsize n = (gsize) g.w * g.h * 3;
  gsize off = 0, changed = 0;
  int maxd = 0;
  for (gsize i = 0; i < n; i++) {
    const int d = abs (o[i] - g.ref[i]);
    maxd = MAX (maxd, d);
    off += d != 0;
    changed += o[i] != g.img[i];
  }
  g_test_message ("%s: max diff %d, %" G_GSIZE_FORMAT " of %" G_GSIZE_FORMAT " differ; %"
      G_GSIZE_FORMAT " changed; %" G_GSIZE_FORMAT " pixels diffused of %d", name, maxd, off, n,
      changed, ge_inpaint_last_area (ip), g.w * g.h);
  g_assert_cmpint (maxd, <=, 1);
  g_assert_cmpuint (off, <=, n / 1000);
  g_assert_cmpuint (changed, >, 0);
  for (int y = 0; y < g.h; y++)
    for (int x = 0; x < g.w; x++)
      if (!near_mask (&g, x, y, FEATHER + 1))
        g_assert_cmpmem (o + (y * g.w + x) * 3, 3, g.img + (y * g.w + x) * 3, 3);
  if (strcmp (name, "d") == 0)  /* the same two boxes widened to multiples of 8 */
    g_assert_cmpuint (ge_inpaint_last_area (ip), ==, 64 * 56 + 32 * 32);
  else if (strcmp (name, "b") != 0)     /* two boxes: 60x52 and 32x28 */
    g_assert_cmpuint (ge_inpaint_last_area (ip), ==, 60 * 52 + 32 * 28);
  g_free (o);
  ge_inpaint_free (ip);
  ge_safetensors_free (g.st);
}

/* The exemplar fill alone (patchmatch.h) against the numpy implementation
 * of tests/golden/patchmatch_ref.py: integers throughout, so the bytes must
 * be the same, on one thread and on three, with the f32 and the int8
 * exhaustive search (which runs f32 where the CPU has no VNNI, and plain C
 * without AVX-512: the no-avx512 suite). */
static void
test_patchmatch (gconstpointer data)
{
  const char *name = data;
  char *p = path_of ("golden", "inpaint", "patchmatch.safetensors");
  GeSafetensors *st = ge_safetensors_open (p, NULL);
  g_assert_nonnull (st);
  g_free (p);
  const GeStTensor *t[4];
  const char *what[4] = { "img", "hole", "params", "out" };
  for (int i = 0; i < 4; i++) {
    char *k = g_strdup_printf ("%s.%s", name, what[i]);
    t[i] = ge_safetensors_find (st, k);
    g_assert_nonnull (t[i]);
    g_free (k);
  }
  g_assert_true (t[0]->dtype == GE_DTYPE_U8 && t[1]->dtype == GE_DTYPE_U8
      && t[2]->dtype == GE_DTYPE_I64 && t[3]->dtype == GE_DTYPE_U8);
  const int h = (int) t[0]->shape[0], w = (int) t[0]->shape[1];
  gint64 prm[4];
  memcpy (prm, t[2]->data, sizeof (prm));
  GePatchMatchParams params;
  ge_patchmatch_params_init (&params);
  params.coarse_min_side = (int) prm[3];
  void *scratch = g_malloc (ge_patchmatch_scratch_bytes (w, h, 3));
  for (int run = 0; run < 4; run++) {
    const int threads = run % 2 ? 3 : 1;
    params.precision = run < 2 ? GE_PRECISION_F32 : GE_PRECISION_INT8;
    GePool *pool = ge_pool_new (threads);
    guint8 *rgb = g_memdup2 (t[0]->data, (gsize) w * h * 3);
    g_assert_true (ge_patchmatch_fill (pool, &params, rgb, t[1]->data, w, h, (int) prm[1],
            (int) prm[2], (guint64) prm[0], scratch));
    gsize off = 0;
    for (gsize i = 0; i < (gsize) w * h * 3; i++)
      off += rgb[i] != ((const guint8 *) t[3]->data)[i];
    g_test_message ("%s, %d threads, %s: %" G_GSIZE_FORMAT " bytes differ", name, threads,
        ge_precision_name (params.precision), off);
    g_assert_cmpuint (off, ==, 0);
    g_free (rgb);
    ge_pool_free (pool);
  }
  g_free (scratch);
  ge_safetensors_free (st);
}

/* No 7x7 patch of known pixels fits: the fill says so and leaves the image
 * alone. */
static void
test_patchmatch_no_source (void)
{
  const int w = 12, h = 10;
  guint8 rgb[12 * 10 * 3], hole[12 * 10], ref[12 * 10 * 3];
  for (int i = 0; i < w * h * 3; i++)
    rgb[i] = ref[i] = (guint8) (i * 7);
  memset (hole, 0, sizeof (hole));
  hole[5 * w + 6] = 1;
  GePatchMatchParams params;
  ge_patchmatch_params_init (&params);
  GePool *pool = ge_pool_new (1);
  void *scratch = g_malloc (ge_patchmatch_scratch_bytes (w, h, 3));
  g_assert_false (ge_patchmatch_fill (pool, &params, rgb, hole, w, h, 0, 0, 1, scratch));
  g_assert_cmpmem (rgb, sizeof (rgb), ref, sizeof (ref));
  g_free (scratch);
  ge_pool_free (pool);
}

/* patch_scan.h's kernels against a naive loop: every source's score for a
 * group of templates, on an image whose extremes (0 against 255 over whole
 * patches) reach the largest sums the f32 and int16 arithmetic must hold
 * exactly, in one band and in several. */
static void
test_patch_scan (void)
{
  const int R = GE_PATCHMATCH_RADIUS, w = 61, h = 45;
  guint8 *rgb = g_malloc ((gsize) w * h * 3), *hole = g_malloc0 ((gsize) w * h);
  guint8 *known = g_malloc ((gsize) w * h), *ok = g_malloc0 ((gsize) w * h);
  GRand *rand = g_rand_new_with_seed (7);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      for (int c = 0; c < 3; c++)       /* white left, black band, noise right */
        rgb[((gsize) y * w + x) * 3 + c] = x < 15 ? 255 : x < 25 ? 0 : (guint8) g_rand_int (rand);
  for (int y = 20; y < 30; y++)
    for (int x = 35; x < 50; x++)
      hole[(gsize) y * w + x] = 1;
  for (gsize i = 0; i < (gsize) w * h; i++)
    known[i] = !hole[i] && g_rand_int_range (rand, 0, 4) != 0;
  for (int y = R; y < h - R; y++)
    for (int x = R; x < w - R; x++) {
      gboolean any = FALSE;
      for (int dy = -R; dy <= R; dy++)
        for (int dx = -R; dx <= R; dx++)
          any |= hole[(gsize) (y + dy) * w + x + dx];
      ok[(gsize) y * w + x] = !any;
    }
  /* templates: a black one in the white, a white one in the black, one at
   * the image's corner (clipped), the rest at random */
  const int px[GE_PATCH_SCAN_N] = { 7, 19, 0, 40, 55, 30, 12, 60 };
  const int py[GE_PATCH_SCAN_N] = { 10, 30, 0, 25, 5, 40, 44, 22 };
  guint8 *tmpl = g_memdup2 (rgb, (gsize) w * h * 3);
  for (int dy = -R; dy <= R; dy++)
    for (int dx = -R; dx <= R; dx++)
      for (int c = 0; c < 3; c++) {
        tmpl[((gsize) (py[0] + dy) * w + px[0] + dx) * 3 + c] = 0;
        tmpl[((gsize) (py[1] + dy) * w + px[1] + dx) * 3 + c] = 255;
      }
  guint8 *all = g_malloc ((gsize) w * h);
  memset (all, 1, (gsize) w * h);
  GePatchScanGroup g;
  ge_patch_scan_group_init (&g);
  for (int j = 0; j < GE_PATCH_SCAN_N; j++)
    ge_patch_scan_group_add (&g, tmpl, j < 2 ? all : known, w, h, px[j], py[j]);

  /* the naive sums of each template against every source, raster order */
  gint64 *naive = g_new (gint64, (gsize) GE_PATCH_SCAN_N * w * h);
  int n_src = 0;
  for (int y = R; y < h - R; y++)
    for (int x = R; x < w - R; x++) {
      if (!ok[(gsize) y * w + x])
        continue;
      for (int j = 0; j < GE_PATCH_SCAN_N; j++) {
        gint64 sum = 0;
        for (int dy = -R; dy <= R; dy++)
          for (int dx = -R; dx <= R; dx++) {
            const int tx = px[j] + dx, ty = py[j] + dy;
            if (tx < 0 || ty < 0 || tx >= w || ty >= h
                || !(j < 2 ? all : known)[(gsize) ty * w + tx])
              continue;
            for (int c = 0; c < 3; c++) {
              const gint64 d = (gint64) tmpl[((gsize) ty * w + tx) * 3 + c]
                  - rgb[((gsize) (y + dy) * w + x + dx) * 3 + c];
              sum += d * d;
            }
          }
        naive[(gsize) j * w * h + n_src] = sum;
      }
      n_src++;
    }
  /* thresholds: 41 of each template's own sums, least to largest */
  enum { T = 41 };
  gint32 thr[T][GE_PATCH_SCAN_N], want[T][GE_PATCH_SCAN_N];
  gint64 largest = 0;
  for (int j = 0; j < GE_PATCH_SCAN_N; j++) {
    gint64 *v = g_memdup2 (naive + (gsize) j * w * h, sizeof (gint64) * n_src);
    for (int a = 1; a < n_src; a++)     /* insertion sort: a test's sizes */
      for (int b = a; b > 0 && v[b - 1] > v[b]; b--) {
        const gint64 t = v[b];
        v[b] = v[b - 1];
        v[b - 1] = t;
      }
    for (int t = 0; t < T; t++) {
      thr[t][j] = (gint32) v[(gsize) t * (n_src - 1) / (T - 1)];
      want[t][j] = 0;
      for (int i = 0; i < n_src; i++)
        want[t][j] += v[i] <= thr[t][j];
    }
    largest = MAX (largest, v[n_src - 1]);
    g_free (v);
  }

  const GePatchScanKind kinds[3] = { GE_PATCH_SCAN_SCALAR, GE_PATCH_SCAN_F32, GE_PATCH_SCAN_INT8 };
  const gboolean have[3] = { TRUE, ge_gemm_packed_available (), ge_gemm_int8_available () };
  void *scratch = g_malloc (ge_patch_scan_bytes (w));
  gint32 *out = g_new (gint32, (gsize) GE_PATCH_SCAN_N * n_src);
  for (int k = 0; k < 3; k++) {
    if (!have[k])
      continue;
    /* one band, then bands of 7 rows */
    for (int rows = ge_patch_scan_band_rows (w); rows >= 7; rows = rows > 7 ? 7 : 0) {
      ge_patch_scan_forget (scratch);
      gint32 best[GE_PATCH_SCAN_N], first[GE_PATCH_SCAN_N] = { 0 }, count[T][GE_PATCH_SCAN_N];
      memset (count, 0, sizeof (count));
      for (int j = 0; j < GE_PATCH_SCAN_N; j++)
        best[j] = G_MAXINT32;
      for (int y0 = R; y0 < h - R; y0 += rows) {
        const int y1 = MIN (y0 + rows, h - R);
        ge_patch_scan_band (kinds[k], &g, rgb, hole, ok, w, h, y0, y1, scratch);
        ge_patch_scan_least (kinds[k], scratch, ok, w, y0, y1, GE_PATCH_SCAN_N, best);
        for (int t = 0; t < T; t++)     /* the last lists every source */
          ge_patch_scan_within (kinds[k], scratch, ok, w, y0, y1, GE_PATCH_SCAN_N, thr[t], first,
              t == T - 1 ? n_src : 0, count[t], out);
      }
      for (int j = 0; j < GE_PATCH_SCAN_N; j++) {
        g_assert_cmpint (best[j], ==, thr[0][j]);
        for (int t = 0; t < T; t++)
          g_assert_cmpint (count[t][j], ==, want[t][j]);
        for (int y = R, i = 0; y < h - R; y++)
          for (int x = R; x < w - R; x++)
            if (ok[(gsize) y * w + x])
              g_assert_cmpint (out[(gsize) j * n_src + i++], ==, y * w + x);
      }
    }
  }
  g_free (out);
  g_free (naive);
  g_test_message ("largest sum %" G_GINT64_FORMAT, largest);
  g_assert_cmpint (largest, ==, 147 * 255 * 255);
  g_rand_free (rand);
  g_free (scratch);
  g_free (all);
  g_free (tmpl);
  g_free (rgb);
  g_free (hole);
  g_free (known);
  g_free (ok);
}

/* RePaint with an unconditional diffusers-style U-Net, against the
 * reference that follows diffusers' RePaint code. */
static void
test_golden_repaint (void)
{
  Golden g;
  golden_load (&g, "r");
  GeInpaint *ip = model ("unconditional-ddpm.safetensors");
  g_assert_true (ge_inpaint_is_repaint (ip));
  ge_inpaint_set_num_steps (ip, 10);
  ge_inpaint_set_repaint_jumps (ip, 3, 2);
  guint8 *o = run (ip, &g, g.mask);
  const gsize n = (gsize) g.w * g.h * 3;
  gsize off = 0;
  int maxd = 0;
  for (gsize i = 0; i < n; i++) {
    const int d = abs (o[i] - g.ref[i]);
    maxd = MAX (maxd, d);
    off += d != 0;
  }
  g_test_message ("r: max diff %d, %" G_GSIZE_FORMAT " of %" G_GSIZE_FORMAT " differ", maxd,
      off, n);
  g_assert_cmpint (maxd, <=, 1);
  g_assert_cmpuint (off, <=, n / 1000);
  for (int y = 0; y < g.h; y++)
    for (int x = 0; x < g.w; x++)
      if (!near_mask (&g, x, y, FEATHER + 1))
        g_assert_cmpmem (o + (y * g.w + x) * 3, 3, g.img + (y * g.w + x) * 3, 3);
  g_free (o);
  ge_inpaint_free (ip);
  ge_safetensors_free (g.st);
}

static void
test_determinism_and_memory (gconstpointer data)
{
  /* the residual test model (the sampler alone), and the shipped one (its
   * exemplar fill) */
  const char *name = data;
  Golden g;
  golden_load (&g, "a");
  GeInpaint *a = model (name);
  GeInpaint *b = model (name);
  ge_inpaint_set_n_threads (b, 3);
  const gsize n = (gsize) g.w * g.h * 3;
  guint8 *o1 = run (a, &g, g.mask);
  g_assert_cmpuint (ge_inpaint_last_reused (a), ==, 0);
  /* The same frame again: both boxes come from the fill cache, and they
   * are what a fresh instance computes (on 3 threads: the thread count
   * does not change bytes either). */
  guint8 *o2 = run (a, &g, g.mask);
  g_assert_cmpuint (ge_inpaint_last_reused (a), ==, 2);
  guint8 *o3 = run (b, &g, g.mask);
  g_assert_cmpuint (ge_inpaint_last_reused (b), ==, 0);
  g_assert_cmpmem (o1, n, o2, n);
  g_assert_cmpmem (o1, n, o3, n);
  /* One pixel changed in the first box: that box runs again (allocating
   * nothing: same sizes, planned), the other is reused; a fresh instance
   * agrees. */
  guint8 *changed = g_memdup2 (g.img, n);
  changed[(20 * g.w + 5) * 3] ^= 0x40;
  const guint8 *orig_img = g.img;
  g.img = changed;
  guint8 *o6 = run (a, &g, g.mask);
  g_assert_cmpuint (ge_inpaint_last_reused (a), ==, 1);
  g_assert_cmpuint (ge_inpaint_n_allocs (a), ==, 0);
  GeInpaint *c = model (name);
  guint8 *o7 = run (c, &g, g.mask);
  g_assert_cmpmem (o6, n, o7, n);
  g_assert_true (memcmp (o6, o1, n) != 0);
  g.img = orig_img;
  g_free (changed);
  g_free (o6);
  g_free (o7);
  ge_inpaint_free (c);
  ge_inpaint_set_seed (a, 1);
  guint8 *o4 = run (a, &g, g.mask);
  g_assert_true (memcmp (o1, o4, n) != 0);

  /* An empty mask changes nothing and diffuses nothing. */
  guint8 *none = g_malloc0 ((gsize) g.w * g.h);
  guint8 *o5 = run (a, &g, none);
  g_assert_cmpmem (o5, n, g.img, n);
  g_assert_cmpuint (ge_inpaint_last_area (a), ==, 0);
  g_free (none);
  g_free (o1);
  g_free (o2);
  g_free (o3);
  g_free (o4);
  g_free (o5);
  ge_inpaint_free (a);
  ge_inpaint_free (b);
  ge_safetensors_free (g.st);
}

/* The fill cache holds outputs of one arithmetic: after the precision
 * changes what runs, the same frame runs again (bf16 gives other bytes)
 * and gives what a fresh instance in that precision gives. */
static void
test_precision_cache (void)
{
  Golden g;
  golden_load (&g, "a");
  GeInpaint *a = model ("diffusioninpaint.safetensors");
  GeInpaint *b = model ("diffusioninpaint.safetensors");
  const gsize n = (gsize) g.w * g.h * 3;
  g_assert_cmpint (ge_inpaint_set_precision (a, GE_PRECISION_F32), ==, GE_PRECISION_F32);
  guint8 *f32 = run (a, &g, g.mask);
  const GePrecision in_use = ge_inpaint_set_precision (a, GE_PRECISION_BF16);
  g_assert_cmpint (in_use, ==, ge_precision_bf16_available () ? GE_PRECISION_BF16
      : GE_PRECISION_F32);
  guint8 *o1 = run (a, &g, g.mask);
  ge_inpaint_set_precision (b, GE_PRECISION_BF16);
  guint8 *o2 = run (b, &g, g.mask);
  g_assert_cmpmem (o1, n, o2, n);
  if (in_use == GE_PRECISION_BF16) {
    g_assert_cmpuint (ge_inpaint_last_reused (a), ==, 0);
    g_assert_true (memcmp (o1, f32, n) != 0);
  } else {
    g_assert_cmpuint (ge_inpaint_last_reused (a), ==, 2);
  }
  g_free (f32);
  g_free (o1);
  g_free (o2);
  ge_inpaint_free (a);
  ge_inpaint_free (b);
  ge_safetensors_free (g.st);
}

/* A padded stride and a 4-byte layout give the same picture; the fourth
 * byte is left alone. */
static void
test_strides (void)
{
  Golden g;
  golden_load (&g, "b");
  GeInpaint *ip = model ("diffusioninpaint.safetensors");
  guint8 *tight = run (ip, &g, g.mask);
  const int is = g.w * 4 + 12, ms = g.w + 5;
  guint8 *buf = g_malloc (is * g.h), *mask = g_malloc0 (ms * g.h);
  memset (buf, 0x5a, is * g.h);
  for (int y = 0; y < g.h; y++)
    for (int x = 0; x < g.w; x++) {
      for (int c = 0; c < 3; c++)       /* BGRA */
        buf[y * is + x * 4 + 2 - c] = g.img[(y * g.w + x) * 3 + c];
      mask[y * ms + x] = g.mask[y * g.w + x];
    }
  GeImageU8 img = { buf, g.w, g.h, is, 4, 2, 1, 0, 3 };
  g_assert_true (ge_inpaint_process (ip, &img, mask, ms, NULL));
  for (int y = 0; y < g.h; y++)
    for (int x = 0; x < g.w; x++) {
      for (int c = 0; c < 3; c++)
        g_assert_cmpint (buf[y * is + x * 4 + 2 - c], ==, tight[(y * g.w + x) * 3 + c]);
      g_assert_cmpint (buf[y * is + x * 4 + 3], ==, 0x5a);
    }
  g_free (buf);
  g_free (mask);
  g_free (tight);
  ge_inpaint_free (ip);
  ge_safetensors_free (g.st);
}

static void
expect_error (const char *name, int code, const char *words)
{
  GError *err = NULL;
  char *p = path_of ("elements", "models", name);
  g_assert_null (ge_inpaint_new (p, &err));
  g_assert_error (err, GE_ERROR, code);
  g_assert_nonnull (strstr (err->message, p));
  if (words)
    g_assert_nonnull (strstr (err->message, words));
  g_clear_error (&err);
  g_free (p);
}

/* The shipped model with its task's "eta": 1.0 rewritten to 7.0 (same
 * length, so the header's offsets hold) must be refused, naming eta. */
static void
test_bad_eta (void)
{
  char *src = g_test_build_filename (G_TEST_DIST, "..", "..", "models", "inpaint",
      "diffusioninpaint.safetensors", NULL);
  char *data, *dst = NULL;
  gsize len;
  /* a file of its own: the sanitizer and plain builds may run this at once */
  const int fd = g_file_open_tmp ("test-inpaint-eta-XXXXXX.safetensors", &dst, NULL);
  g_assert_cmpint (fd, >=, 0);
  close (fd);
  g_assert_true (g_file_get_contents (src, &data, &len, NULL));
  static const char key[] = "\\\"eta\\\": 1.0";
  /* after the 8-byte length (it holds NULs); the JSON header has none */
  char *at = g_strstr_len (data + 8, MIN (len - 8, 65536), key);
  g_assert_nonnull (at);
  at[sizeof (key) - 4] = '7';
  g_assert_true (g_file_set_contents (dst, data, len, NULL));
  GError *err = NULL;
  g_assert_null (ge_inpaint_new (dst, &err));
  g_assert_error (err, GE_ERROR, GE_ERROR_CORRUPT);
  g_assert_nonnull (strstr (err->message, dst));
  g_assert_nonnull (strstr (err->message, "eta"));
  g_clear_error (&err);
  g_unlink (dst);
  g_free (data);
  g_free (dst);
  g_free (src);
}

static void
test_errors (void)
{
  expect_error ("wrong-architecture.safetensors", GE_ERROR_UNSUPPORTED, "AutoencoderKL");
  expect_error ("truncated.safetensors", GE_ERROR_CORRUPT, NULL);
  expect_error ("diffusionsr-x2.safetensors", GE_ERROR_UNSUPPORTED, "inpaint");
  expect_error ("no-such-file.safetensors", GE_ERROR_NOT_FOUND, NULL);
  test_bad_eta ();
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_data_func ("/inpaint/golden-two-boxes", "a", test_golden);
  g_test_add_data_func ("/inpaint/golden-past-the-edge", "b", test_golden);
  g_test_add_data_func ("/inpaint/golden-residual", "s", test_golden);
  g_test_add_data_func ("/inpaint/golden-shipped-model", "d", test_golden);
  g_test_add_data_func ("/inpaint/golden-exemplar-guidance", "e", test_golden);
  g_test_add_data_func ("/inpaint/patchmatch-two-levels", "pm1", test_patchmatch);
  g_test_add_data_func ("/inpaint/patchmatch-other-seed", "pm2", test_patchmatch);
  g_test_add_data_func ("/inpaint/patchmatch-edge", "pm3", test_patchmatch);
  g_test_add_func ("/inpaint/patchmatch-no-source", test_patchmatch_no_source);
  g_test_add_func ("/inpaint/patch-scan", test_patch_scan);
  g_test_add_func ("/inpaint/golden-repaint", test_golden_repaint);
  g_test_add_data_func ("/inpaint/determinism-memory", "diffusioninpaint.safetensors",
      test_determinism_and_memory);
  g_test_add_data_func ("/inpaint/determinism-memory-exemplar", "shipped",
      test_determinism_and_memory);
  g_test_add_func ("/inpaint/precision-cache", test_precision_cache);
  g_test_add_func ("/inpaint/strides", test_strides);
  g_test_add_func ("/inpaint/errors", test_errors);
  return g_test_run ();
}
