/* sd.c: see ge-sd.h. */
#include "ge-sd.h"
#include "ge-arena.h"
#include "ge-clip-text.h"
#include "ge-clip-tokenizer.h"
#include "ge-rng.h"
#include "ge-sampler.h"
#include "ge-scheduler.h"
#include "ge-unet2d.h"
#include "ge-vae.h"

#include <math.h>
#include <string.h>

/* Prompts kept encoded: the prompt, the negative prompt, and a pair that
 * alternates with them. */
#define TEXT_CACHE 4

typedef enum {
  RUN_INPAINT,                  /* 9-channel U-Net */
  RUN_INPAINT_LEGACY,           /* 4-channel U-Net, known region pasted back */
  RUN_IMG2IMG,
  RUN_PIX2PIX,
  RUN_UPSCALE,
  RUN_LDM_SR,
  RUN_TEXT2IMG,
} Run;

typedef struct {
  char *text;
  float *emb;                   /* [seq, dim] */
  gboolean truncated;
  guint64 last_use;
} TextEntry;

struct _GeSd {
  GePipeline *pipeline;
  Run run;
  const char *class_name;
  GeModelFile *unet_mf, *vae_mf, *text_mf;
  GeUNet2D *unet;
  GeVae *vae;
  GeClipText *text;
  GeClipTokenizer *tok;
  gboolean text_mask;           /* use_attention_mask */
  JsonObject *scheduler_config;
  GeSampler *sampler;
  GeScheduler *low_res;         /* the upscaler's */
  int steps, noise_level, max_noise_level;
  float guidance, image_guidance, eta;
  double strength;              /* double as diffusers' int (N * strength) */
  int seq, dim;
  TextEntry cache[TEXT_CACHE];
  guint64 clock;
  guint n_encodes;
  const float *cond, *uncond;   /* into the cache */
  GeModelTap tap;
  void *tap_data;
  /* Per-frame buffers, planned once per size (nothing allocated per
   * frame after the first), and the sampler's run state. */
  GeArena *work;
  GeSamplerRun *sampler_run;
  gsize run_n;
};

/* NULL-terminated: no task lists more than three. */
static const char *const classes[][4] = {
  [GE_SD_INPAINT] = { "StableDiffusionInpaintPipeline", "StableDiffusionPipeline" },
  [GE_SD_IMG2IMG] = { "StableDiffusionImg2ImgPipeline", "StableDiffusionPipeline",
      "StableDiffusionInstructPix2PixPipeline" },
  [GE_SD_SUPER_RESOLUTION] = { "StableDiffusionUpscalePipeline",
      "LDMSuperResolutionPipeline" },
  [GE_SD_TEXT2IMG] = { "StableDiffusionPipeline" },
};

const char *
ge_sd_supported_classes (GeSdTask task)
{
  static gsize joined[G_N_ELEMENTS (classes)];
  return ge_pipeline_classes_joined (classes[task], &joined[task]);
}

static gboolean
load_text (GeSd * sd, GError ** error)
{
  GePipeline *p = sd->pipeline;
  const char *tok_path = ge_pipeline_part_path (p, "tokenizer");
  if (!(sd->text_mf = ge_pipeline_open_model (p, "text_encoder", error))
      || !(sd->text = ge_clip_text_new (sd->text_mf, error))
      || !ge_config_bool (sd->text_mf, "use_attention_mask", FALSE, &sd->text_mask, error))
    return FALSE;
  if (!tok_path)
    return ge_fail (error, GE_ERROR_NOT_FOUND, ge_pipeline_folder (p),
        "the %s has no tokenizer part", ge_pipeline_class_name (p));
  if (!(sd->tok = ge_clip_tokenizer_new (tok_path, error)))
    return FALSE;
  if (ge_unet2d_cross_attention_dim (sd->unet) != ge_clip_text_hidden_size (sd->text))
    return ge_fail (error, GE_ERROR_CORRUPT, ge_pipeline_folder (p),
        "the unet's cross_attention_dim (%d) is not the text encoder's hidden_size (%d)",
        ge_unet2d_cross_attention_dim (sd->unet), ge_clip_text_hidden_size (sd->text));
  sd->seq = ge_clip_tokenizer_max_length (sd->tok);
  sd->dim = ge_clip_text_hidden_size (sd->text);
  return TRUE;
}

/* The U-Net's input is the latents plus @extra channels. */
static gboolean
check_channels (GeSd * sd, int extra, GError ** error)
{
  const int lc = ge_vae_latent_channels (sd->vae), in = ge_unet2d_in_channels (sd->unet);
  if (in == lc + extra && ge_unet2d_out_channels (sd->unet) == lc)
    return TRUE;
  return ge_fail (error, GE_ERROR_CORRUPT, ge_pipeline_folder (sd->pipeline),
      "the %s needs a unet of %d input and %d output channels for this vae "
      "(%d latent channels), not %d and %d", sd->class_name, lc + extra, lc, lc, in,
      ge_unet2d_out_channels (sd->unet));
}

static gboolean
load_low_res_scheduler (GeSd * sd, GError ** error)
{
  GePipeline *p = sd->pipeline;
  const char *path = ge_pipeline_part_path (p, "low_res_scheduler");
  if (!path)
    return ge_fail (error, GE_ERROR_NOT_FOUND, ge_pipeline_folder (p),
        "the %s has no low_res_scheduler part", sd->class_name);
  char *file = g_file_test (path, G_FILE_TEST_IS_DIR)
      ? g_build_filename (path, "scheduler_config.json", NULL) : g_strdup (path);
  JsonParser *parser = NULL;
  JsonObject *o = ge_sampler_config_load (file, &parser, error);
  GeSchedulerConfig cfg;
  ge_scheduler_config_init_defaults (&cfg, GE_SCHEDULER_DDPM);
  const gboolean ok = o
      && ge_scheduler_config_from_json_as (&cfg, GE_SCHEDULER_DDPM, o, file, error)
      && (sd->low_res = ge_scheduler_new (&cfg, error));
  g_clear_object (&parser);
  g_free (file);
  return ok;
}

GeSd *
ge_sd_new (GePipeline * p, GeSdTask task, GError ** error)
{
  const char *cls = ge_pipeline_class_name (p);
  const int which = ge_pipeline_find_class (p, classes[task], error);
  if (which < 0)
    return NULL;
  GeSd *sd = g_new0 (GeSd, 1);
  sd->pipeline = p;
  sd->work = ge_arena_new ();
  sd->guidance = 7.5f;          /* diffusers' defaults */
  sd->image_guidance = 1.5f;
  sd->strength = task == GE_SD_IMG2IMG ? 0.8 : 1.0;
  sd->noise_level = 20;
  sd->steps = 50;
  sd->class_name = classes[task][which];
  const gboolean ldm = g_strcmp0 (cls, "LDMSuperResolutionPipeline") == 0;

  if (!(sd->unet_mf = ge_pipeline_open_model (p, "unet", error))
      || !(sd->unet = ge_unet2d_new (sd->unet_mf, error))
      || !(sd->vae_mf = ge_pipeline_open_model (p, ldm ? "vqvae" : "vae", error))
      || !(sd->vae = ge_vae_new (sd->vae_mf, error)))
    goto fail;
  if (!ldm && !load_text (sd, error))
    goto fail;
  const int lc = ge_vae_latent_channels (sd->vae);
  switch (task) {
    case GE_SD_INPAINT:
      sd->run = ge_unet2d_in_channels (sd->unet) == lc ? RUN_INPAINT_LEGACY : RUN_INPAINT;
      sd->class_name = classes[task][0];
      if (!check_channels (sd, sd->run == RUN_INPAINT ? lc + 1 : 0, error))
        goto fail;
      break;
    case GE_SD_IMG2IMG:
      sd->run = which == 2 ? RUN_PIX2PIX : RUN_IMG2IMG;
      sd->class_name = classes[task][which == 2 ? 2 : 0];
      if (!check_channels (sd, sd->run == RUN_PIX2PIX ? lc : 0, error))
        goto fail;
      break;
    case GE_SD_SUPER_RESOLUTION:
      sd->run = ldm ? RUN_LDM_SR : RUN_UPSCALE;
      /* LDM: latents of in_channels / 2 and the image beside them. */
      if (ldm ? ge_unet2d_in_channels (sd->unet) != 2 * lc || ge_unet2d_in_channels (sd->unet) != lc + 3
          : !check_channels (sd, 3, error)) {
        if (ldm)
          ge_fail (error, GE_ERROR_CORRUPT, ge_pipeline_folder (p),
              "the LDMSuperResolutionPipeline needs a unet of %d input channels "
              "(latents and RGB) for this vqvae, not %d", lc + 3,
              ge_unet2d_in_channels (sd->unet));
        goto fail;
      }
      if (!ldm && (!ge_unet2d_has_class_embedding (sd->unet) || !load_low_res_scheduler (sd, error))) {
        if (error && !*error)
          ge_fail (error, GE_ERROR_CORRUPT, ge_pipeline_folder (p),
              "the upscaler's unet has no class embedding for the noise level");
        goto fail;
      }
      break;
    case GE_SD_TEXT2IMG:
      sd->run = RUN_TEXT2IMG;
      if (!check_channels (sd, 0, error))
        goto fail;
      break;
  }
  /* The defaults of the class's __call__ where they differ from the
   * Stable Diffusion ones set above. */
  if (sd->run == RUN_UPSCALE) {
    sd->guidance = 9.0f;
    sd->steps = 75;
    /* register_to_config's default when the index has none */
    gint64 max_nl;
    if (!ge_pipeline_option_int (p, "max_noise_level", 350, &max_nl, error))
      goto fail;
    sd->max_noise_level = (int) CLAMP (max_nl, -1, G_MAXINT);
  } else if (sd->run == RUN_PIX2PIX || sd->run == RUN_LDM_SR)
    sd->steps = 100;
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
  g_clear_pointer (&sd->sampler_run, ge_sampler_run_free);
  g_clear_pointer (&sd->sampler, ge_sampler_free);
  g_clear_pointer (&sd->low_res, ge_scheduler_free);
  g_clear_pointer (&sd->work, ge_arena_free);
  g_clear_pointer (&sd->tok, ge_clip_tokenizer_free);
  g_clear_pointer (&sd->text, ge_clip_text_free);
  g_clear_pointer (&sd->vae, ge_vae_free);
  g_clear_pointer (&sd->unet, ge_unet2d_free);
  g_clear_pointer (&sd->text_mf, ge_model_file_unref);
  g_clear_pointer (&sd->vae_mf, ge_model_file_unref);
  g_clear_pointer (&sd->unet_mf, ge_model_file_unref);
  g_free (sd);
}

const char *
ge_sd_pipeline_class (const GeSd * sd)
{
  return sd->class_name;
}

void
ge_sd_set_n_threads (GeSd * sd, int n_threads)
{
  ge_unet2d_set_n_threads (sd->unet, n_threads);
  ge_vae_set_n_threads (sd->vae, n_threads);
  if (sd->text)
    ge_clip_text_set_n_threads (sd->text, n_threads);
}

GePrecision
ge_sd_set_precision (GeSd * sd, GePrecision precision)
{
  ge_vae_set_precision (sd->vae, precision);
  return ge_unet2d_set_precision (sd->unet, precision);
}

void
ge_sd_set_tap (GeSd * sd, GeModelTap tap, void *user_data)
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
  ge_sampler_set_eta (s, sd->eta);
  g_clear_pointer (&sd->sampler_run, ge_sampler_run_free);
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

int
ge_sd_num_steps (const GeSd * sd)
{
  return sd->steps;
}

void
ge_sd_set_guidance (GeSd * sd, float guidance_scale, float image_guidance_scale)
{
  sd->guidance = guidance_scale;
  sd->image_guidance = image_guidance_scale;
}

void
ge_sd_set_strength (GeSd * sd, double strength)
{
  sd->strength = CLAMP (strength, 0.0, 1.0);
}

void
ge_sd_set_noise_level (GeSd * sd, int noise_level)
{
  sd->noise_level = noise_level;
}

void
ge_sd_set_eta (GeSd * sd, float eta)
{
  sd->eta = eta;
  ge_sampler_set_eta (sd->sampler, eta);
}

gboolean
ge_sd_has_text (const GeSd * sd)
{
  return sd->text != NULL;
}

int
ge_sd_size_multiple (const GeSd * sd)
{
  const int m = ge_unet2d_size_multiple (sd->unet);
  /* The upscalers run the U-Net at the input's size. */
  return sd->run == RUN_UPSCALE || sd->run == RUN_LDM_SR ? m
      : ge_vae_downsample_factor (sd->vae) * m;
}

void
ge_sd_output_size (const GeSd * sd, int h, int w, int *oh, int *ow)
{
  const int f = sd->run == RUN_UPSCALE || sd->run == RUN_LDM_SR
      ? ge_vae_downsample_factor (sd->vae) : 1;
  *oh = h * f;
  *ow = w * f;
}

guint
ge_sd_n_text_encodes (const GeSd * sd)
{
  return sd->n_encodes;
}

guint
ge_sd_n_allocs (const GeSd * sd)
{
  return ge_arena_n_system_allocs (sd->work);
}

/* ---- text ------------------------------------------------------------- */

/* The embedding of @text ([seq, dim]), from the cache or encoded now into
 * the least recently used slot other than @keep. */
static const float *
encode (GeSd * sd, const char *text, const float *keep, gboolean * truncated,
    GError ** error)
{
  TextEntry *slot = NULL;
  for (int i = 0; i < TEXT_CACHE; i++) {
    TextEntry *e = &sd->cache[i];
    if (e->text && strcmp (e->text, text) == 0) {
      e->last_use = ++sd->clock;
      *truncated |= e->truncated;
      return e->emb;
    }
    if ((!keep || e->emb != keep) && (!slot || e->last_use < slot->last_use))
      slot = e;
  }
  gint32 *ids = g_new (gint32, 2 * sd->seq), *mask = ids + sd->seq;
  gboolean cut = FALSE;
  float *emb = g_new (float, (gsize) sd->seq * sd->dim);
  gboolean ok = ge_clip_tokenizer_encode (sd->tok, text, ids, &cut, error);
  if (ok && sd->text_mask) {
    /* The tokenizer's attention mask: bos, the text and eos; not the
     * padding after the first eos. */
    const gint32 eos = ge_clip_tokenizer_eos_id (sd->tok);
    gboolean in = TRUE;
    for (int i = 0; i < sd->seq; i++) {
      mask[i] = in;
      if (i > 0 && ids[i] == eos)
        in = FALSE;
    }
  }
  ok = ok && ge_clip_text_forward (sd->text, ids, 1, sd->seq, sd->text_mask ? mask : NULL,
      emb, NULL, error);
  g_free (ids);
  if (!ok) {
    g_free (emb);
    return NULL;
  }
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
  if (!sd->text) {
    if (truncated)
      *truncated = FALSE;
    return TRUE;
  }
  const float *c = encode (sd, prompt ? prompt : "", NULL, &cut, error);
  const float *u = c ? encode (sd, negative_prompt ? negative_prompt : "", c, &cut, error)
      : NULL;
  if (!u)
    return FALSE;
  sd->cond = c;
  sd->uncond = u;
  if (truncated)
    *truncated = cut;
  return TRUE;
}

/* ---- the loop ----------------------------------------------------------- */

static void
tap (GeSd * sd, const char *name, const float *data, int n, int c, int h, int w)
{
  if (sd->tap)
    sd->tap (name, data, n, c, h, w, sd->tap_data);
}

static void
tap_step (GeSd * sd, const char *what, int i, const float *data, int n, int c, int h, int w)
{
  if (!sd->tap)
    return;
  char name[64];
  g_snprintf (name, sizeof name, "step%d.%s", i, what);
  sd->tap (name, data, n, c, h, w, sd->tap_data);
}

/* What one run needs besides the latents: per batch entry, the text
 * embedding and the channels concatenated after the latents. */
typedef struct {
  int batch;                    /* 1, 2 (guidance), 3 (pix2pix guidance) */
  const float *text[3];
  const float *extra[3];        /* [extra_c, lh, lw] each, or NULL */
  int extra_c;
  float class_label;            /* the upscaler's noise level */
  gboolean has_class;
  gboolean scale_all;           /* LDM: scale_model_input on the whole input */
  /* 4-channel inpainting: known latents and mask pasted back per step */
  const float *known, *known_noise, *mask;
} Loop;

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

static gboolean
run_loop (GeSd * sd, const Loop * L, float *lat, int lc, int lh, int lw, int start,
    GeSdNoiseFunc noise, void *noise_data, GError ** error)
{
  GeSampler *s = sd->sampler;
  const gsize lhw = (gsize) lh * lw, ln = lc * lhw;
  const int in_c = ge_unet2d_in_channels (sd->unet), B = L->batch;
  const gsize ehs_one = (gsize) sd->seq * sd->dim;
  float *unet_in = ge_arena_alloc (sd->work, (gsize) B * in_c * lhw);
  float *pred = ge_arena_alloc (sd->work, (gsize) B * ln), *guided = ge_arena_alloc (sd->work, ln);
  float *ehs = sd->text ? ge_arena_alloc (sd->work, B * ehs_one) : NULL;
  float *step_noise = ge_arena_alloc (sd->work, ln), *known_t = L->known ? ge_arena_alloc (sd->work, ln) : NULL;
  float t_b[3], cls_b[3];
  if (!sd->sampler_run || sd->run_n != ln) {
    g_clear_pointer (&sd->sampler_run, ge_sampler_run_free);
    sd->sampler_run = ge_sampler_run_new (s, ln);
    sd->run_n = ln;
  }
  GeSamplerRun *run = sd->sampler_run;
  ge_sampler_run_reset (run);
  gboolean ok = TRUE;

  for (int b = 0; b < B && ehs; b++)
    memcpy (ehs + b * ehs_one, L->text[b], sizeof (float) * ehs_one);
  const int calls = ge_sampler_n_calls (s);
  for (int i = start; i < calls && ok; i++) {
    /* Taps and step draws count the steps run, as diffusers' loop over
     * the timesteps left by get_timesteps does (callbacks, generator). */
    const int r = i - start;
    const float t = ge_sampler_timestep (s, i);
    for (int b = 0; b < B; b++) {
      float *u = unet_in + (gsize) b * in_c * lhw;
      ge_sampler_scale_model_input (s, i, lat, ln, u);
      if (L->extra_c) {
        const gsize en = L->extra_c * lhw;
        if (!L->extra[b])
          memset (u + ln, 0, sizeof (float) * en);
        else if (L->scale_all)
          ge_sampler_scale_model_input (s, i, L->extra[b], en, u + ln);
        else
          memcpy (u + ln, L->extra[b], sizeof (float) * en);
      }
      t_b[b] = t;
      cls_b[b] = L->class_label;
    }
    tap_step (sd, "unet_input", r, unet_in, B, in_c, lh, lw);
    ok = sd->text
        ? ge_unet2d_forward_cond (sd->unet, unet_in, B, lh, lw, t_b, ehs, sd->seq,
        L->has_class ? cls_b : NULL, pred, error)
        : ge_unet2d_forward (sd->unet, unet_in, B, lh, lw, t_b, pred, error);
    if (!ok)
      break;
    if (B == 2) {
      const float *pu = pred, *pc = pred + ln, g = sd->guidance;
      for (gsize k = 0; k < ln; k++)
        guided[k] = pu[k] + g * (pc[k] - pu[k]);
      tap_step (sd, "noise_pred_uncond", r, pu, 1, lc, lh, lw);
      tap_step (sd, "noise_pred_text", r, pc, 1, lc, lh, lw);
    } else if (B == 3) {
      const float *pt = pred, *pi = pred + ln, *pu = pred + 2 * ln;
      const float g = sd->guidance, ig = sd->image_guidance;
      for (gsize k = 0; k < ln; k++)
        guided[k] = pu[k] + g * (pt[k] - pi[k]) + ig * (pi[k] - pu[k]);
      tap_step (sd, "noise_pred_text", r, pt, 1, lc, lh, lw);
      tap_step (sd, "noise_pred_image", r, pi, 1, lc, lh, lw);
      tap_step (sd, "noise_pred_uncond", r, pu, 1, lc, lh, lw);
    } else
      memcpy (guided, pred, sizeof (float) * ln);
    tap_step (sd, "noise_pred", r, guided, 1, lc, lh, lw);
    const float *nz = NULL;
    if (ge_sampler_step_needs_noise (s, i)) {
      noise (noise_data, "step", r, step_noise, lc, lh, lw);
      nz = step_noise;
    }
    ge_sampler_step (run, i, guided, lat, nz, lat);
    if (L->known) {
      /* diffusers: the image's latents noised to the NEXT timestep (as
       * they are after the last one), (1 - mask) * them + mask * latents. */
      if (i + 1 < calls)
        ge_sampler_add_noise (s, i + 1, L->known, L->known_noise, ln, known_t);
      else
        memcpy (known_t, L->known, sizeof (float) * ln);
      for (int c = 0; c < lc; c++)
        for (gsize k = 0; k < lhw; k++) {
          float *l = lat + c * lhw + k;
          *l = (1.0f - L->mask[k]) * known_t[c * lhw + k] + L->mask[k] * *l;
        }
    }
    tap_step (sd, "latents", r, lat, 1, lc, lh, lw);
  }
  return ok;
}

/* vae.encode (x): a sample of the posterior (drawn as @what) or, with
 * @what NULL, its mode; an AutoencoderTiny leaves logvar at -inf, so both
 * are its latents.  Taps the mean and std under "vae_encode.*" when
 * @tap_moments. */
static gboolean
encode_image (GeSd * sd, const float *x, int h, int w, const char *what,
    GeSdNoiseFunc noise, void *noise_data, gboolean tap_moments, float *z, GError ** error)
{
  const int f = ge_vae_downsample_factor (sd->vae), lc = ge_vae_latent_channels (sd->vae);
  const int lh = h / f, lw = w / f;
  const gsize ln = (gsize) lc * lh * lw;
  float *logvar = ge_arena_alloc (sd->work, ln);
  for (gsize i = 0; i < ln; i++)
    logvar[i] = -INFINITY;
  gboolean ok = ge_vae_encode (sd->vae, x, 1, h, w, z, logvar, error);
  if (ok && what) {
    float *eps = ge_arena_alloc (sd->work, ln);
    noise (noise_data, what, 0, eps, lc, lh, lw);
    for (gsize i = 0; i < ln; i++)
      logvar[i] = expf (0.5f * logvar[i]);      /* now the std */
    if (tap_moments) {
      tap (sd, "vae_encode.mean", z, 1, lc, lh, lw);
      tap (sd, "vae_encode.std", logvar, 1, lc, lh, lw);
    }
    for (gsize i = 0; i < ln; i++)
      z[i] += logvar[i] * eps[i];
  }
  return ok;
}

/* The image's latents as the img2img and inpainting pipelines prepare
 * them: a posterior sample (the "image_latents" draw) times the scaling
 * factor; arena memory. */
static float *
image_latents (GeSd * sd, const float *img, int h, int w, GeSdNoiseFunc noise,
    void *noise_data, GError ** error)
{
  const int f = ge_vae_downsample_factor (sd->vae), lc = ge_vae_latent_channels (sd->vae);
  const gsize ln = (gsize) lc * (h / f) * (w / f);
  const float sf = (float) ge_vae_scaling_factor (sd->vae);
  float *z = ge_arena_alloc (sd->work, ln);
  if (!encode_image (sd, img, h, w, "image_latents", noise, noise_data, FALSE, z, error))
    return NULL;
  for (gsize k = 0; k < ln; k++)
    z[k] *= sf;
  tap (sd, "image_latents", z, 1, lc, h / f, w / f);
  return z;
}

static gboolean
decode (GeSd * sd, float *lat, int lc, int lh, int lw, float *out, GError ** error)
{
  const gboolean vq = sd->run == RUN_LDM_SR;
  const float sf = vq ? 1.0f : (float) ge_vae_scaling_factor (sd->vae);
  const int f = ge_vae_downsample_factor (sd->vae);
  const gsize on = 3 * (gsize) lh * f * lw * f;
  for (gsize k = 0; k < (gsize) lc * lh * lw; k++)
    lat[k] /= sf;
  if (!ge_vae_decode (sd->vae, lat, 1, lh, lw, vq, out, error))
    return FALSE;
  tap (sd, "final.decoded", out, 1, 3, lh * f, lw * f);
  for (gsize i = 0; i < on; i++)
    out[i] = CLAMP (out[i], -1.0f, 1.0f) / 2.0f + 0.5f;
  return TRUE;
}

gboolean
ge_sd_process (GeSd * sd, const float *image, const float *mask, int h, int w,
    GeSdNoiseFunc noise, void *noise_data, float *out, GError ** error)
{
  const int m = ge_sd_size_multiple (sd);
  const char *where = ge_pipeline_folder (sd->pipeline);
  if (h <= 0 || w <= 0 || h % m || w % m)
    return ge_fail (error, GE_ERROR_INVALID, where, "%dx%d is not a multiple of %d", w, h, m);
  const gboolean inpaint = sd->run == RUN_INPAINT || sd->run == RUN_INPAINT_LEGACY;
  if (inpaint && !mask)
    return ge_fail (error, GE_ERROR_INVALID, where, "inpainting needs a mask");
  if (sd->text && !sd->cond && !ge_sd_set_prompt (sd, "", "", NULL, error))
    return FALSE;

  GeSampler *s = sd->sampler;
  const gboolean upscaler = sd->run == RUN_UPSCALE || sd->run == RUN_LDM_SR;
  const int f = upscaler ? 1 : ge_vae_downsample_factor (sd->vae);
  const int lc = ge_vae_latent_channels (sd->vae), lh = h / f, lw = w / f;
  const gsize hw = (gsize) h * w, lhw = (gsize) lh * lw, ln = lc * lhw;
  const float sf = (float) ge_vae_scaling_factor (sd->vae), sigma0 = ge_sampler_init_noise_sigma (s);
  float *img = image ? ge_arena_alloc (sd->work, 3 * hw) : NULL, *lat = ge_arena_alloc (sd->work, ln);
  float *bin = NULL, *mask_lat = NULL, *known = NULL, *noise0 = NULL, *extra = NULL;
  Loop L = { .batch = 1, .text = { sd->cond } };
  int start = 0;
  gboolean ok = FALSE;

  if (!image && sd->run != RUN_TEXT2IMG) {
    ge_fail (error, GE_ERROR_INVALID, where, "the %s needs an input image", sd->class_name);
    goto out;
  }
  for (gsize i = 0; img && i < 3 * hw; i++)
    img[i] = image[i] * 2.0f - 1.0f;
  if (sd->text && sd->guidance > 1.0f) {
    L.batch = 2;
    L.text[0] = sd->uncond;
    L.text[1] = sd->cond;
  }

  switch (sd->run) {
    case RUN_INPAINT:
    case RUN_INPAINT_LEGACY:{
      const gboolean nine = sd->run == RUN_INPAINT;
      bin = ge_arena_alloc (sd->work, hw);
      mask_lat = ge_arena_alloc (sd->work, lhw);
      for (gsize i = 0; i < hw; i++)
        bin[i] = mask[i] >= 0.5f ? 1.0f : 0.0f;
      mask_to_latent (bin, h, w, f, mask_lat);
      tap (sd, "mask_binarized", bin, 1, 1, h, w);
      tap (sd, "mask_latent", mask_lat, 1, 1, lh, lw);
      /* The image's latents when the loop needs them (pasted back, or the
       * start of a loop of strength < 1), then the initial noise. */
      if (!nine || sd->strength < 1.0) {
        if (!(known = image_latents (sd, img, h, w, noise, noise_data, error)))
          goto out;
      }
      noise0 = ge_arena_alloc (sd->work, ln);
      noise (noise_data, "latents", 0, noise0, lc, lh, lw);
      if (sd->strength >= 1.0)
        for (gsize k = 0; k < ln; k++)
          lat[k] = noise0[k] * sigma0;
      else {
        start = ge_sampler_start_index (s, sd->strength);
        if (start < ge_sampler_n_calls (s))
          ge_sampler_add_noise (s, start, known, noise0, ln, lat);
        else
          memcpy (lat, known, sizeof (float) * ln);
      }
      if (nine) {
        /* The masked image (mid-grey under the mask) and its latents, a
         * SAMPLE of the posterior. */
        float *masked = ge_arena_alloc (sd->work, 3 * hw);
        for (int c = 0; c < 3; c++)
          for (gsize i = 0; i < hw; i++)
            masked[c * hw + i] = bin[i] < 0.5f ? img[c * hw + i] : 0.0f;
        tap (sd, "masked_image", masked, 1, 3, h, w);
        extra = ge_arena_alloc (sd->work, lhw + ln);
        memcpy (extra, mask_lat, sizeof (float) * lhw);
        ok = encode_image (sd, masked, h, w, "masked_image_latents", noise, noise_data, TRUE,
            extra + lhw, error);
        if (!ok)
          goto out;
        ok = FALSE;
        for (gsize k = 0; k < ln; k++)
          extra[lhw + k] *= sf;
        tap (sd, "masked_image_latents", extra + lhw, 1, lc, lh, lw);
        L.extra_c = lc + 1;
        L.extra[0] = L.extra[1] = extra;
      } else {
        L.known = known;
        L.known_noise = noise0;
        L.mask = mask_lat;
      }
      break;
    }
    case RUN_IMG2IMG:
      /* SDEdit: the image's latents (a posterior sample) noised to the
       * first timestep that strength leaves. */
      if (!(known = image_latents (sd, img, h, w, noise, noise_data, error)))
        goto out;
      noise0 = ge_arena_alloc (sd->work, ln);
      noise (noise_data, "latents", 0, noise0, lc, lh, lw);
      start = ge_sampler_start_index (s, sd->strength);
      if (start < ge_sampler_n_calls (s))
        ge_sampler_add_noise (s, start, known, noise0, ln, lat);
      else
        memcpy (lat, known, sizeof (float) * ln);
      break;
    case RUN_PIX2PIX:
      /* The image's latents are the posterior's mode, unscaled. */
      extra = ge_arena_alloc (sd->work, ln);
      if (!encode_image (sd, img, h, w, NULL, noise, noise_data, FALSE, extra, error))
        goto out;
      tap (sd, "image_latents", extra, 1, lc, lh, lw);
      noise (noise_data, "latents", 0, lat, lc, lh, lw);
      for (gsize k = 0; k < ln; k++)
        lat[k] *= sigma0;
      L.extra_c = lc;
      if (sd->guidance > 1.0f && sd->image_guidance >= 1.0f) {
        L.batch = 3;
        L.text[0] = sd->cond;
        L.text[1] = L.text[2] = sd->uncond;
        L.extra[0] = L.extra[1] = extra;
        L.extra[2] = NULL;      /* zeros */
      } else {
        L.batch = 1;
        L.text[0] = sd->cond;
        L.extra[0] = extra;
      }
      break;
    case RUN_UPSCALE:{
      /* The low-res image, noised to noise_level by the low_res_scheduler,
       * beside the latents; the noise level is also the class label. */
      /* diffusers' check_inputs refuses a level above max_noise_level;
       * the low-res scheduler has no timestep past its last one. */
      const int nl = sd->noise_level;
      const int max_nl = MIN (sd->max_noise_level,
          ge_scheduler_config (sd->low_res)->num_train_timesteps - 1);
      if (nl < 0 || nl > max_nl) {
        ge_fail (error, GE_ERROR_INVALID, where, "noise level %d is outside 0..%d (the "
            "pipeline's max_noise_level and its low_res_scheduler's last timestep)", nl,
            max_nl);
        goto out;
      }
      extra = ge_arena_alloc (sd->work, 3 * hw);
      noise (noise_data, "image_noise", 0, extra, 3, h, w);
      ge_scheduler_add_noise (sd->low_res, img, extra, nl, 3 * hw, extra);
      tap (sd, "image_noised", extra, 1, 3, h, w);
      noise (noise_data, "latents", 0, lat, lc, lh, lw);
      for (gsize k = 0; k < ln; k++)
        lat[k] *= sigma0;
      L.extra_c = 3;
      L.extra[0] = L.extra[1] = extra;
      L.has_class = TRUE;
      L.class_label = (float) nl;
      break;
    }
    case RUN_TEXT2IMG:
      noise (noise_data, "latents", 0, lat, lc, lh, lw);
      for (gsize k = 0; k < ln; k++)
        lat[k] *= sigma0;
      break;
    case RUN_LDM_SR:
      noise (noise_data, "latents", 0, lat, lc, lh, lw);
      for (gsize k = 0; k < ln; k++)
        lat[k] *= sigma0;
      L.extra_c = 3;
      L.extra[0] = img;
      L.scale_all = TRUE;
      break;
  }
  if (start > 0)
    tap (sd, "latents_start", lat, 1, lc, lh, lw);

  if (run_loop (sd, &L, lat, lc, lh, lw, start, noise, noise_data, error))
    ok = decode (sd, lat, lc, lh, lw, out, error);

out:
  ge_arena_reset (sd->work);
  return ok;
}

void
ge_sd_noise_seeded_at (guint64 seed, const char *what, int step, int y0, int x0,
    float *out, int c, int h, int w)
{
  static const char *const draws[] = {
    "latents", "image_latents", "masked_image_latents", "image_noise",
  };
  /* One stream region per draw and step: positions use 48 bits. */
  guint64 region = G_N_ELEMENTS (draws) + (guint64) step;
  for (guint i = 0; i < G_N_ELEMENTS (draws); i++)
    if (strcmp (what, draws[i]) == 0)
      region = i;
  for (int ch = 0; ch < c; ch++)
    for (int y = 0; y < h; y++)
      ge_rng_normal (seed, (region << 48) + ge_rng_position (ch, y0 + y, x0),
          out + ((gsize) ch * h + y) * w, w);
}

void
ge_sd_noise_seeded (void *seed_ptr, const char *what, int step, float *out, int c, int h,
    int w)
{
  ge_sd_noise_seeded_at (*(const guint64 *) seed_ptr, what, step, 0, 0, out, c, h, w);
}
