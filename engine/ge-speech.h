/* ge-speech.h: streaming speech enhancement, what the gansynth element and
 * the gst-generative-denoise tool call.
 *
 * The model ("SpectralMaskGRU", trained by models/gansynth/train.py, whose
 * net.py is the reference this follows) is a causal mask network on the
 * short-time spectrum: sqrt-Hann frames (the model's frame_ms: 20 or 40 ms)
 * every hop_ms (10 ms), a gain per bin up to 8 kHz from a convolution over
 * the last frames and a GRU, and, at rates above 16 kHz, the energy-weighted
 * gain of 6-8 kHz for every bin above 8 kHz.  Overlap-add resynthesis.
 *
 * A model may look ahead (config lookahead_frames): the gains of a frame
 * then come from the network's step that many hops later, which has seen
 * those hops' input too.
 *
 * A model may add a deep filter (config df_bins, df_taps; DeepFilterNet's):
 * on its lowest df_bins bins the masked spectrum gets sum_j C_j X(t + ahead
 * - j), complex coefficients from a third head over the df_taps frames the
 * network has seen, which resolves tones closer than a bin apart without
 * adding latency.  The network then also takes those bins' phase advance
 * since the frame before (cos and sin, less the bin centre's); config
 * phase_bins (default df_bins) gives those inputs to a model with or
 * without the filter.
 *
 * Streaming: the caller feeds hops and gets hops back; output sample i is
 * the enhanced input sample i - delay, delay = frame - hop + lookahead hops
 * (ge_speech_model_delay), so the first delay samples out are the start-up
 * (silence for a fresh stream) and draining needs delay more samples in
 * (zeros).  The algorithmic latency is that delay plus the hop being filled.
 *
 * The weights are shared read-only; each channel has its own stream.
 * Non-finite input samples count as 0 and samples are clamped to +-8, so
 * NaNs, infinities and clipping never reach the recurrent state.
 */
#pragma once

#include <glib.h>
#include "ge-error.h"
#include "ge-precision.h"

G_BEGIN_DECLS

typedef struct _GeSpeechModel GeSpeechModel;
typedef struct _GeSpeechStream GeSpeechStream;

/* Loads and checks the model: GE_ERROR_* naming @path on failure. */
GeSpeechModel *ge_speech_model_new (const char *path, GError ** error);
void ge_speech_model_free (GeSpeechModel * m);

/* The sample rates the model runs at (ascending). */
const int *ge_speech_model_rates (const GeSpeechModel * m, int *n_rates);
gboolean ge_speech_model_supports_rate (const GeSpeechModel * m, int rate);
/* Samples per hop and per analysis frame at @rate. */
int ge_speech_model_hop (const GeSpeechModel * m, int rate);
int ge_speech_model_frame (const GeSpeechModel * m, int rate);
/* A stream's delay in samples at @rate: frame - hop + lookahead hops. */
int ge_speech_model_delay (const GeSpeechModel * m, int rate);

/* A stream at one of the model's rates (GE_ERROR_INVALID otherwise). */
GeSpeechStream *ge_speech_stream_new (const GeSpeechModel * m, int rate, GError ** error);
void ge_speech_stream_free (GeSpeechStream * s);
/* Back to a fresh stream: silence history, recurrent state zero. */
void ge_speech_stream_reset (GeSpeechStream * s);

/* The arithmetic of the network's matrix-vector products (ge-precision.h's
 * names): F32 (a new stream's, the reference) or INT8, the weights in 8
 * bits per row and each product's vector in 16 bits (gemv.h), 0.72 MB of
 * weights instead of 2.9 for the shipped model, within its card's SI-SDRi
 * budget.  AUTO is INT8 for a file whose metadata "precision_auto" is
 * "int8", F32 otherwise; BF16 runs F32 (no bf16 path: the products are
 * bound by reading the weights, which bf16 only halves); INT8 runs F32
 * where the CPU lacks AVX512-VNNI.  Returns what runs.  Not while
 * ge_speech_stream_process runs on the stream. */
GePrecision ge_speech_stream_set_precision (GeSpeechStream * s, GePrecision precision);
GePrecision ge_speech_stream_get_precision (const GeSpeechStream * s);

/* Processes @n_hops hops: reads n_hops * hop samples from @in (every
 * @in_stride floats: interleaved channels), writes as many to @out (every
 * @out_stride floats; may alias @in).  @strength in [0, 1] blends the gains
 * towards 1 (0: the input, delayed, exactly: non-finite samples as 0,
 * the rest clamped to +-8).  Returns the mean voice activity
 * (0..1) of the hops. */
float ge_speech_stream_process (GeSpeechStream * s, const float *in, int in_stride,
    float *out, int out_stride, int n_hops, float strength);

G_END_DECLS
