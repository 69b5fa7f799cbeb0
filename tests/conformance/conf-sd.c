/* conf-sd.c: loops of the latent diffusion pipelines (ge-sd.h), such as
 * sd_inpaint_loop_small.
 *
 * Two checks of one record:
 *  - step by step from the stored input of each step, as the fixtures
 *    advise, so a mismatch is located: the prompts' token ids (exactly)
 *    and embeddings, the U-Net on each stored step input (every part of
 *    the guidance batch), the guided prediction from the stored parts, the
 *    sampler step from the stored latents;
 *  - the engine's whole pipeline (ge_sd_process) from the record's draws
 *    of the pipeline generator, each intermediate it reports compared with
 *    the record as it runs, and the final image.
 * Every stored tensor must be used as an input or checked
 * (conf_fail_unchecked).
 *
 * The record's names: input.image_01, input.mask, input.latents,
 * input.prompt_ids, input.negative_prompt_ids, text.cond_embeds,
 * text.uncond_embeds, timesteps, step%d.{t, unet_input, noise_pred_uncond,
 * noise_pred_text, noise_pred_image, noise_pred, prev_sample, latents,
 * noise}, vae_encode.{mean, std, noise}, final.decoded, final.image_np
 * (NHWC); a loop that starts part-way (img2img) stores its first latents
 * as latents_start, and the image's posterior draw as image_latents.noise;
 * the upscaler its low-res draw as image_noise and the noised image as
 * image_noised; a 4-channel inpainting loop the step's result before the
 * known region is pasted back as step%d.prev_sample.  Steps count from the
 * first step run.  meta.json: pipeline (the class that ran, which may
 * differ from the folder's), prompt, negative_prompt, guidance_scale,
 * image_guidance_scale, num_inference_steps, strength, noise_level, eta.
 */
#include "conf.h"
#include "ge-clip-text.h"
#include "ge-clip-tokenizer.h"
#include "ge-sampler.h"
#include "ge-sd.h"
#include "ge-unet2d.h"

#include <stdio.h>
#include <string.h>

static double
meta_double (JsonObject * meta, const char *key, double def)
{
  JsonNode *v = json_object_get_member (meta, key);
  if (!v || !JSON_NODE_HOLDS_VALUE (v))
    return def;
  GType t = json_node_get_value_type (v);
  return t == G_TYPE_DOUBLE ? json_node_get_double (v)
      : t == G_TYPE_INT64 ? (double) json_node_get_int (v) : def;
}

static const char *
meta_string (JsonObject * meta, const char *key, const char *def)
{
  JsonNode *v = json_object_get_member (meta, key);
  return v && JSON_NODE_HOLDS_VALUE (v) && json_node_get_value_type (v) == G_TYPE_STRING
      ? json_node_get_string (v) : def;
}

/* The record's draws of the pipeline generator, injected by name. */
static void
recorded_noise (void *data, const char *what, int step, float *out, int c, int h, int w)
{
  Conf *conf = data;
  char stepkey[32];
  g_snprintf (stepkey, sizeof stepkey, "step%d.noise", step);
  const char *const latents[] = { "input.latents", NULL };
  const char *const masked[] = { "vae_encode.noise", "masked_image_latents.noise", NULL };
  const char *const posterior[] = { "image_latents.noise", "vae_encode.noise", NULL };
  const char *const image[] = { "input.image_noise", "image_noise", "low_res.noise", NULL };
  const char *const stepn[] = { stepkey, NULL };
  const char *key = conf_pick (conf, strcmp (what, "latents") == 0 ? latents
      : strcmp (what, "image_noise") == 0 ? image
      : strcmp (what, "step") == 0 ? stepn
      : strcmp (what, "masked_image_latents") == 0 ? masked : posterior);
  gsize n = 0;
  float *v = key ? conf_load_f32 (conf, key, &n) : NULL;
  if (v && n == (gsize) c * h * w)
    memcpy (out, v, sizeof (float) * n);
  else {
    printf ("the record has no draw for \"%s\" of %d floats\n", what, c * h * w);
    conf->n_failed++;
    memset (out, 0, sizeof (float) * c * h * w);
  }
  g_free (v);
}

static void
loop_tap (const char *name, const float *data, int n, int c, int h, int w, void *user)
{
  Conf *conf = user;
  if (ge_safetensors_find (conf->io, name))
    conf_check (conf, name, data, (gsize) n * c * h * w);
}

static gboolean
check_ids (Conf * c, GeClipTokenizer * tok, const char *text, const char *key, gint32 * ids)
{
  GError *err = NULL;
  if (!ge_clip_tokenizer_encode (tok, text, ids, NULL, &err)) {
    printf ("%s\n", err->message);
    g_error_free (err);
    c->n_failed++;
    return FALSE;
  }
  if (!ge_safetensors_find (c->io, key))
    return TRUE;
  const int len = ge_clip_tokenizer_max_length (tok);
  gint64 *wide = g_new (gint64, len);
  for (int i = 0; i < len; i++)
    wide[i] = ids[i];
  conf_check_ints (c, key, wide, len);
  g_free (wide);
  return TRUE;
}

/* The text embeddings the U-Net gets, per entry of the guidance batch,
 * from the STORED embeddings (the check of ours is separate). */
typedef struct {
  int batch;
  float *ehs;                   /* [batch, seq, dim] or NULL */
  int seq;
  GeClipTokenizer *tok;
} Text;

static gboolean
check_text (Conf * c, GePipeline * p, JsonObject * meta, Text * t, GError ** err)
{
  GeModelFile *mf = NULL;
  GeClipText *text = NULL;
  const char *tok_path = ge_pipeline_part_path (p, "tokenizer");
  if (!tok_path || !ge_pipeline_has_part (p, "text_encoder"))
    return TRUE;                /* LDM: no text */
  if (!(t->tok = ge_clip_tokenizer_new (tok_path, err))
      || !(mf = ge_pipeline_open_model (p, "text_encoder", err))
      || !(text = ge_clip_text_new (mf, err))) {
    if (mf)
      ge_model_file_unref (mf);
    return FALSE;
  }
  const int seq = ge_clip_tokenizer_max_length (t->tok), dim = ge_clip_text_hidden_size (text);
  gint32 *ids = g_new (gint32, 2 * seq);
  float *emb = g_new (float, (gsize) 2 * seq * dim);
  gboolean ok = check_ids (c, t->tok, meta_string (meta, "prompt", ""), "input.prompt_ids", ids)
      && check_ids (c, t->tok, meta_string (meta, "negative_prompt", ""),
      "input.negative_prompt_ids", ids + seq)
      && ge_clip_text_forward (text, ids, 2, seq, NULL, emb, NULL, err);
  if (ok) {
    conf_check (c, "text.cond_embeds", emb, (gsize) seq * dim);
    if (ge_safetensors_find (c->io, "text.uncond_embeds"))
      conf_check (c, "text.uncond_embeds", emb + (gsize) seq * dim, (gsize) seq * dim);
    float *ec = conf_load_f32 (c, "text.cond_embeds", NULL);
    float *eu = conf_try_load_f32 (c, "text.uncond_embeds", NULL);
    /* The batch order of diffusers' pipelines: [uncond, cond] for
     * guidance, [cond, uncond, uncond] for instruct-pix2pix. */
    const gboolean pix2pix = g_strcmp0 (ge_pipeline_class_name (p),
        "StableDiffusionInstructPix2PixPipeline") == 0;
    const float *order[3] = { ec };
    t->batch = 1;
    if (eu && pix2pix) {
      t->batch = 3;
      order[1] = order[2] = eu;
    } else if (eu) {
      t->batch = 2;
      order[0] = eu;
      order[1] = ec;
    }
    t->seq = seq;
    t->ehs = g_new (float, (gsize) t->batch * seq * dim);
    for (int b = 0; b < t->batch && ec; b++)
      memcpy (t->ehs + (gsize) b * seq * dim, order[b], sizeof (float) * seq * dim);
    g_free (ec);
    g_free (eu);
  }
  g_free (ids);
  g_free (emb);
  ge_clip_text_free (text);
  ge_model_file_unref (mf);
  return ok;
}

/* The step record, from each step's stored input. */
static void
stepwise (Conf * c, GePipeline * p, JsonObject * meta, GeUNet2D * u, const Text * t,
    GError ** err)
{
  GeSampler *s = NULL;
  GeSamplerRun *run = NULL;
  float *lat = NULL;
  JsonObject *sc = ge_pipeline_scheduler_config (p, err);
  const int steps = (int) meta_double (meta, "num_inference_steps", 0);
  const float g = (float) meta_double (meta, "guidance_scale", 1.0);
  const float ig = (float) meta_double (meta, "image_guidance_scale", 1.0);
  const float noise_level = (float) meta_double (meta, "noise_level", 0);
  if (!sc || !(s = ge_sampler_new_from_json (sc, ge_pipeline_part_path (p, "scheduler"), err))
      || !ge_sampler_set_timesteps (s, steps, err))
    goto out;
  ge_sampler_set_eta (s, (float) meta_double (meta, "eta", 0));
  const int calls = ge_sampler_n_calls (s);
  const int start = ge_sampler_start_index (s, meta_double (meta, "strength", 1.0));
  if (ge_safetensors_find (c->io, "timesteps")) {
    gint64 *ts = g_new (gint64, calls - start);
    for (int i = start; i < calls; i++)
      ts[i - start] = (gint64) ge_sampler_timestep (s, i);
    conf_check_ints (c, "timesteps", ts, calls - start);
    g_free (ts);
  }

  for (int i = start; i < calls && !*err; i++) {
    const int r = i - start;    /* the record counts the steps run */
    char key[64];
    gsize un = 0;
    g_snprintf (key, sizeof key, "step%d.t", r);
    if (ge_safetensors_find (c->io, key)) {
      gint64 tv = (gint64) ge_sampler_timestep (s, i);
      conf_check_ints (c, key, &tv, 1);
    }
    g_snprintf (key, sizeof key, "step%d.unet_input", r);
    float *uin = conf_load_f32 (c, key, &un);
    const GeStTensor *ut = ge_safetensors_find (c->io, key);
    if (!uin || ut->ndim != 4) {
      g_free (uin);
      break;
    }
    const int n = (int) ut->shape[0], h = (int) ut->shape[2], w = (int) ut->shape[3];
    const int oc = ge_unet2d_out_channels (u);
    const gsize ln = (gsize) oc * h * w;
    if (t->ehs && n != t->batch) {
      printf ("%s: a batch of %d where the text gives %d\n", key, n, t->batch);
      c->n_failed++;
      g_free (uin);
      break;
    }
    if (!lat) {
      /* The loop's first latents: the noised image latents of a loop
       * that starts part-way (img2img), or the noise scaled. */
      gsize sn = 0;
      lat = conf_try_load_f32 (c, "latents_start", &sn);
      if (!lat && (lat = conf_try_load_f32 (c, "input.latents", &sn)))
        for (gsize k = 0; k < sn; k++)
          lat[k] *= ge_sampler_init_noise_sigma (s);
      if (!lat || sn != ln) {
        printf ("%s\n", lat ? "the first latents do not fit the U-Net's output"
            : "input.latents missing");
        c->n_failed++;
        g_free (uin);
        break;
      }
      run = ge_sampler_run_new (s, ln);
    }
    float *pred = g_new (float, (gsize) n * ln);
    float tb[3], cls[3];
    for (int b = 0; b < n && b < 3; b++) {
      tb[b] = ge_sampler_timestep (s, i);
      cls[b] = noise_level;
    }
    gboolean ok = t->ehs
        ? ge_unet2d_forward_cond (u, uin, n, h, w, tb, t->ehs, t->seq,
        ge_unet2d_has_class_embedding (u) ? cls : NULL, pred, err)
        : ge_unet2d_forward (u, uin, n, h, w, tb, pred, err);
    g_free (uin);
    if (!ok) {
      g_free (pred);
      break;
    }
    static const char *const parts2[] = { "noise_pred_uncond", "noise_pred_text" };
    static const char *const parts3[] = { "noise_pred_text", "noise_pred_image",
      "noise_pred_uncond"
    };
    const char *const *parts = n == 3 ? parts3 : parts2;
    float *ref[3] = { NULL };
    for (int b = 0; n > 1 && b < n; b++) {
      g_snprintf (key, sizeof key, "step%d.%s", r, parts[b]);
      conf_check (c, key, pred + b * ln, ln);
      ref[b] = conf_load_f32 (c, key, NULL);
    }
    float *guided = g_new (float, ln);
    for (gsize k = 0; k < ln; k++) {
      if (n == 1)
        guided[k] = pred[k];
      else if (n == 2 && ref[0] && ref[1])
        guided[k] = ref[0][k] + g * (ref[1][k] - ref[0][k]);
      else if (n == 3 && ref[0] && ref[1] && ref[2])
        guided[k] = ref[2][k] + g * (ref[0][k] - ref[1][k]) + ig * (ref[1][k] - ref[2][k]);
    }
    g_snprintf (key, sizeof key, "step%d.noise_pred", r);
    conf_check (c, key, guided, ln);
    float *np = conf_load_f32 (c, key, NULL);
    float *noise = NULL;
    if (ge_sampler_step_needs_noise (s, i)) {
      g_snprintf (key, sizeof key, "step%d.noise", r);
      noise = conf_load_f32 (c, key, NULL);
    }
    if (np) {
      ge_sampler_step (run, i, np, lat, noise, lat);
      /* A 4-channel inpainting loop pastes the known region back after
       * the step: the record then holds the step's own result as
       * prev_sample (and the pasted latents are checked in the whole
       * run). */
      g_snprintf (key, sizeof key, "step%d.prev_sample", r);
      if (!ge_safetensors_find (c->io, key))
        g_snprintf (key, sizeof key, "step%d.latents", r);
      conf_check (c, key, lat, ln);
      g_snprintf (key, sizeof key, "step%d.latents", r);
      float *rl = conf_load_f32 (c, key, NULL);
      if (rl)
        memcpy (lat, rl, sizeof (float) * ln);
      g_free (rl);
    }
    for (int b = 0; b < 3; b++)
      g_free (ref[b]);
    g_free (np);
    g_free (noise);
    g_free (pred);
    g_free (guided);
  }

out:
  g_free (lat);
  ge_sampler_run_free (run);
  ge_sampler_free (s);
}

static GeSdTask
task_of (const char *cls)
{
  if (strstr (cls, "Inpaint"))
    return GE_SD_INPAINT;
  if (strstr (cls, "Upscale") || strstr (cls, "SuperResolution"))
    return GE_SD_SUPER_RESOLUTION;
  return GE_SD_IMG2IMG;
}

void
conf_sd_case (Conf * c, GePipeline * p, JsonObject * meta)
{
  GError *err = NULL;
  GeModelFile *umf = NULL;
  GeUNet2D *u = NULL;
  GeSd *sd = NULL;
  Text t = { 0 };
  float *image = NULL, *mask = NULL, *out = NULL;
  const char *prompt = meta_string (meta, "prompt", "");
  const char *negative = meta_string (meta, "negative_prompt", "");

  if (!check_text (c, p, meta, &t, &err)
      || !(umf = ge_pipeline_open_model (p, "unet", &err)) || !(u = ge_unet2d_new (umf, &err)))
    goto out;
  stepwise (c, p, meta, u, &t, &err);
  if (err)
    goto out;

  /* The whole pipeline. */
  gsize in = 0;
  image = conf_load_f32 (c, "input.image_01", &in);
  mask = conf_try_load_f32 (c, "input.mask", NULL);
  const GeStTensor *it = ge_safetensors_find (c->io, "input.image_01");
  if (!image || it->ndim != 4)
    goto out;
  const int h = (int) it->shape[2], w = (int) it->shape[3];
  /* meta.json's "pipeline" is the class that ran, which may be another
   * than the folder's (a StableDiffusionPipeline folder run as
   * img2img or inpainting). */
  if (!(sd = ge_sd_new (p, task_of (meta_string (meta, "pipeline",
                  ge_pipeline_class_name (p))), &err)))
    goto out;
  ge_sd_set_n_threads (sd, 1);
  ge_sd_set_tap (sd, loop_tap, c);
  ge_sd_set_guidance (sd, (float) meta_double (meta, "guidance_scale", 7.5),
      (float) meta_double (meta, "image_guidance_scale", 1.5));
  ge_sd_set_strength (sd, meta_double (meta, "strength", 1.0));
  ge_sd_set_noise_level (sd, (int) meta_double (meta, "noise_level", 20));
  ge_sd_set_eta (sd, (float) meta_double (meta, "eta", 0));
  int oh, ow;
  ge_sd_output_size (sd, h, w, &oh, &ow);
  out = g_new (float, (gsize) 3 * oh * ow);
  if (!ge_sd_set_num_steps (sd, (int) meta_double (meta, "num_inference_steps", 50), &err)
      || !ge_sd_set_prompt (sd, prompt, negative, NULL, &err)
      || !ge_sd_process (sd, image, mask, h, w, recorded_noise, c, out, &err))
    goto out;
  /* The pipeline's output_type="np": NHWC. */
  const gsize ohw = (gsize) oh * ow;
  float *nhwc = g_new (float, 3 * ohw);
  for (gsize i = 0; i < ohw; i++)
    for (int ch = 0; ch < 3; ch++)
      nhwc[i * 3 + ch] = out[ch * ohw + i];
  const char *const finals[] = { "final.image_np", "final.image_01_nhwc", NULL };
  const char *fk = conf_pick (c, finals);
  if (fk)
    conf_check (c, fk, nhwc, 3 * ohw);
  g_free (nhwc);

out:
  if (err) {
    printf ("%s\n", err->message);
    c->n_failed++;
    g_error_free (err);
  }
  conf_fail_unchecked (c);
  ge_sd_free (sd);
  ge_unet2d_free (u);
  if (umf)
    ge_model_file_unref (umf);
  ge_clip_tokenizer_free (t.tok);
  g_free (t.ehs);
  g_free (image);
  g_free (mask);
  g_free (out);
}
