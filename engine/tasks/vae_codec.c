/* vae_codec.c: frames <-> VAE latents with padding and tiling (see
 * ge-vae-codec.h).
 *
 * Encoding: the frame, replicate-padded to multiples of f, goes through
 * the encoder whole or tile by tile; tiles' means and log-variances are
 * blended in latent space; SAMPLE mode then draws z from the blended
 * distribution.  Decoding: the latent, whole or in latent tiles, goes
 * through the decoder; tiles' pixels are blended, and the frame is cropped
 * out of the padded result.  All work buffers come from one arena planned
 * by the first frame of a size.
 */
#include "ge-vae-codec.h"
#include "ge-arena.h"
#include "ge-model-file.h"
#include "ge-rng.h"
#include "ge-vae.h"
#include "tiles.h"

#include <math.h>
#include <string.h>

#define MAX_TILES 1024

struct _GeVaeCodec {
  GeModelFile *mf;
  GeVae *vae;
  GeArena *arena;
  int factor, channels;
  int tile_size, tile_overlap;
  GeVaeSampleMode mode;
  guint64 seed;
  guint last_allocs;
};

GeVaeCodec *
ge_vae_codec_new (const char *path, GError ** error)
{
  GeModelFile *mf = ge_model_file_open (path, error);
  if (!mf)
    return NULL;
  GeVae *vae = ge_vae_new (mf, error);
  if (!vae) {
    ge_model_file_unref (mf);
    return NULL;
  }
  if (ge_vae_in_channels (vae) != 3 || ge_vae_out_channels (vae) != 3) {
    ge_fail (error, GE_ERROR_UNSUPPORTED, path, "an image VAE has 3 input and output channels, "
        "this one %d and %d", ge_vae_in_channels (vae), ge_vae_out_channels (vae));
    ge_vae_free (vae);
    ge_model_file_unref (mf);
    return NULL;
  }
  GeVaeCodec *c = g_new0 (GeVaeCodec, 1);
  c->mf = mf;
  c->vae = vae;
  c->arena = ge_arena_new ();
  c->factor = ge_vae_downsample_factor (vae);
  c->channels = ge_vae_latent_channels (vae);
  return c;
}

void
ge_vae_codec_free (GeVaeCodec * c)
{
  if (!c)
    return;
  ge_vae_free (c->vae);
  ge_arena_free (c->arena);
  ge_model_file_unref (c->mf);
  g_free (c);
}

int ge_vae_codec_factor (const GeVaeCodec * c) { return c->factor; }
int ge_vae_codec_latent_channels (const GeVaeCodec * c) { return c->channels; }
double ge_vae_codec_scaling_factor (const GeVaeCodec * c) { return ge_vae_scaling_factor (c->vae); }
const char *ge_vae_codec_model_class (const GeVaeCodec * c) { return ge_model_file_class (c->mf); }
guint ge_vae_codec_n_allocs (const GeVaeCodec * c) { return c->last_allocs; }

void
ge_vae_codec_latent_size (const GeVaeCodec * c, int width, int height, int *lw, int *lh)
{
  *lw = (width + c->factor - 1) / c->factor;
  *lh = (height + c->factor - 1) / c->factor;
}

void
ge_vae_codec_set_n_threads (GeVaeCodec * c, int n_threads)
{
  ge_vae_set_n_threads (c->vae, n_threads);
}

GePrecision
ge_vae_codec_set_precision (GeVaeCodec * c, GePrecision precision)
{
  return ge_vae_set_precision (c->vae, precision);
}

void
ge_vae_codec_set_tiling (GeVaeCodec * c, int tile_size, int tile_overlap)
{
  c->tile_size = MAX (tile_size, 0);
  c->tile_overlap = MAX (tile_overlap, 0);
}

void
ge_vae_codec_set_sample_mode (GeVaeCodec * c, GeVaeSampleMode mode, guint64 seed)
{
  c->mode = mode;
  c->seed = seed;
}

/* Tile grid in latent units over an lw x lh latent: the tile side and the
 * starts along each axis; one tile when tiling is off or not needed. */
typedef struct {
  int t, o;                     /* latent tile side and overlap */
  int tw, th, nx, ny;
  int xs[MAX_TILES], ys[MAX_TILES];
} Grid;

static void
grid_plan (const GeVaeCodec * c, int lw, int lh, Grid * g)
{
  const int f = c->factor;
  g->t = c->tile_size > 0 ? MAX ((c->tile_size + f - 1) / f, 1) : MAX (lw, lh);
  g->o = (c->tile_overlap + f - 1) / f;
  g->o = MIN (g->o, g->t / 2);
  g->tw = MIN (g->t, lw);
  g->th = MIN (g->t, lh);
  g->nx = ge_tile_starts (lw, g->tw, g->o, g->xs, MAX_TILES);
  g->ny = ge_tile_starts (lh, g->th, g->o, g->ys, MAX_TILES);
}

static void
start_frame (GeVaeCodec * c, guint * allocs)
{
  allocs[0] = ge_arena_n_system_allocs (c->arena);
  allocs[1] = ge_vae_n_system_allocs (c->vae);
}

static void
end_frame (GeVaeCodec * c, const guint * allocs)
{
  ge_arena_reset (c->arena);
  c->last_allocs = ge_arena_n_system_allocs (c->arena) - allocs[0]
      + ge_vae_n_system_allocs (c->vae) - allocs[1];
}

gboolean
ge_vae_codec_encode (GeVaeCodec * c, const GeImageU8 * in, float *latent, GError ** error)
{
  const int f = c->factor, C = c->channels, W = in->width, H = in->height;
  const char *path = ge_model_file_path (c->mf);
  if (W < 1 || H < 1 || W >= 65536 || H >= 65536)
    return ge_fail (error, GE_ERROR_SHAPE, path, "cannot encode a %dx%d frame", W, H);
  int lw, lh;
  ge_vae_codec_latent_size (c, W, H, &lw, &lh);
  const int Wp = lw * f, Hp = lh * f;
  guint allocs[2];
  start_frame (c, allocs);

  /* The frame in [-1, 1], planar, replicate-padded to Wp x Hp. */
  float *x = ge_arena_alloc (c->arena, (gsize) 3 * Hp * Wp);
  const int offs[3] = { in->r, in->g, in->b };
  for (int ch = 0; ch < 3; ch++)
    for (int y = 0; y < Hp; y++) {
      const guint8 *row = in->data + (gsize) MIN (y, H - 1) * in->stride + offs[ch];
      float *dst = x + ((gsize) ch * Hp + y) * Wp;
      for (int xx = 0; xx < Wp; xx++)
        dst[xx] = ge_u8_to_unit (row[(gsize) MIN (xx, W - 1) * in->pixel_stride]);
    }

  Grid g;
  grid_plan (c, lw, lh, &g);
  const gboolean kl = ge_vae_has_distribution (c->vae), want_logvar = kl && c->mode == GE_VAE_SAMPLE;
  const gsize lplane = (gsize) lh * lw;
  float *logvar = want_logvar ? ge_arena_alloc (c->arena, C * lplane) : NULL;
  gboolean ok = TRUE;
  if (g.nx * g.ny == 1) {
    ok = ge_vae_encode (c->vae, x, 1, Hp, Wp, latent, logvar, error);
  } else {
    const int tpw = g.tw * f, tph = g.th * f;
    const gsize tplane = (gsize) g.tw * g.th;
    float *tile = ge_arena_alloc (c->arena, (gsize) 3 * tph * tpw);
    float *tm = ge_arena_alloc (c->arena, C * tplane);
    float *tl = want_logvar ? ge_arena_alloc (c->arena, C * tplane) : NULL;
    float *wsum = ge_arena_alloc (c->arena, lplane);
    memset (latent, 0, sizeof (float) * C * lplane);
    memset (wsum, 0, sizeof (float) * lplane);
    if (logvar)
      memset (logvar, 0, sizeof (float) * C * lplane);
    for (int ty = 0; ok && ty < g.ny; ty++)
      for (int tx = 0; ok && tx < g.nx; tx++) {
        const int x0 = g.xs[tx], y0 = g.ys[ty];
        for (int ch = 0; ch < 3; ch++)
          for (int y = 0; y < tph; y++)
            memcpy (tile + ((gsize) ch * tph + y) * tpw,
                x + ((gsize) ch * Hp + y0 * f + y) * Wp + (gsize) x0 * f, sizeof (float) * tpw);
        if (!(ok = ge_vae_encode (c->vae, tile, 1, tph, tpw, tm, tl, error)))
          break;
        ge_tile_accumulate (latent, wsum, C, lw, lh, tm, g.tw, tplane, x0, y0, g.tw, g.th, g.o);
        if (tl)
          ge_tile_accumulate (logvar, NULL, C, lw, lh, tl, g.tw, tplane, x0, y0, g.tw, g.th, g.o);
      }
    if (ok) {
      ge_tile_normalize (latent, wsum, C, lplane);
      if (logvar)
        ge_tile_normalize (logvar, wsum, C, lplane);
    }
  }
  if (ok && logvar) {
    float *n = ge_arena_alloc (c->arena, (gsize) lw);
    for (int ch = 0; ch < C; ch++)
      for (int y = 0; y < lh; y++) {
        ge_rng_normal (c->seed, ge_rng_position (ch, y, 0), n, lw);
        float *m = latent + ch * lplane + (gsize) y * lw;
        const float *lv = logvar + ch * lplane + (gsize) y * lw;
        for (int xx = 0; xx < lw; xx++)
          m[xx] += expf (0.5f * lv[xx]) * n[xx];
      }
  }
  end_frame (c, allocs);
  return ok;
}

gboolean
ge_vae_codec_decode (GeVaeCodec * c, const float *latent, int lw, int lh, GeImageU8 * out,
    GError ** error)
{
  const int f = c->factor, C = c->channels, W = out->width, H = out->height;
  const char *path = ge_model_file_path (c->mf);
  int elw, elh;
  ge_vae_codec_latent_size (c, W, H, &elw, &elh);
  if (W < 1 || H < 1 || elw != lw || elh != lh)
    return ge_fail (error, GE_ERROR_SHAPE, path, "a %dx%d latent decodes to %d..%d x %d..%d "
        "pixels at factor %d, not %dx%d", lw, lh, (lw - 1) * f + 1, lw * f, (lh - 1) * f + 1,
        lh * f, f, W, H);
  float zmax = 0.0f;
  for (gsize i = 0; i < (gsize) C * lw * lh; i++) {
    if (!isfinite (latent[i]))
      return ge_fail (error, GE_ERROR_INVALID, path, "the latent holds a NaN or infinity "
          "(element %" G_GSIZE_FORMAT ")", i);
    zmax = MAX (zmax, fabsf (latent[i]));
  }
  const int Wp = lw * f, Hp = lh * f;
  guint allocs[2];
  start_frame (c, allocs);

  Grid g;
  grid_plan (c, lw, lh, &g);
  const gsize lplane = (gsize) lh * lw;
  float *img = ge_arena_alloc (c->arena, (gsize) 3 * Hp * Wp);
  gboolean ok = TRUE;
  if (g.nx * g.ny == 1) {
    ok = ge_vae_decode (c->vae, latent, 1, lh, lw, TRUE, img, error);
  } else {
    const int tpw = g.tw * f, tph = g.th * f, o = g.o * f;
    const gsize tplane = (gsize) g.tw * g.th, pplane = (gsize) tpw * tph;
    float *tl = ge_arena_alloc (c->arena, C * tplane);
    float *tp = ge_arena_alloc (c->arena, 3 * pplane);
    float *wsum = ge_arena_alloc (c->arena, (gsize) Hp * Wp);
    memset (img, 0, sizeof (float) * 3 * Hp * Wp);
    memset (wsum, 0, sizeof (float) * Hp * Wp);
    for (int ty = 0; ok && ty < g.ny; ty++)
      for (int tx = 0; ok && tx < g.nx; tx++) {
        const int x0 = g.xs[tx], y0 = g.ys[ty];
        for (int ch = 0; ch < C; ch++)
          for (int y = 0; y < g.th; y++)
            memcpy (tl + ch * tplane + (gsize) y * g.tw,
                latent + ch * lplane + (gsize) (y0 + y) * lw + x0, sizeof (float) * g.tw);
        if (!(ok = ge_vae_decode (c->vae, tl, 1, g.th, g.tw, TRUE, tp, error)))
          break;
        ge_tile_accumulate (img, wsum, 3, Wp, Hp, tp, tpw, pplane, x0 * f, y0 * f, tpw, tph, o);
      }
    if (ok)
      ge_tile_normalize (img, wsum, 3, (gsize) Hp * Wp);
  }
  /* Finite latents far outside the model's range overflow inside it (a
   * norm of infinities is NaN); a NaN pixel has no 8-bit value, so it is
   * an error, never a frame of whatever the conversion makes of it. */
  for (gsize i = 0; ok && i < (gsize) 3 * Hp * Wp; i++)
    if (!isfinite (img[i]))
      ok = ge_fail (error, GE_ERROR_INVALID, path, "decoding overflows: the latent's "
          "values (up to %g in magnitude) are far outside the model's range", zmax);
  if (ok) {
    const int offs[3] = { out->r, out->g, out->b };
    for (int ch = 0; ch < 3; ch++)
      for (int y = 0; y < H; y++) {
        guint8 *row = out->data + (gsize) y * out->stride + offs[ch];
        const float *src = img + ((gsize) ch * Hp + y) * Wp;
        for (int xx = 0; xx < W; xx++)
          row[(gsize) xx * out->pixel_stride] = ge_unit_to_u8 (src[xx]);
      }
    if (out->a >= 0)
      for (int y = 0; y < H; y++) {
        guint8 *row = out->data + (gsize) y * out->stride + out->a;
        for (int xx = 0; xx < W; xx++)
          row[(gsize) xx * out->pixel_stride] = 255;
      }
  }
  end_frame (c, allocs);
  return ok;
}
