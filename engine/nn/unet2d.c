/* unet2d.c: UNet2DModel and UNet2DConditionModel.  Both are conv_in, a
 * time embedding, down levels whose outputs are kept as skips, a mid block,
 * up levels that consume the skips, GN -> SiLU -> conv_out; they differ in
 * the attention of a level (Attention vs Transformer2DModel) and in how the
 * config names things.  Each class's config is read into one Spec exactly as
 * that class's constructor derives it, then one builder loads the weights,
 * checking every shape against what the config implies. */
#include "ge-unet2d.h"
#include "ge-blocks.h"
#include "ge-transformer2d.h"

#include <math.h>
#include <string.h>

typedef enum { ATTN_NONE, ATTN_SELF, ATTN_CROSS } AttnKind;

#define MAX_LAYERS 64

/* How a level (or the conditional mid block) is built. */
typedef struct {
  AttnKind attn;
  int layers;                   /* resnets */
  int head_dim;                 /* ATTN_SELF: <= 0 one head */
  GeTransformer2DOpts xo;       /* ATTN_CROSS (n_layers per layer below) */
  int tl[MAX_LAYERS];           /* ATTN_CROSS: transformer layers of each layer */
} LevelSpec;

typedef struct {
  AttnKind attn;
  int n_layers;
  GeResnet *resnets;
  GeAttnBlock *attns;           /* ATTN_SELF */
  GeTransformer2D *xfs;         /* ATTN_CROSS */
  gboolean has_sampler;
  GeDownsample down;
  GeUpsample up;
} Level;

typedef enum { MID_NONE, MID_UNET2D, MID_RESNET, MID_CROSS } MidKind;
typedef enum { CLASS_NONE, CLASS_EMBEDDING, CLASS_TIMESTEP } ClassKind;

typedef struct {
  int n;
  gint64 *chans;
  const char **downs, **ups;
  LevelSpec *down, *up, mid;
  MidKind mid_kind;
  gboolean add_attention;       /* MID_UNET2D */
  int mid_head_dim, mid_attn_groups;
  int groups, ds_pad, temb_dim, conv_in_k, conv_out_k;
  float eps, mid_scale;
  int cross_dim;
  ClassKind class_kind;
  int num_class_embeds;
} Spec;

struct _GeUNet2D {
  GeModelFile *mf;
  GeCtx ctx;
  gboolean cond;
  int in_ch, out_ch, n_levels, c0, temb_dim, num_train_timesteps, cross_dim;
  gboolean flip_sin_to_cos, center_input;
  float freq_shift;
  GeLinearW lin1, lin2;         /* time_embedding */
  ClassKind class_kind;
  int num_class_embeds;
  const float *class_table;     /* CLASS_EMBEDDING: [num_class_embeds, temb_dim] */
  GeLinearW cls1, cls2;         /* CLASS_TIMESTEP */
  GeConv2d conv_in, conv_out;
  GeGroupNormW norm_out;
  Level *down, *up;
  MidKind mid_kind;
  GeMidBlock mid;               /* MID_UNET2D */
  Level cmid;                   /* MID_RESNET, MID_CROSS: resnet, (transformer, resnet)* */
  gsize n_params;
  GeModelTap tap;
  void *tap_data;
  guint last_allocs;
};

#define FAIL(...) ge_fail (error, GE_ERROR_UNSUPPORTED, ge_model_file_path (mf), __VA_ARGS__)

static gsize
conv_params (const GeConv2d * c)
{
  return (gsize) c->out_channels * c->in_channels / c->groups * c->kh * c->kw
      + (c->bias ? c->out_channels : 0);
}

static gsize
resnet_params (const GeResnet * r)
{
  return 2 * (r->in + r->out) + conv_params (&r->conv1) + conv_params (&r->conv2)
      + (r->temb_b ? (gsize) r->out * (r->temb_dim + 1) : 0)
      + (r->has_shortcut ? conv_params (&r->shortcut) : 0);
}

static gsize
attn_params (const GeAttnBlock * a)
{
  return 2 * a->channels + conv_params (&a->to_q) + conv_params (&a->to_k)
      + conv_params (&a->to_v) + conv_params (&a->to_out);
}

/* ---- UNet2DModel config ------------------------------------------------ */

/* Rejects config values that change the maths in ways we do not implement,
 * instead of silently computing something else. */
static gboolean
check_strings (GeModelFile * mf, const char *const (*str)[2], int n, GError ** error)
{
  for (int i = 0; i < n; i++) {
    const char *v;
    if (!ge_config_string (mf, str[i][0], str[i][1], &v, error))
      return FALSE;
    if (strcmp (v, str[i][1]) != 0)
      return FAIL ("%s \"%s\" is not supported (only \"%s\")", str[i][0], v, str[i][1]);
  }
  return TRUE;
}

static gboolean
spec_unet2d (GeUNet2D * u, GeModelFile * mf, Spec * s, GError ** error)
{
  static const char *const str[][2] = {
    { "time_embedding_type", "positional" }, { "resnet_time_scale_shift", "default" },
    { "act_fn", "silu" }, { "downsample_type", "conv" }, { "upsample_type", "conv" },
    { "mid_block_type", "UNetMidBlock2D" },
  };
  static const char *absent[] = { "class_embed_type", "num_class_embeds" };
  for (guint i = 0; i < G_N_ELEMENTS (absent); i++)
    if (ge_config_has (mf, absent[i]))
      return FAIL ("class conditioning (%s) is not supported", absent[i]);
  gint64 layers, groups, ds_pad, temb_dim, head_dim, attn_groups;
  double eps, mid_scale;
  if (!check_strings (mf, str, G_N_ELEMENTS (str), error)
      || !ge_config_int (mf, "layers_per_block", 2, &layers, error)
      || !ge_config_int (mf, "norm_num_groups", 32, &groups, error)
      || !ge_config_int (mf, "downsample_padding", 1, &ds_pad, error)
      || !ge_config_int (mf, "time_embedding_dim", 0, &temb_dim, error)
      || !ge_config_double (mf, "norm_eps", 1e-5, &eps, error)
      || !ge_config_double (mf, "mid_block_scale_factor", 1, &mid_scale, error)
      || !ge_config_bool (mf, "add_attention", TRUE, &s->add_attention, error))
    return FALSE;
  /* attention_head_dim: absent -> constructor default 8; null -> one head. */
  JsonNode *hn = json_object_get_member (ge_model_file_config (mf), "attention_head_dim");
  if (!hn)
    head_dim = 8;
  else if (JSON_NODE_HOLDS_NULL (hn))
    head_dim = 0;
  else if (!ge_config_int (mf, "attention_head_dim", 8, &head_dim, error))
    return FALSE;
  /* The mid block's attention groups: attn_norm_num_groups, else the
   * resnet groups (resnet_time_scale_shift is "default" here). */
  if (!ge_config_int (mf, "attn_norm_num_groups", groups, &attn_groups, error))
    return FALSE;
  int n_ch;
  if (!ge_config_int_array (mf, "block_out_channels", &s->chans, &n_ch, error))
    return FALSE;
  if (!s->chans) {              /* diffusers' default */
    static const gint64 def[] = { 224, 448, 672, 896 };
    s->chans = g_memdup2 (def, sizeof (def));
    n_ch = 4;
  }
  int n_down = 0, n_up = 0;
  if (!ge_config_string_array (mf, "down_block_types", &s->downs, &n_down, error)
      || !ge_config_string_array (mf, "up_block_types", &s->ups, &n_up, error))
    return FALSE;
  if (!s->downs || !s->ups)
    return FAIL ("config lacks down_block_types/up_block_types");
  if (n_down != n_ch || n_up != n_ch)
    return FAIL ("%d block_out_channels but %d down and %d up blocks", n_ch, n_down, n_up);
  if (layers <= 0 || layers > 64)
    return FAIL ("implausible layers_per_block %" G_GINT64_FORMAT, layers);
  s->n = n_ch;
  s->groups = (int) groups;
  s->eps = (float) eps;
  s->ds_pad = (int) ds_pad;
  s->temb_dim = (int) temb_dim;
  s->mid_scale = (float) mid_scale;
  s->conv_in_k = s->conv_out_k = 3;
  s->mid_kind = MID_UNET2D;
  s->mid_head_dim = (int) head_dim;
  s->mid_attn_groups = (int) attn_groups;
  s->down = g_new0 (LevelSpec, n_ch);
  s->up = g_new0 (LevelSpec, n_ch);
  for (int i = 0; i < n_ch; i++) {
    LevelSpec *d = &s->down[i], *p = &s->up[i];
    if (strcmp (s->downs[i], "AttnDownBlock2D") == 0)
      d->attn = ATTN_SELF;
    else if (strcmp (s->downs[i], "DownBlock2D") != 0)
      return FAIL ("down block type \"%s\" is not supported", s->downs[i]);
    if (strcmp (s->ups[i], "AttnUpBlock2D") == 0)
      p->attn = ATTN_SELF;
    else if (strcmp (s->ups[i], "UpBlock2D") != 0)
      return FAIL ("up block type \"%s\" is not supported", s->ups[i]);
    d->layers = (int) layers;
    p->layers = (int) layers + 1;
    d->head_dim = p->head_dim = (int) head_dim;
  }
  gint64 ntt;
  if (!ge_config_int (mf, "num_train_timesteps", 1000, &ntt, error))
    return FALSE;
  u->num_train_timesteps = (int) ntt;
  return TRUE;
}

/* ---- UNet2DConditionModel config --------------------------------------- */

/* An integer an int holds (the counts and sizes these keys give), so that
 * json_node_get_int () of it is exact: 1e300 is not one. */
static gboolean
is_int (JsonNode * n)
{
  gint64 v;
  return n && ge_config_node_int (n, &v) && v >= G_MININT && v <= G_MAXINT;
}

/* A key that is one value for every down block or a list of one per
 * block (what the constructor broadcasts): element @i, checked to be an
 * int (bool when @want_bool). */
static gboolean
per_block (GeModelFile * mf, const char *key, JsonNode * dflt, int n, gboolean want_bool,
    JsonNode ** out, GError ** error)
{
  JsonNode *v = json_object_get_member (ge_model_file_config (mf), key);
  if (!v)
    v = dflt;
  if (v && JSON_NODE_HOLDS_ARRAY (v)) {
    JsonArray *a = json_node_get_array (v);
    if ((int) json_array_get_length (a) != n)
      return ge_fail (error, GE_ERROR_CORRUPT, ge_model_file_path (mf),
          "config key \"%s\" has %u entries for %d blocks", key, json_array_get_length (a), n);
    for (int i = 0; i < n; i++)
      out[i] = json_array_get_element (a, i);
  } else
    for (int i = 0; i < n; i++)
      out[i] = v;
  for (int i = 0; i < n; i++) {
    JsonNode *e = out[i];
    gboolean ok = want_bool ? e && JSON_NODE_HOLDS_VALUE (e)
        && json_node_get_value_type (e) == G_TYPE_BOOLEAN : is_int (e);
    if (!ok)
      return ge_fail (error, GE_ERROR_CORRUPT, ge_model_file_path (mf),
          "config key \"%s\" should be %s or a list of %d", key,
          want_bool ? "true/false" : "an integer", n);
  }
  return TRUE;
}

/* transformer_layers_per_block of one block: an int, or one int per
 * layer (needs at least @layers of them). */
static gboolean
check_tl (GeModelFile * mf, const char *key, int block, JsonNode * tl, int layers,
    GError ** error)
{
  if (is_int (tl))
    return TRUE;
  if (tl && JSON_NODE_HOLDS_ARRAY (tl)) {
    JsonArray *a = json_node_get_array (tl);
    gboolean ok = (int) json_array_get_length (a) >= layers;
    for (guint i = 0; ok && i < json_array_get_length (a); i++)
      ok = is_int (json_array_get_element (a, i));
    if (ok)
      return TRUE;
  }
  return ge_fail (error, GE_ERROR_CORRUPT, ge_model_file_path (mf),
      "config key \"%s\"[%d] should be an integer or a list of %d integers", key, block, layers);
}

/* Resolves a checked transformer_layers_per_block entry into @out[layers]. */
static void
tl_counts (JsonNode * tl, int layers, int *out)
{
  for (int l = 0; l < layers; l++)
    out[l] = (int) json_node_get_int (JSON_NODE_HOLDS_ARRAY (tl)
        ? json_array_get_element (json_node_get_array (tl), l) : tl);
}

static gboolean
spec_cond (GeUNet2D * u, GeModelFile * mf, Spec * s, GError ** error)
{
  /* Options this engine does not run; each would change the maths.  Keys
   * diffusers reads only for block types we refuse (resnet_skip_time_act,
   * resnet_out_scale_factor, cross_attention_norm, mid_block_only_cross_attention:
   * the Simple* and ResnetDownsample blocks) need no check, nor dropout and
   * sample_size. */
  static const char *const str[][2] = {
    { "time_embedding_type", "positional" }, { "resnet_time_scale_shift", "default" },
    { "act_fn", "silu" }, { "attention_type", "default" },
  };
  static const char *absent[] = {
    "addition_embed_type", "encoder_hid_dim", "encoder_hid_dim_type", "time_cond_proj_dim",
    "timestep_post_act", "time_embedding_act_fn",
  };
  for (guint i = 0; i < G_N_ELEMENTS (absent); i++)
    if (ge_config_has (mf, absent[i]))
      return FAIL ("%s is not supported (only null)", absent[i]);
  /* diffusers 0.35.2 raises on it too (its naming issue #2011): the head
   * count comes from attention_head_dim. */
  if (ge_config_has (mf, "num_attention_heads"))
    return FAIL ("num_attention_heads is not supported (UNet2DConditionModel refuses it; "
        "attention_head_dim gives the number of heads)");
  gboolean dual, concat, linear, upcast;
  gint64 groups, ds_pad, temb_dim, cin_k, cout_k;
  double eps, mid_scale;
  const char *mid_type, *class_type;
  int n_ch = 0, n_down = 0, n_up = 0;
  if (!check_strings (mf, str, G_N_ELEMENTS (str), error)
      || !ge_config_bool (mf, "dual_cross_attention", FALSE, &dual, error)
      || !ge_config_bool (mf, "class_embeddings_concat", FALSE, &concat, error)
      || !ge_config_bool (mf, "use_linear_projection", FALSE, &linear, error)
      || !ge_config_bool (mf, "upcast_attention", FALSE, &upcast, error)
      || !ge_config_int (mf, "norm_num_groups", 32, &groups, error)
      || !ge_config_int (mf, "downsample_padding", 1, &ds_pad, error)
      || !ge_config_int (mf, "time_embedding_dim", 0, &temb_dim, error)
      || !ge_config_int (mf, "conv_in_kernel", 3, &cin_k, error)
      || !ge_config_int (mf, "conv_out_kernel", 3, &cout_k, error)
      || !ge_config_double (mf, "norm_eps", 1e-5, &eps, error)
      || !ge_config_double (mf, "mid_block_scale_factor", 1, &mid_scale, error)
      || !ge_config_string (mf, "class_embed_type", NULL, &class_type, error)
      || !ge_config_int_array (mf, "block_out_channels", &s->chans, &n_ch, error)
      || !ge_config_string_array (mf, "down_block_types", &s->downs, &n_down, error)
      || !ge_config_string_array (mf, "up_block_types", &s->ups, &n_up, error))
    return FALSE;
  if (dual)
    return FAIL ("dual_cross_attention is not supported");
  if (concat)
    return FAIL ("class_embeddings_concat is not supported");
  /* upcast_attention: attention always runs in f32 here. */
  (void) upcast;
  /* mid_block_type null means no mid block; absent means the default. */
  JsonNode *mt = json_object_get_member (ge_model_file_config (mf), "mid_block_type");
  if (mt && JSON_NODE_HOLDS_NULL (mt))
    mid_type = NULL;
  else if (!ge_config_string (mf, "mid_block_type", "UNetMidBlock2DCrossAttn", &mid_type, error))
    return FALSE;
  /* norm_num_groups null drops conv_norm_out but leaves the resnets
   * without groups, which diffusers cannot build either. */
  JsonNode *gn = json_object_get_member (ge_model_file_config (mf), "norm_num_groups");
  if (gn && JSON_NODE_HOLDS_NULL (gn))
    return FAIL ("norm_num_groups null is not supported");
  if (!s->chans) {
    static const gint64 def[] = { 320, 640, 1280, 1280 };
    s->chans = g_memdup2 (def, sizeof (def));
    n_ch = 4;
  }
  if (!s->downs) {
    static const char *def[] = { "CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
      "CrossAttnDownBlock2D", "DownBlock2D", NULL };
    s->downs = g_memdup2 (def, sizeof (def));
    n_down = 4;
  }
  if (!s->ups) {
    static const char *def[] = { "UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
      "CrossAttnUpBlock2D", NULL };
    s->ups = g_memdup2 (def, sizeof (def));
    n_up = 4;
  }
  if (n_down != n_up || n_ch != n_down || n_ch == 0)
    return FAIL ("%d block_out_channels, %d down and %d up block types", n_ch, n_down, n_up);
  const int n = n_ch;
  s->n = n;

  /* Per-block values, broadcast from a single value as the constructor
   * does.  num_attention_heads = attention_head_dim (the historic naming):
   * it is the number of heads of each Transformer2DModel. */
  JsonNode *d8 = json_node_init_int (json_node_alloc (), 8);
  JsonNode *d2 = json_node_init_int (json_node_alloc (), 2);
  JsonNode *d1 = json_node_init_int (json_node_alloc (), 1);
  JsonNode *d1280 = json_node_init_int (json_node_alloc (), 1280);
  JsonNode *dfalse = json_node_init_boolean (json_node_alloc (), FALSE);
  JsonNode **heads = g_newa (JsonNode *, n), **cross = g_newa (JsonNode *, n);
  JsonNode **layers = g_newa (JsonNode *, n), **only = g_newa (JsonNode *, n);
  JsonNode **tl = g_newa (JsonNode *, n), **rtl = g_newa (JsonNode *, n);
  JsonNode *tl_raw = json_object_get_member (ge_model_file_config (mf),
      "transformer_layers_per_block");
  JsonNode *rtl_raw = json_object_get_member (ge_model_file_config (mf),
      "reverse_transformer_layers_per_block");
  gboolean ok = per_block (mf, "attention_head_dim", d8, n, FALSE, heads, error)
      && per_block (mf, "cross_attention_dim", d1280, n, FALSE, cross, error)
      && per_block (mf, "layers_per_block", d2, n, FALSE, layers, error)
      && per_block (mf, "only_cross_attention", dfalse, n, TRUE, only, error);
  /* transformer_layers_per_block: an int, one per block, or one list per
   * block (then reverse_transformer_layers_per_block gives the up blocks'). */
  if (ok && (!tl_raw || JSON_NODE_HOLDS_NULL (tl_raw)))
    tl_raw = d1;
  if (ok && JSON_NODE_HOLDS_ARRAY (tl_raw)) {
    JsonArray *a = json_node_get_array (tl_raw);
    if ((int) json_array_get_length (a) != n)
      ok = ge_fail (error, GE_ERROR_CORRUPT, ge_model_file_path (mf),
          "config key \"transformer_layers_per_block\" has %u entries for %d blocks",
          json_array_get_length (a), n);
    for (int i = 0; ok && i < n; i++) {
      tl[i] = json_array_get_element (a, i);
      if (JSON_NODE_HOLDS_ARRAY (tl[i]) && (!rtl_raw || JSON_NODE_HOLDS_NULL (rtl_raw)))
        ok = FAIL ("transformer_layers_per_block has per-layer lists but "
            "reverse_transformer_layers_per_block is null (diffusers refuses this too)");
    }
  } else if (ok) {
    if (!is_int (tl_raw))
      ok = ge_fail (error, GE_ERROR_CORRUPT, ge_model_file_path (mf),
          "config key \"transformer_layers_per_block\" should be an integer or a list");
    for (int i = 0; i < n; i++)
      tl[i] = tl_raw;
  }
  if (ok && rtl_raw && !JSON_NODE_HOLDS_NULL (rtl_raw)) {
    if (!JSON_NODE_HOLDS_ARRAY (rtl_raw)
        || (int) json_array_get_length (json_node_get_array (rtl_raw)) != n)
      ok = ge_fail (error, GE_ERROR_CORRUPT, ge_model_file_path (mf),
          "config key \"reverse_transformer_layers_per_block\" should be a list of %d", n);
    for (int i = 0; ok && i < n; i++)
      rtl[i] = json_array_get_element (json_node_get_array (rtl_raw), i);
  } else
    for (int i = 0; i < n; i++)
      rtl[i] = tl[n - 1 - i];
  if (!ok)
    goto out;

  s->groups = (int) groups;
  s->eps = (float) eps;
  s->ds_pad = (int) ds_pad;
  s->temb_dim = (int) temb_dim;
  s->mid_scale = (float) mid_scale;
  s->conv_in_k = (int) cin_k;
  s->conv_out_k = (int) cout_k;
  if (cin_k <= 0 || cin_k % 2 == 0 || cin_k > 15 || cout_k <= 0 || cout_k % 2 == 0 || cout_k > 15) {
    ok = FAIL ("conv_in_kernel %" G_GINT64_FORMAT " / conv_out_kernel %" G_GINT64_FORMAT
        " is not supported (odd sizes only)", cin_k, cout_k);
    goto out;
  }
  s->down = g_new0 (LevelSpec, n);
  s->up = g_new0 (LevelSpec, n);
  s->cross_dim = 0;
  for (int i = 0; ok && i < n; i++) {
    for (int up = 0; ok && up < 2; up++) {
      /* Up block i mirrors down block n-1-i, except attention_head_dim as
       * AttnUpBlock2D's head size, which diffusers does not reverse. */
      const int j = up ? n - 1 - i : i;
      const char *type = up ? s->ups[i] : s->downs[i];
      LevelSpec *ls = up ? &s->up[i] : &s->down[i];
      if (g_str_has_prefix (type, "UNetRes"))
        type += 7;
      ls->layers = (int) json_node_get_int (layers[j]) + (up ? 1 : 0);
      if (ls->layers <= 0 || ls->layers > MAX_LAYERS) {
        ok = FAIL ("implausible layers_per_block[%d]", j);
        break;
      }
      if (strcmp (type, up ? "CrossAttnUpBlock2D" : "CrossAttnDownBlock2D") == 0) {
        ls->attn = ATTN_CROSS;
        ls->xo.heads = (int) json_node_get_int (heads[j]);
        ls->xo.cross_attention_dim = (int) json_node_get_int (cross[j]);
        ls->xo.groups = (int) groups;
        ls->xo.use_linear_projection = linear;
        ls->xo.only_cross_attention = json_node_get_boolean (only[up ? j : i]);
        JsonNode *t = up ? rtl[i] : tl[i];
        ok = check_tl (mf, up ? "reverse_transformer_layers_per_block"
            : "transformer_layers_per_block", i, t, ls->layers, error);
        if (ok)
          tl_counts (t, ls->layers, ls->tl);
        if (ok && s->cross_dim && s->cross_dim != ls->xo.cross_attention_dim)
          ok = FAIL ("cross_attention_dim differs between blocks (%d, %d): one "
              "encoder_hidden_states cannot feed both", s->cross_dim, ls->xo.cross_attention_dim);
        s->cross_dim = ls->xo.cross_attention_dim;
      } else if (strcmp (type, up ? "AttnUpBlock2D" : "AttnDownBlock2D") == 0) {
        ls->attn = ATTN_SELF;
        ls->head_dim = (int) json_node_get_int (heads[i]);
      } else if (strcmp (type, up ? "UpBlock2D" : "DownBlock2D") != 0)
        ok = FAIL ("%s block type \"%s\" (%s_block_types[%d]) is not supported",
            up ? "up" : "down", type, up ? "up" : "down", i);
    }
  }
  if (!ok)
    goto out;
  if (!s->cross_dim)
    s->cross_dim = (int) json_node_get_int (cross[0]);

  if (!mid_type)
    s->mid_kind = MID_NONE;
  else if (strcmp (mid_type, "UNetMidBlock2D") == 0) {
    /* get_mid_block builds it with num_layers=0, add_attention=False. */
    s->mid_kind = MID_RESNET;
    s->mid.layers = 1;
  } else if (strcmp (mid_type, "UNetMidBlock2DCrossAttn") == 0) {
    s->mid_kind = MID_CROSS;
    s->mid.attn = ATTN_CROSS;
    s->mid.layers = 2;
    s->mid.xo.heads = (int) json_node_get_int (heads[n - 1]);
    s->mid.xo.cross_attention_dim = (int) json_node_get_int (cross[n - 1]);
    s->mid.xo.groups = (int) groups;
    s->mid.xo.use_linear_projection = linear;
    /* UNetMidBlock2DCrossAttn takes no only_cross_attention. */
    ok = check_tl (mf, "transformer_layers_per_block", n - 1, tl[n - 1], 1, error);
    if (ok)
      tl_counts (tl[n - 1], 1, s->mid.tl);
    if (ok && s->cross_dim != s->mid.xo.cross_attention_dim)
      ok = FAIL ("cross_attention_dim differs between blocks (%d, %d): one "
          "encoder_hidden_states cannot feed both", s->cross_dim, s->mid.xo.cross_attention_dim);
  } else
    ok = FAIL ("mid_block_type \"%s\" is not supported", mid_type);
  if (!ok)
    goto out;

  /* Class embedding (the x4 upscaler's noise level): the constructor's
   * if/elif order. */
  gint64 ncls;
  if (!(ok = ge_config_int (mf, "num_class_embeds", 0, &ncls, error)))
    goto out;
  if (!class_type && ge_config_has (mf, "num_class_embeds")) {
    if (ncls <= 0 || ncls > (1 << 24)) {
      ok = FAIL ("implausible num_class_embeds %" G_GINT64_FORMAT, ncls);
      goto out;
    }
    s->class_kind = CLASS_EMBEDDING;
    s->num_class_embeds = (int) ncls;
  } else if (class_type && strcmp (class_type, "timestep") == 0)
    s->class_kind = CLASS_TIMESTEP;
  else if (class_type) {
    /* "identity" takes [n, time_embed_dim] labels and the projections a
     * vector each: the API's one label per sample covers neither. */
    ok = FAIL ("class_embed_type \"%s\" is not supported (only null with num_class_embeds, "
        "or \"timestep\")", class_type);
    goto out;
  }
  u->num_train_timesteps = 1000;

out:
  json_node_unref (d8);
  json_node_unref (d2);
  json_node_unref (d1);
  json_node_unref (d1280);
  json_node_unref (dfalse);
  return ok;
}

/* ---- building ----------------------------------------------------------- */

static gboolean
load_attn (GeUNet2D * u, GeModelFile * mf, const char *prefix, int channels,
    const LevelSpec * ls, int layer, const GeBlockOpts * o, GeAttnBlock * a,
    GeTransformer2D * x, GError ** error)
{
  if (ls->attn == ATTN_SELF) {
    if (!ge_attn_load (mf, prefix, channels, ls->head_dim > 0 ? ls->head_dim : channels,
            o->groups, o->eps, 1.0f, a, error))
      return FALSE;
    u->n_params += attn_params (a);
    return TRUE;
  }
  GeTransformer2DOpts xo = ls->xo;
  xo.n_layers = ls->tl[layer];
  if (!ge_transformer2d_load (mf, prefix, channels, &xo, x, error))
    return FALSE;
  u->n_params += ge_transformer2d_n_params (x);
  return TRUE;
}

/* Resnet @l of a level of @kind ("down_blocks", "up_blocks") and, in an
 * attention level, the attention after it. */
static gboolean
load_layer (GeUNet2D * u, GeModelFile * mf, Level * lv, const LevelSpec * ls,
    const char *kind, int i, int l, int in, int out, const GeBlockOpts * o, GError ** error)
{
  char *p = g_strdup_printf ("%s.%d.resnets.%d", kind, i, l);
  gboolean ok = ge_resnet_load (mf, p, in, out, o, &lv->resnets[l], error);
  g_free (p);
  if (!ok)
    return FALSE;
  u->n_params += resnet_params (&lv->resnets[l]);
  if (lv->attn == ATTN_NONE)
    return TRUE;
  p = g_strdup_printf ("%s.%d.attentions.%d", kind, i, l);
  ok = load_attn (u, mf, p, out, ls, l, o, &lv->attns[l], &lv->xfs[l], error);
  g_free (p);
  return ok;
}

static void
level_alloc (Level * lv, const LevelSpec * ls, int n_layers)
{
  lv->attn = ls->attn;
  lv->n_layers = n_layers;
  lv->resnets = g_new0 (GeResnet, n_layers);
  lv->attns = g_new0 (GeAttnBlock, n_layers);
  lv->xfs = g_new0 (GeTransformer2D, n_layers);
}

static void
level_clear (Level * lv)
{
  for (int l = 0; lv->xfs && l < lv->n_layers; l++)
    ge_transformer2d_clear (&lv->xfs[l]);
  g_clear_pointer (&lv->resnets, g_free);
  g_clear_pointer (&lv->attns, g_free);
  g_clear_pointer (&lv->xfs, g_free);
}

static gboolean
build (GeUNet2D * u, GeModelFile * mf, const Spec * s, GError ** error)
{
  const int n_ch = s->n;
  for (int i = 0; i < n_ch; i++)
    if (s->chans[i] <= 0 || s->chans[i] > 65536)
      return FAIL ("block_out_channels[%d] = %" G_GINT64_FORMAT, i, s->chans[i]);
  if (u->in_ch <= 0 || u->out_ch <= 0 || s->groups <= 0)
    return FAIL ("implausible in/out channels or norm_num_groups");
  u->n_levels = n_ch;
  u->c0 = (int) s->chans[0];
  u->temb_dim = s->temb_dim > 0 ? s->temb_dim : 4 * u->c0;
  u->cross_dim = s->cross_dim;
  u->class_kind = s->class_kind;
  u->num_class_embeds = s->num_class_embeds;

  /* Skip channels as the up blocks' constructors assume them; with uneven
   * layers_per_block the real skips may differ, which diffusers could not
   * run either. */
  int max_skips = 1;
  for (int i = 0; i < n_ch; i++)
    max_skips += s->down[i].layers + 1;
  int *skip_c = g_newa (int, max_skips), n_skip = 0;

#define WT(name_, nd_, ...) ({ gint64 s_[] = { __VA_ARGS__ }; \
      ge_model_file_weight (mf, name_, nd_, s_, error); })
  if (!ge_linear_load (mf, "time_embedding.linear_1", u->c0, u->temb_dim, TRUE, &u->lin1, error)
      || !ge_linear_load (mf, "time_embedding.linear_2", u->temb_dim, u->temb_dim, TRUE, &u->lin2,
          error)
      || !ge_conv_load (mf, "conv_in", u->in_ch, u->c0, s->conv_in_k, 1, (s->conv_in_k - 1) / 2,
          TRUE, &u->conv_in, error))
    return FALSE;
  u->n_params = conv_params (&u->conv_in) + (gsize) u->temb_dim * (u->c0 + u->temb_dim + 2);
  if (u->class_kind == CLASS_EMBEDDING) {
    if (!(u->class_table = WT ("class_embedding.weight", 2, u->num_class_embeds, u->temb_dim)))
      return FALSE;
    u->n_params += (gsize) u->num_class_embeds * u->temb_dim;
  } else if (u->class_kind == CLASS_TIMESTEP) {
    if (!ge_linear_load (mf, "class_embedding.linear_1", u->c0, u->temb_dim, TRUE, &u->cls1,
            error)
        || !ge_linear_load (mf, "class_embedding.linear_2", u->temb_dim, u->temb_dim, TRUE,
            &u->cls2, error))
      return FALSE;
    u->n_params += (gsize) u->temb_dim * (u->c0 + u->temb_dim + 2);
  }
#undef WT
  skip_c[n_skip++] = u->c0;

  const GeBlockOpts o = { s->groups, s->eps, u->temb_dim, 1.0f };
  char *p = NULL;
  u->down = g_new0 (Level, n_ch);
  u->up = g_new0 (Level, n_ch);
  int out_c = u->c0;
  for (int i = 0; i < n_ch; i++) {
    Level *lv = &u->down[i];
    const LevelSpec *ls = &s->down[i];
    int in_c = out_c;
    out_c = (int) s->chans[i];
    level_alloc (lv, ls, ls->layers);
    for (int l = 0; l < lv->n_layers; l++) {
      if (!load_layer (u, mf, lv, ls, "down_blocks", i, l, l == 0 ? in_c : out_c, out_c, &o,
              error))
        goto fail;
      skip_c[n_skip++] = out_c;
    }
    lv->has_sampler = i != n_ch - 1;
    if (lv->has_sampler) {
      /* Other paddings change the downsampled size, and the skips no
       * longer match the upsampled path (diffusers fails in torch.cat). */
      if (s->ds_pad != 0 && s->ds_pad != 1) {
        ge_fail (error, GE_ERROR_UNSUPPORTED, ge_model_file_path (mf),
            "downsample_padding = %d: only 0 and 1 give skips of the right size", s->ds_pad);
        goto fail;
      }
      p = g_strdup_printf ("down_blocks.%d.downsamplers.0", i);
      if (!ge_downsample_load (mf, p, out_c, s->ds_pad, &lv->down, error))
        goto fail;
      g_clear_pointer (&p, g_free);
      u->n_params += conv_params (&lv->down.conv);
      skip_c[n_skip++] = out_c;
    }
  }

  {
    const int c = (int) s->chans[n_ch - 1];
    GeBlockOpts mo = o;
    mo.output_scale = s->mid_scale;
    u->mid_kind = s->mid_kind;
    if (s->mid_kind == MID_UNET2D) {
      if (!ge_mid_block_load (mf, "mid_block", c, &mo, s->add_attention,
              s->mid_head_dim > 0 ? s->mid_head_dim : c, s->mid_attn_groups, &u->mid, error))
        goto fail;
      u->n_params += resnet_params (&u->mid.res0) + resnet_params (&u->mid.res1)
          + (u->mid.has_attn ? attn_params (&u->mid.attn) : 0);
    } else if (s->mid_kind != MID_NONE) {
      Level *lv = &u->cmid;
      level_alloc (lv, &s->mid, s->mid.layers);
      for (int l = 0; l < lv->n_layers; l++) {
        p = g_strdup_printf ("mid_block.resnets.%d", l);
        gboolean ok = ge_resnet_load (mf, p, c, c, &mo, &lv->resnets[l], error);
        g_clear_pointer (&p, g_free);
        if (!ok)
          goto fail;
        u->n_params += resnet_params (&lv->resnets[l]);
        if (l == lv->n_layers - 1 || lv->attn == ATTN_NONE)
          continue;
        p = g_strdup_printf ("mid_block.attentions.%d", l);
        ok = load_attn (u, mf, p, c, &s->mid, l, &o, &lv->attns[l], &lv->xfs[l], error);
        g_clear_pointer (&p, g_free);
        if (!ok)
          goto fail;
      }
    }
  }

  out_c = (int) s->chans[n_ch - 1];
  for (int i = 0; i < n_ch; i++) {
    Level *lv = &u->up[i];
    const LevelSpec *ls = &s->up[i];
    int prev_c = out_c;
    out_c = (int) s->chans[n_ch - 1 - i];
    int in_c = (int) s->chans[MAX (n_ch - 2 - i, 0)];
    level_alloc (lv, ls, ls->layers);
    for (int l = 0; l < lv->n_layers; l++) {
      int sc = l == lv->n_layers - 1 ? in_c : out_c;
      int res_in = l == 0 ? prev_c : out_c;
      if (n_skip == 0 || skip_c[--n_skip] != sc) {
        FAIL ("up_blocks.%d.resnets.%d expects a %d-channel skip that the down blocks do "
            "not leave (uneven layers_per_block)", i, l, sc);
        goto fail;
      }
      if (!load_layer (u, mf, lv, ls, "up_blocks", i, l, res_in + sc, out_c, &o, error))
        goto fail;
    }
    lv->has_sampler = i != n_ch - 1;
    if (lv->has_sampler) {
      p = g_strdup_printf ("up_blocks.%d.upsamplers.0", i);
      if (!ge_upsample_load (mf, p, out_c, &lv->up, error))
        goto fail;
      g_clear_pointer (&p, g_free);
      u->n_params += conv_params (&lv->up.conv);
    }
  }
  if (!ge_group_norm_load (mf, "conv_norm_out", u->c0, s->groups, s->eps, &u->norm_out, error)
      || !ge_conv_load (mf, "conv_out", u->c0, u->out_ch, s->conv_out_k, 1,
          (s->conv_out_k - 1) / 2, TRUE, &u->conv_out, error))
    goto fail;
  u->n_params += 2 * u->c0 + conv_params (&u->conv_out);
  return TRUE;

fail:
  g_free (p);
  return FALSE;
}

GeUNet2D *
ge_unet2d_new (GeModelFile * mf, GError ** error)
{
  const char *cls = ge_model_file_class (mf);
  const gboolean cond = strcmp (cls, "UNet2DConditionModel") == 0;
  if (!cond && strcmp (cls, "UNet2DModel") != 0) {
    g_set_error (error, GE_ERROR, GE_ERROR_UNSUPPORTED,
        "%s: is a %s, not a UNet2DModel or UNet2DConditionModel", ge_model_file_path (mf), cls);
    return NULL;
  }
  GeUNet2D *u = g_new0 (GeUNet2D, 1);
  u->mf = ge_model_file_ref (mf);
  u->cond = cond;
  ge_ctx_init (&u->ctx, 0);
  Spec s = { 0 };
  gint64 in_ch, out_ch;
  double freq_shift;
  gboolean ok = ge_config_int (mf, "in_channels", cond ? 4 : 3, &in_ch, error)
      && ge_config_int (mf, "out_channels", cond ? 4 : 3, &out_ch, error)
      && ge_config_double (mf, "freq_shift", 0, &freq_shift, error)
      && ge_config_bool (mf, "flip_sin_to_cos", TRUE, &u->flip_sin_to_cos, error)
      && ge_config_bool (mf, "center_input_sample", FALSE, &u->center_input, error)
      && (cond ? spec_cond (u, mf, &s, error) : spec_unet2d (u, mf, &s, error));
  if (ok && (in_ch <= 0 || in_ch > 65536 || out_ch <= 0 || out_ch > 65536))
    ok = ge_fail (error, GE_ERROR_UNSUPPORTED, ge_model_file_path (mf),
        "implausible in_channels/out_channels");
  if (ok) {
    u->in_ch = (int) in_ch;
    u->out_ch = (int) out_ch;
    u->freq_shift = (float) freq_shift;
    ok = build (u, mf, &s, error);
  }
  g_free (s.chans);
  g_free (s.downs);
  g_free (s.ups);
  g_free (s.down);
  g_free (s.up);
  if (!ok) {
    ge_unet2d_free (u);
    return NULL;
  }
  return u;
}

void
ge_unet2d_free (GeUNet2D * u)
{
  if (!u)
    return;
  for (int i = 0; i < u->n_levels; i++) {
    if (u->down)
      level_clear (&u->down[i]);
    if (u->up)
      level_clear (&u->up[i]);
  }
  level_clear (&u->cmid);
  g_free (u->down);
  g_free (u->up);
  ge_ctx_clear (&u->ctx);
  ge_model_file_unref (u->mf);
  g_free (u);
}

void
ge_unet2d_set_n_threads (GeUNet2D * u, int n_threads)
{
  ge_ctx_set_n_threads (&u->ctx, n_threads);
}

GePrecision
ge_unet2d_set_precision (GeUNet2D * u, GePrecision precision)
{
  ge_ctx_set_precision (&u->ctx, u->mf, precision);
  return u->ctx.precision;
}

int
ge_unet2d_in_channels (const GeUNet2D * u)
{
  return u->in_ch;
}

int
ge_unet2d_out_channels (const GeUNet2D * u)
{
  return u->out_ch;
}

int
ge_unet2d_size_multiple (const GeUNet2D * u)
{
  return 1 << (u->n_levels - 1);
}

int
ge_unet2d_num_train_timesteps (const GeUNet2D * u)
{
  return u->num_train_timesteps;
}

gsize
ge_unet2d_n_params (const GeUNet2D * u)
{
  return u->n_params;
}

int
ge_unet2d_cross_attention_dim (const GeUNet2D * u)
{
  return u->cond ? u->cross_dim : 0;
}

gboolean
ge_unet2d_has_class_embedding (const GeUNet2D * u)
{
  return u->class_kind != CLASS_NONE;
}

void
ge_unet2d_set_tap (GeUNet2D * u, GeModelTap tap, void *user_data)
{
  u->tap = tap;
  u->tap_data = user_data;
}

guint
ge_unet2d_n_allocs (const GeUNet2D * u)
{
  return u->last_allocs;
}

gsize
ge_unet2d_workspace_bytes (const GeUNet2D * u)
{
  return ge_arena_capacity (u->ctx.arena);
}

/* ---- forward ------------------------------------------------------------ */

typedef struct {
  const float *ehs;
  int seq;
} Context;

/* The attention after resnet @l of level @lv (module path @name) on @x
 * (freed), or x itself. */
static GeTensor
level_attn (GeUNet2D * u, const Level * lv, int l, GeTensor x, const Context * cx,
    const char *name)
{
  GeCtx *ctx = &u->ctx;
  GeTensor a;
  if (lv->attn == ATTN_NONE)
    return x;
  if (lv->attn == ATTN_SELF)
    a = ge_attn_forward (ctx, &lv->attns[l], &x);
  else {
    char *prefix = u->tap ? g_strdup_printf ("%s.attentions.%d", name, l) : NULL;
    a = ge_transformer2d_forward (ctx, &lv->xfs[l], &x, cx->ehs, cx->seq, u->tap,
        u->tap_data, prefix);
    g_free (prefix);
  }
  ge_arena_free_floats (ctx->arena, x.data);
  ge_model_tap (u->tap, u->tap_data, &a, "%s.attentions.%d", name, l);
  return a;
}

/* The conditional mid block: resnet, then (transformer, resnet) pairs. */
static GeTensor
cond_mid_forward (GeUNet2D * u, const GeTensor * x, const float *temb_act, const Context * cx)
{
  GeCtx *ctx = &u->ctx;
  const Level *lv = &u->cmid;
  GeTensor h = ge_resnet_forward (ctx, &lv->resnets[0], x, temb_act);
  ge_model_tap (u->tap, u->tap_data, &h, "mid_block.resnets.0");
  for (int l = 1; l < lv->n_layers; l++) {
    h = level_attn (u, lv, l - 1, h, cx, "mid_block");
    GeTensor r = ge_resnet_forward (ctx, &lv->resnets[l], &h, temb_act);
    ge_arena_free_floats (ctx->arena, h.data);
    h = r;
    ge_model_tap (u->tap, u->tap_data, &h, "mid_block.resnets.%d", l);
  }
  return h;
}

/* In-place concatenation.  An up resnet reads cat (hcur, skip).  For one
 * sample a channel range is a contiguous tensor, so a skip can be made at
 * the end of a buffer with room for its partner in front, and the partner,
 * where the up resnet before makes it, straight into that room: no copy
 * (at the SR U-Net's 640x360, ge_concat_channels moved 2 x 59 MB a frame,
 * 3 % of it).  Where a block in between makes its own output (attention,
 * a sampler, the mid block), that one tensor is copied in front.  The
 * floats are the same either way. */
typedef struct {
  GeTensor t;
  float *cat;                   /* the buffer t ends, or NULL (a tensor of its own) */
} Skip;

#define MAX_PLANNED_SKIPS 64

typedef struct {
  int n_push;                   /* skips the down path pushes */
  gboolean room;                /* one sample, every skip popped once */
  /* the input channels of the up resnet that pops skip k, at n_push - 1 - k */
  int pop_in[MAX_PLANNED_SKIPS];
} SkipPlan;

static void
skip_plan (const GeUNet2D * u, int n, SkipPlan * sp)
{
  int n_pop = 0;
  sp->n_push = 1;
  for (int i = 0; i < u->n_levels; i++) {
    sp->n_push += u->down[i].n_layers + (u->down[i].has_sampler ? 1 : 0);
    n_pop += u->up[i].n_layers;
  }
  sp->room = n == 1 && n_pop == sp->n_push && n_pop <= MAX_PLANNED_SKIPS;
  for (int i = 0, j = 0; sp->room && i < u->n_levels; i++)
    for (int l = 0; l < u->up[i].n_layers; l++)
      sp->pop_in[j++] = u->up[i].resnets[l].in;
}

/* Skip @k's tensor, [n, c, h, w], with room for its partner in front
 * where the plan has some (one sample; @s->cat then set). */
static GeTensor
skip_alloc (GeCtx * ctx, const SkipPlan * sp, int k, int n, int c, int h, int w, Skip * s)
{
  const int partner = sp->room ? sp->pop_in[sp->n_push - 1 - k] - c : 0;
  if (partner <= 0) {
    s->cat = NULL;
    return ge_tensor_new (ctx->arena, n, c, h, w);
  }
  s->cat = ge_arena_alloc (ctx->arena, (gsize) (partner + c) * h * w);
  return (GeTensor) { s->cat + (gsize) partner * h * w, 1, c, h, w };
}

/* TimestepEmbedding: linear -> SiLU -> linear, [n, c0] -> [n, temb_dim]. */
static void
timestep_embedding (GeUNet2D * u, const float *in, int n, const GeLinearW * l1,
    const GeLinearW * l2, float *scratch, float *out)
{
  GeCtx *ctx = &u->ctx;
  ge_linear_forward (ctx, l1, in, n, scratch);
  ge_act (ctx, scratch, (gsize) n * u->temb_dim, GE_ACT_SILU, 0);
  ge_linear_forward (ctx, l2, scratch, n, out);
}

static gboolean
forward (GeUNet2D * u, const float *x, int n, int h, int w, const float *timesteps,
    const Context * cx, const float *class_labels, float *out, GError ** error)
{
  const int mult = ge_unet2d_size_multiple (u);
  const char *cls = u->cond ? "UNet2DConditionModel" : "UNet2DModel";
  if (n <= 0 || h <= 0 || w <= 0 || h % mult || w % mult)
    return ge_fail (error, GE_ERROR_SHAPE, ge_model_file_path (u->mf),
        "input %dx%d: a %s with %d levels needs sizes that are multiples of %d", w, h, cls,
        u->n_levels, mult);
  if (u->class_kind != CLASS_NONE && !class_labels)
    return ge_fail (error, GE_ERROR_INVALID, ge_model_file_path (u->mf),
        "the model has a class embedding: class_labels are required");
  if (u->class_kind == CLASS_EMBEDDING)
    for (int b = 0; b < n; b++)
      if (!(class_labels[b] >= 0 && class_labels[b] < u->num_class_embeds
              && class_labels[b] == floorf (class_labels[b])))
        return ge_fail (error, GE_ERROR_INVALID, ge_model_file_path (u->mf),
            "class_labels[%d] = %g is not an integer in [0, %d) (num_class_embeds)", b,
            class_labels[b], u->num_class_embeds);
  GeCtx *ctx = &u->ctx;
  guint allocs0 = ge_arena_n_system_allocs (ctx->arena);
  GeTensor xin = { (float *) x, n, u->in_ch, h, w };
  if (u->center_input) {
    xin = ge_tensor_new (ctx->arena, n, u->in_ch, h, w);
    for (gsize i = 0; i < ge_tensor_numel (&xin); i++)
      xin.data[i] = 2.0f * x[i] - 1.0f;
  }

  /* Time embedding: sinusoids -> linear -> SiLU -> linear (+ the class
   * embedding); every resnet then applies SiLU to it again, so do that
   * once here. */
  float *t_emb = ge_arena_alloc (ctx->arena, (gsize) n * u->c0);
  float *emb = ge_arena_alloc (ctx->arena, (gsize) n * u->temb_dim);
  float *emb_act = ge_arena_alloc (ctx->arena, (gsize) n * u->temb_dim);
  ge_timestep_embedding (timesteps, n, u->c0, u->flip_sin_to_cos, u->freq_shift,
      10000.0f, t_emb);
  timestep_embedding (u, t_emb, n, &u->lin1, &u->lin2, emb_act, emb);
  if (u->tap) {
    GeTensor te = { t_emb, n, u->c0, 1, 1 }, e = { emb, n, u->temb_dim, 1, 1 };
    ge_model_tap (u->tap, u->tap_data, &te, "time_proj");
    ge_model_tap (u->tap, u->tap_data, &e, "time_embedding");
  }
  if (u->class_kind == CLASS_EMBEDDING)
    for (int b = 0; b < n; b++)
      for (int c = 0; c < u->temb_dim; c++)
        emb[(gsize) b * u->temb_dim + c] +=
            u->class_table[(gsize) class_labels[b] * u->temb_dim + c];
  else if (u->class_kind == CLASS_TIMESTEP) {
    float *c_emb = ge_arena_alloc (ctx->arena, (gsize) n * u->temb_dim);
    ge_timestep_embedding (class_labels, n, u->c0, u->flip_sin_to_cos, u->freq_shift,
        10000.0f, t_emb);
    timestep_embedding (u, t_emb, n, &u->cls1, &u->cls2, emb_act, c_emb);
    ge_add (ctx, emb, c_emb, emb, (gsize) n * u->temb_dim, 1.0f);
  }
  memcpy (emb_act, emb, sizeof (float) * n * u->temb_dim);
  ge_act (ctx, emb_act, (gsize) n * u->temb_dim, GE_ACT_SILU, 0);

  /* Skips live until their up block consumes them. */
  SkipPlan sp;
  skip_plan (u, n, &sp);
  Skip *skips = g_newa (Skip, sp.n_push);
  int n_skips = 0;

  int oh, ow;
  ge_conv2d_out_size (&u->conv_in, h, w, &oh, &ow);
  GeTensor hcur = skip_alloc (ctx, &sp, 0, n, u->conv_in.out_channels, oh, ow, &skips[0]);
  ge_conv2d (ctx, &u->conv_in, &xin, &hcur);
  ge_model_tap (u->tap, u->tap_data, &hcur, "conv_in");
  skips[n_skips++].t = hcur;
  char name[32];
  for (int i = 0; i < u->n_levels; i++) {
    const Level *lv = &u->down[i];
    g_snprintf (name, sizeof (name), "down_blocks.%d", i);
    for (int l = 0; l < lv->n_layers; l++) {
      if (lv->attn == ATTN_NONE) {
        GeTensor y = skip_alloc (ctx, &sp, n_skips, n, lv->resnets[l].out, hcur.h, hcur.w,
            &skips[n_skips]);
        ge_resnet_forward_into (ctx, &lv->resnets[l], &hcur, emb_act, &y);
        hcur = y;
      } else {
        skips[n_skips].cat = NULL;
        hcur = ge_resnet_forward (ctx, &lv->resnets[l], &hcur, emb_act);
      }
      ge_model_tap (u->tap, u->tap_data, &hcur, "down_blocks.%d.resnets.%d", i, l);
      hcur = level_attn (u, lv, l, hcur, cx, name);
      skips[n_skips++].t = hcur;
    }
    if (lv->has_sampler) {
      hcur = ge_downsample_forward (ctx, &lv->down, &hcur);
      ge_model_tap (u->tap, u->tap_data, &hcur, "down_blocks.%d.downsamplers.0", i);
      skips[n_skips++] = (Skip) { hcur, NULL };
    }
    ge_model_tap (u->tap, u->tap_data, &hcur, "down_blocks.%d", i);
  }
  /* The mid block's input is the last skip: it stays allocated.  Its
   * output goes in front of it where it has room. */
  if (u->mid_kind == MID_UNET2D) {
    const Skip *last = &skips[n_skips - 1];
    const GeTensor room = { last->cat, n, u->mid.res1.out, hcur.h, hcur.w };
    const gboolean into = last->cat
        && last->t.data == last->cat + (gsize) u->mid.res1.out * hcur.h * hcur.w;
    hcur = ge_mid_block_forward (ctx, &u->mid, &hcur, emb_act, u->tap, u->tap_data,
        "mid_block", into ? &room : NULL);
  }
  else if (u->mid_kind != MID_NONE)
    hcur = cond_mid_forward (u, &hcur, emb_act, cx);
  if (u->mid_kind != MID_NONE)
    ge_model_tap (u->tap, u->tap_data, &hcur, "mid_block");
  for (int i = 0; i < u->n_levels; i++) {
    const Level *lv = &u->up[i];
    g_snprintf (name, sizeof (name), "up_blocks.%d", i);
    /* Tensors are freed as soon as they are dead, so the next ones reuse
     * memory that is still in cache (not the first: without a mid block it
     * is the last skip, freed below). */
    for (int l = 0; l < lv->n_layers; l++) {
      const Skip *skip = &skips[--n_skips];
      GeTensor cat;
      if (skip->cat) {
        /* hcur goes in front of the skip, where a resnet did not put it */
        cat = (GeTensor) { skip->cat, n, hcur.c + skip->t.c, hcur.h, hcur.w };
        if (hcur.data != skip->cat) {
          ge_copy (ctx, hcur.data, skip->cat, ge_tensor_numel (&hcur));
          if (hcur.data != skip->t.data)
            ge_arena_free_floats (ctx->arena, hcur.data);
        }
      } else {
        cat = ge_tensor_new (ctx->arena, n, hcur.c + skip->t.c, hcur.h, hcur.w);
        ge_concat_channels (ctx, &hcur, &skip->t, &cat);
        if (hcur.data != skip->t.data)
          ge_arena_free_floats (ctx->arena, hcur.data);
        ge_arena_free_floats (ctx->arena, skip->t.data);
      }
      /* The next up resnet's skip has room for this one's output: made
       * there (no attention or upsampler between). */
      const Skip *next = n_skips > 0 ? &skips[n_skips - 1] : NULL;
      const gboolean into_next = next && next->cat && lv->attn == ATTN_NONE
          && l + 1 < lv->n_layers
          && next->t.data == next->cat + (gsize) lv->resnets[l].out * cat.h * cat.w;
      if (into_next) {
        hcur = (GeTensor) { next->cat, n, lv->resnets[l].out, cat.h, cat.w };
        ge_resnet_forward_into (ctx, &lv->resnets[l], &cat, emb_act, &hcur);
      } else
        hcur = ge_resnet_forward (ctx, &lv->resnets[l], &cat, emb_act);
      ge_arena_free_floats (ctx->arena, cat.data);
      ge_model_tap (u->tap, u->tap_data, &hcur, "up_blocks.%d.resnets.%d", i, l);
      hcur = level_attn (u, lv, l, hcur, cx, name);
    }
    if (lv->has_sampler) {
      GeTensor up = ge_upsample_forward (ctx, &lv->up, &hcur);
      ge_arena_free_floats (ctx->arena, hcur.data);
      hcur = up;
      ge_model_tap (u->tap, u->tap_data, &hcur, "up_blocks.%d.upsamplers.0", i);
    }
    ge_model_tap (u->tap, u->tap_data, &hcur, "up_blocks.%d", i);
  }
  GeConvInput norm_out = ge_group_norm_input (ctx, &u->norm_out, &hcur, GE_ACT_SILU);
  if (u->tap) {
    GeTensor gn = ge_tensor_new (ctx->arena, n, hcur.c, h, w);
    ge_group_norm_apply (ctx, &u->norm_out, &hcur, &gn, GE_ACT_NONE);
    ge_model_tap (u->tap, u->tap_data, &gn, "conv_norm_out");
  }
  GeTensor y = { out, n, u->out_ch, h, w };
  ge_conv2d_ex (ctx, &u->conv_out, &hcur, &norm_out, &y);
  ge_model_tap (u->tap, u->tap_data, &y, "conv_out");

  ge_arena_reset (ctx->arena);
  u->last_allocs = ge_arena_n_system_allocs (ctx->arena) - allocs0;
  return TRUE;
}

gboolean
ge_unet2d_forward (GeUNet2D * u, const float *x, int n, int h, int w,
    const float *timesteps, float *out, GError ** error)
{
  if (u->cond)
    return ge_fail (error, GE_ERROR_INVALID, ge_model_file_path (u->mf),
        "a UNet2DConditionModel needs encoder_hidden_states: use ge_unet2d_forward_cond");
  Context cx = { NULL, 0 };
  return forward (u, x, n, h, w, timesteps, &cx, NULL, out, error);
}

gboolean
ge_unet2d_forward_cond (GeUNet2D * u, const float *x, int n, int h, int w,
    const float *timesteps, const float *encoder_hidden_states, int seq_len,
    const float *class_labels, float *out, GError ** error)
{
  if (!u->cond)
    return ge_fail (error, GE_ERROR_INVALID, ge_model_file_path (u->mf),
        "a UNet2DModel takes no encoder_hidden_states: use ge_unet2d_forward");
  if (!encoder_hidden_states || seq_len <= 0)
    return ge_fail (error, GE_ERROR_INVALID, ge_model_file_path (u->mf),
        "encoder_hidden_states [n, seq_len > 0, %d] are required", u->cross_dim);
  Context cx = { encoder_hidden_states, seq_len };
  return forward (u, x, n, h, w, timesteps, &cx, class_labels, out, error);
}
