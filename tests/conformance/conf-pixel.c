/* conf-pixel.c: the pixel-space pipelines of ge-pixel-diffusion.h
 * (tests/fixtures/pipelines: repaint_small, sdedit_ddim_small).
 *
 * Two checks of one record:
 *  - step by step from the stored input of each entry: the U-Net on the
 *    stored sample, the scheduler step from the STORED model output and
 *    draws (RePaint's step and undo_step, or the sampler's step), the
 *    timesteps exactly (RePaint: the whole walk, so which entries undo);
 *  - the engine's whole loop (ge_pixel_diffusion_process) from the
 *    record's draws, injected by name, every intermediate it reports
 *    compared as it runs, and the end (final.sample and its float64 twin,
 *    final.image_01).
 *
 * Names: input.image_01, input.mask_keep_01 (diffusers' mask image / 255,
 * 1 = keep), input.initial_noise (RePaint) or input.noise (SDEdit),
 * original_image, mask_keep, timesteps, sdedit.noised,
 * step%d.{model_output, noise, pred_original_sample, sample},
 * undo%d.{noise, sample}, final.{sample, sample_f64, image_01}; meta.json:
 * num_inference_steps, eta, jump_length, jump_n_sample, strength.
 */
#include "conf.h"
#include "ge-pixel-diffusion.h"
#include "ge-repaint-scheduler.h"
#include "ge-sampler.h"
#include "ge-unet2d.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static double
meta_num (JsonObject * meta, const char *key, double def)
{
  JsonNode *v = json_object_get_member (meta, key);
  if (!v || !JSON_NODE_HOLDS_VALUE (v))
    return def;
  GType t = json_node_get_value_type (v);
  return t == G_TYPE_DOUBLE ? json_node_get_double (v)
      : t == G_TYPE_INT64 ? (double) json_node_get_int (v) : def;
}

static float *
load_sized (Conf * c, const char *key, gsize n)
{
  gsize got = 0;
  float *v = conf_load_f32 (c, key, &got);
  if (v && got != n) {
    printf ("%-48s has %" G_GSIZE_FORMAT " floats, not %" G_GSIZE_FORMAT "\n", key, got, n);
    c->n_failed++;
    g_clear_pointer (&v, g_free);
  }
  return v;
}

static float *
load_entry (Conf * c, const char *kind, int i, const char *what, gsize n)
{
  char key[64];
  g_snprintf (key, sizeof key, "%s%d.%s", kind, i, what);
  return load_sized (c, key, n);
}

static void
check_entry (Conf * c, const char *kind, int i, const char *what, const float *got, gsize n)
{
  char key[64];
  g_snprintf (key, sizeof key, "%s%d.%s", kind, i, what);
  conf_check (c, key, got, n);
}

/* RePaint's walk, entry by entry from the stored inputs. */
static gboolean
stepwise_repaint (Conf * c, GePipeline * p, JsonObject * meta, GeUNet2D * u, int h, int w,
    GError ** err)
{
  const gsize hw = (gsize) h * w, n = 3 * hw;
  JsonObject *sj = ge_pipeline_scheduler_config (p, err);
  GeRePaintScheduler *s = sj ? ge_repaint_scheduler_new_from_json (sj,
      ge_pipeline_part_path (p, "scheduler"), err) : NULL;
  if (!s || !ge_repaint_scheduler_set_timesteps (s, (int) meta_num (meta, "num_inference_steps", 0),
          (int) meta_num (meta, "jump_length", 10), (int) meta_num (meta, "jump_n_sample", 10), err)) {
    ge_repaint_scheduler_free (s);
    return FALSE;
  }
  ge_repaint_scheduler_set_eta (s, (float) meta_num (meta, "eta", 0));
  const int entries = ge_repaint_scheduler_n_timesteps (s);
  const gint64 *ts = ge_repaint_scheduler_timesteps (s);
  conf_check_ints (c, "timesteps", ts, entries);

  float *orig = load_sized (c, "original_image", n);
  float *keep = load_sized (c, "mask_keep", hw);
  float *x = load_sized (c, "input.initial_noise", n);
  float *eps = g_new (float, n), *prev = g_new (float, n), *x0 = g_new (float, n);
  gboolean ok = orig && keep && x;
  for (int i = 0; i < entries && ok; i++) {
    float *ref = NULL, *noise = NULL, *mo = NULL;
    if (!ge_repaint_scheduler_is_undo (s, i)) {
      const float t = (float) ts[i];
      if (!(ok = ge_unet2d_forward (u, x, 1, h, w, &t, eps, err)))
        break;
      check_entry (c, "step", i, "model_output", eps, n);
      mo = load_entry (c, "step", i, "model_output", n);
      noise = load_entry (c, "step", i, "noise", n);
      if (mo && noise) {
        ge_repaint_scheduler_step (s, ts[i], mo, x, orig, keep, hw, noise, n, prev, x0);
        check_entry (c, "step", i, "pred_original_sample", x0, n);
        check_entry (c, "step", i, "sample", prev, n);
      }
      ref = load_entry (c, "step", i, "sample", n);
    } else {
      const gsize un = (gsize) ge_repaint_scheduler_undo_n_draws (s) * n;
      noise = load_entry (c, "undo", i, "noise", un);
      if (noise) {
        ge_repaint_scheduler_undo_step (s, ts[i - 1], x, noise, n, prev);
        check_entry (c, "undo", i, "sample", prev, n);
      }
      ref = load_entry (c, "undo", i, "sample", n);
    }
    ok = ref != NULL;
    if (ref)
      memcpy (x, ref, sizeof (float) * n);
    g_free (ref);
    g_free (noise);
    g_free (mo);
  }
  g_free (orig);
  g_free (keep);
  g_free (x);
  g_free (eps);
  g_free (prev);
  g_free (x0);
  ge_repaint_scheduler_free (s);
  return !*err;
}

/* SDEdit: add_noise and each step from the stored inputs. */
static gboolean
stepwise_sdedit (Conf * c, GePipeline * p, JsonObject * meta, GeUNet2D * u, int h, int w,
    GError ** err)
{
  const gsize n = (gsize) 3 * h * w;
  JsonObject *sj = ge_pipeline_scheduler_config (p, err);
  const gboolean ddim = g_strcmp0 (ge_pipeline_class_name (p), "DDIMPipeline") == 0;
  GeSampler *s = sj ? ge_sampler_new_from_json_as (ddim ? "ddim" : NULL, sj,
      ge_pipeline_part_path (p, "scheduler"), err) : NULL;
  if (!s || !ge_sampler_set_timesteps (s, (int) meta_num (meta, "num_inference_steps", 0), err)) {
    g_clear_pointer (&s, ge_sampler_free);
    return FALSE;
  }
  ge_sampler_set_eta (s, (float) meta_num (meta, "eta", 0));
  const int calls = ge_sampler_n_calls (s);
  const int start = MIN (ge_sampler_start_index (s, meta_num (meta, "strength", 0.8)), calls);
  gint64 *ts = g_new (gint64, MAX (calls - start, 1));
  for (int i = start; i < calls; i++)
    ts[i - start] = (gint64) ge_sampler_timestep (s, i);
  conf_check_ints (c, "timesteps", ts, calls - start);
  g_free (ts);

  float *orig = load_sized (c, "original_image", n);
  float *noise0 = load_sized (c, "input.noise", n);
  float *x = g_new (float, n), *eps = g_new (float, n), *prev = g_new (float, n);
  float *x0 = g_new (float, n), *scaled = g_new (float, n);
  gboolean ok = orig && noise0;
  if (ok && start < calls) {
    ge_sampler_add_noise (s, start, orig, noise0, n, x);
    conf_check (c, "sdedit.noised", x, n);
  }
  float *ref = ok ? load_sized (c, "sdedit.noised", n) : NULL;
  ok = ref != NULL;
  if (ref)
    memcpy (x, ref, sizeof (float) * n);
  g_free (ref);
  GeSamplerRun *run = ge_sampler_run_new (s, n);
  for (int i = start; i < calls && ok; i++) {
    const float t = ge_sampler_timestep (s, i);
    ge_sampler_scale_model_input (s, i, x, n, scaled);
    if (!(ok = ge_unet2d_forward (u, scaled, 1, h, w, &t, eps, err)))
      break;
    check_entry (c, "step", i, "model_output", eps, n);
    float *mo = load_entry (c, "step", i, "model_output", n);
    /* diffusers draws DDIM's noise at every step with eta > 0, also where
     * it is multiplied by 0 (the last): the sampler skips that draw. */
    char nkey[64];
    g_snprintf (nkey, sizeof nkey, "step%d.noise", i);
    float *nz = ge_sampler_step_needs_noise (s, i) ? load_entry (c, "step", i, "noise", n)
        : conf_try_load_f32 (c, nkey, NULL);
    if (mo) {
      if (ge_sampler_step_full (run, i, mo, x, nz, prev, x0))
        check_entry (c, "step", i, "pred_original_sample", x0, n);
      check_entry (c, "step", i, "sample", prev, n);
    }
    ref = load_entry (c, "step", i, "sample", n);
    ok = ref != NULL;
    if (ref)
      memcpy (x, ref, sizeof (float) * n);
    g_free (ref);
    g_free (mo);
    g_free (nz);
  }
  ge_sampler_run_free (run);
  g_free (orig);
  g_free (noise0);
  g_free (x);
  g_free (eps);
  g_free (prev);
  g_free (x0);
  g_free (scaled);
  ge_sampler_free (s);
  return !*err;
}

/* The record's draws, by name. */
static void
recorded_noise (void *data, const char *what, int step, float *out, int ch, int h, int w)
{
  Conf *c = data;
  char key[64];
  const gsize n = (gsize) ch * h * w;
  if (strcmp (what, "latents") == 0) {
    const char *const names[] = { "input.initial_noise", "input.noise", NULL };
    const char *k = conf_pick (c, names);
    g_strlcpy (key, k ? k : "input.initial_noise", sizeof key);
  } else
    g_snprintf (key, sizeof key, "%s%d.noise", what, step);
  float *v = load_sized (c, key, n);
  if (v)
    memcpy (out, v, sizeof (float) * n);
  else {
    printf ("the record has no draw \"%s\" (%s %d) of %" G_GSIZE_FORMAT " floats\n", key, what,
        step, n);
    memset (out, 0, sizeof (float) * n);
  }
  g_free (v);
}

/* The free-running loop compounds float32 rounding from step to step
 * (torch's own float32 and float64 runs end meta.json's
 * f32_vs_f64_maxabs apart), so its intermediates are held to the larger
 * of the 1e-4 relative bound of one call and twice that spread. */
typedef struct {
  Conf *c;
  double spread;
} Free;

static void
free_check (Free * f, const char *key, const float *got, gsize n)
{
  Conf *c = f->c;
  const GeStTensor *t = conf_use (c, key);
  if (!t || t->n_elements != n) {
    printf ("%-48s %s\n", key, t ? "SIZE MISMATCH" : "MISSING in io.safetensors");
    c->n_failed++;
    return;
  }
  double *ref = g_new (double, n);
  ge_st_tensor_to_f64 (t, ref);
  double maxref = 0, maxerr = 0;
  for (gsize i = 0; i < n; i++) {
    maxref = fmax (maxref, fabs (ref[i]));
    const double e = fabs ((double) got[i] - ref[i]);
    maxerr = isnan (e) ? INFINITY : fmax (maxerr, e);
  }
  g_free (ref);
  const double bound = fmax (CONF_TOL * maxref, 2 * f->spread);
  const gboolean ok = maxerr <= bound;
  printf ("%-48s free-running max rel err %.3e (bound %.3e) %s\n", key,
      maxref > 0 ? maxerr / maxref : maxerr, maxref > 0 ? bound / maxref : bound,
      ok ? "ok" : "FAIL");
  c->n_checked++;
  c->n_failed += !ok;
}

static void
loop_tap (const char *name, const float *data, int n, int ch, int h, int w, void *user)
{
  Free *f = user;
  if (!ge_safetensors_find (f->c->io, name))
    return;
  free_check (f, name, data, (gsize) n * ch * h * w);
  char *f64 = g_strconcat (name, "_f64", NULL);
  if (ge_safetensors_find (f->c->io, f64))
    free_check (f, f64, data, (gsize) n * ch * h * w);
  g_free (f64);
}

static gboolean
whole_loop (Conf * c, GePipeline * p, JsonObject * meta, gboolean repaint, int h, int w,
    GError ** err)
{
  const gsize hw = (gsize) h * w, n = 3 * hw;
  GePixelDiffusion *pd = ge_pixel_diffusion_new (p, repaint ? GE_PIXEL_DIFFUSION_REPAINT
      : GE_PIXEL_DIFFUSION_SDEDIT, err);
  if (!pd)
    return FALSE;
  gboolean ok = ge_pixel_diffusion_set_num_steps (pd, (int) meta_num (meta, "num_inference_steps",
          0), err)
      && ge_pixel_diffusion_set_jumps (pd, (int) meta_num (meta, "jump_length", 10),
      (int) meta_num (meta, "jump_n_sample", 10), err);
  ge_pixel_diffusion_set_eta (pd, (float) meta_num (meta, "eta", 0));
  ge_pixel_diffusion_set_strength (pd, (float) meta_num (meta, "strength", 0.8));
  Free f = { c, 0.0 };
  JsonObject *gap = json_object_has_member (meta, "f32_vs_f64_maxabs")
      ? json_object_get_object_member (meta, "f32_vs_f64_maxabs") : NULL;
  if (gap && json_object_has_member (gap, "final.sample"))
    f.spread = json_object_get_double_member (gap, "final.sample");
  ge_pixel_diffusion_set_tap (pd, loop_tap, &f);
  float *img = load_sized (c, "input.image_01", n);
  float *mask = repaint ? load_sized (c, "input.mask_keep_01", hw) : NULL;
  float *out = g_new (float, n);
  ok = ok && img && (!repaint || mask);
  if (ok && repaint) {
    printf ("RePaint walk: %d U-Net calls\n", ge_pixel_diffusion_n_unet_calls (pd));
    for (gsize k = 0; k < hw; k++)
      mask[k] = 1.0f - mask[k];         /* the engine's convention: 1 = regenerate */
  }
  if (ok && (ok = ge_pixel_diffusion_process (pd, img, mask, h, w, recorded_noise, c, out, err)))
    free_check (&f, "final.image_01", out, n);
  g_free (img);
  g_free (mask);
  g_free (out);
  ge_pixel_diffusion_free (pd);
  return ok || !*err;
}

void
conf_pixel_case (Conf * c, GePipeline * p, JsonObject * meta)
{
  GError *err = NULL;
  GeModelFile *mf = NULL;
  GeUNet2D *u = NULL;
  const gboolean repaint = g_strcmp0 (ge_pipeline_class_name (p), "RePaintPipeline") == 0;
  const GeStTensor *it = conf_use (c, "input.image_01");
  if (!it || it->ndim != 4 || it->shape[0] != 1 || it->shape[1] != 3) {
    printf ("input.image_01 missing or not [1, 3, h, w]\n");
    c->n_failed++;
    return;
  }
  const int h = (int) it->shape[2], w = (int) it->shape[3];
  gboolean ok = (mf = ge_pipeline_open_model (p, "unet", &err)) && (u = ge_unet2d_new (mf, &err))
      && (repaint ? stepwise_repaint (c, p, meta, u, h, w, &err)
      : stepwise_sdedit (c, p, meta, u, h, w, &err))
      && whole_loop (c, p, meta, repaint, h, w, &err);
  if (!ok || err) {
    printf ("%s\n", err ? err->message : "the case could not run");
    c->n_failed++;
  }
  g_clear_error (&err);
  ge_unet2d_free (u);
  if (mf)
    ge_model_file_unref (mf);
  conf_fail_unchecked (c);
}
