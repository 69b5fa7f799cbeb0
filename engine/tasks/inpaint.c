/* inpaint.c: diffusion inpainting (see ge-inpaint.h).
 *
 * Per frame:
 *   boxes   connected parts of the mask (8-neighbour), each grown by the
 *           feather width plus context, clamped, merged while they overlap,
 *           then widened to the U-Net's size multiple
 * Per box:
 *   dist    chamfer (3-4) distance of each pixel to the mask, in the box
 *   hole    the mask itself (dist 0): what the model regenerates, as in
 *           training (the feather band only blends the model's output in)
 *   alpha   1 on the mask, smootherstep down to 0 at feather + 1 pixels
 *   guide   with exemplar guidance g > 0: the PatchMatch fill of the hole
 *           from the box's known pixels (patchmatch.c), as a target in the
 *           U-Net's sample space
 *   loop    x0 = unet (cat (x_t, hole, image * (1 - hole)), t);
 *           x0 += g * hole * (target - x0);
 *           x_{t-1} = DDIM step (x0, x_t), from seeded noise x_T
 *           (residual models with g = 1: x0 is the target at every step,
 *           so the loop is skipped)
 *   blend   alpha * x0 + (1 - alpha) * image where alpha > 0; elsewhere the
 *           input bytes stay as they are
 *
 * RePaint (Lugmayr et al. 2022), for unconditional U-Nets (3 channels in
 * and out, epsilon prediction: diffusers' UNet2DModel checkpoints), follows
 * diffusers' RePaintScheduler and RePaintPipeline (eta 0): a DDIM step for
 * the hole, the known pixels noised to the step's level outside it, and
 * "jumps" that renoise the sample jump_length steps back, jump_n_sample - 1
 * times per jump point, so that the hole and its surroundings harmonise.
 */
#include "ge-inpaint.h"
#include "ge-blocks.h"
#include "ge-model-file.h"
#include "ge-pool.h"
#include "ge-rng.h"
#include "ge-scheduler.h"
#include "ge-unet2d.h"
#include "patchmatch.h"

#include <math.h>
#include <string.h>

#define MAX_BOXES 256
#define MIN_CONTEXT 16

/* RePaint without a "task" in the file: these defaults (diffusers' pipeline
 * uses 250 steps with 10 x 10 jumps, 2410 U-Net runs: far too slow here). */
#define REPAINT_STEPS 50
#define REPAINT_JUMP_LENGTH 10
#define REPAINT_JUMP_N_SAMPLE 3

typedef struct {
  int x0, y0, x1, y1;           /* [x0, x1) x [y0, y1) */
} Box;

struct _GeInpaint {
  GeModelFile *mf;
  GeUNet2D *unet;
  GeScheduler *sched;
  GeCtx ctx;
  int default_steps, steps, multiple, feather;
  guint64 seed;
  /* DDIM's eta (task "eta"): 0 deterministic, 1 a fresh draw of noise at
   * every step, so that no draw persists through the steps for the network
   * to take for structure (the flat fog of MODEL.md grew spots with eta 0). */
  float eta;
  /* RePaint mode (unconditional U-Net) and its timestep list with jumps,
   * rebuilt when steps or jumps change. */
  gboolean repaint;
  /* Residual models: the U-Net's sample is (image - base) * residual_scale
   * inside the hole, base the classical fill below. */
  gboolean residual;
  float residual_scale, base_support;
  int n_sigmas;
  float base_sigmas[4];
  int harmonic_sweeps;          /* 0: the Gaussian stage alone */
  float harmonic_omega;
  /* Exemplar guidance (task "exemplar_guidance", or set): the pull of each
   * step's estimate towards the PatchMatch fill of the box; default_guidance
   * is the model's, guidance < 0 means "the model's". */
  float default_guidance, guidance;
  /* Residual models: the target keeps the exemplar's detail above the scale
   * exemplar_sigma (task "exemplar_sigma", px) in full and its coarser
   * structure times exemplar_low (task "exemplar_low", 1 when absent). */
  float exemplar_sigma, exemplar_low;
  GePatchMatchParams pm;
  int jump_length, jump_n_sample;
  gint64 *rp_ts;
  int rp_n, rp_key[3];
  gsize last_area, last_reused;
  guint last_allocs;
  Box boxes[MAX_BOXES];
  /* The last frame's boxes: their input (RGB and mask bytes) and output.
   * The result is a function of those bytes and the settings, so a box
   * whose input has not changed gets its last output back, bit for bit,
   * without running the model (a static logo on a still scene). */
  struct {
    Box box;
    guint64 settings;
    GByteArray *in, *out;
  } cache[MAX_BOXES];
  int n_cache;
};

GeInpaint *
ge_inpaint_new (const char *path, GError ** error)
{
  GeModelFile *mf = ge_model_file_open (path, error);
  if (!mf)
    return NULL;
  GeInpaint *ip = g_new0 (GeInpaint, 1);
  ip->mf = mf;
  ip->feather = 4;
  ip->guidance = -1.0f;
  ge_patchmatch_params_init (&ip->pm);
  JsonParser *tp = NULL, *sp = NULL;
  JsonObject *task = NULL, *sched = NULL;
  if (strcmp (ge_model_file_class (mf), "UNet2DModel") != 0) {
    ge_fail (error, GE_ERROR_UNSUPPORTED, path, "is a %s, not a diffusion inpainting model",
        ge_model_file_class (mf));
    goto fail;
  }
  /* Conditional models carry their task and scheduler; a plain diffusers
   * UNet2DModel (no task) runs RePaint with its scheduler config, or
   * DDPMScheduler's defaults. */
  if (!(ip->unet = ge_unet2d_new (mf, error)))
    goto fail;
  const int cin = ge_unet2d_in_channels (ip->unet), cout = ge_unet2d_out_channels (ip->unet);
  ip->repaint = cin == 3 && cout == 3;
  ip->jump_length = REPAINT_JUMP_LENGTH;
  ip->jump_n_sample = REPAINT_JUMP_N_SAMPLE;
  if (!ip->repaint && (cin != 7 || cout != 3)) {
    ge_fail (error, GE_ERROR_UNSUPPORTED, path, "an inpainting model needs a U-Net of 7 input "
        "channels (noisy image, mask, masked image) and 3 output channels, or an unconditional "
        "one of 3 and 3 (RePaint); this one has %d and %d", cin, cout);
    goto fail;
  }
  GeSchedulerConfig cfg;
  if (ip->repaint) {
    ge_scheduler_config_init_defaults (&cfg, GE_SCHEDULER_DDPM);
    if (ge_model_file_metadata (mf, "scheduler")
        && (!(sp = ge_model_file_metadata_json (mf, "scheduler", "diffusion inpainting",
                    &sched, error))
            || !ge_scheduler_config_from_json_as (&cfg, GE_SCHEDULER_DDIM, sched, path, error)))
      goto fail;
    if (cfg.prediction_type != GE_PREDICT_EPSILON) {
      ge_fail (error, GE_ERROR_UNSUPPORTED, path, "RePaint needs an epsilon-predicting U-Net");
      goto fail;
    }
    ip->default_steps = REPAINT_STEPS;
    if (ge_model_file_metadata (mf, "task")) {
      if (!(tp = ge_model_file_metadata_json (mf, "task", "diffusion inpainting", &task, error)))
        goto fail;
      if (json_object_has_member (task, "num_inference_steps"))
        ip->default_steps = (int) json_object_get_int_member (task, "num_inference_steps");
    }
  } else {
    if (!(tp = ge_model_file_metadata_json (mf, "task", "diffusion inpainting", &task, error))
        || !(sp = ge_model_file_metadata_json (mf, "scheduler", "diffusion inpainting",
                &sched, error)))
      goto fail;
    const char *kind = json_object_has_member (task, "task")
        ? json_object_get_string_member (task, "task") : NULL;
    if (!kind || strcmp (kind, "inpaint") != 0) {
      ge_fail (error, GE_ERROR_UNSUPPORTED, path,
          "the task metadata is not {\"task\": \"inpaint\"}");
      goto fail;
    }
    ip->default_steps = json_object_has_member (task, "num_inference_steps")
        ? (int) json_object_get_int_member (task, "num_inference_steps") : 4;
    ip->eta = json_object_has_member (task, "eta")
        ? (float) json_object_get_double_member (task, "eta") : 0.0f;
    if (!(ip->eta >= 0.0f && ip->eta <= 1.0f)) {
      ge_fail (error, GE_ERROR_CORRUPT, path, "task: \"eta\" %g is not in [0, 1]", ip->eta);
      goto fail;
    }
    ip->default_guidance = json_object_has_member (task, "exemplar_guidance")
        ? (float) json_object_get_double_member (task, "exemplar_guidance") : 0.0f;
    ip->exemplar_sigma = json_object_has_member (task, "exemplar_sigma")
        ? (float) json_object_get_double_member (task, "exemplar_sigma") : 1.5f;
    ip->exemplar_low = json_object_has_member (task, "exemplar_low")
        ? (float) json_object_get_double_member (task, "exemplar_low") : 1.0f;
    if (!(ip->exemplar_sigma > 0.0f && ip->exemplar_sigma <= 64.0f && ip->exemplar_low >= 0.0f
            && ip->exemplar_low <= 1.0f)) {
      ge_fail (error, GE_ERROR_CORRUPT, path, "task: \"exemplar_sigma\" %g must be in (0, 64] "
          "and \"exemplar_low\" %g in [0, 1]", ip->exemplar_sigma, ip->exemplar_low);
      goto fail;
    }
    if (!(ip->default_guidance >= 0.0f && ip->default_guidance <= 1.0f)) {
      ge_fail (error, GE_ERROR_CORRUPT, path, "task: \"exemplar_guidance\" %g is not in "
          "[0, 1]", ip->default_guidance);
      goto fail;
    }
    if (json_object_has_member (task, "residual")) {
      JsonArray *sig = json_object_has_member (task, "base_sigmas")
          ? json_object_get_array_member (task, "base_sigmas") : NULL;
      ip->residual = TRUE;
      ip->residual_scale = json_object_has_member (task, "residual_scale")
          ? (float) json_object_get_double_member (task, "residual_scale") : 0.0f;
      ip->base_support = json_object_has_member (task, "base_support")
          ? (float) json_object_get_double_member (task, "base_support") : 0.0f;
      ip->n_sigmas = sig ? (int) json_array_get_length (sig) : 0;
      ip->harmonic_sweeps = json_object_has_member (task, "base_harmonic_sweeps")
          ? (int) json_object_get_int_member (task, "base_harmonic_sweeps") : 0;
      ip->harmonic_omega = json_object_has_member (task, "base_harmonic_omega")
          ? (float) json_object_get_double_member (task, "base_harmonic_omega") : 1.0f;
      gboolean ok = g_strcmp0 (json_object_get_string_member (task, "residual"), "base_fill") == 0
          && ip->residual_scale > 0 && ip->residual_scale < 1e6 && ip->base_support > 0
          && ip->n_sigmas >= 1 && ip->n_sigmas <= 4
          && ip->harmonic_sweeps >= 0 && ip->harmonic_sweeps <= 10000
          && ip->harmonic_omega > 0 && ip->harmonic_omega < 2;
      for (int i = 0; ok && i < ip->n_sigmas; i++) {
        ip->base_sigmas[i] = (float) json_array_get_double_element (sig, i);
        ok = ip->base_sigmas[i] > 0 && ip->base_sigmas[i] <= 256;
      }
      if (!ok) {
        ge_fail (error, GE_ERROR_CORRUPT, path, "task: \"residual\" must be \"base_fill\" "
            "with a positive residual_scale and base_support, 1-4 base_sigmas up to 256, "
            "base_harmonic_sweeps in [0, 10000] and base_harmonic_omega in (0, 2)");
        goto fail;
      }
    }
    if (!ge_scheduler_config_from_json_as (&cfg, GE_SCHEDULER_DDIM, sched, path, error))
      goto fail;
  }
  ip->default_steps = CLAMP (ip->default_steps, 1, 1000);
  if (!(ip->sched = ge_scheduler_new (&cfg, error)))
    goto fail;
  ip->multiple = ge_unet2d_size_multiple (ip->unet);
  ge_ctx_init (&ip->ctx, 0);
  g_clear_object (&tp);
  g_clear_object (&sp);
  return ip;

fail:
  g_clear_object (&tp);
  g_clear_object (&sp);
  ge_inpaint_free (ip);
  return NULL;
}

void
ge_inpaint_free (GeInpaint * ip)
{
  if (!ip)
    return;
  ge_unet2d_free (ip->unet);
  ge_scheduler_free (ip->sched);
  ge_ctx_clear (&ip->ctx);
  ge_model_file_unref (ip->mf);
  g_free (ip->rp_ts);
  for (int i = 0; i < MAX_BOXES; i++) {
    if (ip->cache[i].in)
      g_byte_array_unref (ip->cache[i].in);
    if (ip->cache[i].out)
      g_byte_array_unref (ip->cache[i].out);
  }
  g_free (ip);
}

int ge_inpaint_default_steps (const GeInpaint * ip) { return ip->default_steps; }
gboolean ge_inpaint_is_repaint (const GeInpaint * ip) { return ip->repaint; }
gsize ge_inpaint_last_area (const GeInpaint * ip) { return ip->last_area; }
gsize ge_inpaint_last_reused (const GeInpaint * ip) { return ip->last_reused; }
guint ge_inpaint_n_allocs (const GeInpaint * ip) { return ip->last_allocs; }

void
ge_inpaint_set_n_threads (GeInpaint * ip, int n_threads)
{
  ge_unet2d_set_n_threads (ip->unet, n_threads);
  ge_ctx_set_n_threads (&ip->ctx, n_threads);
}

GePrecision
ge_inpaint_set_precision (GeInpaint * ip, GePrecision precision)
{
  const GePrecision before = ip->ctx.precision;
  ge_ctx_set_precision (&ip->ctx, ip->mf, precision);
  /* Other arithmetic, other bytes: no box of the cache is reused. */
  if (ip->ctx.precision != before)
    ip->n_cache = 0;
  ip->pm.precision = ip->ctx.precision;
  return ge_unet2d_set_precision (ip->unet, precision);
}

void
ge_inpaint_set_num_steps (GeInpaint * ip, int steps)
{
  ip->steps = MAX (steps, 0);
}

float
ge_inpaint_default_exemplar_guidance (const GeInpaint * ip)
{
  return ip->repaint ? 0.0f : ip->default_guidance;
}

void
ge_inpaint_set_exemplar_guidance (GeInpaint * ip, float guidance)
{
  ip->guidance = guidance < 0.0f ? -1.0f : MIN (guidance, 1.0f);
}

static float
guidance_in_use (const GeInpaint * ip)
{
  if (ip->repaint)
    return 0.0f;
  return ip->guidance < 0.0f ? ip->default_guidance : ip->guidance;
}

void
ge_inpaint_set_seed (GeInpaint * ip, guint64 seed)
{
  ip->seed = seed;
}

void
ge_inpaint_set_repaint_jumps (GeInpaint * ip, int jump_length, int jump_n_sample)
{
  ip->jump_length = MAX (jump_length, 1);
  ip->jump_n_sample = MAX (jump_n_sample, 1);
}

void
ge_inpaint_set_feather (GeInpaint * ip, int feather)
{
  ip->feather = CLAMP (feather, 0, 64);
}

/* ---- boxes ------------------------------------------------------------- */

static gboolean
overlap (const Box * a, const Box * b)
{
  return a->x0 < b->x1 && b->x0 < a->x1 && a->y0 < b->y1 && b->y0 < a->y1;
}

static void
unite (Box * a, const Box * b)
{
  a->x0 = MIN (a->x0, b->x0);
  a->y0 = MIN (a->y0, b->y0);
  a->x1 = MAX (a->x1, b->x1);
  a->y1 = MAX (a->y1, b->y1);
}

/* Grows [*a, *b) to @len (a multiple of the U-Net's) inside [0, @n) where
 * it fits; a box longer than the frame runs past its end (the pixels there
 * are replicated edges). */
static void
widen (int *a, int *b, int len, int n)
{
  const int extra = len - (*b - *a);
  *a -= extra / 2;
  *b += extra - extra / 2;
  if (*b > n) {
    *a -= *b - n;
    *b = n;
  }
  if (*a < 0) {
    *b -= *a;
    *a = 0;
  }
}

/* Bounding boxes of the mask's 8-connected parts, grown and merged; returns
 * their number.  @label and @stack are W*H ints of scratch. */
static int
find_boxes (GeInpaint * ip, const guint8 * mask, int mstride, int W, int H, gint32 * label,
    gint32 * stack)
{
  int n = 0;
  memset (label, 0, sizeof (gint32) * W * H);
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      if (!mask[(gsize) y * mstride + x] || label[(gsize) y * W + x])
        continue;
      Box b = { x, y, x + 1, y + 1 };
      int top = 0;
      stack[top++] = y * W + x;
      label[(gsize) y * W + x] = 1;
      while (top) {
        const int p = stack[--top], py = p / W, px = p % W;
        b.x0 = MIN (b.x0, px);
        b.x1 = MAX (b.x1, px + 1);
        b.y0 = MIN (b.y0, py);
        b.y1 = MAX (b.y1, py + 1);
        for (int dy = -1; dy <= 1; dy++)
          for (int dx = -1; dx <= 1; dx++) {
            const int qy = py + dy, qx = px + dx;
            if (qy < 0 || qy >= H || qx < 0 || qx >= W || label[(gsize) qy * W + qx]
                || !mask[(gsize) qy * mstride + qx])
              continue;
            label[(gsize) qy * W + qx] = 1;
            stack[top++] = qy * W + qx;
          }
      }
      /* Context: half the larger side, at least MIN_CONTEXT, beyond the
       * feather band. */
      const int c = MAX (MAX (b.x1 - b.x0, b.y1 - b.y0) / 2, MIN_CONTEXT) + ip->feather;
      Box g = { MAX (b.x0 - c, 0), MAX (b.y0 - c, 0), MIN (b.x1 + c, W), MIN (b.y1 + c, H) };
      if (n < MAX_BOXES)
        ip->boxes[n++] = g;
      else                      /* a speckled mask: the last box takes the rest */
        unite (&ip->boxes[n - 1], &g);
    }
  /* Each box is widened to the U-Net's multiple and boxes that overlap are
   * merged, until neither changes anything: no pixel is in two boxes. */
  const int m = ip->multiple;
  gboolean changed = TRUE;
  while (changed) {
    changed = FALSE;
    for (int i = 0; i < n; i++) {
      Box *b = &ip->boxes[i];
      const Box old = *b;
      widen (&b->x0, &b->x1, MAX ((b->x1 - b->x0 + m - 1) / m * m, m), W);
      widen (&b->y0, &b->y1, MAX ((b->y1 - b->y0 + m - 1) / m * m, m), H);
      changed |= memcmp (&old, b, sizeof (Box)) != 0;
    }
    for (int i = 0; i < n; i++)
      for (int j = i + 1; j < n; j++)
        if (overlap (&ip->boxes[i], &ip->boxes[j])) {
          unite (&ip->boxes[i], &ip->boxes[j]);
          ip->boxes[j--] = ip->boxes[--n];
          changed = TRUE;
        }
  }
  return n;
}

/* Chamfer 3-4 distance (in thirds of a pixel) to the nearest mask pixel of
 * the box, capped at @cap; pixels past the frame count as far. */
static void
distances (const guint8 * mask, int mstride, int W, int H, const Box * b, gint32 cap,
    gint32 * d)
{
  const int bw = b->x1 - b->x0, bh = b->y1 - b->y0;
  for (int y = 0; y < bh; y++)
    for (int x = 0; x < bw; x++) {
      const int fy = b->y0 + y, fx = b->x0 + x;
      d[y * bw + x] = fy < H && fx < W && mask[(gsize) fy * mstride + fx] ? 0 : cap;
    }
#define RELAX(yy, xx, w) \
  if ((yy) >= 0 && (yy) < bh && (xx) >= 0 && (xx) < bw) \
    v = MIN (v, d[(yy) * bw + (xx)] + (w));
  for (int y = 0; y < bh; y++)
    for (int x = 0; x < bw; x++) {
      gint32 v = d[y * bw + x];
      RELAX (y, x - 1, 3) RELAX (y - 1, x - 1, 4) RELAX (y - 1, x, 3) RELAX (y - 1, x + 1, 4)
      d[y * bw + x] = v;
    }
  for (int y = bh - 1; y >= 0; y--)
    for (int x = bw - 1; x >= 0; x--) {
      gint32 v = d[y * bw + x];
      RELAX (y, x + 1, 3) RELAX (y + 1, x + 1, 4) RELAX (y + 1, x, 3) RELAX (y + 1, x - 1, 4)
      d[y * bw + x] = v;
    }
#undef RELAX
}

/* Blend weight at chamfer distance @d (thirds of a pixel) for a feather of
 * @f pixels: 1 on the mask, smootherstep to 0 at f + 1 pixels. */
static inline float
alpha_at (gint32 d, int f)
{
  if (d == 0)
    return 1.0f;
  const float t = 1.0f - d / (3.0f * (f + 1));
  return t <= 0 ? 0.0f : t * t * t * (t * (t * 6.0f - 15.0f) + 10.0f);
}

/* ---- the classical fill under residual models ------------------------------ */

/* A window of a plane: columns [x0, x1), rows [y0, y1). */
typedef struct {
  int x0, x1, y0, y1;
} Win;

/* Separable Gaussian blur of an @w x @h plane, rows then columns, zero
 * outside; taps over [-3 sigma, 3 sigma], normalised in double.  Only the
 * window @win of @dst is written (each of its pixels as the whole plane's
 * blur would have it, sum for sum), and of @tmp the rows its columns read. */
static void
blur_plane (const float *src, float *tmp, float *dst, int w, int h, float sigma, const Win * win)
{
  const int r = (int) (3.0 * sigma), x0 = win->x0, x1 = win->x1;
  float g[2 * 3 * 256 + 1];
  double sum = 0;
  for (int j = -r; j <= r; j++)
    sum += exp (-0.5 * ((double) j / sigma) * ((double) j / sigma));
  for (int j = -r; j <= r; j++)
    g[j + r] = (float) (exp (-0.5 * ((double) j / sigma) * ((double) j / sigma)) / sum);
  for (int y = MAX (win->y0 - r, 0); y < MIN (win->y1 + r, h); y++) {
    const float *s = src + (gsize) y * w;
    float *t = tmp + (gsize) y * w;
    memset (t + x0, 0, sizeof (float) * (x1 - x0));
    for (int j = -r; j <= r; j++) {
      const float gj = g[j + r];
      const int xa = MAX (x0, -j), xb = MIN (x1, w - j);
      for (int x = xa; x < xb; x++)
        t[x] += gj * s[x + j];
    }
  }
  for (int y = win->y0; y < win->y1; y++) {
    float *d = dst + (gsize) y * w;
    memset (d + x0, 0, sizeof (float) * (x1 - x0));
    for (int j = MAX (-r, -y); j <= MIN (r, h - 1 - y); j++) {
      const float gj = g[j + r], *t = tmp + (gsize) (y + j) * w;
      for (int x = x0; x < x1; x++)
        d[x] += gj * t[x];
    }
  }
}

typedef struct {
  const float *src;             /* 4 planes: known, img * known (3) */
  float *tmp, *dst;             /* 4 planes each */
  int w, h;
  float sigma;
  Win win;
} BlurJob;

static void
blur_task (void *data, int t, int thread)
{
  const BlurJob *j = data;
  const gsize plane = (gsize) j->w * j->h;
  blur_plane (j->src + t * plane, j->tmp + t * plane, j->dst + t * plane, j->w, j->h, j->sigma,
      &j->win);
}

typedef struct {
  float *u;                     /* 3 planes */
  const float *hole;
  int w, h, sweeps;
  float omega;
  Win win;                      /* the hole's bounding box */
} HarmonicJob;

/* train.py's harmonic() on one colour plane: red-black SOR sweeps of the
 * 5-point Laplacian at the hole's pixels, a neighbour beyond the edge being
 * the pixel itself.  A pixel's neighbours all have the other colour, so the
 * loop order within a colour does not matter and the result is torch's, sum
 * for sum (up + down + left + right). */
static void
harmonic_task (void *data, int c, int thread)
{
  const HarmonicJob *j = data;
  const int w = j->w, h = j->h;
  float *u = j->u + (gsize) c * w * h;
  for (int s = 0; s < j->sweeps; s++)
    for (int colour = 0; colour < 2; colour++)
      for (int y = j->win.y0; y < j->win.y1; y++) {
        float *row = u + (gsize) y * w;
        const float *up = u + (gsize) MAX (y - 1, 0) * w, *down = u + (gsize) MIN (y + 1, h - 1) * w;
        const float *hole = j->hole + (gsize) y * w;
        for (int x = j->win.x0 + ((j->win.x0 + y + colour) & 1); x < j->win.x1; x += 2) {
          if (hole[x] <= 0.0f)
            continue;
          const float left = row[x > 0 ? x - 1 : x], right = row[x < w - 1 ? x + 1 : x];
          const float avg = (up[x] + down[x] + left + right) / 4.0f;
          row[x] += j->omega * (avg - row[x]);
        }
      }
}

/* models/inpaint/train.py's base_fill: normalised convolutions of the
 * known pixels, coarse to fine; a finer scale's estimate counts in
 * proportion to its support (blurred known-mask / base_support, capped at 1);
 * then harmonic_sweeps of SOR towards the harmonic fill.  @img [3, plane]
 * and @hole [plane] in, @base [3, plane] out (the known pixels as they are,
 * the hole filled); @scratch 12 planes.  The four blurs of a scale, and the
 * three planes' sweeps, run on the pool. */
static void
base_fill (GeInpaint * ip, const float *img, const float *hole, int w, int h, float *base,
    float *scratch)
{
  const gsize plane = (gsize) w * h;
  float *src = scratch, *tmp = scratch + 4 * plane, *blurred = scratch + 8 * plane;
  float *known = src, *den = blurred, *num = blurred + plane;
  /* Only the hole's pixels take the estimate, so it is made only in the
   * hole's bounding box (the blurs still read the whole plane), 0 outside */
  Win win = { w, 0, h, 0 };
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      if (hole[(gsize) y * w + x] > 0.0f) {
        win = (Win) { MIN (win.x0, x), MAX (win.x1, x + 1), MIN (win.y0, y), MAX (win.y1, y + 1) };
      }
  if (win.x1 <= win.x0)
    win = (Win) { 0, 0, 0, 0 };
  for (gsize i = 0; i < plane; i++) {
    known[i] = 1.0f - hole[i];
    for (int c = 0; c < 3; c++)
      src[(c + 1) * plane + i] = img[c * plane + i] * known[i];
  }
  memset (base, 0, sizeof (float) * 3 * plane);
  for (int s = 0; s < ip->n_sigmas; s++) {
    BlurJob j = { src, tmp, blurred, w, h, ip->base_sigmas[s], win };
    ge_pool_run (ip->ctx.pool, 4, blur_task, &j);
    /* base holds the running estimate f */
    for (int y = win.y0; y < win.y1; y++)
      for (gsize i = (gsize) y * w + win.x0; i < (gsize) y * w + win.x1; i++) {
        const float d = MAX (den[i], 1e-6f);
        const float a = MIN (MAX (den[i] / ip->base_support, 0.0f), 1.0f);
        for (int c = 0; c < 3; c++) {
          const float fs = num[c * plane + i] / d;
          float *f = base + c * plane + i;
          *f = s == 0 ? fs : a * fs + (1.0f - a) * *f;
        }
      }
  }
  for (int c = 0; c < 3; c++)
    for (gsize i = 0; i < plane; i++)
      base[c * plane + i] = known[i] * img[c * plane + i] + hole[i] * base[c * plane + i];
  HarmonicJob hj = { base, hole, w, h, ip->harmonic_sweeps, ip->harmonic_omega, win };
  ge_pool_run (ip->ctx.pool, 3, harmonic_task, &hj);
}

/* ---- sampling ------------------------------------------------------------ */

typedef struct {
  guint64 seed, k;
  const Box *b;
  float *out;
  int n_tasks;
} NoiseJob;

#define NOISE_TASKS 16

static void
noise_task (void *data, int task, int thread)
{
  const NoiseJob *j = data;
  const Box *b = j->b;
  const int bw = b->x1 - b->x0, bh = b->y1 - b->y0, rows = 3 * bh;
  for (int r = task * rows / j->n_tasks; r < (task + 1) * rows / j->n_tasks; r++) {
    const int c = r / bh, y = r % bh;
    ge_rng_normal (j->seed, j->k << 40 | ge_rng_position (c, b->y0 + y, b->x0), j->out + (gsize) r * bw, bw);
  }
}

/* Draw @k of the box's noise: the normal of pixel (c, Y, X) is element
 * (k << 40 | (c << 16 | Y) << 16 | X) of the seed's stream, so it depends on
 * the position in the frame, not on the box.  Rows in parallel: a draw
 * (double-precision Box-Muller) costs about 6 % of a U-Net step on one
 * thread. */
static void
box_noise (const GeInpaint * ip, const Box * b, guint64 k, float *out)
{
  NoiseJob j = { ip->seed, k, b, out, MIN (NOISE_TASKS, 3 * (b->y1 - b->y0)) };
  ge_pool_run (ip->ctx.pool, j.n_tasks, noise_task, &j);
}

/* diffusers' RePaintScheduler.set_timesteps: descending steps of T / N,
 * going back up jump_length steps jump_n_sample - 1 times at every
 * jump_length-th step. */
static void
repaint_timesteps (GeInpaint * ip, int n)
{
  const int key[3] = { n, ip->jump_length, ip->jump_n_sample };
  if (ip->rp_ts && memcmp (key, ip->rp_key, sizeof (key)) == 0)
    return;
  const int jl = ip->jump_length, T = ge_scheduler_config (ip->sched)->num_train_timesteps;
  int *jumps = g_new0 (int, n + 1);
  for (int j = 0; j < n - jl; j += jl)
    jumps[j] = ip->jump_n_sample - 1;
  GArray *ts = g_array_new (FALSE, FALSE, sizeof (gint64));
  for (int t = n; t >= 1;) {
    t--;
    gint64 v = (gint64) t * (T / n);
    g_array_append_val (ts, v);
    if (jumps[t] > 0) {
      jumps[t]--;
      for (int i = 0; i < jl; i++) {
        t++;
        v = (gint64) t * (T / n);
        g_array_append_val (ts, v);
      }
    }
  }
  g_free (jumps);
  g_free (ip->rp_ts);
  ip->rp_n = ts->len;
  ip->rp_ts = (gint64 *) g_array_free (ts, FALSE);
  memcpy (ip->rp_key, key, sizeof (key));
}

/* RePaint over @x [3, plane] (x_T in, the image out), @img the box's image
 * in [-1, 1], @keep 1 where it is known; @eps and @noise [3, plane] of
 * scratch. */
static gboolean
repaint (GeInpaint * ip, const Box * b, float *x, const float *img, const float *keep,
    float *eps, float *noise, GError ** error)
{
  const int bw = b->x1 - b->x0, bh = b->y1 - b->y0, n = ip->steps ? ip->steps : ip->default_steps;
  const gsize plane = (gsize) bw * bh;
  const GeSchedulerConfig *cfg = ge_scheduler_config (ip->sched);
  const float *ac = ge_scheduler_alphas_cumprod (ip->sched), *betas = ge_scheduler_betas (ip->sched);
  const int stride = cfg->num_train_timesteps / n;
  guint64 draw = 1;
  repaint_timesteps (ip, n);
  gint64 t_last = ip->rp_ts[0] + 1;
  for (int i = 0; i < ip->rp_n; i++) {
    const gint64 t = ip->rp_ts[i];
    if (t < t_last) {
      const float ts = (float) t;
      if (!ge_unet2d_forward (ip->unet, x, 1, bh, bw, &ts, eps, error))
        return FALSE;
      const gint64 prev = t - stride;
      const float a_t = ac[t], a_prev = prev >= 0 ? ac[prev] : 1.0f;
      const float sa = sqrtf (a_t), s1a = sqrtf (1.0f - a_t);
      const float sp = sqrtf (a_prev), dir = sqrtf (1.0f - a_prev);
      box_noise (ip, b, draw++, noise);
      for (gsize j = 0; j < 3 * plane; j++) {
        float x0 = (x[j] - s1a * eps[j]) / sa;
        if (cfg->clip_sample)
          x0 = CLAMP (x0, -(float) cfg->clip_sample_range, (float) cfg->clip_sample_range);
        const float unknown = sp * x0 + dir * eps[j];
        /* As diffusers: the known part at alpha_t, not alpha_prev. */
        const float known = sa * img[j] + s1a * noise[j];
        const float k = keep[j % plane];
        x[j] = k * known + (1.0f - k) * unknown;
      }
    } else {
      /* undo_step: renoise T / N train steps from t_last up */
      for (int k = 0; k < stride; k++) {
        const float beta = betas[t_last + k], a = sqrtf (1.0f - beta), s = sqrtf (beta);
        box_noise (ip, b, draw++, noise);
        for (gsize j = 0; j < 3 * plane; j++)
          x[j] = a * x[j] + s * noise[j];
      }
    }
    t_last = t;
  }
  return TRUE;
}

/* ---- the exemplar fill --------------------------------------------------- */

/* PatchMatch fill (patchmatch.h) of the box's part inside the frame, hole =
 * the mask (d == 0), as float planes [3, plane] in [-1, 1]: the hole filled,
 * the rest the box's image (edge pixels repeated past the frame).  NULL when
 * no patch of known pixels fits in the box (then nothing guides the sampler).
 * Work space from the arena; @tmp: 3 planes of scratch floats. */
static float *
exemplar_fill (GeInpaint * ip, const GeImageU8 * img, const Box * b, const gint32 * d,
    float *tmp)
{
  GeArena *arena = ip->ctx.arena;
  const int W = img->width, H = img->height;
  const int bw = b->x1 - b->x0, bh = b->y1 - b->y0;
  const int vw = MIN (b->x1, W) - b->x0, vh = MIN (b->y1, H) - b->y0;
  const gsize plane = (gsize) bw * bh, vplane = (gsize) vw * vh;
  const int offs[3] = { img->r, img->g, img->b };
  guint8 *rgb = (guint8 *) tmp, *hole = rgb + 3 * vplane;   /* 4 vplane bytes <= 3 planes */
  float *ex = ge_arena_alloc (arena, 3 * plane);
  void *scratch = ge_arena_alloc (arena, ge_patchmatch_scratch_bytes (vw, vh,
          ge_pool_n_threads (ip->ctx.pool)) / sizeof (float) + 1);
  for (int y = 0; y < vh; y++) {
    const guint8 *row = img->data + (gsize) (b->y0 + y) * img->stride;
    for (int x = 0; x < vw; x++) {
      const guint8 *px = row + (gsize) (b->x0 + x) * img->pixel_stride;
      for (int c = 0; c < 3; c++)
        rgb[((gsize) y * vw + x) * 3 + c] = px[offs[c]];
      hole[(gsize) y * vw + x] = d[(gsize) y * bw + x] == 0;
    }
  }
  if (!ge_patchmatch_fill (ip->ctx.pool, &ip->pm, rgb, hole, vw, vh, b->x0, b->y0, ip->seed,
          scratch))
    return NULL;
  for (int y = 0; y < bh; y++) {
    const int vy = MIN (y, vh - 1);
    for (int x = 0; x < bw; x++) {
      const guint8 *px = rgb + ((gsize) vy * vw + MIN (x, vw - 1)) * 3;
      for (int c = 0; c < 3; c++)
        ex[c * plane + (gsize) y * bw + x] = ge_u8_to_unit (px[c]);
    }
  }
  return ex;
}

/* ---- one box ----------------------------------------------------------- */

static gboolean
run_box (GeInpaint * ip, GeImageU8 * img, const guint8 * mask, int mstride, const Box * b,
    GError ** error)
{
  GeArena *arena = ip->ctx.arena;
  const int W = img->width, H = img->height, f = ip->feather;
  const int bw = b->x1 - b->x0, bh = b->y1 - b->y0;
  const gsize plane = (gsize) bw * bh;
  const int offs[3] = { img->r, img->g, img->b };
  gint32 *d = (gint32 *) ge_arena_alloc (arena, plane);
  float *x_in = ge_arena_alloc (arena, 7 * plane);
  float *x0 = ge_arena_alloc (arena, 3 * plane);

  distances (mask, mstride, W, H, b, 3 * (f + 1), d);
  float *hole = x_in + 3 * plane, *known = x_in + 4 * plane;
  for (int y = 0; y < bh; y++) {
    const guint8 *row = img->data + (gsize) MIN (b->y0 + y, H - 1) * img->stride;
    for (int x = 0; x < bw; x++) {
      const gsize i = (gsize) y * bw + x;
      const float h = d[i] == 0 ? 1.0f : 0.0f;
      const gsize px = (gsize) MIN (b->x0 + x, W - 1) * img->pixel_stride;
      hole[i] = h;
      for (int c = 0; c < 3; c++)
        known[c * plane + i] = (ip->repaint || ip->residual ? 1.0f : 1.0f - h)
            * ge_u8_to_unit (row[px + offs[c]]);
    }
  }

  /* The exemplar fill, in the U-Net's sample space (the residual over the
   * base, scaled, or the image): each step's estimate is pulled towards it. */
  const float gd = guidance_in_use (ip);
  float *guide = gd > 0.0f ? exemplar_fill (ip, img, b, d, x0) : NULL;
  /* the exemplar alone: no sampler step, no x_T */
  const gboolean exemplar_only = !ip->repaint && guide && ip->residual && gd >= 1.0f;
  if (!exemplar_only)
    box_noise (ip, b, 0, x_in);   /* x_T */
  if (ip->residual) {
    /* input concat (r_t, hole, base): the known planes hold the whole image
     * until base_fill replaces them with the base */
    float *full = ge_arena_alloc (arena, 3 * plane), *scratch = ge_arena_alloc (arena, 12 * plane);
    memcpy (full, known, sizeof (float) * 3 * plane);
    base_fill (ip, full, hole, bw, bh, known, scratch);
  }
  if (guide && ip->residual)
    for (int c = 0; c < 3; c++)
      for (gsize i = 0; i < plane; i++)
        guide[c * plane + i] = (guide[c * plane + i] - known[c * plane + i]) * ip->residual_scale;
  if (guide && ip->residual && ip->exemplar_low < 1.0f) {
    /* the exemplar's detail in full, its coarser structure only in part:
     * target = base + e - (1 - low) * blur (e), e the exemplar's residual
     * over the base.  A sample of the hole's content misplaces what the rim
     * does not pin down, and that costs twice the error of the smooth fill's
     * guess (MODEL.md, "Texture"); its finest scales cost little. */
    float *lo = ge_arena_alloc (arena, 3 * plane), *tmp = ge_arena_alloc (arena, plane);
    const Win all = { 0, bw, 0, bh };
    for (int c = 0; c < 3; c++) {
      blur_plane (guide + c * plane, tmp, lo + c * plane, bw, bh, ip->exemplar_sigma, &all);
      for (gsize i = 0; i < plane; i++)
        guide[c * plane + i] -= (1.0f - ip->exemplar_low) * lo[c * plane + i];
    }
  }
  if (ip->repaint) {
    /* keep = 1 - hole, in place; eps and noise in x0 and the spare planes */
    for (gsize i = 0; i < plane; i++)
      hole[i] = 1.0f - hole[i];
    float *noise = ge_arena_alloc (arena, 3 * plane);
    if (!repaint (ip, b, x_in, known, hole, x0, noise, error))
      return FALSE;
  } else if (exemplar_only) {
    /* every step's estimate would be the target: the U-Net's output would be
     * thrown away, so it is not run */
    memcpy (x_in, guide, sizeof (float) * 3 * plane);
    for (int c = 0; c < 3; c++)
      for (gsize i = 0; i < plane; i++)
        x_in[c * plane + i] = known[c * plane + i] + hole[i] * x_in[c * plane + i] / ip->residual_scale;
  } else {
    const int n_steps = ge_scheduler_n_timesteps (ip->sched);
    float *noise = ip->eta > 0.0f ? ge_arena_alloc (arena, 3 * plane) : NULL;
    for (int i = 0; i < n_steps; i++) {
      const float ts = (float) ge_scheduler_timesteps (ip->sched)[i];
      if (!ge_unet2d_forward (ip->unet, x_in, 1, bh, bw, &ts, x0, error))
        return FALSE;
      if (guide)
        for (int c = 0; c < 3; c++)
          for (gsize k = 0; k < plane; k++)
            x0[c * plane + k] += gd * hole[k] * (guide[c * plane + k] - x0[c * plane + k]);
      /* draw 0 is x_T; none where the step adds no noise (the last) */
      const gboolean draw = noise && ge_scheduler_step_noise_std (ip->sched, i, ip->eta) > 0.0f;
      if (draw)
        box_noise (ip, b, (guint64) i + 1, noise);
      ge_scheduler_step (ip->sched, i, x0, x_in, 3 * plane, ip->eta, FALSE, draw ? noise : NULL,
          x_in, NULL);
    }
    if (ip->residual)           /* image = base + hole * r0 / residual_scale */
      for (int c = 0; c < 3; c++)
        for (gsize i = 0; i < plane; i++)
          x_in[c * plane + i] = known[c * plane + i]
              + hole[i] * x_in[c * plane + i] / ip->residual_scale;
  }
  /* With x0-prediction the last DDIM step returns x0 itself (the image, or
   * base + residual above), and RePaint ends on the image: x_in holds it. */
  for (int y = 0; y < bh && b->y0 + y < H; y++) {
    guint8 *row = img->data + (gsize) (b->y0 + y) * img->stride;
    for (int x = 0; x < bw && b->x0 + x < W; x++) {
      const gsize i = (gsize) y * bw + x;
      const float a = alpha_at (d[i], f);
      if (a <= 0.0f)
        continue;
      guint8 *p = row + (gsize) (b->x0 + x) * img->pixel_stride;
      for (int c = 0; c < 3; c++) {
        const float g = (x_in[c * plane + i] + 1.0f) * 127.5f;
        const float v = a * g + (1.0f - a) * p[offs[c]] + 0.5f;
        p[offs[c]] = v <= 0 ? 0 : v >= 255 ? 255 : (guint8) v;
      }
    }
  }
  return TRUE;
}

/* ---- the fill cache ------------------------------------------------------ */

/* The box's pixels inside the frame, RGB (and the mask's bytes when @mask),
 * packed into @dst. */
static void
region_get (const GeImageU8 * img, const guint8 * mask, int mstride, const Box * b,
    GByteArray * dst)
{
  const int x1 = MIN (b->x1, img->width), y1 = MIN (b->y1, img->height), w = x1 - b->x0;
  const int offs[3] = { img->r, img->g, img->b };
  g_byte_array_set_size (dst, (guint) ((gsize) w * (y1 - b->y0) * (mask ? 4 : 3)));
  guint8 *d = dst->data;
  for (int y = b->y0; y < y1; y++) {
    const guint8 *row = img->data + (gsize) y * img->stride;
    for (int x = b->x0; x < x1; x++)
      for (int c = 0; c < 3; c++)
        *d++ = row[(gsize) x * img->pixel_stride + offs[c]];
    if (mask) {
      memcpy (d, mask + (gsize) y * mstride + b->x0, w);
      d += w;
    }
  }
}

static gboolean
region_equal (const GeImageU8 * img, const guint8 * mask, int mstride, const Box * b,
    const GByteArray * ref)
{
  const int x1 = MIN (b->x1, img->width), y1 = MIN (b->y1, img->height), w = x1 - b->x0;
  const int offs[3] = { img->r, img->g, img->b };
  if (ref->len != (gsize) w * (y1 - b->y0) * 4)
    return FALSE;
  const guint8 *d = ref->data;
  for (int y = b->y0; y < y1; y++) {
    const guint8 *row = img->data + (gsize) y * img->stride;
    for (int x = b->x0; x < x1; x++)
      for (int c = 0; c < 3; c++)
        if (*d++ != row[(gsize) x * img->pixel_stride + offs[c]])
          return FALSE;
    if (memcmp (d, mask + (gsize) y * mstride + b->x0, w) != 0)
      return FALSE;
    d += w;
  }
  return TRUE;
}

static void
region_put (GeImageU8 * img, const Box * b, const GByteArray * src)
{
  const int x1 = MIN (b->x1, img->width), y1 = MIN (b->y1, img->height);
  const int offs[3] = { img->r, img->g, img->b };
  const guint8 *d = src->data;
  for (int y = b->y0; y < y1; y++) {
    guint8 *row = img->data + (gsize) y * img->stride;
    for (int x = b->x0; x < x1; x++)
      for (int c = 0; c < 3; c++)
        row[(gsize) x * img->pixel_stride + offs[c]] = *d++;
  }
}

static guint32
float_bits (float v)
{
  guint32 u;
  memcpy (&u, &v, sizeof (u));
  return u;
}

gboolean
ge_inpaint_process (GeInpaint * ip, GeImageU8 * img, const guint8 * mask, int mask_stride,
    GError ** error)
{
  const int W = img->width, H = img->height;
  if (W < 1 || H < 1 || W >= 65536 || H >= 65536)
    return ge_fail (error, GE_ERROR_SHAPE, ge_model_file_path (ip->mf), "a %dx%d frame cannot "
        "be inpainted (1 to 65535 pixels a side)", W, H);
  const int steps = ip->steps ? ip->steps : ip->default_steps;
  if (!ip->repaint && ge_scheduler_n_timesteps (ip->sched) != steps
      && !ge_scheduler_set_timesteps (ip->sched, steps, error))
    return FALSE;
  GeArena *arena = ip->ctx.arena;
  const guint allocs0 = ge_arena_n_system_allocs (arena);
  gint32 *label = (gint32 *) ge_arena_alloc (arena, (gsize) W * H);
  gint32 *stack = (gint32 *) ge_arena_alloc (arena, (gsize) W * H);
  const int n = find_boxes (ip, mask, mask_stride, W, H, label, stack);
  ge_arena_free_floats (arena, (float *) stack);
  ge_arena_free_floats (arena, (float *) label);

  gboolean ok = TRUE;
  const guint64 settings = g_str_hash (ge_model_file_path (ip->mf)) ^ ip->seed * 0x9E3779B97F4A7C15ull
      ^ (guint64) steps << 48 ^ (guint64) ip->feather << 40 ^ (guint64) ip->jump_length << 24
      ^ (guint64) ip->jump_n_sample << 32 ^ (guint64) float_bits (guidance_in_use (ip)) << 8;
  ip->last_area = ip->last_reused = 0;
  for (int i = 0; ok && i < n; i++) {
    const Box *b = &ip->boxes[i];
    ip->last_area += (gsize) (b->x1 - b->x0) * (b->y1 - b->y0);
    if (!ip->cache[i].in) {
      ip->cache[i].in = g_byte_array_new ();
      ip->cache[i].out = g_byte_array_new ();
    }
    GByteArray *in = ip->cache[i].in, *out = ip->cache[i].out;
    const gboolean same_box = i < ip->n_cache && ip->cache[i].settings == settings
        && memcmp (&ip->cache[i].box, b, sizeof (Box)) == 0;
    if (same_box && region_equal (img, mask, mask_stride, b, in)) {
      region_put (img, b, out);
      ip->last_reused++;
      continue;
    }
    region_get (img, mask, mask_stride, b, in);
    const gsize mark = ge_arena_mark (arena);
    ok = run_box (ip, img, mask, mask_stride, b, error);
    ge_arena_release (arena, mark);
    region_get (img, NULL, 0, b, out);
    ip->cache[i].box = *b;
    ip->cache[i].settings = settings;
  }
  ip->n_cache = ok ? n : 0;
  ge_arena_reset (arena);
  ip->last_allocs = ge_arena_n_system_allocs (arena) - allocs0 + ge_unet2d_n_allocs (ip->unet);
  return ok;
}
