/* sd.c: see ge-sd.h. */
#include "ge-sd.h"
#include "ge-clip-text.h"
#include "ge-clip-tokenizer.h"
#include "ge-rng.h"
#include "ge-sampler.h"
#include "ge-unet2d.h"
#include "ge-vae.h"

#include <math.h>
#include <string.h>

/* Prompts kept encoded: the prompt, the negative prompt, and a pair that
 * alternates with them. */
#define TEXT_CACHE 4

typedef struct {
  char *text;
  float *emb;                   /* [seq, dim] */
  gboolean truncated;
  guint64 last_use;
} TextEntry;

struct _GeSd {
  GePipeline *pipeline;
  GeModelFile *unet_mf, *vae_mf, *text_mf;
  GeUNet2D *unet;
  GeVae *vae;
  GeClipText *text;
  GeClipTokenizer *tok;
  JsonObject *scheduler_config;
  GeSampler *sampler;
  int steps;
  float guidance;
  int seq, dim;                 /* text embedding shape */
  TextEntry cache[TEXT_CACHE];
  guint64 clock;
  guint n_encodes;
  const float *cond, *uncond;   /* into the cache */
  GeSdTap tap;
  void *tap_data;
};

static const char *const supported[] = { "StableDiffusionInpaintPipeline" };

GeSd *
ge_sd_new (GePipeline * p, GError ** error)
{
  const char *cls = ge_pipeline_class_name (p);
  gboolean known = FALSE;
  for (guint i = 0; i < G_N_ELEMENTS (supported); i++)
    known |= g_strcmp0 (cls, supported[i]) == 0;
  if (!known) {
    ge_fail (error, GE_ERROR_UNSUPPORTED, ge_pipeline_folder (p),
        "the pipeline class %s is not one the engine runs (supported: %s)", cls,
        supported[0]);
    return NULL;
  }
  GeSd *sd = g_new0 (GeSd, 1);
  sd->pipeline = p;
  sd->guidance = 7.5f;          /* diffusers' default */
  sd->steps = 50;
  const char *tok_path = ge_pipeline_part_path (p, "tokenizer");
  if (!(sd->unet_mf = ge_pipeline_open_model (p, "unet", error))
      || !(sd->unet = ge_unet2d_new (sd->unet_mf, error))
      || !(sd->vae_mf = ge_pipeline_open_model (p, "vae", error))
      || !(sd->vae = ge_vae_new (sd->vae_mf, error))
      || !(sd->text_mf = ge_pipeline_open_model (p, "text_encoder", error))
      || !(sd->text = ge_clip_text_new (sd->text_mf, error)))
    goto fail;
  if (!tok_path) {
    ge_fail (error, GE_ERROR_NOT_FOUND, ge_pipeline_folder (p),
        "the %s has no tokenizer part", cls);
    goto fail;
  }
  if (!(sd->tok = ge_clip_tokenizer_new (tok_path, error)))
    goto fail;
  if (ge_unet2d_cross_attention_dim (sd->unet) != ge_clip_text_hidden_size (sd->text)) {
    ge_fail (error, GE_ERROR_CORRUPT, ge_pipeline_folder (p),
        "the unet's cross_attention_dim (%d) is not the text encoder's hidden_size (%d)",
        ge_unet2d_cross_attention_dim (sd->unet), ge_clip_text_hidden_size (sd->text));
    goto fail;
  }
  const int lc = ge_vae_latent_channels (sd->vae), in = ge_unet2d_in_channels (sd->unet);
  if (in != lc && in != 2 * lc + 1) {
    ge_fail (error, GE_ERROR_CORRUPT, ge_pipeline_folder (p),
        "an inpainting unet takes %d or %d input channels with this vae, not %d",
        lc, 2 * lc + 1, in);
    goto fail;
  }
  sd->seq = ge_clip_tokenizer_max_length (sd->tok);
  sd->dim = ge_clip_text_hidden_size (sd->text);
  if (!(sd->scheduler_config = ge_pipeline_scheduler_config (p, error))
      || !ge_sd_set_scheduler (sd, NULL, error))
    goto fail;
  return sd;

fail:
  ge_sd_free (sd);
  return NULL;
}

void
ge_sd_free (GeSd * sd)
{
  if (!sd)
    return;
  for (int i = 0; i < TEXT_CACHE; i++) {
    g_free (sd->cache[i].text);
    g_free (sd->cache[i].emb);
  }
  g_clear_pointer (&sd->sampler, ge_sampler_free);
  g_clear_pointer (&sd->tok, ge_clip_tokenizer_free);
  g_clear_pointer (&sd->text, ge_clip_text_free);
  g_clear_pointer (&sd->vae, ge_vae_free);
  g_clear_pointer (&sd->unet, ge_unet2d_free);
  g_clear_pointer (&sd->text_mf, ge_model_file_unref);
  g_clear_pointer (&sd->vae_mf, ge_model_file_unref);
  g_clear_pointer (&sd->unet_mf, ge_model_file_unref);
  g_free (sd);
}

void
ge_sd_set_n_threads (GeSd * sd, int n_threads)
{
  ge_unet2d_set_n_threads (sd->unet, n_threads);
  ge_vae_set_n_threads (sd->vae, n_threads);
  ge_clip_text_set_n_threads (sd->text, n_threads);
}

void
ge_sd_set_tap (GeSd * sd, GeSdTap tap, void *user_data)
{
  sd->tap = tap;
  sd->tap_data = user_data;
}

gboolean
ge_sd_set_scheduler (GeSd * sd, const char *name, GError ** error)
{
  GeSampler *s = ge_sampler_new_from_json_as (name, sd->scheduler_config,
      ge_pipeline_part_path (sd->pipeline, "scheduler"), error);
  if (!s || !ge_sampler_set_timesteps (s, sd->steps, error)) {
    g_clear_pointer (&s, ge_sampler_free);
    return FALSE;
  }
  g_clear_pointer (&sd->sampler, ge_sampler_free);
  sd->sampler = s;
  return TRUE;
}

gboolean
ge_sd_set_num_steps (GeSd * sd, int steps, GError ** error)
{
  if (!ge_sampler_set_timesteps (sd->sampler, steps, error))
    return FALSE;
  sd->steps = steps;
  return TRUE;
}

void
ge_sd_set_guidance (GeSd * sd, float guidance_scale)
{
  sd->guidance = guidance_scale;
}

int
ge_sd_size_multiple (const GeSd * sd)
{
  return ge_vae_downsample_factor (sd->vae) * ge_unet2d_size_multiple (sd->unet);
}

guint
ge_sd_n_text_encodes (const GeSd * sd)
{
  return sd->n_encodes;
}

/* The embedding of @text ([seq, dim]), from the cache or encoded now into
 * the least recently used slot. */
static const float *
encode (GeSd * sd, const char *text, gboolean * truncated, GError ** error)
{
  TextEntry *slot = &sd->cache[0];
  for (int i = 0; i < TEXT_CACHE; i++) {
    TextEntry *e = &sd->cache[i];
    if (e->text && strcmp (e->text, text) == 0) {
      e->last_use = ++sd->clock;
      *truncated |= e->truncated;
      return e->emb;
    }
    if (e->last_use < slot->last_use)
      slot = e;
  }
  gint32 *ids = g_new (gint32, sd->seq);
  gboolean cut = FALSE;
  float *emb = g_new (float, (gsize) sd->seq * sd->dim);
  if (!ge_clip_tokenizer_encode (sd->tok, text, ids, &cut, error)
      || !ge_clip_text_forward (sd->text, ids, 1, sd->seq, NULL, emb, NULL, error)) {
    g_free (ids);
    g_free (emb);
    return NULL;
  }
  g_free (ids);
  sd->n_encodes++;
  g_free (slot->text);
  g_free (slot->emb);
  slot->text = g_strdup (text);
  slot->emb = emb;
  slot->truncated = cut;
  slot->last_use = ++sd->clock;
  *truncated |= cut;
  return emb;
}

gboolean
ge_sd_set_prompt (GeSd * sd, const char *prompt, const char *negative_prompt,
    gboolean * truncated, GError ** error)
{
  gboolean cut = FALSE;
  /* Both stay in the cache: encode() never evicts the entry it just used,
   * and the second call evicts the least recent of the other slots. */
  const float *c = encode (sd, prompt ? prompt : "", &cut, error);
  const float *u = c ? encode (sd, negative_prompt ? negative_prompt : "", &cut, error) : NULL;
  if (!u)
    return FALSE;
  sd->cond = c;
  sd->uncond = u;
  if (truncated)
    *truncated = cut;
  return TRUE;
}

static void
tap (GeSd * sd, const char *name, const float *data, int n, int c, int h, int w)
{
  if (sd->tap)
    sd->tap (name, data, n, c, h, w, sd->tap_data);
}

static void
tapf (GeSd * sd, const float *data, int n, int c, int h, int w, const char *fmt, int i)
{
  if (!sd->tap)
    return;
  char name[64];
  g_snprintf (name, sizeof name, fmt, i);
  sd->tap (name, data, n, c, h, w, sd->tap_data);
}

/* diffusers' F.interpolate (mask, size) in nearest mode: source index
 * floor (dst * in / out), for an integer factor the top-left pixel. */
static void
mask_to_latent (const float *mask, int h, int w, int f, float *out)
{
  const int lh = h / f, lw = w / f;
  for (int y = 0; y < lh; y++)
    for (int x = 0; x < lw; x++)
      out[y * lw + x] = mask[(gsize) y * f * w + (gsize) x * f];
}

gboolean
ge_sd_inpaint (GeSd * sd, const float *image, const float *mask, int h, int w,
    GeSdNoiseFunc noise, void *noise_data, float *out, GError ** error)
{
  const int m = ge_sd_size_multiple (sd), f = ge_vae_downsample_factor (sd->vae);
  if (h <= 0 || w <= 0 || h % m || w % m)
    return ge_fail (error, GE_ERROR_INVALID, ge_pipeline_folder (sd->pipeline),
        "%dx%d is not a multiple of %d", w, h, m);
  if (!sd->cond && !ge_sd_set_prompt (sd, "", "", NULL, error))
    return FALSE;

  const int lc = ge_vae_latent_channels (sd->vae), lh = h / f, lw = w / f;
  const gsize hw = (gsize) h * w, lhw = (gsize) lh * lw, ln = lc * lhw;
  const gboolean nine = ge_unet2d_in_channels (sd->unet) != lc;
  const gboolean cfg = sd->guidance > 1.0f;
  const int batch = cfg ? 2 : 1, in_c = ge_unet2d_in_channels (sd->unet);
  const float sf = (float) ge_vae_scaling_factor (sd->vae);
  GeSampler *s = sd->sampler;
  gboolean ok = FALSE;

  float *bin = g_new (float, hw), *masked = g_new (float, 3 * hw);
  float *mean = g_new (float, ln), *logvar = g_new (float, ln), *eps = g_new (float, ln);
  float *mask_lat = g_new (float, lhw), *mimg_lat = g_new (float, ln);
  float *lat = g_new (float, ln), *unet_in = g_new (float, batch * in_c * lhw);
  float *pred = g_new (float, batch * ln), *guided = g_new (float, ln);
  float *ehs = g_new (float, (gsize) batch * sd->seq * sd->dim);
  float *tsteps = g_new (float, batch), *init = NULL, *step_noise = g_new (float, ln);
  GeSamplerRun *run = ge_sampler_run_new (s, ln);

  /* The image and mask as the pipeline prepares them: [-1, 1], the mask
   * binarised at 0.5, the masked image zero (mid-grey) under the mask. */
  for (gsize i = 0; i < hw; i++)
    bin[i] = mask[i] >= 0.5f ? 1.0f : 0.0f;
  for (int c = 0; c < 3; c++)
    for (gsize i = 0; i < hw; i++)
      masked[c * hw + i] = bin[i] < 0.5f ? image[c * hw + i] * 2.0f - 1.0f : 0.0f;
  mask_to_latent (bin, h, w, f, mask_lat);
  tap (sd, "mask_binarized", bin, 1, 1, h, w);
  tap (sd, "mask_latent", mask_lat, 1, 1, lh, lw);

  /* The latents of the masked image (9-channel U-Net) or of the whole
   * image (4-channel: pasted back outside the mask after every step) are a
   * SAMPLE of the posterior, drawn with the pipeline's generator.  An
   * AutoencoderTiny leaves logvar alone: its -inf makes the sample the mean. */
  if (!nine)
    for (gsize i = 0; i < 3 * hw; i++)
      masked[i] = image[i] * 2.0f - 1.0f;
  for (gsize i = 0; i < ln; i++)
    logvar[i] = -INFINITY;
  if (!ge_vae_encode (sd->vae, masked, 1, h, w, mean, logvar, error))
    goto out;
  noise (noise_data, "vae_encode", 0, eps, lc, lh, lw);
  for (gsize i = 0; i < ln; i++) {
    logvar[i] = expf (0.5f * logvar[i]);        /* now the std */
    mimg_lat[i] = sf * (mean[i] + logvar[i] * eps[i]);
  }
  if (nine) {
    tap (sd, "masked_image", masked, 1, 3, h, w);
    tap (sd, "vae_encode.mean", mean, 1, lc, lh, lw);
    tap (sd, "vae_encode.std", logvar, 1, lc, lh, lw);
    tap (sd, "masked_image_latents", mimg_lat, 1, lc, lh, lw);
  } else
    init = g_new (float, ln);

  noise (noise_data, "latents", 0, lat, lc, lh, lw);
  if (init)
    memcpy (init, lat, sizeof (float) * ln);
  const float sigma0 = ge_sampler_init_noise_sigma (s);
  for (gsize i = 0; i < ln; i++)
    lat[i] *= sigma0;

  /* Text: uncond first. */
  if (cfg) {
    memcpy (ehs, sd->uncond, sizeof (float) * sd->seq * sd->dim);
    memcpy (ehs + (gsize) sd->seq * sd->dim, sd->cond, sizeof (float) * sd->seq * sd->dim);
  } else
    memcpy (ehs, sd->cond, sizeof (float) * sd->seq * sd->dim);

  const int calls = ge_sampler_n_calls (s);
  for (int i = 0; i < calls; i++) {
    const float t = ge_sampler_timestep (s, i), scale = ge_sampler_input_scale (s, i);
    for (int b = 0; b < batch; b++) {
      float *u = unet_in + (gsize) b * in_c * lhw;
      for (gsize k = 0; k < ln; k++)
        u[k] = lat[k] * scale;
      if (nine) {
        memcpy (u + ln, mask_lat, sizeof (float) * lhw);
        memcpy (u + ln + lhw, mimg_lat, sizeof (float) * ln);
      }
      tsteps[b] = t;
    }
    tapf (sd, unet_in, batch, in_c, lh, lw, "step%d.unet_input", i);
    if (!ge_unet2d_forward_cond (sd->unet, unet_in, batch, lh, lw, tsteps, ehs, sd->seq,
            NULL, pred, error))
      goto out;
    if (cfg) {
      const float *pu = pred, *pc = pred + ln;
      for (gsize k = 0; k < ln; k++)
        guided[k] = pu[k] + sd->guidance * (pc[k] - pu[k]);
      tapf (sd, pu, 1, lc, lh, lw, "step%d.noise_pred_uncond", i);
      tapf (sd, pc, 1, lc, lh, lw, "step%d.noise_pred_text", i);
    } else
      memcpy (guided, pred, sizeof (float) * ln);
    tapf (sd, guided, 1, lc, lh, lw, "step%d.noise_pred", i);
    const float *nz = NULL;
    if (ge_sampler_step_needs_noise (s, i)) {
      noise (noise_data, "step", i, step_noise, lc, lh, lw);
      nz = step_noise;
    }
    ge_sampler_step (run, i, guided, lat, nz, lat);
    if (init) {
      /* diffusers: init_latents_proper noised to the NEXT timestep (none
       * after the last step), then latents = (1 - mask) * it + mask * latents. */
      float *proper = pred;     /* free until the next forward */
      if (i + 1 < calls)
        ge_sampler_add_noise (s, i + 1, mimg_lat, init, ln, proper);
      else
        memcpy (proper, mimg_lat, sizeof (float) * ln);
      for (int c = 0; c < lc; c++)
        for (gsize k = 0; k < lhw; k++) {
          const float mk = mask_lat[k];
          float *l = lat + c * lhw + k;
          *l = (1.0f - mk) * proper[c * lhw + k] + mk * *l;
        }
    }
    tapf (sd, lat, 1, lc, lh, lw, "step%d.latents", i);
  }

  for (gsize k = 0; k < ln; k++)
    lat[k] /= sf;
  if (!ge_vae_decode (sd->vae, lat, 1, lh, lw, FALSE, out, error))
    goto out;
  tap (sd, "final.decoded", out, 1, 3, h, w);
  for (gsize i = 0; i < 3 * hw; i++)
    out[i] = CLAMP (out[i] / 2.0f + 0.5f, 0.0f, 1.0f);
  ok = TRUE;

out:
  ge_sampler_run_free (run);
  g_free (bin);
  g_free (masked);
  g_free (mean);
  g_free (logvar);
  g_free (eps);
  g_free (mask_lat);
  g_free (mimg_lat);
  g_free (lat);
  g_free (unet_in);
  g_free (pred);
  g_free (guided);
  g_free (ehs);
  g_free (tsteps);
  g_free (init);
  g_free (step_noise);
  return ok;
}

void
ge_sd_noise_seeded (void *seed_ptr, const char *what, int step, float *out, int c, int h,
    int w)
{
  const guint64 seed = *(const guint64 *) seed_ptr;
  /* One stream region per draw: the positions use 48 bits. */
  guint64 base = 0;
  if (strcmp (what, "vae_encode") == 0)
    base = 1;
  else if (strcmp (what, "step") == 0)
    base = 2 + (guint64) step;
  base <<= 48;
  for (int ch = 0; ch < c; ch++)
    for (int y = 0; y < h; y++)
      ge_rng_normal (seed, base + ge_rng_position (ch, y, 0),
          out + ((gsize) ch * h + y) * w, w);
}
