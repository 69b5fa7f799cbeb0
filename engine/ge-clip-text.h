/* ge-clip-text.h: transformers' CLIPTextModel (and CLIPTextModelWithProjection),
 * the text encoder of Stable Diffusion.
 *
 * Loads a transformers folder (config.json + model.safetensors, weights
 * named "text_model.embeddings.token_embedding.weight", ...; see
 * ge-model-file.h) with any width, depth, head count and position count;
 * hidden_act quick_gelu, gelu, gelu_new / gelu_pytorch_tanh or relu.
 * Absent config keys take CLIPTextConfig's defaults (hidden_size 512, ...),
 * so a config that lacks one fails on the first weight it shapes.
 *
 * The maths are transformers' eager attention path: token + position
 * embeddings (positions 0 .. seq_len-1), pre-LN encoder layers with a causal
 * mask (-FLT_MAX added above the diagonal) plus, when given, the padding
 * mask (-FLT_MAX added at masked keys; where both apply the sum is -inf),
 * final_layer_norm on the last hidden state only.  Pooling takes, per
 * sequence, the position of the largest id when eos_token_id == 2 (old
 * configs, SD 1.x), else the first position holding eos_token_id (position
 * 0 when there is none, as argmax of all zeros gives).
 */
#pragma once

#include "ge-model-file.h"

G_BEGIN_DECLS

typedef struct _GeClipText GeClipText;

/* @mf's class must be CLIPTextModel or CLIPTextModelWithProjection. */
GeClipText *ge_clip_text_new (GeModelFile * mf, GError ** error);
void ge_clip_text_free (GeClipText * m);
/* 0 = one thread per core. */
void ge_clip_text_set_n_threads (GeClipText * m, int n_threads);
int ge_clip_text_hidden_size (const GeClipText * m);
int ge_clip_text_num_layers (const GeClipText * m);
int ge_clip_text_max_positions (const GeClipText * m);
gint32 ge_clip_text_eos_id (const GeClipText * m);
/* Floats per sequence of @pooled: hidden_size, or projection_dim for a
 * CLIPTextModelWithProjection, whose pooled output is text_embeds (the
 * pooled state through text_projection), as SDXL's second encoder gives. */
int ge_clip_text_pooled_dim (const GeClipText * m);

/* Debugging: @tap sees each transformers module output during a forward,
 * named by its module path ("text_model.embeddings",
 * "text_model.encoder.layers.0.self_attn.q_proj" (before the scaling),
 * "text_model.encoder.layers.0", "text_model.final_layer_norm", ...), for
 * the whole batch as [n, seq_len, width] passed as (n, c = seq_len,
 * h = width, w = 1).  "text_model.embeddings.position_embedding" has n = 1.
 * "text_model.embeddings" and "text_model.encoder.layers.N" are
 * hidden_states[0] and hidden_states[N + 1] of output_hidden_states. */
void ge_clip_text_set_tap (GeClipText * m, GeModelTap tap, void *user_data);

/* @ids [n, seq_len] (1 <= seq_len <= max_position_embeddings);
 * @attention_mask [n, seq_len] of 0/1, or NULL (Stable Diffusion passes
 * none: padding tokens are then ordinary tokens); @last_hidden [n, seq_len,
 * hidden] after the final LN; @pooled [n, pooled_dim] or NULL.  Ids out of
 * the vocabulary and mask values other than 0/1 are GE_ERROR_INVALID. */
gboolean ge_clip_text_forward (GeClipText * m, const gint32 * ids, int n, int seq_len,
    const gint32 * attention_mask, float *last_hidden, float *pooled, GError ** error);

/* StableDiffusionPipeline.encode_prompt (clip_skip): @last_hidden gets
 * final_layer_norm (hidden_states[-(clip_skip + 1)]), i.e. the output of
 * layer num_layers - clip_skip (0 <= clip_skip <= num_layers; 0 is
 * ge_clip_text_forward).  @pooled, when asked for, is still that of the
 * whole model.  (SDXL's pipeline differs: it takes hidden_states[-(clip_skip
 * + 2)] WITHOUT the final LN; use ge_clip_text_forward_hidden for it.) */
gboolean ge_clip_text_forward_skip (GeClipText * m, const gint32 * ids, int n, int seq_len,
    const gint32 * attention_mask, int clip_skip, float *last_hidden, float *pooled,
    GError ** error);

/* hidden_states[@index] of output_hidden_states (0: the embeddings, i: the
 * output of layer i - 1; 0 <= index <= num_layers), through the final LN
 * when @final_ln, into @hidden [n, seq_len, hidden]; @pooled as above. */
gboolean ge_clip_text_forward_hidden (GeClipText * m, const gint32 * ids, int n, int seq_len,
    const gint32 * attention_mask, int index, gboolean final_ln, float *hidden,
    float *pooled, GError ** error);

/* Allocations the last forward made (0 once shapes repeat). */
guint ge_clip_text_n_allocs (const GeClipText * m);

G_END_DECLS
