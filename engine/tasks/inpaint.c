/* inpaint.c: diffusion inpainting (see ge-inpaint.h).
 *
 * Per frame:
 *   boxes   connected parts of the mask (8-neighbour), each grown by the
 *           feather width plus context, clamped, merged while they overlap,
 *           then widened to the U-Net's size multiple
 * Per box:
 *   dist    chamfer (3-4) distance of each pixel to the mask, in the box
 *   hole    dist <= feather: what the model regenerates
 *   alpha   1 on the mask, smootherstep down to 0 at feather + 1 pixels
 *   loop    x0 = unet (cat (x_t, hole, image * (1 - hole)), t);
 *           x_{t-1} = DDIM step (x0, x_t), from seeded noise x_T
 *   blend   alpha * x0 + (1 - alpha) * image where alpha > 0; elsewhere the
 *           input bytes stay as they are
 */
#include "ge-inpaint.h"
#include "ge-blocks.h"
#include "ge-model-file.h"
#include "ge-rng.h"
#include "ge-scheduler.h"
#include "ge-unet2d.h"

#include <string.h>

#define MAX_BOXES 256
#define MIN_CONTEXT 16

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
  gsize last_area;
  guint last_allocs;
  Box boxes[MAX_BOXES];
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
  JsonParser *tp = NULL, *sp = NULL;
  JsonObject *task, *sched;
  if (strcmp (ge_model_file_class (mf), "UNet2DModel") != 0) {
    ge_fail (error, GE_ERROR_UNSUPPORTED, path, "is a %s, not a diffusion inpainting model",
        ge_model_file_class (mf));
    goto fail;
  }
  if (!(tp = ge_model_file_metadata_json (mf, "task", "diffusion inpainting", &task, error))
      || !(sp = ge_model_file_metadata_json (mf, "scheduler", "diffusion inpainting", &sched,
              error)))
    goto fail;
  const char *kind = json_object_has_member (task, "task")
      ? json_object_get_string_member (task, "task") : NULL;
  if (!kind || strcmp (kind, "inpaint") != 0) {
    ge_fail (error, GE_ERROR_UNSUPPORTED, path, "the task metadata is not {\"task\": \"inpaint\"}");
    goto fail;
  }
  ip->default_steps = json_object_has_member (task, "num_inference_steps")
      ? (int) json_object_get_int_member (task, "num_inference_steps") : 4;
  ip->default_steps = CLAMP (ip->default_steps, 1, 1000);

  GeSchedulerConfig cfg;
  if (!ge_scheduler_config_from_json_as (&cfg, GE_SCHEDULER_DDIM, sched, path, error)
      || !(ip->sched = ge_scheduler_new (&cfg, error))
      || !(ip->unet = ge_unet2d_new (mf, error)))
    goto fail;
  if (ge_unet2d_in_channels (ip->unet) != 7 || ge_unet2d_out_channels (ip->unet) != 3) {
    ge_fail (error, GE_ERROR_UNSUPPORTED, path, "an inpainting model needs a U-Net of 7 input "
        "channels (noisy image, mask, masked image) and 3 output channels, this one has %d "
        "and %d", ge_unet2d_in_channels (ip->unet), ge_unet2d_out_channels (ip->unet));
    goto fail;
  }
  ip->multiple = ge_unet2d_size_multiple (ip->unet);
  ge_ctx_init (&ip->ctx, 0);
  g_object_unref (tp);
  g_object_unref (sp);
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
  g_free (ip);
}

int ge_inpaint_default_steps (const GeInpaint * ip) { return ip->default_steps; }
gsize ge_inpaint_last_area (const GeInpaint * ip) { return ip->last_area; }
guint ge_inpaint_n_allocs (const GeInpaint * ip) { return ip->last_allocs; }

void
ge_inpaint_set_n_threads (GeInpaint * ip, int n_threads)
{
  ge_unet2d_set_n_threads (ip->unet, n_threads);
  ge_ctx_set_n_threads (&ip->ctx, n_threads);
}

void
ge_inpaint_set_num_steps (GeInpaint * ip, int steps)
{
  ip->steps = MAX (steps, 0);
}

void
ge_inpaint_set_seed (GeInpaint * ip, guint64 seed)
{
  ip->seed = seed;
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
  /* x_T: the noise of pixel (c, Y, X) is element ((c << 16 | Y) << 16 | X)
   * of the seed's stream, wherever the box starts. */
  for (int c = 0; c < 3; c++)
    for (int y = 0; y < bh; y++)
      ge_rng_normal (ip->seed, (((guint64) c << 16 | (guint64) (b->y0 + y)) << 16) | (guint64) b->x0,
          x_in + c * plane + (gsize) y * bw, bw);
  float *hole = x_in + 3 * plane, *known = x_in + 4 * plane;
  for (int y = 0; y < bh; y++) {
    const guint8 *row = img->data + (gsize) MIN (b->y0 + y, H - 1) * img->stride;
    for (int x = 0; x < bw; x++) {
      const gsize i = (gsize) y * bw + x;
      const float h = d[i] <= 3 * f ? 1.0f : 0.0f;
      const gsize px = (gsize) MIN (b->x0 + x, W - 1) * img->pixel_stride;
      hole[i] = h;
      for (int c = 0; c < 3; c++)
        known[c * plane + i] = (1.0f - h) * ge_u8_to_unit (row[px + offs[c]]);
    }
  }

  const int n_steps = ge_scheduler_n_timesteps (ip->sched);
  for (int i = 0; i < n_steps; i++) {
    const float ts = (float) ge_scheduler_timesteps (ip->sched)[i];
    if (!ge_unet2d_forward (ip->unet, x_in, 1, bh, bw, &ts, x0, error))
      return FALSE;
    ge_scheduler_step (ip->sched, i, x0, x_in, 3 * plane, 0.0f, FALSE, NULL, x_in, NULL);
  }
  /* With x0-prediction the last step returns x0 itself; x_in holds it. */
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

gboolean
ge_inpaint_process (GeInpaint * ip, GeImageU8 * img, const guint8 * mask, int mask_stride,
    GError ** error)
{
  const int W = img->width, H = img->height;
  if (W < 1 || H < 1 || W >= 65536 || H >= 65536)
    return ge_fail (error, GE_ERROR_SHAPE, ge_model_file_path (ip->mf), "a %dx%d frame cannot "
        "be inpainted (1 to 65535 pixels a side)", W, H);
  const int steps = ip->steps ? ip->steps : ip->default_steps;
  if (ge_scheduler_n_timesteps (ip->sched) != steps
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
  ip->last_area = 0;
  for (int i = 0; ok && i < n; i++) {
    const Box *b = &ip->boxes[i];
    ip->last_area += (gsize) (b->x1 - b->x0) * (b->y1 - b->y0);
    const gsize mark = ge_arena_mark (arena);
    ok = run_box (ip, img, mask, mask_stride, b, error);
    ge_arena_release (arena, mark);
  }
  ge_arena_reset (arena);
  ip->last_allocs = ge_arena_n_system_allocs (arena) - allocs0 + ge_unet2d_n_allocs (ip->unet);
  return ok;
}
