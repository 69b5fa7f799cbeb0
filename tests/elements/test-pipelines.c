/* test-pipelines: diffusers pipeline folders in the elements.
 *
 * For each pipeline class the elements run, a tiny folder is assembled at
 * test time (model_index.json beside links to the diffusers fixture parts
 * of GE_TEST_FIXTURES and to the parts of make_test_pipelines.py in
 * GE_TEST_PARTS) and the element's output frame is compared, byte for
 * byte, with the engine's own run of the same frame: ge_sd_process () with
 * ge_sd_noise_seeded () and the element's seed, on the frame padded by edge
 * replication to the size multiple, cropped back and converted as
 * diffusers' numpy_to_pil does (round half to even).  The conversion and
 * the padding are written here again, independently of the element.
 *
 * Pixel-space pipelines (RePaintPipeline in diffusioninpaint, DDIMPipeline
 * as an SDEdit prior in diffusionimg2img) are compared the same way with
 * ge_pixel_diffusion_process ().
 *
 * Besides: the refusal of an unsupported class lists the supported ones
 * (RePaint / DDIM / DDPM pipelines among them), a missing part is
 * RESOURCE/NOT_FOUND naming the folder, a prompt changed in PLAYING is
 * used from the next frame and encoded once (stats text-encodes), a
 * prompt over 77 tokens warns once, a static scene with a static mask
 * costs one run, tiles run, and the VAE elements take a pipeline's vae or
 * an AutoencoderTiny folder.
 */
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/video/video.h>

#include <glib/gstdio.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "elementcheck.h"
#include "ge-sd.h"
#include "ge-pixel-diffusion.h"

/* ---- pipeline folders ------------------------------------------------- */


#define FIX "GE_TEST_FIXTURES"
#define PARTS "GE_TEST_PARTS"

static const PipelinePart text_parts[] = {
  {"text_encoder", "transformers", "CLIPTextModel", FIX, "clip_text_small"},
  {"tokenizer", "transformers", "CLIPTokenizer", FIX, "clip_tokenizer_small"},
};
static const PipelinePart vae_part =
    { "vae", "diffusers", "AutoencoderKL", FIX, "vae_kl_small" };
static const PipelinePart pndm_part =
    { "scheduler", "diffusers", "PNDMScheduler", FIX, "sched_pndm_sd15" };
static const PipelinePart ddim_part =
    { "scheduler", "diffusers", "DDIMScheduler", FIX,
  "sched_ddim_sd15_eps_offset1"
};


static gchar *
inpaint_folder (void)
{
  const PipelinePart unet = { "unet", "diffusers", "UNet2DConditionModel", FIX,
    "sd_inpaint_loop_small/unet"
  };
  const PipelinePart *parts[] = { &unet, &vae_part, &text_parts[0], &text_parts[1],
    &pndm_part, NULL
  };
  return make_pipeline_folder ("StableDiffusionInpaintPipeline", parts);
}

static gchar *
sd_folder (const gchar * cls)
{
  const PipelinePart unet = { "unet", "diffusers", "UNet2DConditionModel", FIX,
    "unet_cond_sd_small"
  };
  const PipelinePart *parts[] = { &unet, &vae_part, &text_parts[0], &text_parts[1],
    &ddim_part, NULL
  };
  return make_pipeline_folder (cls, parts);
}

static gchar *
pix2pix_folder (void)
{
  const PipelinePart unet = { "unet", "diffusers", "UNet2DConditionModel", PARTS,
    "unet_pix2pix"
  };
  const PipelinePart *parts[] = { &unet, &vae_part, &text_parts[0], &text_parts[1],
    &ddim_part, NULL
  };
  return make_pipeline_folder ("StableDiffusionInstructPix2PixPipeline", parts);
}

static gchar *
upscale_folder (void)
{
  const PipelinePart unet = { "unet", "diffusers", "UNet2DConditionModel", PARTS,
    "unet_upscale"
  };
  const PipelinePart low = { "low_res_scheduler", "diffusers", "DDPMScheduler", FIX,
    "sched_ddpm_linear_eps_clip"
  };
  const PipelinePart *parts[] = { &unet, &vae_part, &text_parts[0], &text_parts[1],
    &ddim_part, &low, NULL
  };
  return make_pipeline_folder ("StableDiffusionUpscalePipeline", parts);
}

/* An unconditional UNet2DModel with the scheduler config of a pixel-space
 * record (tests/fixtures/pipelines). */
static gchar *
pixel_folder (const gchar * cls, const gchar * sched_cls, const gchar * record)
{
  const PipelinePart unet = { "unet", "diffusers", "UNet2DModel", FIX,
    "unet_ddpm_small"
  };
  gchar *rel = g_build_filename ("..", "pipelines", record, NULL);
  const PipelinePart sched = { "scheduler", "diffusers", sched_cls, FIX, rel };
  const PipelinePart *parts[] = { &unet, &sched, NULL };
  gchar *dir = make_pipeline_folder (cls, parts);

  g_free (rel);
  return dir;
}

static gchar *
ldm_folder (void)
{
  const PipelinePart unet = { "unet", "diffusers", "UNet2DModel", PARTS, "unet_ldm" };
  const PipelinePart vq = { "vqvae", "diffusers", "VQModel", PARTS, "vqvae" };
  const PipelinePart sched = { "scheduler", "diffusers", "DDIMScheduler", FIX,
    "sched_ddim_linear_eps_clip"
  };
  const PipelinePart *parts[] = { &unet, &vq, &sched, NULL };
  return make_pipeline_folder ("LDMSuperResolutionPipeline", parts);
}

/* ---- frames ----------------------------------------------------------- */

static guint8
pattern (gint x, gint y, gint c)
{
  return (guint8) ((x * 37 + y * 11 + c * 71 + ((x * y) % 13) * 5) & 255);
}

/* A frame of @format; with @mask, alpha 0 inside [mx0, mx1) x [my0, my1)
 * (transparent: regenerated), 255 elsewhere. */
static GstBuffer *
make_frame (GstVideoFormat format, gint w, gint h, const gint * box,
    GstClockTime pts)
{
  GstVideoInfo info;
  GstVideoFrame f;
  GstBuffer *b;

  gst_video_info_set_format (&info, format, w, h);
  b = gst_buffer_new_allocate (NULL, GST_VIDEO_INFO_SIZE (&info), NULL);
  fail_unless (gst_video_frame_map (&f, &info, b, GST_MAP_WRITE));
  for (gint y = 0; y < h; y++)
    for (gint x = 0; x < w; x++) {
      guint8 *p = (guint8 *) GST_VIDEO_FRAME_PLANE_DATA (&f, 0)
          + y * GST_VIDEO_FRAME_PLANE_STRIDE (&f, 0)
          + x * GST_VIDEO_FRAME_COMP_PSTRIDE (&f, 0);
      for (gint c = 0; c < 3; c++)
        p[GST_VIDEO_FRAME_COMP_OFFSET (&f, c)] = pattern (x, y, c);
      if (GST_VIDEO_INFO_HAS_ALPHA (&info))
        p[GST_VIDEO_FRAME_COMP_OFFSET (&f, 3)] = box && x >= box[0]
            && x < box[1] && y >= box[2] && y < box[3] ? 0 : 255;
    }
  gst_video_frame_unmap (&f);
  GST_BUFFER_PTS (b) = pts;
  GST_BUFFER_DURATION (b) = GST_SECOND / 10;
  return b;
}

/* The RGB bytes of @buf (w x h x 3, packed). */
static guint8 *
rgb_of (GstBuffer * buf, GstVideoFormat format, gint w, gint h)
{
  GstVideoInfo info;
  GstVideoFrame f;
  guint8 *rgb = g_new (guint8, (gsize) w * h * 3);

  gst_video_info_set_format (&info, format, w, h);
  fail_unless (gst_video_frame_map (&f, &info, buf, GST_MAP_READ));
  for (gint y = 0; y < h; y++)
    for (gint x = 0; x < w; x++) {
      const guint8 *p = (const guint8 *) GST_VIDEO_FRAME_PLANE_DATA (&f, 0)
          + y * GST_VIDEO_FRAME_PLANE_STRIDE (&f, 0)
          + x * GST_VIDEO_FRAME_COMP_PSTRIDE (&f, 0);
      for (gint c = 0; c < 3; c++)
        rgb[((gsize) y * w + x) * 3 + c] = p[GST_VIDEO_FRAME_COMP_OFFSET (&f,
                c)];
    }
  gst_video_frame_unmap (&f);
  return rgb;
}

/* ---- the engine's run of a frame ---------------------------------------- */

typedef struct
{
  GeSdTask task;
  gint steps;
  gfloat guidance, image_guidance, strength;
  gint noise_level;
  const gchar *scheduler;       /* NULL: the folder's */
  const gchar *prompt, *negative;
  guint64 seed;
  /* Pixel-space pipelines: 1 RePaint, 2 SDEdit (0: GeSd); RePaint's jumps. */
  gint pixel;
  gint jump_length, jump_n_sample;
} Settings;

/* ge_pixel_diffusion_process on the padded frame (as reference () below). */
static gfloat *
pixel_run (GePipeline * p, const Settings * st, const gfloat * img,
    const gfloat * mask, gint ph, gint pw)
{
  GError *err = NULL;
  GePixelDiffusion *pd = ge_pixel_diffusion_new (p, st->pixel == 1
      ? GE_PIXEL_DIFFUSION_REPAINT : GE_PIXEL_DIFFUSION_SDEDIT, &err);
  gfloat *out = g_new (gfloat, 3 * (gsize) pw * ph);
  guint64 seed = st->seed;

  fail_unless (pd != NULL, "%s", err ? err->message : "");
  ge_pixel_diffusion_set_n_threads (pd, 1);
  if (st->scheduler)
    fail_unless (ge_pixel_diffusion_set_scheduler (pd, st->scheduler, &err),
        "%s", err ? err->message : "");
  if (st->jump_length > 0)
    fail_unless (ge_pixel_diffusion_set_jumps (pd, st->jump_length,
            st->jump_n_sample, &err), "%s", err ? err->message : "");
  fail_unless (ge_pixel_diffusion_set_num_steps (pd, st->steps, &err), "%s",
      err ? err->message : "");
  ge_pixel_diffusion_set_strength (pd, st->strength);
  fail_unless (ge_pixel_diffusion_process (pd, img, mask, ph, pw,
          ge_sd_noise_seeded, &seed, out, &err), "%s", err ? err->message : "");
  ge_pixel_diffusion_free (pd);
  return out;
}

/* The size multiple of the folder's engine object. */
static gint
pixel_multiple (GePipeline * p, const Settings * st)
{
  GePixelDiffusion *pd = ge_pixel_diffusion_new (p, st->pixel == 1
      ? GE_PIXEL_DIFFUSION_REPAINT : GE_PIXEL_DIFFUSION_SDEDIT, NULL);
  gint m;

  fail_unless (pd != NULL);
  m = ge_pixel_diffusion_size_multiple (pd);
  ge_pixel_diffusion_free (pd);
  return m;
}

/* ge_sd_process on the pattern frame (w x h) and the box mask, padded by
 * edge replication to the size multiple; the output cropped to the
 * output size, as 8-bit RGB. */
static guint8 *
reference (const gchar * folder, const Settings * st, gint w, gint h,
    const gint * box, gint * ow, gint * oh)
{
  GError *err = NULL;
  GePipeline *p = ge_pipeline_open (folder, &err);
  GeSd *sd = NULL;
  gint m, pw, ph, pow, poh;
  gfloat *img, *mask = NULL, *out;
  guint8 *rgb;
  guint64 seed = st->seed;

  fail_unless (p != NULL, "%s", err ? err->message : "");
  if (st->pixel) {
    m = pixel_multiple (p, st);
    pw = pow = (w + m - 1) / m * m;
    ph = poh = (h + m - 1) / m * m;
    *ow = w;
    *oh = h;
    goto frame;
  }
  sd = ge_sd_new (p, st->task, &err);
  fail_unless (sd != NULL, "%s", err ? err->message : "");
  ge_sd_set_n_threads (sd, 1);
  if (st->scheduler)
    fail_unless (ge_sd_set_scheduler (sd, st->scheduler, &err), "%s",
        err ? err->message : "");
  fail_unless (ge_sd_set_num_steps (sd, st->steps, &err), "%s",
      err ? err->message : "");
  ge_sd_set_guidance (sd, st->guidance, st->image_guidance);
  ge_sd_set_strength (sd, st->strength);
  ge_sd_set_noise_level (sd, st->noise_level);
  fail_unless (ge_sd_set_prompt (sd, st->prompt, st->negative, NULL, &err),
      "%s", err ? err->message : "");
  m = ge_sd_size_multiple (sd);
  pw = (w + m - 1) / m * m;
  ph = (h + m - 1) / m * m;
  ge_sd_output_size (sd, ph, pw, &poh, &pow);
  *ow = w * (pow / pw);
  *oh = h * (poh / ph);
frame:
  img = g_new (gfloat, 3 * (gsize) pw * ph);
  if (box)
    mask = g_new (gfloat, (gsize) pw * ph);
  for (gint y = 0; y < ph; y++)
    for (gint x = 0; x < pw; x++) {
      const gint sx = MIN (x, w - 1), sy = MIN (y, h - 1);
      for (gint c = 0; c < 3; c++)
        img[((gsize) c * ph + y) * pw + x] = pattern (sx, sy, c) / 255.0f;
      if (mask)
        mask[(gsize) y * pw + x] = sx >= box[0] && sx < box[1]
            && sy >= box[2] && sy < box[3];
    }
  if (st->pixel) {
    out = pixel_run (p, st, img, mask, ph, pw);
  } else {
    out = g_new (gfloat, 3 * (gsize) pow * poh);
    fail_unless (ge_sd_process (sd, img, mask, ph, pw, ge_sd_noise_seeded,
            &seed, out, &err), "%s", err ? err->message : "");
  }
  rgb = g_new (guint8, (gsize) * ow * *oh * 3);
  for (gint y = 0; y < *oh; y++)
    for (gint x = 0; x < *ow; x++)
      for (gint c = 0; c < 3; c++) {
        gfloat v = out[((gsize) c * poh + y) * pow + x];
        v = v < 0 ? 0 : v > 1 ? 1 : v;
        rgb[((gsize) y * *ow + x) * 3 + c] = (guint8) rint (v * 255.0f);
      }
  g_free (img);
  g_free (mask);
  g_free (out);
  g_clear_pointer (&sd, ge_sd_free);
  ge_pipeline_free (p);
  return rgb;
}

/* ---- element runs ------------------------------------------------------- */

static GstHarness *
harness (const gchar * factory, const gchar * folder, const gchar * extra)
{
  gchar *launch = g_strdup_printf ("%s name=e model-file=\"%s\" n-threads=1 %s",
      factory, folder, extra ? extra : "");
  GstHarness *h = gst_harness_new_parse (launch);

  g_free (launch);
  return h;
}

static GstElement *
element (GstHarness * h)
{
  GstElement *e;

  if (!GST_IS_BIN (h->element))
    return h->element;
  e = gst_bin_get_by_name (GST_BIN (h->element), "e");
  fail_unless (e != NULL);
  gst_object_unref (e);
  return e;
}

static gchar *
caps_string (GstVideoFormat format, gint w, gint h)
{
  return g_strdup_printf ("video/x-raw,format=%s,width=%d,height=%d,"
      "framerate=10/1", gst_video_format_to_string (format), w, h);
}

/* Pushes the pattern frame through @h; its RGB output. */
static guint8 *
run_frame (GstHarness * h, GstVideoFormat format, gint w, gint h_, gint ow,
    gint oh, const gint * box, GstClockTime pts)
{
  GstBuffer *out = gst_harness_push_and_pull (h, make_frame (format, w, h_,
          box, pts));
  guint8 *rgb;

  fail_unless (out != NULL);
  fail_unless_equals_uint64 (GST_BUFFER_PTS (out), pts);
  rgb = rgb_of (out, format, ow, oh);
  gst_buffer_unref (out);
  return rgb;
}

static void
assert_same (const guint8 * got, const guint8 * ref, gint w, gint h,
    const gchar * what)
{
  gint bad = 0, first = -1;

  for (gint i = 0; i < w * h * 3; i++)
    if (got[i] != ref[i]) {
      if (first < 0)
        first = i;
      bad++;
    }
  fail_unless (bad == 0, "%s: %d of %d bytes differ (first at pixel %d, "
      "channel %d: %u, engine %u)", what, bad, w * h * 3, first / 3,
      first % 3, first >= 0 ? got[first] : 0, first >= 0 ? ref[first] : 0);
}

static gchar *
stats_of (GstHarness * h)
{
  gchar *stats = NULL;
  g_object_get (element (h), "stats", &stats, NULL);
  return stats;
}

static guint
stats_uint (const gchar * stats, const gchar * field)
{
  GstStructure *s = gst_structure_from_string (stats, NULL);
  guint v = 0;

  fail_unless (s != NULL, "%s", stats);
  fail_unless (gst_structure_get_uint (s, field, &v), "no %s in %s", field,
      stats);
  gst_structure_free (s);
  return v;
}

static guint64
stats_uint64 (const gchar * stats, const gchar * field)
{
  GstStructure *s = gst_structure_from_string (stats, NULL);
  guint64 v = 0;

  fail_unless (s != NULL, "%s", stats);
  fail_unless (gst_structure_get_uint64 (s, field, &v), "no %s in %s", field,
      stats);
  gst_structure_free (s);
  return v;
}

/* A filter element on a folder: its output against the engine's. */
static void
check_filter (const gchar * factory, gchar * folder, const gchar * props,
    const Settings * st, GstVideoFormat format, gint w, gint h)
{
  GstHarness *hh = harness (factory, folder, props);
  gint ow, oh;
  guint8 *ref = reference (folder, st, w, h, NULL, &ow, &oh);
  gchar *caps = caps_string (format, w, h), *stats;
  guint8 *got;

  gst_harness_set_src_caps_str (hh, caps);
  got = run_frame (hh, format, w, h, ow, oh, NULL, 0);
  assert_same (got, ref, ow, oh, folder);
  stats = stats_of (hh);
  GST_INFO ("%s: %s", factory, stats);
  fail_unless (strstr (stats, "mean-ms=") != NULL, "%s", stats);
  g_free (stats);
  g_free (got);
  g_free (ref);
  g_free (caps);
  gst_harness_teardown (hh);
  remove_folder (folder);
}

/* ---- tests -------------------------------------------------------------- */

GST_START_TEST (test_img2img_sd)
{
  /* SDEdit from the frame, strength picking the timesteps as diffusers'
   * get_timesteps; a sampler by name; a frame that is no multiple of 8. */
  const Settings st = { GE_SD_IMG2IMG, 4, 7.5f, 1.5f, 0.6f, 20, "euler",
    "a red house", "blurry", 5
  };
  check_filter ("diffusionimg2img",
      sd_folder ("StableDiffusionImg2ImgPipeline"),
      "num-steps=4 strength=0.6 scheduler=euler prompt=\"a red house\" "
      "negative-prompt=blurry seed=5", &st, GST_VIDEO_FORMAT_BGRx, 21, 14);
}

GST_END_TEST;

GST_START_TEST (test_img2img_plain_sd_folder)
{
  /* A StableDiffusionPipeline checkpoint runs as img2img; guidance 1 runs
   * the prompt's pass alone. */
  const Settings st = { GE_SD_IMG2IMG, 3, 1.0f, 1.5f, 0.8f, 20, NULL,
    "", "", 0
  };
  check_filter ("diffusionimg2img", sd_folder ("StableDiffusionPipeline"),
      "num-steps=3 strength=0.8 guidance-scale=1", &st, GST_VIDEO_FORMAT_RGB,
      16, 16);
}

GST_END_TEST;

GST_START_TEST (test_pix2pix)
{
  const Settings st = { GE_SD_IMG2IMG, 3, 4.0f, 1.8f, 1.0f, 20, NULL,
    "make it snow", "", 11
  };
  check_filter ("diffusionimg2img", pix2pix_folder (),
      "num-steps=3 guidance-scale=4 image-guidance-scale=1.8 "
      "prompt=\"make it snow\" seed=11", &st, GST_VIDEO_FORMAT_RGBA, 12, 10);
}

GST_END_TEST;

GST_START_TEST (test_upscale)
{
  /* The x4 upscaler's layout over a factor-2 VAE: x2 here; noise-level is
   * the low-res noise and the class label. */
  const Settings st = { GE_SD_SUPER_RESOLUTION, 3, 9.0f, 1.5f, 1.0f, 35,
    NULL, "sharp", "", 3
  };
  check_filter ("diffusionsr", upscale_folder (),
      "scale=2 num-steps=3 noise-level=35 prompt=sharp seed=3", &st,
      GST_VIDEO_FORMAT_RGBx, 11, 9);
}

GST_END_TEST;

GST_START_TEST (test_ldm_sr)
{
  const Settings st = { GE_SD_SUPER_RESOLUTION, 4, 7.5f, 1.5f, 1.0f, 20,
    NULL, "", "", 8
  };
  check_filter ("diffusionsr", ldm_folder (), "scale=2 num-steps=4 seed=8",
      &st, GST_VIDEO_FORMAT_BGR, 10, 7);
}

GST_END_TEST;

/* diffusioninpaint on a folder, the mask from alpha (a hard edge): the
 * masked pixels are the engine's, every other pixel the input's; the same
 * frame again costs nothing and gives the same bytes. */
static void
check_inpaint (gchar * folder, const Settings * st, const gchar * props)
{
  const gint w = 30, h = 22, box[4] = { 6, 19, 4, 15 };
  const GstVideoFormat format = GST_VIDEO_FORMAT_RGBA;
  GstHarness *hh = harness ("diffusioninpaint", folder, props);
  gint ow, oh;
  guint8 *ref = reference (folder, st, w, h, box, &ow, &oh);
  gchar *caps = caps_string (format, w, h), *stats;
  guint8 *got, *again;
  gint inside = 0;

  gst_harness_set_src_caps_str (hh, caps);
  got = run_frame (hh, format, w, h, w, h, box, 0);
  for (gint y = 0; y < h; y++)
    for (gint x = 0; x < w; x++) {
      const gboolean in = x >= box[0] && x < box[1] && y >= box[2]
          && y < box[3];
      for (gint c = 0; c < 3; c++) {
        const guint8 v = got[(y * w + x) * 3 + c];
        if (in) {
          fail_unless_equals_int (v, ref[(y * w + x) * 3 + c]);
          inside += v != pattern (x, y, c);
        } else {
          fail_unless_equals_int (v, pattern (x, y, c));
        }
      }
    }
  fail_unless (inside > 0);
  stats = stats_of (hh);
  fail_unless_equals_uint64 (stats_uint64 (stats, "reused-boxes"), 0);
  fail_unless_equals_uint64 (stats_uint64 (stats, "masked-pixels"),
      (box[1] - box[0]) * (box[3] - box[2]));
  g_free (stats);

  again = run_frame (hh, format, w, h, w, h, box, GST_SECOND / 10);
  assert_same (again, got, w, h, "the same frame again");
  stats = stats_of (hh);
  fail_unless_equals_uint64 (stats_uint64 (stats, "reused-boxes"), 1);
  fail_unless_equals_uint64 (stats_uint64 (stats, "diffused-pixels"), 0);
  fail_unless_equals_uint64 (stats_uint64 (stats, "frames"), 2);
  g_free (stats);

  g_free (again);
  g_free (got);
  g_free (ref);
  g_free (caps);
  gst_harness_teardown (hh);
  remove_folder (folder);
}

GST_START_TEST (test_inpaint_sd)
{
  /* 9-channel U-Net: mask and masked-image latents as diffusers makes
   * them; the PNDM scheduler of the folder. */
  const Settings st = { GE_SD_INPAINT, 3, 7.5f, 1.5f, 1.0f, 20, NULL,
    "a wooden table", "", 2
  };
  check_inpaint (inpaint_folder (), &st,
      "mask-feather=0 num-steps=3 prompt=\"a wooden table\" seed=2");
}

GST_END_TEST;

GST_START_TEST (test_inpaint_plain_sd_folder)
{
  /* A 4-channel StableDiffusionPipeline: the known region pasted back at
   * each step, as the legacy inpainting path of diffusers does. */
  const Settings st = { GE_SD_INPAINT, 2, 5.0f, 1.5f, 1.0f, 20, "ddim",
    "grass", "", 4
  };
  check_inpaint (sd_folder ("StableDiffusionPipeline"), &st,
      "mask-feather=0 num-steps=2 guidance-scale=5 scheduler=ddim "
      "prompt=grass seed=4");
}

GST_END_TEST;

GST_START_TEST (test_inpaint_repaint)
{
  /* RePaintPipeline: an unconditional UNet2DModel, RePaint's walk with
   * jumps from repaint-jump-length / repaint-jump-n-sample; the prompt is
   * ignored. */
  const Settings st = { GE_SD_INPAINT, 5, 7.5f, 1.5f, 1.0f, 20, NULL,
    "", "", 9, 1, 2, 2
  };
  check_inpaint (pixel_folder ("RePaintPipeline", "RePaintScheduler",
          "repaint_small"), &st, "mask-feather=0 num-steps=5 "
      "repaint-jump-length=2 repaint-jump-n-sample=2 prompt=ignored seed=9");
}

GST_END_TEST;

GST_START_TEST (test_img2img_sdedit_ddim)
{
  /* A DDIMPipeline folder as an SDEdit prior: strength picks the
   * timesteps; its DDPMScheduler config read as DDIMScheduler; the prompt
   * is ignored; a frame that is no multiple of the U-Net's. */
  const Settings st = { GE_SD_IMG2IMG, 6, 7.5f, 1.5f, 0.6f, 20, NULL,
    "", "", 13, 2, 0, 0
  };
  check_filter ("diffusionimg2img", pixel_folder ("DDIMPipeline",
          "DDPMScheduler", "sdedit_ddim_small"),
      "num-steps=6 strength=0.6 prompt=ignored seed=13", &st,
      GST_VIDEO_FORMAT_RGBx, 19, 13);
}

GST_END_TEST;

/* @factory refuses a folder of @cls at READY->PAUSED with STREAM/WRONG_TYPE
 * whose message names the class and contains each of @expect. */
static void
check_refused (const gchar * factory, const gchar * cls,
    const gchar * const *expect)
{
  gchar *folder = sd_folder (cls);
  GstElement *e = gst_element_factory_make (factory, NULL);
  GstBus *bus = gst_bus_new ();
  GstMessage *msg;
  GError *err = NULL;

  g_object_set (e, "model-file", folder, NULL);
  gst_element_set_bus (e, bus);
  fail_unless_equals_int (gst_element_set_state (e, GST_STATE_PAUSED),
      GST_STATE_CHANGE_FAILURE);
  msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  fail_unless (msg != NULL);
  gst_message_parse_error (msg, &err, NULL);
  GST_INFO ("%s: %s", factory, err->message);
  fail_unless (g_error_matches (err, GST_STREAM_ERROR,
          GST_STREAM_ERROR_WRONG_TYPE), "%s", err->message);
  fail_unless (strstr (err->message, cls) != NULL, "%s", err->message);
  fail_unless (strstr (err->message, folder) != NULL, "%s", err->message);
  fail_unless (strstr (err->message, "yet") == NULL, "%s", err->message);
  for (gint i = 0; expect[i]; i++)
    fail_unless (strstr (err->message, expect[i]) != NULL,
        "\"%s\" does not list %s", err->message, expect[i]);
  g_clear_error (&err);
  gst_message_unref (msg);
  gst_element_set_state (e, GST_STATE_NULL);
  gst_element_set_bus (e, NULL);
  gst_object_unref (bus);
  gst_object_unref (e);
  remove_folder (folder);
}

GST_START_TEST (test_unsupported_class)
{
  const gchar *const sr[] = { "LDMSuperResolutionPipeline",
    "StableDiffusionUpscalePipeline", NULL
  };
  const gchar *const ip[] = { "StableDiffusionInpaintPipeline",
    "StableDiffusionPipeline", "RePaintPipeline", NULL
  };
  const gchar *const i2i[] = { "StableDiffusionImg2ImgPipeline",
    "StableDiffusionInstructPix2PixPipeline", "DDIMPipeline", "DDPMPipeline",
    NULL
  };

  check_refused ("diffusionsr", "KandinskyPipeline", sr);
  check_refused ("diffusioninpaint", "StableDiffusionXLPipeline", ip);
  check_refused ("diffusionimg2img", "StableDiffusionUpscalePipeline", i2i);
  /* The pixel-space classes are run now, not "on their way". */
  check_refused ("diffusionsr", "RePaintPipeline", sr);
  check_refused ("diffusionimg2img", "RePaintPipeline", i2i);
}

GST_END_TEST;

GST_START_TEST (test_missing_part)
{
  /* model_index.json names a text encoder the folder does not have. */
  gchar *folder = sd_folder ("StableDiffusionImg2ImgPipeline");
  gchar *link = g_build_filename (folder, "text_encoder", NULL);
  GstElement *e = gst_element_factory_make ("diffusionimg2img", NULL);

  fail_unless (g_unlink (link) == 0);
  g_object_set (e, "model-file", folder, NULL);
  expect_element_start_error (e, GST_RESOURCE_ERROR,
      GST_RESOURCE_ERROR_NOT_FOUND, folder);
  gst_object_unref (e);
  g_free (link);
  remove_folder (folder);
}

GST_END_TEST;

GST_START_TEST (test_prompt_in_playing)
{
  /* The prompt changes between frames: the next frame is the engine's run
   * with the new prompt; it is encoded once (with the negative prompt:
   * two encodes at the first frame, one per new prompt after). */
  gchar *folder = sd_folder ("StableDiffusionImg2ImgPipeline");
  GstHarness *hh = harness ("diffusionimg2img", folder,
      "num-steps=2 strength=0.5 prompt=\"a cat\" seed=1");
  Settings st = { GE_SD_IMG2IMG, 2, 7.5f, 1.5f, 0.5f, 20, NULL, "a cat", "",
    1
  };
  const gint w = 16, h = 8;
  gint ow, oh;
  gchar *caps = caps_string (GST_VIDEO_FORMAT_RGB, w, h), *stats;
  guint8 *ref1 = reference (folder, &st, w, h, NULL, &ow, &oh), *ref2, *got;

  st.prompt = "a dog";
  ref2 = reference (folder, &st, w, h, NULL, &ow, &oh);
  gst_harness_set_src_caps_str (hh, caps);
  got = run_frame (hh, GST_VIDEO_FORMAT_RGB, w, h, w, h, NULL, 0);
  assert_same (got, ref1, w, h, "first prompt");
  g_free (got);
  stats = stats_of (hh);
  fail_unless_equals_int (stats_uint (stats, "text-encodes"), 2);
  g_free (stats);

  g_object_set (element (hh), "prompt", "a dog", NULL);
  for (gint i = 1; i <= 3; i++) {
    got = run_frame (hh, GST_VIDEO_FORMAT_RGB, w, h, w, h, NULL,
        i * GST_SECOND / 10);
    assert_same (got, ref2, w, h, "second prompt");
    g_free (got);
    stats = stats_of (hh);
    fail_unless_equals_int (stats_uint (stats, "text-encodes"), 3);
    g_free (stats);
  }
  /* Back to the first: cached, no encode. */
  g_object_set (element (hh), "prompt", "a cat", NULL);
  got = run_frame (hh, GST_VIDEO_FORMAT_RGB, w, h, w, h, NULL, GST_SECOND);
  assert_same (got, ref1, w, h, "first prompt again");
  g_free (got);
  stats = stats_of (hh);
  fail_unless_equals_int (stats_uint (stats, "text-encodes"), 3);
  g_free (stats);

  g_free (ref1);
  g_free (ref2);
  g_free (caps);
  gst_harness_teardown (hh);
  remove_folder (folder);
}

GST_END_TEST;

GST_START_TEST (test_long_prompt_warns_once)
{
  gchar *folder = sd_folder ("StableDiffusionImg2ImgPipeline");
  GString *prompt = g_string_new ("a");
  GstHarness *hh;
  GstBus *bus = gst_bus_new ();
  gchar *caps = caps_string (GST_VIDEO_FORMAT_RGB, 8, 8), *props;
  GstMessage *msg;
  gint warnings = 0;

  for (gint i = 0; i < 100; i++)
    g_string_append (prompt, " cat");
  props = g_strdup_printf ("num-steps=1 strength=0.5 prompt=\"%s\"",
      prompt->str);
  hh = harness ("diffusionimg2img", folder, props);
  gst_element_set_bus (element (hh), bus);
  gst_harness_set_src_caps_str (hh, caps);
  for (gint i = 0; i < 3; i++)
    g_free (run_frame (hh, GST_VIDEO_FORMAT_RGB, 8, 8, 8, 8, NULL,
            i * GST_SECOND / 10));
  while ((msg = gst_bus_pop_filtered (bus, GST_MESSAGE_WARNING))) {
    GError *err = NULL;
    gst_message_parse_warning (msg, &err, NULL);
    fail_unless (strstr (err->message, "77") != NULL, "%s", err->message);
    g_clear_error (&err);
    gst_message_unref (msg);
    warnings++;
  }
  fail_unless_equals_int (warnings, 1);

  gst_element_set_bus (element (hh), NULL);
  gst_object_unref (bus);
  g_free (props);
  g_free (caps);
  g_string_free (prompt, TRUE);
  gst_harness_teardown (hh);
  remove_folder (folder);
}

GST_END_TEST;

GST_START_TEST (test_tiles)
{
  /* A frame larger than tile-size runs in overlapping tiles; the untiled
   * frame is the engine's run, the tiled one stays close to it away from
   * nothing in particular: both are images of the same noise. */
  gchar *folder = sd_folder ("StableDiffusionImg2ImgPipeline");
  const gint w = 40, h = 24;
  GstHarness *hh = harness ("diffusionimg2img", folder,
      "num-steps=2 strength=0.3 guidance-scale=1 tile-size=16 "
      "tile-overlap=8");
  gchar *caps = caps_string (GST_VIDEO_FORMAT_RGB, w, h);
  guint8 *got;
  gdouble sum = 0;

  gst_harness_set_src_caps_str (hh, caps);
  got = run_frame (hh, GST_VIDEO_FORMAT_RGB, w, h, w, h, NULL, 0);
  /* Not an exact engine run (tiles), but a translation of the frame: the
   * low strength keeps it near the input. */
  for (gint y = 0; y < h; y++)
    for (gint x = 0; x < w; x++)
      for (gint c = 0; c < 3; c++)
        sum += ABS ((gint) got[(y * w + x) * 3 + c] - pattern (x, y, c));
  GST_INFO ("mean abs change %.1f", sum / (w * h * 3));
  fail_unless (sum > 0);
  g_free (got);
  g_free (caps);
  gst_harness_teardown (hh);
  remove_folder (folder);
}

GST_END_TEST;

/* vaeencode on a pipeline folder (its vae part) and on an AutoencoderTiny
 * folder: the latent caps carry the model's factor, channels and scaling
 * factors. */
static void
check_vae_folder (const gchar * folder, gint factor, gint channels,
    gdouble scaling)
{
  gchar *launch = g_strdup_printf ("vaeencode model-file=\"%s\"", folder);
  GstHarness *hh = gst_harness_new_parse (launch);
  GstBuffer *out;
  GstCaps *caps;
  GstStructure *s;
  gint f = 0, lw, lh;
  gdouble sf = 0, applied = 0;
  gchar *dims;

  gst_harness_set_src_caps_str (hh, "video/x-raw,format=RGB,width=16,"
      "height=8,framerate=10/1");
  out = gst_harness_push_and_pull (hh, make_frame (GST_VIDEO_FORMAT_RGB, 16,
          8, NULL, 0));
  fail_unless (out != NULL);
  caps = gst_pad_get_current_caps (hh->sinkpad);
  s = gst_caps_get_structure (caps, 0);
  fail_unless (gst_structure_get_int (s, "downsample-factor", &f));
  fail_unless_equals_int (f, factor);
  fail_unless (gst_structure_get_double (s, "scaling-factor", &sf));
  fail_unless (fabs (sf - scaling) < 1e-9, "%g", sf);
  fail_unless (gst_structure_get_double (s, "applied-scaling-factor",
          &applied));
  fail_unless_equals_float (applied, 1.0);
  lw = 16 / factor;
  lh = 8 / factor;
  dims = g_strdup_printf ("%d:%d:%d:1", lw, lh, channels);
  fail_unless_equals_string (gst_structure_get_string (s, "dimensions"), dims);
  fail_unless_equals_uint64 (gst_buffer_get_size (out),
      (gsize) lw * lh * channels * sizeof (gfloat));
  g_free (dims);
  gst_caps_unref (caps);
  gst_buffer_unref (out);
  gst_harness_teardown (hh);
  g_free (launch);
}

GST_START_TEST (test_vae_folders)
{
  gchar *folder = inpaint_folder ();
  gchar *taesd = test_path (FIX, "taesd_small");

  check_vae_folder (folder, 2, 4, 0.18215);
  check_vae_folder (taesd, 8, 4, 1.0);
  g_free (taesd);
  remove_folder (folder);
}

GST_END_TEST;

static Suite *
pipelines_suite (void)
{
  Suite *s = suite_create ("pipelines");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_img2img_sd);
  tcase_add_test (tc, test_img2img_plain_sd_folder);
  tcase_add_test (tc, test_pix2pix);
  tcase_add_test (tc, test_upscale);
  tcase_add_test (tc, test_ldm_sr);
  tcase_add_test (tc, test_inpaint_sd);
  tcase_add_test (tc, test_inpaint_plain_sd_folder);
  tcase_add_test (tc, test_inpaint_repaint);
  tcase_add_test (tc, test_img2img_sdedit_ddim);
  tcase_add_test (tc, test_unsupported_class);
  tcase_add_test (tc, test_missing_part);
  tcase_add_test (tc, test_prompt_in_playing);
  tcase_add_test (tc, test_long_prompt_warns_once);
  tcase_add_test (tc, test_tiles);
  tcase_add_test (tc, test_vae_folders);
  return s;
}

GST_CHECK_MAIN (pipelines);
