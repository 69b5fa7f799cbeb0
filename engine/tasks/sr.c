/* sr.c: diffusion super-resolution (see ge-sr.h).
 *
 * Per tile of the low-resolution frame:
 *   lr      the tile, replicate-padded to the U-Net's size multiple
 *   x_T     seeded noise at each high-resolution pixel, pixel-unshuffled
 *   loop    x0 = unet (cat (x_t, lr), t); x_{t-1} = DDIM step (x0, x_t)
 *   result  pixel_shuffle (x0) / residual_scale: the residual over bicubic
 *           upsampling (the model is trained on the residual times a
 *           constant that brings it to unit scale)
 * The whole loop runs in the unshuffled layout (a pixel shuffle is a
 * permutation and the DDIM step works element by element), so the only
 * shuffles are one for the noise and one for the result.  Tiles overlap and
 * their residuals are blended with smootherstep weights.
 */
#include "ge-sr.h"
#include "ge-blocks.h"
#include "ge-rng.h"
#include "ge-scheduler.h"
#include "ge-unet2d.h"
#include "ge-pool.h"
#include "gemm.h"
#include "tiles.h"

#include <math.h>
#include <string.h>

struct _GeSr {
  GeModelFile *mf;
  GeUNet2D *unet;
  GeScheduler *sched;
  GeCtx ctx;
  int scale, default_steps, steps, multiple;
  float residual_scale;         /* the U-Net works on residual * this */
  guint64 seed;
  int tile_size, tile_overlap;
  guint last_allocs;
  /* x_T of every tile, unshuffled: with a fixed seed it is the same for
   * every frame of a size, and drawing 3 normals per output pixel is a
   * good part of a small model's frame time. */
  float *noise_cache;
  gsize noise_cache_len;
  guint64 noise_key[4];         /* seed, width, height, tiling */
  GeSrTimes times;              /* of the last frame */
};

static inline double
ms_since (gint64 *t)
{
  const gint64 now = g_get_monotonic_time ();
  const double ms = (now - *t) / 1e3;
  *t = now;
  return ms;
}

GeSr *
ge_sr_new (const char *path, GError ** error)
{
  GeModelFile *mf = ge_model_file_open (path, error);
  if (!mf)
    return NULL;
  GeSr *sr = g_new0 (GeSr, 1);
  sr->mf = mf;
  JsonParser *tp = NULL, *sp = NULL;
  JsonObject *task, *sched;
  if (strcmp (ge_model_file_class (mf), "UNet2DModel") != 0) {
    ge_fail (error, GE_ERROR_UNSUPPORTED, path, "is a %s, not a diffusion super-resolution model",
        ge_model_file_class (mf));
    goto fail;
  }
  if (!(tp = ge_model_file_metadata_json (mf, "task", "super-resolution", &task, error))
      || !(sp = ge_model_file_metadata_json (mf, "scheduler", "super-resolution", &sched, error)))
    goto fail;
  JsonNode *sn = json_object_get_member (task, "scale");
  if (!sn || !JSON_NODE_HOLDS_VALUE (sn) || json_node_get_value_type (sn) != G_TYPE_INT64
      || json_node_get_int (sn) < 1 || json_node_get_int (sn) > 8) {
    ge_fail (error, GE_ERROR_CORRUPT, path, "task metadata lacks an integer \"scale\" in 1..8");
    goto fail;
  }
  sr->scale = (int) json_node_get_int (sn);
  sr->default_steps = json_object_has_member (task, "num_inference_steps")
      ? (int) json_object_get_int_member (task, "num_inference_steps") : 4;
  sr->default_steps = CLAMP (sr->default_steps, 1, 1000);
  sr->residual_scale = json_object_has_member (task, "residual_scale")
      ? (float) json_object_get_double_member (task, "residual_scale") : 1.0f;
  if (!(sr->residual_scale > 0 && sr->residual_scale < 1e6)) {
    ge_fail (error, GE_ERROR_CORRUPT, path, "task \"residual_scale\" must be positive");
    goto fail;
  }

  GeSchedulerConfig cfg;
  if (!ge_scheduler_config_from_json_as (&cfg, GE_SCHEDULER_DDIM, sched, path, error)
      || !(sr->sched = ge_scheduler_new (&cfg, error))
      || !(sr->unet = ge_unet2d_new (mf, error)))
    goto fail;
  const int s2 = 3 * sr->scale * sr->scale;
  if (ge_unet2d_in_channels (sr->unet) != s2 + 3 || ge_unet2d_out_channels (sr->unet) != s2) {
    ge_fail (error, GE_ERROR_UNSUPPORTED, path, "a x%d model needs a U-Net of %d input and %d "
        "output channels, this one has %d and %d", sr->scale, s2 + 3, s2,
        ge_unet2d_in_channels (sr->unet), ge_unet2d_out_channels (sr->unet));
    goto fail;
  }
  sr->multiple = ge_unet2d_size_multiple (sr->unet);
  ge_ctx_init (&sr->ctx, 0);
  g_object_unref (tp);
  g_object_unref (sp);
  return sr;

fail:
  g_clear_object (&tp);
  g_clear_object (&sp);
  ge_sr_free (sr);
  return NULL;
}

void
ge_sr_free (GeSr * sr)
{
  if (!sr)
    return;
  ge_unet2d_free (sr->unet);
  ge_scheduler_free (sr->sched);
  ge_ctx_clear (&sr->ctx);
  ge_model_file_unref (sr->mf);
  g_free (sr->noise_cache);
  g_free (sr);
}

int ge_sr_scale (const GeSr * sr) { return sr->scale; }
int ge_sr_default_steps (const GeSr * sr) { return sr->default_steps; }
int ge_sr_min_size (const GeSr * sr) { return MAX (sr->multiple, 8); }
guint ge_sr_n_allocs (const GeSr * sr) { return sr->last_allocs; }
const GeSrTimes *ge_sr_last_times (const GeSr * sr) { return &sr->times; }

void
ge_sr_set_n_threads (GeSr * sr, int n_threads)
{
  ge_unet2d_set_n_threads (sr->unet, n_threads);
  ge_ctx_set_n_threads (&sr->ctx, n_threads);
}

GePrecision
ge_sr_set_precision (GeSr * sr, GePrecision precision)
{
  ge_ctx_set_precision (&sr->ctx, sr->mf, precision);
  return ge_unet2d_set_precision (sr->unet, precision);
}

void
ge_sr_set_num_steps (GeSr * sr, int steps)
{
  sr->steps = MAX (steps, 0);
}

void
ge_sr_set_seed (GeSr * sr, guint64 seed)
{
  sr->seed = seed;
}

void
ge_sr_set_tiling (GeSr * sr, int tile_size, int tile_overlap)
{
  sr->tile_size = MAX (tile_size, 0);
  sr->tile_overlap = MAX (tile_overlap, 0);
}

/* ---- the passes around the U-Net, threaded (each is elementwise, so
 * the result does not depend on the split) ------------------------------ */

#define STEP_CHUNK 65536

typedef struct {
  const GeScheduler *sched;
  int step;
  const float *x0;
  float *x;
  gsize n;
} StepJob;

static void
step_task (void *data, int t, int thread)
{
  const StepJob *j = data;
  const gsize o = (gsize) t * STEP_CHUNK, len = MIN (STEP_CHUNK, j->n - o);
  ge_scheduler_step (j->sched, j->step, j->x0 + o, j->x + o, len, 0.0f, FALSE, NULL, j->x + o,
      NULL);
}

typedef struct {
  const GeImageU8 *img;
  GeTensor *t;
  /* to 8 bits: out = u + r / residual_scale, r from lo (the model's
   * output, [3 s s, ph, pw]: the residual pixel-unshuffled, read as
   * pixel_shuffle would place it) or acc / wsum */
  const float *up, *lo, *acc, *wsum;
  int s, pw, ph;
  float inv_rs;
  /* rows_to_u8_avx512's byte shuffle into the output's pixels and the
   * mask of the bytes it stores (u8_shuffle) */
  char u8_idx[64];
  guint64 u8_keep;
} ConvertJob;

/* Row t of channel t / H of the 8-bit input as [-1, 1] floats. */
static void
to_float_task (void *data, int t, int thread)
{
  const ConvertJob *j = data;
  const GeImageU8 *in = j->img;
  const int H = j->t->h, W = j->t->w, c = t / H, y = t % H;
  const int offs[3] = { in->r, in->g, in->b };
  const guint8 *row = in->data + (gsize) y * in->stride + offs[c];
  float *dst = j->t->data + ((gsize) c * H + y) * W;
  for (int x = 0; x < W; x++)
    dst[x] = ge_u8_to_unit (row[(gsize) x * in->pixel_stride]);
}

#define U8_CHUNK 256

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* TRUE where rows_to_u8_avx512 runs: 3 or 4 bytes a pixel, AVX512-VBMI
 * (and not GE_NO_AVX512). */
static gboolean
u8_rows_vector (const GeImageU8 * out)
{
  static int state = -1;
  if (state < 0) {
    __builtin_cpu_init ();
    state = ge_gemm_packed_available () && __builtin_cpu_supports ("avx512bw")
        && __builtin_cpu_supports ("avx512vbmi");
  }
  return state && (out->pixel_stride == 3 || out->pixel_stride == 4);
}

/* ge_unit_to_u8 (u + r inv) of @n pixels of three channels into a row of
 * @ps bytes a pixel: the same float operations and clamps (NaN to 0)
 * sixteen pixels at a time (no fused multiply-adds: GCC contracts the
 * intrinsics otherwise); @idx_ (u8_shuffle) interleaves the channels, and
 * a store masked by @keep leaves any fourth byte alone. */
__attribute__((target ("avx512f,avx512bw,avx512vbmi"), optimize ("fp-contract=off")))
static void
rows_to_u8_avx512 (const float *const u[3], float (*r)[U8_CHUNK], int n, float inv, int ps,
    const char idx_[64], guint64 keep, guint8 * row)
{
  const __m512i idx = _mm512_loadu_si512 (idx_);
  const __m512 vinv = _mm512_set1_ps (inv), one = _mm512_set1_ps (1.0f);
  const __m512 half = _mm512_set1_ps (127.5f), rnd = _mm512_set1_ps (0.5f);
  const __m512 top = _mm512_set1_ps (255.0f);
  for (int x = 0; x < n; x += 16) {
    const int m = MIN (16, n - x);
    const __mmask16 lanes = (__mmask16) ((1u << m) - 1);
    __m128i b[3];
    for (int c = 0; c < 3; c++) {
      const __m512 v = _mm512_add_ps (_mm512_maskz_loadu_ps (lanes, u[c] + x),
          _mm512_mul_ps (_mm512_maskz_loadu_ps (lanes, r[c] + x), vinv));
      const __m512 f = _mm512_add_ps (_mm512_mul_ps (_mm512_add_ps (v, one), half), rnd);
      /* min (255, f): NaN stays NaN, which the conversion makes 0 */
      const __m512i q = _mm512_max_epi32 (_mm512_cvttps_epi32 (_mm512_min_ps (top, f)),
          _mm512_setzero_si512 ());
      b[c] = _mm512_cvtepi32_epi8 (q);
    }
    __m512i all = _mm512_castsi128_si512 (b[0]);
    all = _mm512_inserti32x4 (all, b[1], 1);
    all = _mm512_inserti32x4 (all, b[2], 2);
    const __mmask64 mk = keep & (m * ps == 64 ? ~0ull : (1ull << (m * ps)) - 1);
    _mm512_mask_storeu_epi8 (row + (gsize) x * ps, mk, _mm512_permutexvar_epi8 (idx, all));
  }
}
#endif

/* For 16 pixels of @out: the channel byte (16 c + pixel) each of their
 * bytes takes from three 16-byte channel vectors, and the mask of the
 * bytes that are channels (not a fourth, alpha or x). */
static void
u8_shuffle (const GeImageU8 * out, char idx[64], guint64 * keep)
{
  const int oo[3] = { out->r, out->g, out->b }, ps = out->pixel_stride;
  memset (idx, 0, 64);
  *keep = 0;
  for (int p = 0; p < 16 * ps && p < 64; p++)
    for (int c = 0; c < 3; c++)
      if (p % ps == oo[c]) {
        idx[p] = (char) (16 * c + p / ps);
        *keep |= 1ull << p;
      }
}

/* Output row t, every channel, in chunks: each channel's residual first
 * (acc / wsum, or the model's output read as pixel_shuffle places it), then
 * u + r / residual_scale to bytes. */
static void
to_u8_task (void *data, int t, int thread)
{
  const ConvertJob *j = data;
  const GeImageU8 *out = j->img;
  const int Hs = out->height, Ws = out->width, y = t, sc = j->s, ps = out->pixel_stride;
  const int oo[3] = { out->r, out->g, out->b };
  const gsize plane = (gsize) j->pw * j->ph;
  float r[3][U8_CHUNK];
  const float *u[3];
  guint8 *row = out->data + (gsize) y * out->stride;
  const int chunk = U8_CHUNK / sc * sc;
  for (int x0 = 0; x0 < Ws; x0 += chunk) {
    const int n = MIN (chunk, Ws - x0); /* a multiple of s, as Ws = W s */
    for (int c = 0; c < 3; c++) {
      u[c] = j->up + ((gsize) c * Hs + y) * Ws + x0;
      if (j->acc) {
        const float *a = j->acc + ((gsize) c * Hs + y) * Ws + x0;
        const float *w = j->wsum + (gsize) y * Ws + x0;
        for (int x = 0; x < n; x++)
          r[c][x] = a[x] / w[x];
      } else {
        /* HR pixel (c, y, x) is channel (c s + y % s) s + x % s, pixel
         * (y / s, x / s) of lo */
        const float *lo = j->lo + (gsize) (c * sc + y % sc) * sc * plane
            + (gsize) (y / sc) * j->pw + x0 / sc;
        if (sc == 2)            /* the default: a loop that vectorises */
          for (int xl = 0; xl < n / 2; xl++) {
            r[c][2 * xl] = lo[xl];
            r[c][2 * xl + 1] = lo[plane + xl];
          }
        else
          for (int jj = 0; jj < sc; jj++)
            for (int xl = 0; xl < n / sc; xl++)
              r[c][xl * sc + jj] = lo[(gsize) jj * plane + xl];
      }
    }
#if defined(__x86_64__) && defined(__GNUC__)
    if (u8_rows_vector (out)) {
      rows_to_u8_avx512 (u, r, n, j->inv_rs, ps, j->u8_idx, j->u8_keep, row + (gsize) x0 * ps);
      continue;
    }
#endif
    for (int c = 0; c < 3; c++)
      for (int x = 0; x < n; x++)
        row[(gsize) (x0 + x) * ps + oo[c]] = ge_unit_to_u8 (u[c][x] + r[c][x] * j->inv_rs);
  }
}

/* TRUE when step @i returns x0 unchanged (DDIM's last step with
 * x0-prediction and alpha 1: sqrt(alpha_prev) = 1, no direction term), told
 * by two probes of the elementwise step: the frame's pass over every
 * element is then skipped (it would only turn -0 into +0, which the 8-bit
 * output does not see). */
static gboolean
last_step_is_x0 (const GeScheduler * sched, int i)
{
  const float m[2] = { 0.8125f, -1.375f }, x[2] = { 0.3125f, 2.5f };
  float prev[2];
  ge_scheduler_step (sched, i, m, x, 2, 0.0f, FALSE, NULL, prev, NULL);
  return memcmp (prev, m, sizeof (m)) == 0;
}

/* ---- tiles ----------------------------------------------------------- */

typedef struct {
  int x0, y0, w, h;             /* LR rectangle of the frame */
  int pw, ph;                   /* padded to the U-Net multiple */
} Tile;

/* Runs the sampler on one tile; leaves the model's output, [3 s s, ph,
 * pw], at *@lo, and where @res the HR residual [3, ph*s, pw*s] in it. */
static gboolean
run_tile (GeSr * sr, const GeTensor * lr, const Tile * t, float *x_in, float *x0,
    float *noise, float *res, const float **lo, const float *cached, float *to_cache,
    GError ** error)
{
  GeCtx *ctx = &sr->ctx;
  gint64 clock = g_get_monotonic_time ();
  const int s = sr->scale, s2 = 3 * s * s;
  const gsize plane = (gsize) t->ph * t->pw;
  const int H = lr->h, W = lr->w, hs = t->ph * s, ws = t->pw * s;

  /* Conditioning: the LR tile, replicate-padded. */
  for (int c = 0; c < 3; c++)
    for (int y = 0; y < t->ph; y++) {
      const float *src = lr->data + ((gsize) c * H + MIN (t->y0 + y, H - 1)) * W;
      float *dst = x_in + (s2 + c) * plane + (gsize) y * t->pw;
      for (int x = 0; x < t->pw; x++)
        dst[x] = src[MIN (t->x0 + x, W - 1)];
    }
  sr->times.convert_ms += ms_since (&clock);
  /* x_T: the noise of HR pixel (c, Y, X) is element ((c << 16 | Y) << 16 | X)
   * of the seed's stream, wherever the tile starts. */
  GeTensor xt = { x_in, 1, s2, t->ph, t->pw };
  if (cached)
    ge_copy (ctx, cached, x_in, (gsize) s2 * plane);
  else {
    for (int c = 0; c < 3; c++)
      for (int y = 0; y < hs; y++) {
        ge_rng_normal (sr->seed, ge_rng_position (c, (guint64) (t->y0 * s + y), (guint64) t->x0 * s),
            noise + ((gsize) c * hs + y) * ws, ws);
      }
    GeTensor nt = { noise, 1, 3, hs, ws };
    ge_pixel_unshuffle (ctx, &nt, &xt, s);
    memcpy (to_cache, x_in, sizeof (float) * s2 * plane);
  }
  sr->times.noise_ms += ms_since (&clock);

  const int n_steps = ge_scheduler_n_timesteps (sr->sched);
  const gsize n = (gsize) s2 * plane;
  GeTensor out = xt;
  for (int i = 0; i < n_steps; i++) {
    const float ts = (float) ge_scheduler_timesteps (sr->sched)[i];
    if (!ge_unet2d_forward (sr->unet, x_in, 1, t->ph, t->pw, &ts, x0, error))
      return FALSE;
    sr->times.unet_ms += ms_since (&clock);
    if (i == n_steps - 1 && last_step_is_x0 (sr->sched, i)) {
      out.data = x0;            /* what the step would write, byte for byte after rounding */
      break;
    }
    StepJob sj = { sr->sched, i, x0, x_in, n };
    ge_pool_run (ctx->pool, (int) ((n + STEP_CHUNK - 1) / STEP_CHUNK), step_task, &sj);
    sr->times.step_ms += ms_since (&clock);
  }
  /* With x0-prediction the last step returns x0 itself; x_in holds it. */
  *lo = out.data;
  if (res) {
    GeTensor r = { res, 1, 3, hs, ws };
    ge_pixel_shuffle (ctx, &out, &r, s);
  }
  sr->times.convert_ms += ms_since (&clock);
  return TRUE;
}

gboolean
ge_sr_process (GeSr * sr, const GeImageU8 * in, GeImageU8 * out, GError ** error)
{
  const int s = sr->scale, W = in->width, H = in->height, Ws = W * s, Hs = H * s;
  const char *path = ge_model_file_path (sr->mf);
  if (out->width != Ws || out->height != Hs)
    return ge_fail (error, GE_ERROR_SHAPE, path, "output is %dx%d, a x%d model makes %dx%d "
        "from %dx%d", out->width, out->height, s, Ws, Hs, W, H);
  if (W < ge_sr_min_size (sr) || H < ge_sr_min_size (sr))
    return ge_fail (error, GE_ERROR_SHAPE, path, "a %dx%d frame is too small (at least %dx%d)",
        W, H, ge_sr_min_size (sr), ge_sr_min_size (sr));
  if (Ws >= 65536 || Hs >= 65536)
    return ge_fail (error, GE_ERROR_SHAPE, path, "a %dx%d output is too large", Ws, Hs);
  const int steps = sr->steps ? sr->steps : sr->default_steps;
  if (ge_scheduler_n_timesteps (sr->sched) != steps
      && !ge_scheduler_set_timesteps (sr->sched, steps, error))
    return FALSE;

  GeCtx *ctx = &sr->ctx;
  const guint allocs0 = ge_arena_n_system_allocs (ctx->arena);
  const gint64 start = g_get_monotonic_time ();
  gint64 clock = start;
  memset (&sr->times, 0, sizeof (sr->times));
  GeTensor lr = ge_tensor_new (ctx->arena, 1, 3, H, W);
  ConvertJob cin = { in, &lr };
  ge_pool_run (ctx->pool, 3 * H, to_float_task, &cin);
  sr->times.convert_ms += ms_since (&clock);
  GeTensor up = ge_tensor_new (ctx->arena, 1, 3, Hs, Ws);
  ge_upsample_bicubic (ctx, &lr, &up);
  sr->times.bicubic_ms += ms_since (&clock);

  /* Tile grid: one tile unless tiling is on and the frame is bigger. */
  const int m = sr->multiple;
  int tsz = sr->tile_size > 0 ? MAX (sr->tile_size, m) : MAX (W, H);
  tsz = MAX (tsz, 2 * sr->tile_overlap + m);
  const int tw = MIN (tsz, W), th = MIN (tsz, H);
  int xs[1024], ys[1024];
  const int nx = ge_tile_starts (W, tw, sr->tile_overlap, xs, 1024);
  const int ny = ge_tile_starts (H, th, sr->tile_overlap, ys, 1024);
  const int pw = (tw + m - 1) / m * m, ph = (th + m - 1) / m * m, s2 = 3 * s * s;
  const gsize tplane = (gsize) pw * ph, hplane = (gsize) pw * s * ph * s;
  float *x_in = ge_arena_alloc (ctx->arena, (s2 + 3) * tplane);
  float *x0 = ge_arena_alloc (ctx->arena, s2 * tplane);
  float *noise = ge_arena_alloc (ctx->arena, 3 * hplane);
  const gboolean tiled = nx * ny > 1;
  /* the HR residual, for the tiles' blend (one tile: read from the model's
   * output by to_u8_task) */
  float *res = tiled ? ge_arena_alloc (ctx->arena, 3 * hplane) : NULL;
  const float *lo = NULL;
  const gsize per_tile = (gsize) s2 * tplane;
  const guint64 key[4] = { sr->seed, (guint64) W << 32 | H,
    (guint64) tw << 32 | th, (guint64) sr->tile_overlap };
  const gboolean cached = sr->noise_cache && memcmp (key, sr->noise_key, sizeof (key)) == 0;
  if (!cached) {
    g_free (sr->noise_cache);
    sr->noise_cache_len = per_tile * nx * ny;
    sr->noise_cache = g_new (float, sr->noise_cache_len);
    memcpy (sr->noise_key, key, sizeof (key));
  }
  float *acc = NULL, *wsum = NULL;
  if (tiled) {
    acc = ge_arena_alloc (ctx->arena, (gsize) 3 * Hs * Ws);
    wsum = ge_arena_alloc (ctx->arena, (gsize) Hs * Ws);
    memset (acc, 0, sizeof (float) * 3 * Hs * Ws);
    memset (wsum, 0, sizeof (float) * Hs * Ws);
  }

  gboolean ok = TRUE;
  for (int ty = 0; ok && ty < ny; ty++)
    for (int tx = 0; ok && tx < nx; tx++) {
      Tile t = { xs[tx], ys[ty], tw, th, pw, ph };
      float *slot = sr->noise_cache + per_tile * (ty * nx + tx);
      ok = run_tile (sr, &lr, &t, x_in, x0, noise, res, &lo, cached ? slot : NULL, slot, error);
      if (!ok || !tiled)
        break;
      /* Overlaps ramp in from tile edges that are not frame edges. */
      ge_tile_accumulate (acc, wsum, 3, Ws, Hs, res, pw * s, hplane, t.x0 * s, t.y0 * s,
          tw * s, th * s, sr->tile_overlap * s);
    }

  clock = g_get_monotonic_time ();
  if (ok) {
    ConvertJob cout = { out, NULL, up.data, lo, tiled ? acc : NULL, wsum, s, pw, ph,
      1.0f / sr->residual_scale, { 0 }, 0
    };
    u8_shuffle (out, cout.u8_idx, &cout.u8_keep);
    ge_pool_run (ctx->pool, Hs, to_u8_task, &cout);
    if (out->a >= 0) {
      /* Alpha is not the model's business: bilinear, or opaque. */
      GeTensor a = { lr.data, 1, 1, H, W }, au = { up.data, 1, 1, Hs, Ws };
      if (in->a >= 0) {
        for (int y = 0; y < H; y++)
          for (int x = 0; x < W; x++)
            a.data[(gsize) y * W + x] = in->data[(gsize) y * in->stride
                + (gsize) x * in->pixel_stride + in->a];
        ge_upsample_bilinear (ctx, &a, &au);
      }
      for (int y = 0; y < Hs; y++) {
        guint8 *row = out->data + (gsize) y * out->stride + out->a;
        for (int x = 0; x < Ws; x++) {
          const float v = in->a >= 0 ? au.data[(gsize) y * Ws + x] + 0.5f : 255.0f;
          row[(gsize) x * out->pixel_stride] = v >= 255 ? 255 : (guint8) v;
        }
      }
    }
  }
  sr->times.convert_ms += ms_since (&clock);
  sr->times.total_ms = (g_get_monotonic_time () - start) / 1e3;
  if (!ok)                      /* a half-filled cache must not be reused */
    g_clear_pointer (&sr->noise_cache, g_free);
  ge_arena_reset (ctx->arena);
  sr->last_allocs = ge_arena_n_system_allocs (ctx->arena) - allocs0 + ge_unet2d_n_allocs (sr->unet)
      + (cached ? 0 : 1);
  return ok;
}
