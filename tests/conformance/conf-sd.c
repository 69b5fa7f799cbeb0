/* conf-sd.c: Stable Diffusion pipeline loops (sd_inpaint_loop_small).
 *
 * Two checks of one record:
 *  - step by step from the stored input of each step, as the fixtures
 *    advise: the text (token ids exactly, embeddings), the U-Net on the
 *    stored step input (both halves of the guidance batch), the guided
 *    prediction, the sampler step from the stored latents;
 *  - the engine's whole loop (ge_sd_inpaint) from the recorded draws of
 *    the pipeline's generator, every intermediate it reports compared
 *    with the record as it runs, and the final image.
 * Every stored tensor must be used as an input or checked: an unknown one
 * fails the case ("unchecked output"), so a renamed output is never
 * silently skipped.
 */
#include "conf.h"
#include "ge-clip-text.h"
#include "ge-clip-tokenizer.h"
#include "ge-sampler.h"
#include "ge-sd.h"
#include "ge-unet2d.h"

#include <stdio.h>
#include <string.h>

typedef struct {
  Conf *c;
  GHashTable *seen;             /* keys used or checked */
} SdCase;

static void
mark (SdCase * k, const char *key)
{
  g_hash_table_add (k->seen, g_strdup (key));
}

static float *
input (SdCase * k, const char *key, gsize * n)
{
  mark (k, key);
  return conf_load_f32 (k->c, key, n);
}

static void
check (SdCase * k, const char *key, const float *got, gsize n)
{
  mark (k, key);
  conf_check (k->c, key, got, n);
}

/* The record's draws of the pipeline generator, injected. */
static void
recorded_noise (void *data, const char *what, int step, float *out, int c, int h, int w)
{
  SdCase *k = data;
  char key[64];
  if (strcmp (what, "latents") == 0)
    g_strlcpy (key, "input.latents", sizeof key);
  else if (strcmp (what, "vae_encode") == 0)
    g_strlcpy (key, "vae_encode.noise", sizeof key);
  else
    g_snprintf (key, sizeof key, "step%d.noise", step);
  gsize n = 0;
  float *v = input (k, key, &n);
  if (v && n == (gsize) c * h * w)
    memcpy (out, v, sizeof (float) * n);
  else {
    printf ("%s: missing or not %d floats\n", key, c * h * w);
    k->c->n_failed++;
    memset (out, 0, sizeof (float) * c * h * w);
  }
  g_free (v);
}

static void
loop_tap (const char *name, const float *data, int n, int c, int h, int w, void *user)
{
  SdCase *k = user;
  if (!ge_safetensors_find (k->c->io, name))
    return;
  char label[96];
  g_snprintf (label, sizeof label, "%s", name);
  check (k, label, data, (gsize) n * c * h * w);
}

static gboolean
check_ids (SdCase * k, GeClipTokenizer * tok, const char *text, const char *key,
    gint32 * ids)
{
  GError *err = NULL;
  if (!ge_clip_tokenizer_encode (tok, text, ids, NULL, &err)) {
    printf ("%s\n", err->message);
    g_error_free (err);
    k->c->n_failed++;
    return FALSE;
  }
  const int len = ge_clip_tokenizer_max_length (tok);
  gint64 *wide = g_new (gint64, len);
  for (int i = 0; i < len; i++)
    wide[i] = ids[i];
  mark (k, key);
  conf_check_ints (k->c, key, wide, len);
  g_free (wide);
  return TRUE;
}

static const char *
meta_string (JsonObject * meta, const char *key, const char *def)
{
  JsonNode *v = json_object_get_member (meta, key);
  return v && JSON_NODE_HOLDS_VALUE (v) && json_node_get_value_type (v) == G_TYPE_STRING
      ? json_node_get_string (v) : def;
}

/* The per-step record, from each step's stored input. */
static void
stepwise (SdCase * k, GePipeline * p, JsonObject * meta, GeUNet2D * u, const float *emb,
    int seq, int dim, GError ** err)
{
  Conf *c = k->c;
  GeSampler *s = NULL;
  GeSamplerRun *run = NULL;
  JsonObject *sc = ge_pipeline_scheduler_config (p, err);
  const int steps = (int) json_object_get_int_member (meta, "num_inference_steps");
  const float g = (float) json_object_get_double_member (meta, "guidance_scale");
  if (!sc || !(s = ge_sampler_new_from_json (sc, "scheduler_config.json", err))
      || !ge_sampler_set_timesteps (s, steps, err))
    goto out;
  const int calls = ge_sampler_n_calls (s);
  gint64 *ts = g_new (gint64, calls);
  for (int i = 0; i < calls; i++)
    ts[i] = (gint64) ge_sampler_timestep (s, i);
  mark (k, "timesteps");
  conf_check_ints (c, "timesteps", ts, calls);
  g_free (ts);

  gsize ln = 0;
  float *lat = input (k, "input.latents", &ln);
  if (!lat)
    goto out;
  for (gsize i = 0; i < ln; i++)
    lat[i] *= ge_sampler_init_noise_sigma (s);
  run = ge_sampler_run_new (s, ln);
  for (int i = 0; i < calls && !*err; i++) {
    char key[64];
    gsize un = 0;
    g_snprintf (key, sizeof key, "step%d.t", i);
    gint64 t_ref = (gint64) ge_sampler_timestep (s, i);
    mark (k, key);
    conf_check_ints (c, key, &t_ref, 1);
    g_snprintf (key, sizeof key, "step%d.unet_input", i);
    float *uin = input (k, key, &un);
    const GeStTensor *ut = ge_safetensors_find (c->io, key);
    if (!uin || ut->ndim != 4)
      break;
    const int n = (int) ut->shape[0], h = (int) ut->shape[2], w = (int) ut->shape[3];
    float *pred = g_new (float, (gsize) n * ln), *guided = g_new (float, ln);
    float t[2] = { ge_sampler_timestep (s, i), ge_sampler_timestep (s, i) };
    if (n == 2 && ge_unet2d_forward_cond (u, uin, 2, h, w, t, emb, seq, NULL, pred, err)) {
      g_snprintf (key, sizeof key, "step%d.noise_pred_uncond", i);
      check (k, key, pred, ln);
      g_snprintf (key, sizeof key, "step%d.noise_pred_text", i);
      check (k, key, pred + ln, ln);
      /* The guided prediction and the step from the stored outputs, so a
       * mismatch is located at the step that makes it. */
      g_snprintf (key, sizeof key, "step%d.noise_pred_uncond", i);
      float *pu = conf_load_f32 (c, key, NULL);
      g_snprintf (key, sizeof key, "step%d.noise_pred_text", i);
      float *pc = conf_load_f32 (c, key, NULL);
      if (pu && pc) {
        for (gsize j = 0; j < ln; j++)
          guided[j] = pu[j] + g * (pc[j] - pu[j]);
        g_snprintf (key, sizeof key, "step%d.noise_pred", i);
        check (k, key, guided, ln);
      }
      g_free (pu);
      g_free (pc);
      g_snprintf (key, sizeof key, "step%d.noise_pred", i);
      float *np = conf_load_f32 (c, key, NULL);
      float *noise = NULL;
      if (ge_sampler_step_needs_noise (s, i)) {
        g_snprintf (key, sizeof key, "step%d.noise", i);
        noise = input (k, key, NULL);
      }
      if (np) {
        ge_sampler_step (run, i, np, lat, noise, lat);
        g_snprintf (key, sizeof key, "step%d.latents", i);
        check (k, key, lat, ln);
        float *ref = conf_load_f32 (c, key, NULL);
        if (ref)
          memcpy (lat, ref, sizeof (float) * ln);
        g_free (ref);
      }
      g_free (np);
      g_free (noise);
    } else if (!*err) {
      printf ("%s: expected a guidance batch of 2\n", key);
      c->n_failed++;
    }
    g_free (pred);
    g_free (guided);
    g_free (uin);
  }
  g_free (lat);

out:
  ge_sampler_run_free (run);
  ge_sampler_free (s);
}

void
conf_sd_inpaint_case (Conf * c, GePipeline * p, JsonObject * meta)
{
  SdCase k = { c, g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL) };
  GError *err = NULL;
  GeModelFile *umf = NULL, *tmf = NULL;
  GeUNet2D *u = NULL;
  GeClipText *text = NULL;
  GeClipTokenizer *tok = NULL;
  GeSd *sd = NULL;
  float *emb = NULL, *image = NULL, *mask = NULL, *out = NULL;
  const char *prompt = meta_string (meta, "prompt", "");
  const char *negative = meta_string (meta, "negative_prompt", "");

  /* The text, part by part. */
  const char *tok_path = ge_pipeline_part_path (p, "tokenizer");
  if (!tok_path || !(tok = ge_clip_tokenizer_new (tok_path, &err))
      || !(tmf = ge_pipeline_open_model (p, "text_encoder", &err))
      || !(text = ge_clip_text_new (tmf, &err))
      || !(umf = ge_pipeline_open_model (p, "unet", &err))
      || !(u = ge_unet2d_new (umf, &err)))
    goto out;
  const int seq = ge_clip_tokenizer_max_length (tok), dim = ge_clip_text_hidden_size (text);
  gint32 *ids = g_new (gint32, 2 * seq);
  emb = g_new (float, (gsize) 2 * seq * dim);
  /* uncond first, as the pipeline batches them */
  if (check_ids (&k, tok, negative, "input.negative_prompt_ids", ids)
      && check_ids (&k, tok, prompt, "input.prompt_ids", ids + seq)
      && ge_clip_text_forward (text, ids, 2, seq, NULL, emb, NULL, &err)) {
    check (&k, "text.uncond_embeds", emb, (gsize) seq * dim);
    check (&k, "text.cond_embeds", emb + (gsize) seq * dim, (gsize) seq * dim);
    /* The U-Net from the stored embeddings, not ours. */
    float *eu = conf_load_f32 (c, "text.uncond_embeds", NULL);
    float *ec = conf_load_f32 (c, "text.cond_embeds", NULL);
    if (eu && ec) {
      memcpy (emb, eu, sizeof (float) * seq * dim);
      memcpy (emb + (gsize) seq * dim, ec, sizeof (float) * seq * dim);
      stepwise (&k, p, meta, u, emb, seq, dim, &err);
    }
    g_free (eu);
    g_free (ec);
  }
  g_free (ids);
  if (err)
    goto out;

  /* The whole loop. */
  gsize in = 0, mn = 0;
  image = input (&k, "input.image_01", &in);
  mask = input (&k, "input.mask", &mn);
  const GeStTensor *it = ge_safetensors_find (c->io, "input.image_01");
  if (!image || !mask || it->ndim != 4)
    goto out;
  const int h = (int) it->shape[2], w = (int) it->shape[3];
  if (!(sd = ge_sd_new (p, &err)))
    goto out;
  ge_sd_set_n_threads (sd, 1);
  ge_sd_set_tap (sd, loop_tap, &k);
  ge_sd_set_guidance (sd, (float) json_object_get_double_member (meta, "guidance_scale"));
  out = g_new (float, in);
  if (!ge_sd_set_num_steps (sd, (int) json_object_get_int_member (meta,
              "num_inference_steps"), &err)
      || !ge_sd_set_prompt (sd, prompt, negative, NULL, &err)
      || !ge_sd_inpaint (sd, image, mask, h, w, recorded_noise, &k, out, &err))
    goto out;
  /* The pipeline's output_type="np": NHWC. */
  float *nhwc = g_new (float, in);
  const gsize hw = (gsize) h * w;
  for (gsize i = 0; i < hw; i++)
    for (int ch = 0; ch < 3; ch++)
      nhwc[i * 3 + ch] = out[ch * hw + i];
  check (&k, "final.image_np", nhwc, in);
  g_free (nhwc);

  /* The generator draws a step would make: none for PNDM. */
  for (guint i = 0; i < ge_safetensors_n_tensors (c->io); i++) {
    const char *name = ge_safetensors_nth (c->io, i)->name;
    if (!g_hash_table_contains (k.seen, name)) {
      printf ("unchecked output: %s\n", name);
      c->n_failed++;
    }
  }

out:
  if (err) {
    printf ("%s\n", err->message);
    c->n_failed++;
    g_error_free (err);
  }
  ge_sd_free (sd);
  ge_unet2d_free (u);
  ge_clip_text_free (text);
  ge_clip_tokenizer_free (tok);
  if (umf)
    ge_model_file_unref (umf);
  if (tmf)
    ge_model_file_unref (tmf);
  g_free (emb);
  g_free (image);
  g_free (mask);
  g_free (out);
  g_hash_table_unref (k.seen);
}
