/* clip_text.c: CLIPTextModel.  Activations stay token-major, [n * seq,
 * width] rows, so every projection is one GEMM over all the tokens of the
 * batch and attention reads heads as column slices (ge_attention_masked). */
#include "ge-clip-text.h"
#include "ge-blocks.h"
#include "act.h"
#include "ge-pool.h"

#include <float.h>
#include <string.h>

typedef enum {
  CLIP_QUICK_GELU,
  CLIP_GELU,
  CLIP_GELU_TANH,
  CLIP_RELU,
} ClipAct;

typedef struct {
  const float *ln1_w, *ln1_b, *ln2_w, *ln2_b;
  GeLinearW q, k, v, o, fc1, fc2;
} Layer;

struct _GeClipText {
  GeModelFile *mf;
  GeCtx ctx;
  int hidden, inter, n_layers, heads, head_dim, max_pos, vocab, proj_dim;
  gint32 eos;
  float eps;
  ClipAct act;
  const float *tok_emb, *pos_emb, *final_w, *final_b;
  GeLinearW proj;               /* text_projection (no bias); proj.out 0 when absent */
  Layer *layers;
  GeModelTap tap;
  void *tap_data;
  guint last_allocs;
};

/* ---- loading ----------------------------------------------------------- */

static gboolean
read_config (GeClipText * m, GeModelFile * mf, GError ** error)
{
  /* CLIPTextConfig's defaults. */
  gint64 hidden, inter, layers, heads, max_pos, vocab, proj, eos;
  double eps;
  const char *act;
  if (!ge_config_int (mf, "hidden_size", 512, &hidden, error)
      || !ge_config_int (mf, "intermediate_size", 2048, &inter, error)
      || !ge_config_int (mf, "num_hidden_layers", 12, &layers, error)
      || !ge_config_int (mf, "num_attention_heads", 8, &heads, error)
      || !ge_config_int (mf, "max_position_embeddings", 77, &max_pos, error)
      || !ge_config_int (mf, "vocab_size", 49408, &vocab, error)
      || !ge_config_int (mf, "projection_dim", 512, &proj, error)
      || !ge_config_int (mf, "eos_token_id", 49407, &eos, error)
      || !ge_config_double (mf, "layer_norm_eps", 1e-5, &eps, error)
      || !ge_config_string (mf, "hidden_act", "quick_gelu", &act, error))
    return FALSE;
  const char *path = ge_model_file_path (mf);
  if (hidden <= 0 || hidden > 65536 || inter <= 0 || inter > 262144 || layers <= 0
      || layers > 1024 || heads <= 0 || max_pos <= 0 || max_pos > 65536 || vocab <= 0
      || vocab > G_MAXINT32 || proj <= 0 || proj > 65536)
    return ge_fail (error, GE_ERROR_UNSUPPORTED, path, "implausible CLIP text config "
        "(hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, "
        "max_position_embeddings, vocab_size or projection_dim out of range)");
  if (hidden % heads != 0)
    return ge_fail (error, GE_ERROR_UNSUPPORTED, path, "hidden_size %" G_GINT64_FORMAT
        " is not a multiple of num_attention_heads %" G_GINT64_FORMAT, hidden, heads);
  if (eos < G_MININT32 || eos > G_MAXINT32)
    return ge_fail (error, GE_ERROR_UNSUPPORTED, path, "eos_token_id %" G_GINT64_FORMAT
        " is out of range", eos);
  if (strcmp (act, "quick_gelu") == 0)
    m->act = CLIP_QUICK_GELU;
  else if (strcmp (act, "gelu") == 0)
    m->act = CLIP_GELU;
  else if (strcmp (act, "gelu_new") == 0 || strcmp (act, "gelu_pytorch_tanh") == 0)
    m->act = CLIP_GELU_TANH;
  else if (strcmp (act, "relu") == 0)
    m->act = CLIP_RELU;
  else
    return ge_fail (error, GE_ERROR_UNSUPPORTED, path, "hidden_act \"%s\" is not supported "
        "(quick_gelu, gelu, gelu_new, gelu_pytorch_tanh, relu)", act);
  m->hidden = (int) hidden;
  m->inter = (int) inter;
  m->n_layers = (int) layers;
  m->heads = (int) heads;
  m->head_dim = (int) (hidden / heads);
  m->max_pos = (int) max_pos;
  m->vocab = (int) vocab;
  m->proj_dim = (int) proj;
  m->eos = (gint32) eos;
  m->eps = (float) eps;
  return TRUE;
}

static const float *
weight (GeModelFile * mf, GError ** error, int ndim, gint64 d0, gint64 d1, const char *fmt, ...)
    G_GNUC_PRINTF (6, 7);

static const float *
weight (GeModelFile * mf, GError ** error, int ndim, gint64 d0, gint64 d1, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  char *name = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  const gint64 shape[2] = { d0, d1 };
  const float *w = ge_model_file_weight (mf, name, ndim, shape, error);
  g_free (name);
  return w;
}

static gboolean
load_layer (GeClipText * m, GeModelFile * mf, int i, Layer * l, GError ** error)
{
  const int h = m->hidden;
  char *p = g_strdup_printf ("text_model.encoder.layers.%d", i);
  char *s = NULL;
#define SUB(x) (g_free (s), s = g_strconcat (p, x, NULL))
  gboolean ok = (l->ln1_w = weight (mf, error, 1, h, 0, "%s.layer_norm1.weight", p))
      && (l->ln1_b = weight (mf, error, 1, h, 0, "%s.layer_norm1.bias", p))
      && ge_linear_load (mf, SUB (".self_attn.q_proj"), h, h, TRUE, &l->q, error)
      && ge_linear_load (mf, SUB (".self_attn.k_proj"), h, h, TRUE, &l->k, error)
      && ge_linear_load (mf, SUB (".self_attn.v_proj"), h, h, TRUE, &l->v, error)
      && ge_linear_load (mf, SUB (".self_attn.out_proj"), h, h, TRUE, &l->o, error)
      && (l->ln2_w = weight (mf, error, 1, h, 0, "%s.layer_norm2.weight", p))
      && (l->ln2_b = weight (mf, error, 1, h, 0, "%s.layer_norm2.bias", p))
      && ge_linear_load (mf, SUB (".mlp.fc1"), h, m->inter, TRUE, &l->fc1, error)
      && ge_linear_load (mf, SUB (".mlp.fc2"), m->inter, h, TRUE, &l->fc2, error);
#undef SUB
  g_free (s);
  g_free (p);
  return ok;
}

GeClipText *
ge_clip_text_new (GeModelFile * mf, GError ** error)
{
  const char *cls = ge_model_file_class (mf);
  const gboolean with_proj = g_strcmp0 (cls, "CLIPTextModelWithProjection") == 0;
  if (!with_proj && g_strcmp0 (cls, "CLIPTextModel") != 0) {
    ge_fail (error, GE_ERROR_UNSUPPORTED, ge_model_file_path (mf),
        "is a %s, not a CLIPTextModel", cls);
    return NULL;
  }
  GeClipText *m = g_new0 (GeClipText, 1);
  m->mf = ge_model_file_ref (mf);
  if (!read_config (m, mf, error))
    goto fail;
  const int h = m->hidden;
  if (!(m->tok_emb = weight (mf, error, 2, m->vocab, h,
              "text_model.embeddings.token_embedding.weight"))
      || !(m->pos_emb = weight (mf, error, 2, m->max_pos, h,
              "text_model.embeddings.position_embedding.weight")))
    goto fail;
  m->layers = g_new0 (Layer, m->n_layers);
  for (int i = 0; i < m->n_layers; i++)
    if (!load_layer (m, mf, i, &m->layers[i], error))
      goto fail;
  if (!(m->final_w = weight (mf, error, 1, h, 0, "text_model.final_layer_norm.weight"))
      || !(m->final_b = weight (mf, error, 1, h, 0, "text_model.final_layer_norm.bias")))
    goto fail;
  if (with_proj && !ge_linear_load (mf, "text_projection", h, m->proj_dim, FALSE, &m->proj,
          error))
    goto fail;
  ge_ctx_init (&m->ctx, 0);
  return m;

fail:
  ge_clip_text_free (m);
  return NULL;
}

void
ge_clip_text_free (GeClipText * m)
{
  if (!m)
    return;
  if (m->ctx.pool)
    ge_ctx_clear (&m->ctx);
  g_free (m->layers);
  ge_model_file_unref (m->mf);
  g_free (m);
}

void
ge_clip_text_set_n_threads (GeClipText * m, int n_threads)
{
  ge_ctx_set_n_threads (&m->ctx, n_threads);
}

void
ge_clip_text_set_tap (GeClipText * m, GeModelTap tap, void *user_data)
{
  m->tap = tap;
  m->tap_data = user_data;
}

int
ge_clip_text_hidden_size (const GeClipText * m)
{
  return m->hidden;
}

int
ge_clip_text_num_layers (const GeClipText * m)
{
  return m->n_layers;
}

int
ge_clip_text_max_positions (const GeClipText * m)
{
  return m->max_pos;
}

gint32
ge_clip_text_eos_id (const GeClipText * m)
{
  return m->eos;
}

int
ge_clip_text_pooled_dim (const GeClipText * m)
{
  return m->proj.out ? m->proj_dim : m->hidden;
}

guint
ge_clip_text_n_allocs (const GeClipText * m)
{
  return m->last_allocs;
}

/* ---- forward ----------------------------------------------------------- */

/* y[rows, out] = x W^T + b over the pool: each task a band of output
 * columns (a band of W's rows), so each thread streams its own weights. */

GE_VECTOR_CLONES static void
quick_gelu (float *x, gsize n)
{
  for (gsize i = 0; i < n; i++)
    x[i] = x[i] / (1.0f + ge_expf (-1.702f * x[i]));
}

static void
activation (GeClipText * m, float *x, gsize n)
{
  switch (m->act) {
    case CLIP_QUICK_GELU: quick_gelu (x, n); break;
    case CLIP_GELU: ge_act (&m->ctx, x, n, GE_ACT_GELU, 0); break;
    case CLIP_GELU_TANH: ge_act (&m->ctx, x, n, GE_ACT_GELU_TANH, 0); break;
    case CLIP_RELU: ge_act (&m->ctx, x, n, GE_ACT_RELU, 0); break;
  }
}

static void
tap (GeClipText * m, const float *data, int n, int seq, int width, const char *fmt, ...)
    G_GNUC_PRINTF (6, 7);

static void
tap (GeClipText * m, const float *data, int n, int seq, int width, const char *fmt, ...)
{
  if (!m->tap)
    return;
  va_list ap;
  va_start (ap, fmt);
  char *name = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  m->tap (name, data, n, seq, width, 1, m->tap_data);
  g_free (name);
}

/* Per-sequence additive masks [n, T, T] as transformers builds them: the
 * causal mask, plus the expanded padding mask when there is one, added in
 * float (so a key both masks hide gets -inf, as in PyTorch).  Without a
 * padding mask all sequences share one [T, T] mask (stride 0). */
static float *
build_mask (GeClipText * m, const gint32 * attention_mask, int n, int T, gsize * stride)
{
  const int n_masks = attention_mask ? n : 1;
  float *mask = ge_arena_alloc (m->ctx.arena, (gsize) n_masks * T * T);
  for (int b = 0; b < n_masks; b++)
    for (int i = 0; i < T; i++)
      for (int j = 0; j < T; j++) {
        float v = j > i ? -FLT_MAX : 0.0f;
        if (attention_mask && attention_mask[(gsize) b * T + j] == 0)
          v += -FLT_MAX;
        mask[((gsize) b * T + i) * T + j] = v;
      }
  *stride = attention_mask ? (gsize) T * T : 0;
  return mask;
}

/* Runs the layers needed for hidden_states[@index] (into @hidden, through
 * the final LN when @final_ln) and, when @pooled, for the pooled output. */
static gboolean
run (GeClipText * m, const gint32 * ids, int n, int T, const gint32 * attention_mask,
    int index, gboolean final_ln, float *hidden, float *pooled, GError ** error)
{
  const char *path = ge_model_file_path (m->mf);
  if (n <= 0 || T <= 0 || T > m->max_pos)
    return ge_fail (error, GE_ERROR_INVALID, path, "%d sequences of %d tokens: a CLIP text "
        "model takes 1 to %d tokens", n, T, m->max_pos);
  if (index < 0 || index > m->n_layers)
    return ge_fail (error, GE_ERROR_INVALID, path, "hidden state %d asked of a model with "
        "%d layers (0 .. %d)", index, m->n_layers, m->n_layers);
  const gsize rows = (gsize) n * T;
  for (gsize r = 0; r < rows; r++) {
    if (ids[r] < 0 || ids[r] >= m->vocab)
      return ge_fail (error, GE_ERROR_INVALID, path, "token id %" G_GINT32_FORMAT " (sequence %d, "
          "position %d) is outside the vocabulary of %d", ids[r], (int) (r / T), (int) (r % T),
          m->vocab);
    if (attention_mask && attention_mask[r] != 0 && attention_mask[r] != 1)
      return ge_fail (error, GE_ERROR_INVALID, path, "attention_mask value %" G_GINT32_FORMAT
          " (sequence %d, position %d) is not 0 or 1", attention_mask[r], (int) (r / T),
          (int) (r % T));
  }

  GeCtx *ctx = &m->ctx;
  const guint allocs0 = ge_arena_n_system_allocs (ctx->arena);
  const int H = m->hidden, F = m->inter;
  const gsize rh = rows * H;
  float *x = ge_arena_alloc (ctx->arena, rh);
  float *h = ge_arena_alloc (ctx->arena, rh);
  float *q = ge_arena_alloc (ctx->arena, rh);
  float *k = ge_arena_alloc (ctx->arena, rh);
  float *v = ge_arena_alloc (ctx->arena, rh);
  float *mid = ge_arena_alloc (ctx->arena, MAX (rows * F, rh));
  gsize mask_stride;
  const float *mask = build_mask (m, attention_mask, n, T, &mask_stride);

  /* Embeddings. */
  for (gsize r = 0; r < rows; r++) {
    const float *te = m->tok_emb + (gsize) ids[r] * H;
    const float *pe = m->pos_emb + (r % T) * H;
    for (int c = 0; c < H; c++)
      x[r * H + c] = te[c] + pe[c];
  }
  if (m->tap) {
    for (gsize r = 0; r < rows; r++)
      memcpy (h + r * H, m->tok_emb + (gsize) ids[r] * H, sizeof (float) * H);
    tap (m, h, n, T, H, "text_model.embeddings.token_embedding");
    tap (m, m->pos_emb, 1, T, H, "text_model.embeddings.position_embedding");
    tap (m, x, n, T, H, "text_model.embeddings");
  }

  const int last = pooled ? m->n_layers : index;
  const float scale = 1.0f / sqrtf ((float) m->head_dim);
  for (int li = 0;; li++) {
    if (li == index && hidden) {
      if (final_ln) {
        ge_layer_norm (ctx, x, hidden, (int) rows, H, m->eps, m->final_w, m->final_b);
        if (li == m->n_layers)
          tap (m, hidden, n, T, H, "text_model.final_layer_norm");
      } else
        memcpy (hidden, x, sizeof (float) * rh);
    }
    if (li == last)
      break;
    const Layer *l = &m->layers[li];
#define TAP(buf, width, name) tap (m, buf, n, T, width, "text_model.encoder.layers.%d" name, li)
    ge_layer_norm (ctx, x, h, (int) rows, H, m->eps, l->ln1_w, l->ln1_b);
    TAP (h, H, ".layer_norm1");
    ge_linear_forward (ctx, &l->q, h, (int) rows, q);
    ge_linear_forward (ctx, &l->k, h, (int) rows, k);
    ge_linear_forward (ctx, &l->v, h, (int) rows, v);
    TAP (q, H, ".self_attn.q_proj");
    TAP (k, H, ".self_attn.k_proj");
    TAP (v, H, ".self_attn.v_proj");
    ge_attention_masked (ctx, q, k, v, h, n, m->heads, m->head_dim, T, T, scale, mask,
        mask_stride);
    ge_linear_forward (ctx, &l->o, h, (int) rows, q);
    TAP (q, H, ".self_attn");
    ge_add (ctx, x, q, x, rh, 1.0f);
    ge_layer_norm (ctx, x, h, (int) rows, H, m->eps, l->ln2_w, l->ln2_b);
    TAP (h, H, ".layer_norm2");
    ge_linear_forward (ctx, &l->fc1, h, (int) rows, mid);
    TAP (mid, F, ".mlp.fc1");
    activation (m, mid, rows * F);
    TAP (mid, F, ".mlp.activation_fn");
    ge_linear_forward (ctx, &l->fc2, mid, (int) rows, q);
    TAP (q, H, ".mlp");
    ge_add (ctx, x, q, x, rh, 1.0f);
    TAP (x, H, "");
#undef TAP
  }

  if (pooled) {
    /* The final LN of the pooled rows only (x holds the last layer's output). */
    float *p = m->proj.out ? q : pooled;
    for (int b = 0; b < n; b++) {
      const gint32 *s = ids + (gsize) b * T;
      int at = 0;
      for (int t = 1; t < T; t++)
        if (m->eos == 2 ? s[t] > s[at] : (s[at] != m->eos && s[t] == m->eos))
          at = t;
      ge_layer_norm (ctx, x + ((gsize) b * T + at) * H, p + (gsize) b * H, 1, H, m->eps,
          m->final_w, m->final_b);
    }
    if (m->proj.out)
      ge_linear_forward (ctx, &m->proj, p, n, pooled);
  }

  ge_arena_reset (ctx->arena);
  m->last_allocs = ge_arena_n_system_allocs (ctx->arena) - allocs0;
  return TRUE;
}

gboolean
ge_clip_text_forward (GeClipText * m, const gint32 * ids, int n, int seq_len,
    const gint32 * attention_mask, float *last_hidden, float *pooled, GError ** error)
{
  return run (m, ids, n, seq_len, attention_mask, m->n_layers, TRUE, last_hidden, pooled,
      error);
}

gboolean
ge_clip_text_forward_skip (GeClipText * m, const gint32 * ids, int n, int seq_len,
    const gint32 * attention_mask, int clip_skip, float *last_hidden, float *pooled,
    GError ** error)
{
  if (clip_skip < 0 || clip_skip > m->n_layers)
    return ge_fail (error, GE_ERROR_INVALID, ge_model_file_path (m->mf), "clip_skip %d of a "
        "model with %d layers (0 .. %d)", clip_skip, m->n_layers, m->n_layers);
  return run (m, ids, n, seq_len, attention_mask, m->n_layers - clip_skip, TRUE, last_hidden,
      pooled, error);
}

gboolean
ge_clip_text_forward_hidden (GeClipText * m, const gint32 * ids, int n, int seq_len,
    const gint32 * attention_mask, int index, gboolean final_ln, float *hidden,
    float *pooled, GError ** error)
{
  return run (m, ids, n, seq_len, attention_mask, index, final_ln, hidden, pooled, error);
}
