/* speech_enhance.c: the SpectralMaskGRU speech enhancer, a hop at a time
 * (see ge-speech.h and models/gansynth/net.py, the reference). */
#include "ge-speech.h"
#include "ge-blocks.h"
#include "ge-model-file.h"
#include "ge-ops.h"
#include "ge-pool.h"
#include "act.h"
#include "gemv.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#define MAX_RATES 8
#define MAX_LAYERS 4
#define MAX_LOOKAHEAD 16
#define INPUT_LIMIT 8.0f

typedef struct {
  int rate, frame, hop, hb_lo;          /* hb_lo: first bin of the high-band gain's band */
  GeFft *fft;
  float *window;                        /* sqrt-Hann [frame]: analysis */
  float *synth_window;                  /* sqrt-Hann * 2 hop / frame: resynthesis */
  float inv_window_sum;
} RatePlan;

struct _GeSpeechModel {
  GeModelFile *mf;
  int hidden, layers, kernel, bins;
  int lookahead;                        /* hops seen beyond the frame being masked */
  int df_bins, df_taps;                 /* deep filter: lowest bins, frames (0: none) */
  int phase_bins;                       /* bins whose phase advance is an input (0: none) */
  int n_feat;                           /* inputs per frame: bins, and 2 phase_bins phases */
  int ring;                             /* frames of spectra kept: lookahead + 1, taps, 2 */
  float *centre;                        /* a bin centre's phase advance, undone [phase_bins][2] */
  float eps, feat_mean, feat_inv_std;
  const float *conv_w;                  /* repacked [hidden][kernel][n_feat]: oldest frame first */
  const float *conv_b;
  const float *w_ih[MAX_LAYERS], *w_hh[MAX_LAYERS], *b_ih[MAX_LAYERS], *b_hh[MAX_LAYERS];
  const float *mask_w, *mask_b, *vad_w, *vad_b, *df_w, *df_b;
  /* The same matrices in 8 bits (gemv.h), made at load where the CPU runs
   * them (NULL elsewhere): GE_PRECISION_INT8's products. */
  GeGemvI8 *q_conv, *q_ih[MAX_LAYERS], *q_hh[MAX_LAYERS], *q_mask, *q_df;
  gsize q_scratch;                      /* bytes: the widest matrix's vector */
  RatePlan plans[MAX_RATES];
  int rates[MAX_RATES];
  int n_rates;
};

struct _GeSpeechStream {
  const GeSpeechModel *m;
  const RatePlan *p;
  float *mem;                           /* one block for everything below */
  float *in_frame;                      /* the last frame of input [frame] */
  /* The input as it came in (sanitised), the stream's delay and a hop of
   * it [frame + lookahead * hop]: strength 0 gives it back exactly, where
   * the analysis and resynthesis would round (a window's square sums to
   * one only up to float rounding). */
  float *dry;
  float *ola;                           /* overlap-add accumulator [frame] */
  float *work;                          /* windowed frame / resynthesis [frame] */
  /* The last m->ring frames' spectra ([frame/2 + 1] complex each) and
   * normalised |X|^2 ([frame/2 + 1] each), a ring: the network reads the
   * newest, its gains go to the one lookahead frames older, the deep filter
   * reads the last df_taps. */
  float *spec, *power;
  int newest;                           /* ring slot of the newest frame */
  gint64 frames;                        /* frames since the reset */
  float *feats;                         /* [kernel][n_feat], oldest first */
  float *state;                         /* GRU states [layers][hidden] */
  float *act, *gains, *scratch, *fft_scratch;
  float *df_coef;                       /* [taps][df_bins][re, im] */
  float *out_spec;                      /* the masked frame's output spectrum [frame/2 + 1] complex */
  void *xq;                             /* ge_gemv_i8's quantized vector */
  GePrecision precision;                /* F32 or INT8: what runs */
};

static gboolean
load_weight (GeModelFile * mf, const char *name, int ndim, gint64 a, gint64 b, gint64 c,
    const float **out, GError ** error)
{
  const gint64 shape[3] = { a, b, c };
  *out = ge_model_file_weight (mf, name, ndim, shape, error);
  return *out != NULL;
}

static gboolean
plan_rate (GeSpeechModel * m, RatePlan * p, int rate, int frame_ms, int hop_ms,
    double hb_from_hz, GError ** error)
{
  const char *path = ge_model_file_path (m->mf);
  p->rate = rate;
  p->frame = (int) ((gint64) rate * frame_ms / 1000);
  p->hop = (int) ((gint64) rate * hop_ms / 1000);
  /* The network's bins are 1000/frame_ms Hz apart from 0: a rate must give
   * that spacing and reach the last bin.  A whole number of hops (two at
   * least) per frame makes the windows' product overlap-add to a constant. */
  if (rate <= 0 || (gint64) p->frame * 1000 != (gint64) rate * frame_ms
      || (gint64) p->hop * 1000 != (gint64) rate * hop_ms || p->frame / 2 + 1 < m->bins
      || p->hop < 1 || p->frame % p->hop != 0 || p->frame < 2 * p->hop)
    return ge_fail (error, GE_ERROR_UNSUPPORTED, path,
        "sample rate %d Hz does not fit %d ms frames every %d ms with %d bins", rate,
        frame_ms, hop_ms, m->bins);
  p->fft = ge_fft_new (p->frame);
  if (!p->fft)
    return ge_fail (error, GE_ERROR_UNSUPPORTED, path,
        "sample rate %d Hz: a %d-sample frame is not a product of 2, 3 and 5", rate, p->frame);
  p->hb_lo = (int) (hb_from_hz * p->frame / rate);
  if (p->hb_lo < 0 || p->hb_lo >= m->bins)
    return ge_fail (error, GE_ERROR_UNSUPPORTED, path, "high_band_from_hz %g out of range",
        hb_from_hz);
  p->window = ge_model_file_alloc (m->mf, p->frame);
  p->synth_window = ge_model_file_alloc (m->mf, p->frame);
  /* the periodic Hann that analysis times synthesis makes sums to
   * frame / (2 hop) over the overlapping frames: 1 at 50 % overlap */
  const float ola_scale = (float) (2.0 * p->hop / p->frame);
  double sum = 0.0;
  for (int i = 0; i < p->frame; i++) {
    /* periodic Hann, as net.sqrt_hann */
    p->window[i] = (float) sqrt (0.5 - 0.5 * cos (2.0 * G_PI * i / p->frame));
    p->synth_window[i] = p->window[i] * ola_scale;
    sum += p->window[i];
  }
  p->inv_window_sum = (float) (1.0 / sum);
  return TRUE;
}

static void
free_quantized (GeSpeechModel * m)
{
  ge_gemv_i8_free (m->q_conv);
  ge_gemv_i8_free (m->q_mask);
  ge_gemv_i8_free (m->q_df);
  for (int l = 0; l < MAX_LAYERS; l++) {
    ge_gemv_i8_free (m->q_ih[l]);
    ge_gemv_i8_free (m->q_hh[l]);
  }
  m->q_conv = m->q_mask = m->q_df = NULL;
  memset (m->q_ih, 0, sizeof m->q_ih);
  memset (m->q_hh, 0, sizeof m->q_hh);
}

/* The int8 copies of every matrix the network multiplies by (0.72 MB for
 * the shipped model), where the CPU runs them; none if one fails (a weight
 * that is not finite: f32 then gives what that means). */
static void
quantize (GeSpeechModel * m)
{
  if (!ge_gemv_i8_available ())
    return;
  const int H = m->hidden, K = m->kernel * m->n_feat;
  gboolean ok = (m->q_conv = ge_gemv_i8_new (m->conv_w, H, K, K))
      && (m->q_mask = ge_gemv_i8_new (m->mask_w, m->bins, H, H));
  if (ok && m->df_bins > 0) {
    const int n_coef = 2 * m->df_taps * m->df_bins;
    ok = (m->q_df = ge_gemv_i8_new (m->df_w, n_coef, H, H)) != NULL;
  }
  for (int l = 0; ok && l < m->layers; l++)
    ok = (m->q_ih[l] = ge_gemv_i8_new (m->w_ih[l], 3 * H, H, H))
        && (m->q_hh[l] = ge_gemv_i8_new (m->w_hh[l], 3 * H, H, H));
  if (!ok) {
    free_quantized (m);
    return;
  }
  m->q_scratch = ge_gemv_i8_scratch_size (m->q_conv);   /* the widest: K >= H */
}

GeSpeechModel *
ge_speech_model_new (const char *path, GError ** error)
{
  /* The streams call sgemv from the caller's thread, with or without a
   * pool: set OpenBLAS's thread count before any of them can run. */
  ge_pool_init_blas ();
  GeModelFile *mf = ge_model_file_open (path, error);
  if (!mf)
    return NULL;
  GeSpeechModel *m = g_new0 (GeSpeechModel, 1);
  m->mf = mf;
  gint64 hidden, layers, kernel, bins, frame_ms, hop_ms, lookahead, df_bins, df_taps, phase_bins;
  gint64 *rates = NULL;
  double hb, eps, feat_mean, feat_std;
  int n_rates = 0;
  char name[64];

  if (g_strcmp0 (ge_model_file_class (mf), "SpectralMaskGRU") != 0) {
    ge_fail (error, GE_ERROR_UNSUPPORTED, path,
        "architecture '%s' is not a speech enhancer (SpectralMaskGRU)", ge_model_file_class (mf));
    goto fail;
  }
  if (!ge_config_int (mf, "hidden", 160, &hidden, error)
      || !ge_config_int (mf, "gru_layers", 2, &layers, error)
      || !ge_config_int (mf, "conv_kernel", 3, &kernel, error)
      || !ge_config_int (mf, "bins", 161, &bins, error)
      || !ge_config_int (mf, "frame_ms", 20, &frame_ms, error)
      || !ge_config_int (mf, "hop_ms", 10, &hop_ms, error)
      || !ge_config_int (mf, "lookahead_frames", 0, &lookahead, error)
      || !ge_config_int (mf, "df_bins", 0, &df_bins, error)
      || !ge_config_int (mf, "df_taps", 0, &df_taps, error)
      /* files from before phase_bins had the phase inputs exactly with the deep filter */
      || !ge_config_int (mf, "phase_bins", df_bins, &phase_bins, error)
      || !ge_config_double (mf, "high_band_from_hz", 6000.0, &hb, error)
      || !ge_config_double (mf, "feature_eps", 1e-12, &eps, error)
      || !ge_config_double (mf, "feature_mean", 0.0, &feat_mean, error)
      || !ge_config_double (mf, "feature_std", 1.0, &feat_std, error)
      || !ge_config_int_array (mf, "sample_rates", &rates, &n_rates, error))
    goto fail;
  if (hidden < 1 || hidden > 4096 || layers < 1 || layers > MAX_LAYERS || kernel < 1
      || kernel > 64 || bins < 2 || bins > 4096 || frame_ms < 1 || hop_ms < 1 || lookahead < 0
      || lookahead > MAX_LOOKAHEAD || df_bins < 0 || df_bins > bins
      || (df_bins > 0 && (df_taps < 1 || df_taps > MAX_LOOKAHEAD + 1)) || phase_bins < 0
      || phase_bins > bins || n_rates < 1
      || n_rates > MAX_RATES || !(eps > 0.0) || !(feat_std > 0.0) || !isfinite (feat_mean)) {
    ge_fail (error, GE_ERROR_UNSUPPORTED, path, "config out of range (hidden %" G_GINT64_FORMAT
        ", gru_layers %" G_GINT64_FORMAT ", conv_kernel %" G_GINT64_FORMAT ", bins %"
        G_GINT64_FORMAT ", lookahead_frames %" G_GINT64_FORMAT ", df_bins %" G_GINT64_FORMAT
        ", df_taps %" G_GINT64_FORMAT ", phase_bins %" G_GINT64_FORMAT ", %d sample rates)",
        hidden, layers, kernel, bins, lookahead, df_bins, df_taps, phase_bins, n_rates);
    goto fail;
  }
  m->hidden = hidden, m->layers = layers, m->kernel = kernel, m->bins = bins;
  m->lookahead = lookahead;
  m->df_bins = df_bins;
  m->df_taps = df_bins > 0 ? df_taps : 0;
  m->phase_bins = phase_bins;
  m->n_feat = m->bins + 2 * m->phase_bins;
  /* the phase inputs need the frame before the newest too */
  m->ring = MAX (MAX (m->lookahead + 1, m->df_taps), m->phase_bins > 0 ? 2 : 1);
  m->eps = (float) eps;
  m->feat_mean = (float) feat_mean;
  m->feat_inv_std = (float) (1.0 / feat_std);

  const float *conv_w;
  if (!load_weight (mf, "conv_in.weight", 3, hidden, m->n_feat, kernel, &conv_w, error)
      || !load_weight (mf, "conv_in.bias", 1, hidden, 0, 0, &m->conv_b, error)
      || !load_weight (mf, "mask.weight", 2, bins, hidden, 0, &m->mask_w, error)
      || !load_weight (mf, "mask.bias", 1, bins, 0, 0, &m->mask_b, error)
      || !load_weight (mf, "vad.weight", 2, 1, hidden, 0, &m->vad_w, error)
      || !load_weight (mf, "vad.bias", 1, 1, 0, 0, &m->vad_b, error))
    goto fail;
  if (m->df_bins > 0
      && (!load_weight (mf, "df.weight", 2, 2 * (gint64) m->df_taps * m->df_bins, hidden, 0,
              &m->df_w, error)
          || !load_weight (mf, "df.bias", 1, 2 * (gint64) m->df_taps * m->df_bins, 0, 0,
              &m->df_b, error)))
    goto fail;
  for (int l = 0; l < m->layers; l++) {
    g_snprintf (name, sizeof name, "gru.weight_ih_l%d", l);
    if (!load_weight (mf, name, 2, 3 * hidden, hidden, 0, &m->w_ih[l], error))
      goto fail;
    g_snprintf (name, sizeof name, "gru.weight_hh_l%d", l);
    if (!load_weight (mf, name, 2, 3 * hidden, hidden, 0, &m->w_hh[l], error))
      goto fail;
    g_snprintf (name, sizeof name, "gru.bias_ih_l%d", l);
    if (!load_weight (mf, name, 1, 3 * hidden, 0, 0, &m->b_ih[l], error))
      goto fail;
    g_snprintf (name, sizeof name, "gru.bias_hh_l%d", l);
    if (!load_weight (mf, name, 1, 3 * hidden, 0, 0, &m->b_hh[l], error))
      goto fail;
  }
  /* [hidden][n_feat][kernel] -> [hidden][kernel][n_feat]: the convolution
   * is then one matrix-vector product with the feature history. */
  const int nf = m->n_feat;
  float *packed = ge_model_file_alloc (mf, (gsize) hidden * nf * kernel);
  for (int o = 0; o < hidden; o++)
    for (int c = 0; c < nf; c++)
      for (int j = 0; j < kernel; j++)
        packed[((gsize) o * kernel + j) * nf + c] = conv_w[((gsize) o * nf + c) * kernel + j];
  m->conv_w = packed;
  quantize (m);
  if (m->phase_bins > 0) {
    /* bin k's centre turns by 2 pi k hop / frame each hop at every rate */
    m->centre = ge_model_file_alloc (mf, 2 * (gsize) m->phase_bins);
    for (int k = 0; k < m->phase_bins; k++) {
      const double a = -2.0 * G_PI * k * (double) hop_ms / (double) frame_ms;
      m->centre[2 * k] = (float) cos (a);
      m->centre[2 * k + 1] = (float) sin (a);
    }
  }

  for (int i = 0; i < n_rates; i++) {
    if (i > 0 && rates[i] <= rates[i - 1]) {
      ge_fail (error, GE_ERROR_UNSUPPORTED, path, "sample_rates must be ascending");
      goto fail;
    }
    if (rates[i] > 768000 || !plan_rate (m, &m->plans[i], (int) rates[i], frame_ms, hop_ms, hb,
            error))
      goto fail;
    m->rates[i] = (int) rates[i];
  }
  m->n_rates = n_rates;
  g_free (rates);
  return m;

fail:
  g_free (rates);
  ge_speech_model_free (m);
  return NULL;
}

void
ge_speech_model_free (GeSpeechModel * m)
{
  if (!m)
    return;
  for (int i = 0; i < MAX_RATES; i++)
    ge_fft_free (m->plans[i].fft);
  free_quantized (m);
  ge_model_file_unref (m->mf);
  g_free (m);
}

const int *
ge_speech_model_rates (const GeSpeechModel * m, int *n_rates)
{
  *n_rates = m->n_rates;
  return m->rates;
}

static const RatePlan *
find_plan (const GeSpeechModel * m, int rate)
{
  for (int i = 0; i < m->n_rates; i++)
    if (m->rates[i] == rate)
      return &m->plans[i];
  return NULL;
}

gboolean
ge_speech_model_supports_rate (const GeSpeechModel * m, int rate)
{
  return find_plan (m, rate) != NULL;
}

int
ge_speech_model_hop (const GeSpeechModel * m, int rate)
{
  const RatePlan *p = find_plan (m, rate);
  return p ? p->hop : 0;
}

int
ge_speech_model_frame (const GeSpeechModel * m, int rate)
{
  const RatePlan *p = find_plan (m, rate);
  return p ? p->frame : 0;
}

int
ge_speech_model_delay (const GeSpeechModel * m, int rate)
{
  const RatePlan *p = find_plan (m, rate);
  return p ? p->frame - p->hop + m->lookahead * p->hop : 0;
}

GeSpeechStream *
ge_speech_stream_new (const GeSpeechModel * m, int rate, GError ** error)
{
  const RatePlan *p = find_plan (m, rate);
  if (!p) {
    ge_fail (error, GE_ERROR_INVALID, ge_model_file_path (m->mf),
        "the model does not run at %d Hz", rate);
    return NULL;
  }
  GeSpeechStream *s = g_new0 (GeSpeechStream, 1);
  const int n = p->frame, nb = n / 2 + 1, H = m->hidden, ring = m->ring;
  const gsize sizes[] = { n, n + (gsize) m->lookahead * p->hop, n, n,
    2 * (gsize) ring * nb, (gsize) ring * nb,
    (gsize) m->kernel * m->n_feat,
    (gsize) m->layers * H, H, nb, 6 * (gsize) H, ge_fft_scratch_size (p->fft),
    2 * (gsize) m->df_taps * m->df_bins, 2 * (gsize) nb, (m->q_scratch + 3) / 4
  };
  float **slots[] = { &s->in_frame, &s->dry, &s->ola, &s->work, &s->spec, &s->power, &s->feats,
    &s->state, &s->act, &s->gains, &s->scratch, &s->fft_scratch, &s->df_coef, &s->out_spec,
    (float **) &s->xq
  };
  gsize total = 0;
  for (guint i = 0; i < G_N_ELEMENTS (sizes); i++)
    total += sizes[i];
  s->m = m;
  s->p = p;
  s->mem = g_new (float, total);
  float *q = s->mem;
  for (guint i = 0; i < G_N_ELEMENTS (sizes); i++) {
    *slots[i] = q;
    q += sizes[i];
  }
  s->precision = GE_PRECISION_F32;
  ge_speech_stream_reset (s);
  return s;
}

GePrecision
ge_speech_stream_set_precision (GeSpeechStream * s, GePrecision precision)
{
  /* what the convolutional models would run, less bf16: the products are
   * matrix-vector, bound by reading the weights, which int8 makes a
   * quarter of f32's and bf16 only half */
  const GePrecision p = ge_precision_resolve (s->m->mf, precision);
  s->precision = p == GE_PRECISION_INT8 && s->m->q_conv ? GE_PRECISION_INT8 : GE_PRECISION_F32;
  return s->precision;
}

GePrecision
ge_speech_stream_get_precision (const GeSpeechStream * s)
{
  return s->precision;
}

void
ge_speech_stream_free (GeSpeechStream * s)
{
  if (!s)
    return;
  g_free (s->mem);
  g_free (s);
}

void
ge_speech_stream_reset (GeSpeechStream * s)
{
  const GeSpeechModel *m = s->m;
  const int n = s->p->frame;
  memset (s->in_frame, 0, sizeof (float) * n);
  memset (s->dry, 0, sizeof (float) * (n + m->lookahead * s->p->hop));
  memset (s->ola, 0, sizeof (float) * n);
  memset (s->state, 0, sizeof (float) * m->layers * m->hidden);
  /* the frames before the first are silent: their spectra are zero */
  memset (s->spec, 0, sizeof (float) * 2 * m->ring * (n / 2 + 1));
  memset (s->power, 0, sizeof (float) * m->ring * (n / 2 + 1));
  s->newest = 0;
  s->frames = 0;
  /* Before the first frame the convolution sees zero features, as the
   * reference's F.pad of the feature sequence gives it. */
  memset (s->feats, 0, sizeof (float) * m->kernel * m->n_feat);
}

/* y += W x (W: @rows x @cols, row-major): its int8 copy @q where the
 * stream runs int8, else OpenBLAS on the f32 weights. */
static void
matvec (const GeSpeechStream * s, const GeGemvI8 * q, const float *w, int rows, int cols,
    const float *x, float *y)
{
  if (s->precision == GE_PRECISION_INT8)
    ge_gemv_i8 (q, x, y, s->xq);
  else
    cblas_sgemv (CblasRowMajor, CblasNoTrans, rows, cols, 1.0f, w, cols, x, 1, 1.0f, y, 1);
}

/* One hop: s->in_frame holds the newest frame, whose features the network
 * takes; its gains go to the frame lookahead hops older.  Returns the voice
 * activity and leaves the finished hop at the start of s->ola. */
static float
process_frame (GeSpeechStream * s, float strength)
{
  const GeSpeechModel *m = s->m;
  const RatePlan *p = s->p;
  const int n = p->frame, nb = n / 2 + 1, H = m->hidden, B = m->bins, ring = m->ring;

  s->newest = (s->newest + 1) % ring;
  s->frames++;
  float *spec = s->spec + (gsize) s->newest * 2 * nb;
  float *power = s->power + (gsize) s->newest * nb;
  for (int i = 0; i < n; i++)
    s->work[i] = s->in_frame[i] * p->window[i];
  ge_fft_forward_real (p->fft, s->work, spec, s->fft_scratch);
  const float norm = p->inv_window_sum * p->inv_window_sum;
  for (int k = 0; k < nb; k++)
    power[k] = (spec[2 * k] * spec[2 * k] + spec[2 * k + 1] * spec[2 * k + 1]) * norm;

  /* features: the history shifts by one frame, the newest last */
  const int NF = m->n_feat;
  memmove (s->feats, s->feats + NF, sizeof (float) * (m->kernel - 1) * NF);
  float *newest = s->feats + (gsize) (m->kernel - 1) * NF;
  for (int k = 0; k < B; k++)
    newest[k] = (logf (power[k] + m->eps) - m->feat_mean) * m->feat_inv_std;
  if (m->phase_bins > 0) {
    /* the phase advance since the frame before, unit length (zero where
     * silent), less the bin centre's: cos for every bin, then sin */
    const int D = m->phase_bins, prev_slot = (s->newest - 1 + ring) % ring;
    const float *prev = s->spec + (gsize) prev_slot * 2 * nb;
    const float *prev_power = s->power + (gsize) prev_slot * nb;
    for (int k = 0; k < D; k++) {
      const float re = (spec[2 * k] * prev[2 * k] + spec[2 * k + 1] * prev[2 * k + 1]) * norm;
      const float im = (spec[2 * k + 1] * prev[2 * k] - spec[2 * k] * prev[2 * k + 1]) * norm;
      const float inv = 1.0f / sqrtf ((power[k] + m->eps) * (prev_power[k] + m->eps));
      const float *c = m->centre + 2 * k;
      newest[B + k] = (re * c[0] - im * c[1]) * inv;
      newest[B + D + k] = (re * c[1] + im * c[0]) * inv;
    }
  }

  /* causal convolution over the history, ReLU */
  memcpy (s->act, m->conv_b, sizeof (float) * H);
  matvec (s, m->q_conv, m->conv_w, H, m->kernel * NF, s->feats, s->act);
  for (int i = 0; i < H; i++)
    s->act[i] = s->act[i] > 0.0f ? s->act[i] : 0.0f;

  const float *x = s->act;
  for (int l = 0; l < m->layers; l++) {
    float *h = s->state + (gsize) l * H;
    float *gi = s->scratch, *gh = s->scratch + 3 * H;
    memcpy (gi, m->b_ih[l], sizeof (float) * 3 * H);
    memcpy (gh, m->b_hh[l], sizeof (float) * 3 * H);
    matvec (s, m->q_ih[l], m->w_ih[l], 3 * H, H, x, gi);
    matvec (s, m->q_hh[l], m->w_hh[l], 3 * H, H, h, gh);
    ge_gru_update (gi, gh, h, H);
    x = h;
  }

  float vad = m->vad_b[0];
  for (int i = 0; i < H; i++)
    vad += m->vad_w[i] * x[i];
  memcpy (s->gains, m->mask_b, sizeof (float) * B);
  matvec (s, m->q_mask, m->mask_w, B, H, x, s->gains);
  for (int k = 0; k < B; k++)
    s->gains[k] = ge_sigmoidf (s->gains[k]);
  /* the frame the gains are for: lookahead frames older than the newest */
  const int masked = (s->newest - m->lookahead + ring) % ring;
  spec = s->spec + (gsize) masked * 2 * nb;
  power = s->power + (gsize) masked * nb;
  if (nb > B) {
    /* Above the network's band: the energy-weighted gain of the band below
     * (eps keeps it the plain mean when that band is silent). */
    double num = 0.0, den = 0.0;
    for (int k = p->hb_lo; k < B; k++) {
      const double w = power[k] + m->eps;
      num += w * s->gains[k] * s->gains[k];
      den += w;
    }
    const float g = (float) sqrt (num / den);
    for (int k = B; k < nb; k++)
      s->gains[k] = g;
  }
  float *y = s->out_spec;
  for (int k = 0; k < nb; k++) {
    const float g = 1.0f - strength * (1.0f - s->gains[k]);
    y[2 * k] = g * spec[2 * k];
    y[2 * k + 1] = g * spec[2 * k + 1];
  }
  if (m->df_bins > 0 && s->frames > m->lookahead) {
    /* the deep filter: tap j on the frame j older than the newest, added to
     * the masked bins and blended by strength as the gains are.  The frames
     * before the first are silence, not filtered: their taps on newer frames
     * would make sound before the stream's start. */
    const int D = m->df_bins, n_coef = 2 * m->df_taps * D;
    float *c = s->df_coef;
    memcpy (c, m->df_b, sizeof (float) * n_coef);
    matvec (s, m->q_df, m->df_w, n_coef, H, x, c);
    for (int i = 0; i < n_coef; i++)
      c[i] = strength * tanhf (c[i]);
    for (int j = 0; j < m->df_taps; j++) {
      const float *xj = s->spec + (gsize) ((s->newest - j + ring) % ring) * 2 * nb;
      const float *cj = c + (gsize) j * 2 * D;
      for (int k = 0; k < D; k++) {
        y[2 * k] += cj[2 * k] * xj[2 * k] - cj[2 * k + 1] * xj[2 * k + 1];
        y[2 * k + 1] += cj[2 * k] * xj[2 * k + 1] + cj[2 * k + 1] * xj[2 * k];
      }
    }
  }

  ge_fft_inverse_real (p->fft, y, s->work, s->fft_scratch);
  for (int i = 0; i < n; i++)
    s->ola[i] += s->work[i] * p->synth_window[i];
  return ge_sigmoidf (vad);
}

float
ge_speech_stream_process (GeSpeechStream * s, const float *in, int in_stride,
    float *out, int out_stride, int n_hops, float strength)
{
  const int n = s->p->frame, hop = s->p->hop, n_dry = n + s->m->lookahead * hop;
  strength = CLAMP (strength, 0.0f, 1.0f);
  double vad = 0.0;
  for (int h = 0; h < n_hops; h++) {
    memmove (s->in_frame, s->in_frame + hop, sizeof (float) * (n - hop));
    memmove (s->dry, s->dry + hop, sizeof (float) * (n_dry - hop));
    float *dst = s->in_frame + n - hop;
    for (int i = 0; i < hop; i++) {
      const float v = in[(gsize) (h * hop + i) * in_stride];
      dst[i] = isfinite (v) ? CLAMP (v, -INPUT_LIMIT, INPUT_LIMIT) : 0.0f;
    }
    memcpy (s->dry + n_dry - hop, dst, sizeof (float) * hop);
    /* the network runs at strength 0 too: its state must be current when
     * the strength (controllable) rises */
    vad += process_frame (s, strength);
    const float *done = strength == 0.0f ? s->dry : s->ola;
    for (int i = 0; i < hop; i++)
      out[(gsize) (h * hop + i) * out_stride] = done[i];
    memmove (s->ola, s->ola + hop, sizeof (float) * (n - hop));
    memset (s->ola + n - hop, 0, sizeof (float) * hop);
  }
  return n_hops > 0 ? (float) (vad / n_hops) : 0.0f;
}
