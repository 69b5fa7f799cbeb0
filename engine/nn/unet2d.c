/* unet2d.c: UNet2DModel.  The structure (which block has which channels,
 * the skip list, the time embedding) is derived from the config exactly as
 * diffusers' constructor derives it; every weight's shape is then checked
 * against what the config implies. */
#include "ge-unet2d.h"
#include "ge-blocks.h"

#include <string.h>

typedef struct {
  gboolean attn;
  int n_layers;
  GeResnet *resnets;
  GeAttnBlock *attns;
  gboolean has_sampler;
  GeDownsample down;
  GeUpsample up;
} Level;

struct _GeUNet2D {
  GeModelFile *mf;
  GeCtx ctx;
  int in_ch, out_ch, n_levels, c0, temb_dim, num_train_timesteps;
  gboolean flip_sin_to_cos, center_input;
  float freq_shift;
  GeLinearW lin1, lin2;
  GeConv2d conv_in, conv_out;
  GeGroupNormW norm_out;
  Level *down, *up;
  GeMidBlock mid;
  gsize n_params;
  GeModelTap tap;
  void *tap_data;
  guint last_allocs;
};

/* Rejects config values that change the maths in ways we do not implement,
 * instead of silently computing something else. */
static gboolean
check_unsupported (GeModelFile * mf, GError ** error)
{
  static const struct { const char *key, *want; } str[] = {
    { "time_embedding_type", "positional" }, { "resnet_time_scale_shift", "default" },
    { "act_fn", "silu" }, { "downsample_type", "conv" }, { "upsample_type", "conv" },
    { "mid_block_type", "UNetMidBlock2D" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (str); i++) {
    const char *v;
    if (!ge_config_string (mf, str[i].key, str[i].want, &v, error))
      return FALSE;
    if (strcmp (v, str[i].want) != 0)
      return ge_fail (error, GE_ERROR_UNSUPPORTED, ge_model_file_path (mf), "%s \"%s\" is not supported (only \"%s\")",
          str[i].key, v, str[i].want);
  }
  static const char *absent[] = { "class_embed_type", "num_class_embeds" };
  for (guint i = 0; i < G_N_ELEMENTS (absent); i++)
    if (ge_config_has (mf, absent[i]))
      return ge_fail (error, GE_ERROR_UNSUPPORTED, ge_model_file_path (mf), "class conditioning (%s) is not supported", absent[i]);
  return TRUE;
}

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

/* Resnet @l of level @i of @kind ("down_blocks", "up_blocks") and, in an
 * attention level, the attention after it; counts their parameters. */
static gboolean
load_layer (GeUNet2D * u, GeModelFile * mf, const char *kind, int i, int l, int in, int out,
    const GeBlockOpts * o, int head_dim, GError ** error)
{
  Level *lv = g_str_equal (kind, "up_blocks") ? &u->up[i] : &u->down[i];
  char *p = g_strdup_printf ("%s.%d.resnets.%d", kind, i, l);
  gboolean ok = ge_resnet_load (mf, p, in, out, o, &lv->resnets[l], error);
  g_free (p);
  if (!ok)
    return FALSE;
  u->n_params += resnet_params (&lv->resnets[l]);
  if (!lv->attn)
    return TRUE;
  p = g_strdup_printf ("%s.%d.attentions.%d", kind, i, l);
  ok = ge_attn_load (mf, p, out, head_dim > 0 ? head_dim : out, o->groups, o->eps, 1.0f,
      &lv->attns[l], error);
  g_free (p);
  if (ok)
    u->n_params += attn_params (&lv->attns[l]);
  return ok;
}

GeUNet2D *
ge_unet2d_new (GeModelFile * mf, GError ** error)
{
  if (strcmp (ge_model_file_class (mf), "UNet2DModel") != 0) {
    g_set_error (error, GE_ERROR, GE_ERROR_UNSUPPORTED,
        "%s: is a %s, not a UNet2DModel", ge_model_file_path (mf), ge_model_file_class (mf));
    return NULL;
  }
  GeUNet2D *u = g_new0 (GeUNet2D, 1);
  u->mf = ge_model_file_ref (mf);
  gint64 in_ch, out_ch, layers, groups, head_dim, ds_pad, temb_dim, ntt;
  double eps, freq_shift, mid_scale;
  gboolean flip, add_attention;
  gint64 *chans = NULL;
  const char **downs = NULL, **ups = NULL;
  int n_ch = 0, n_down = 0, n_up = 0;
  char *p = NULL;
  gboolean ok = check_unsupported (mf, error)
      && ge_config_int (mf, "in_channels", 3, &in_ch, error)
      && ge_config_int (mf, "out_channels", 3, &out_ch, error)
      && ge_config_int (mf, "layers_per_block", 2, &layers, error)
      && ge_config_int (mf, "norm_num_groups", 32, &groups, error)
      && ge_config_int (mf, "downsample_padding", 1, &ds_pad, error)
      && ge_config_int (mf, "time_embedding_dim", 0, &temb_dim, error)
      && ge_config_int (mf, "num_train_timesteps", 1000, &ntt, error)
      && ge_config_double (mf, "norm_eps", 1e-5, &eps, error)
      && ge_config_double (mf, "freq_shift", 0, &freq_shift, error)
      && ge_config_double (mf, "mid_block_scale_factor", 1, &mid_scale, error)
      && ge_config_bool (mf, "flip_sin_to_cos", TRUE, &flip, error)
      && ge_config_bool (mf, "add_attention", TRUE, &add_attention, error)
      && ge_config_bool (mf, "center_input_sample", FALSE, &u->center_input, error)
      && ge_config_int_array (mf, "block_out_channels", &chans, &n_ch, error)
      && ge_config_string_array (mf, "down_block_types", &downs, &n_down, error)
      && ge_config_string_array (mf, "up_block_types", &ups, &n_up, error);
  if (!ok)
    goto fail;
  /* attention_head_dim: absent -> constructor default 8; null -> one head. */
  {
    JsonNode *hn = json_object_get_member (ge_model_file_config (mf), "attention_head_dim");
    if (!hn)
      head_dim = 8;
    else if (JSON_NODE_HOLDS_NULL (hn))
      head_dim = 0;
    else if (!ge_config_int (mf, "attention_head_dim", 8, &head_dim, error))
      goto fail;
  }
  if (!chans) {                 /* diffusers' default */
    static const gint64 def[] = { 224, 448, 672, 896 };
    chans = g_memdup2 (def, sizeof (def));
    n_ch = 4;
  }
  if (!downs || !ups) {
    ge_fail (error, GE_ERROR_UNSUPPORTED, ge_model_file_path (mf), "config lacks down_block_types/up_block_types");
    goto fail;
  }
  if (n_down != n_ch || n_up != n_ch) {
    ge_fail (error, GE_ERROR_UNSUPPORTED, ge_model_file_path (mf), "%d block_out_channels but %d down and %d up blocks",
        n_ch, n_down, n_up);
    goto fail;
  }
  for (int i = 0; i < n_ch; i++)
    if (chans[i] <= 0 || chans[i] > 65536) {
      ge_fail (error, GE_ERROR_UNSUPPORTED, ge_model_file_path (mf), "block_out_channels[%d] = %" G_GINT64_FORMAT, i, chans[i]);
      goto fail;
    }
  if (in_ch <= 0 || out_ch <= 0 || layers <= 0 || layers > 64 || groups <= 0) {
    ge_fail (error, GE_ERROR_UNSUPPORTED, ge_model_file_path (mf), "implausible in/out channels, layers_per_block or groups");
    goto fail;
  }

  u->in_ch = (int) in_ch;
  u->out_ch = (int) out_ch;
  u->n_levels = n_ch;
  u->c0 = (int) chans[0];
  u->temb_dim = temb_dim > 0 ? (int) temb_dim : 4 * u->c0;
  u->num_train_timesteps = (int) ntt;
  u->flip_sin_to_cos = flip;
  u->freq_shift = (float) freq_shift;
  ge_ctx_init (&u->ctx, 0);

#define SUB(...) (g_free (p), p = g_strdup_printf (__VA_ARGS__))
  if (!ge_linear_load (mf, "time_embedding.linear_1", u->c0, u->temb_dim, TRUE, &u->lin1, error)
      || !ge_linear_load (mf, "time_embedding.linear_2", u->temb_dim, u->temb_dim, TRUE, &u->lin2,
          error)
      || !ge_conv_load (mf, "conv_in", u->in_ch, u->c0, 3, 1, 1, TRUE, &u->conv_in, error))
    goto fail;
  u->n_params = conv_params (&u->conv_in) + (gsize) u->temb_dim * (u->c0 + u->temb_dim + 2);

  GeBlockOpts o = { (int) groups, (float) eps, u->temb_dim, 1.0f };
  u->down = g_new0 (Level, n_ch);
  u->up = g_new0 (Level, n_ch);
  int out_c = u->c0;
  for (int i = 0; i < n_ch; i++) {
    Level *lv = &u->down[i];
    int in_c = out_c;
    out_c = (int) chans[i];
    if (strcmp (downs[i], "AttnDownBlock2D") == 0)
      lv->attn = TRUE;
    else if (strcmp (downs[i], "DownBlock2D") != 0) {
      ge_fail (error, GE_ERROR_UNSUPPORTED, ge_model_file_path (mf), "down block type \"%s\" is not supported", downs[i]);
      goto fail;
    }
    lv->n_layers = (int) layers;
    lv->resnets = g_new0 (GeResnet, layers);
    lv->attns = g_new0 (GeAttnBlock, layers);
    for (int l = 0; l < layers; l++)
      if (!load_layer (u, mf, "down_blocks", i, l, l == 0 ? in_c : out_c, out_c, &o,
              (int) head_dim, error))
        goto fail;
    lv->has_sampler = i != n_ch - 1;
    if (lv->has_sampler) {
      if (!ge_downsample_load (mf, SUB ("down_blocks.%d.downsamplers.0", i), out_c,
              (int) ds_pad, &lv->down, error))
        goto fail;
      u->n_params += conv_params (&lv->down.conv);
    }
  }

  {
    /* The mid block's attention groups: attn_norm_num_groups, else the
     * resnet groups (resnet_time_scale_shift is "default" here). */
    gint64 attn_groups;
    if (!ge_config_int (mf, "attn_norm_num_groups", groups, &attn_groups, error))
      goto fail;
    GeBlockOpts mo = o;
    mo.output_scale = (float) mid_scale;
    int c = (int) chans[n_ch - 1];
    if (!ge_mid_block_load (mf, "mid_block", c, &mo, add_attention,
            head_dim > 0 ? (int) head_dim : c, (int) attn_groups, &u->mid, error))
      goto fail;
    u->n_params += resnet_params (&u->mid.res0) + resnet_params (&u->mid.res1)
        + (u->mid.has_attn ? attn_params (&u->mid.attn) : 0);
  }

  out_c = (int) chans[n_ch - 1];
  for (int i = 0; i < n_ch; i++) {
    Level *lv = &u->up[i];
    int prev_c = out_c;
    out_c = (int) chans[n_ch - 1 - i];
    int in_c = (int) chans[MAX (n_ch - 2 - i, 0)];
    if (strcmp (ups[i], "AttnUpBlock2D") == 0)
      lv->attn = TRUE;
    else if (strcmp (ups[i], "UpBlock2D") != 0) {
      ge_fail (error, GE_ERROR_UNSUPPORTED, ge_model_file_path (mf), "up block type \"%s\" is not supported", ups[i]);
      goto fail;
    }
    lv->n_layers = (int) layers + 1;
    lv->resnets = g_new0 (GeResnet, lv->n_layers);
    lv->attns = g_new0 (GeAttnBlock, lv->n_layers);
    for (int l = 0; l < lv->n_layers; l++) {
      int skip_c = l == lv->n_layers - 1 ? in_c : out_c;
      int res_in = l == 0 ? prev_c : out_c;
      if (!load_layer (u, mf, "up_blocks", i, l, res_in + skip_c, out_c, &o, (int) head_dim,
              error))
        goto fail;
    }
    lv->has_sampler = i != n_ch - 1;
    if (lv->has_sampler) {
      if (!ge_upsample_load (mf, SUB ("up_blocks.%d.upsamplers.0", i), out_c, &lv->up, error))
        goto fail;
      u->n_params += conv_params (&lv->up.conv);
    }
  }
  if (!ge_group_norm_load (mf, "conv_norm_out", u->c0, (int) groups, (float) eps,
          &u->norm_out, error)
      || !ge_conv_load (mf, "conv_out", u->c0, u->out_ch, 3, 1, 1, TRUE, &u->conv_out, error))
    goto fail;
  u->n_params += 2 * u->c0 + conv_params (&u->conv_out);
#undef SUB
  g_free (p);
  g_free (chans);
  g_free (downs);
  g_free (ups);
  return u;

fail:
  g_free (p);
  g_free (chans);
  g_free (downs);
  g_free (ups);
  ge_unet2d_free (u);
  return NULL;
}

void
ge_unet2d_free (GeUNet2D * u)
{
  if (!u)
    return;
  for (int i = 0; i < u->n_levels; i++) {
    if (u->down) {
      g_free (u->down[i].resnets);
      g_free (u->down[i].attns);
    }
    if (u->up) {
      g_free (u->up[i].resnets);
      g_free (u->up[i].attns);
    }
  }
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


gboolean
ge_unet2d_forward (GeUNet2D * u, const float *x, int n, int h, int w,
    const float *timesteps, float *out, GError ** error)
{
  const int mult = ge_unet2d_size_multiple (u);
  if (n <= 0 || h <= 0 || w <= 0 || h % mult || w % mult) {
    g_set_error (error, GE_ERROR, GE_ERROR_SHAPE,
        "%s: input %dx%d: a UNet2DModel with %d levels needs sizes that are "
        "multiples of %d", ge_model_file_path (u->mf), w, h, u->n_levels, mult);
    return FALSE;
  }
  GeCtx *ctx = &u->ctx;
  guint allocs0 = ge_arena_n_system_allocs (ctx->arena);
  GeTensor xin = { (float *) x, n, u->in_ch, h, w };
  if (u->center_input) {
    xin = ge_tensor_new (ctx->arena, n, u->in_ch, h, w);
    for (gsize i = 0; i < ge_tensor_numel (&xin); i++)
      xin.data[i] = 2.0f * x[i] - 1.0f;
  }

  /* Time embedding: sinusoids -> linear -> SiLU -> linear; every resnet
   * then applies SiLU to it again, so do that once here. */
  float *t_emb = ge_arena_alloc (ctx->arena, (gsize) n * u->c0);
  float *emb = ge_arena_alloc (ctx->arena, (gsize) n * u->temb_dim);
  float *emb_act = ge_arena_alloc (ctx->arena, (gsize) n * u->temb_dim);
  ge_timestep_embedding (timesteps, n, u->c0, u->flip_sin_to_cos, u->freq_shift,
      10000.0f, t_emb);
  ge_linear_forward (ctx, &u->lin1, t_emb, n, emb_act);
  ge_act (ctx, emb_act, (gsize) n * u->temb_dim, GE_ACT_SILU, 0);
  ge_linear_forward (ctx, &u->lin2, emb_act, n, emb);
  if (u->tap) {
    GeTensor te = { t_emb, n, u->c0, 1, 1 }, e = { emb, n, u->temb_dim, 1, 1 };
    ge_model_tap (u->tap, u->tap_data, &te, "time_proj");
    ge_model_tap (u->tap, u->tap_data, &e, "time_embedding");
  }
  memcpy (emb_act, emb, sizeof (float) * n * u->temb_dim);
  ge_act (ctx, emb_act, (gsize) n * u->temb_dim, GE_ACT_SILU, 0);

  /* Skips live until their up block consumes them; the arena is a stack,
   * so everything stays allocated until the end of the forward. */
  int max_skips = 1;
  for (int i = 0; i < u->n_levels; i++)
    max_skips += u->down[i].n_layers + 1;
  GeTensor *skips = g_newa (GeTensor, max_skips);
  int n_skips = 0;

  GeTensor hcur = ge_conv_forward (ctx, &u->conv_in, &xin);
  ge_model_tap (u->tap, u->tap_data, &hcur, "conv_in");
  skips[n_skips++] = hcur;
  for (int i = 0; i < u->n_levels; i++) {
    const Level *lv = &u->down[i];
    for (int l = 0; l < lv->n_layers; l++) {
      hcur = ge_resnet_forward (ctx, &lv->resnets[l], &hcur, emb_act);
      ge_model_tap (u->tap, u->tap_data, &hcur, "down_blocks.%d.resnets.%d", i, l);
      if (lv->attn) {
        GeTensor a = ge_attn_forward (ctx, &lv->attns[l], &hcur);
        ge_arena_free_floats (ctx->arena, hcur.data);
        hcur = a;
        ge_model_tap (u->tap, u->tap_data, &hcur, "down_blocks.%d.attentions.%d", i, l);
      }
      skips[n_skips++] = hcur;
    }
    if (lv->has_sampler) {
      hcur = ge_downsample_forward (ctx, &lv->down, &hcur);
      skips[n_skips++] = hcur;
    }
    ge_model_tap (u->tap, u->tap_data, &hcur, "down_blocks.%d", i);
  }
  /* The mid block's input is the last skip: it stays allocated. */
  hcur = ge_mid_block_forward (ctx, &u->mid, &hcur, emb_act, u->tap, u->tap_data, "mid_block");
  ge_model_tap (u->tap, u->tap_data, &hcur, "mid_block");
  for (int i = 0; i < u->n_levels; i++) {
    const Level *lv = &u->up[i];
    /* Tensors are freed as soon as they are dead, so the next ones reuse
     * memory that is still in cache. */
    for (int l = 0; l < lv->n_layers; l++) {
      const GeTensor *skip = &skips[--n_skips];
      GeTensor cat = ge_tensor_new (ctx->arena, n, hcur.c + skip->c, hcur.h, hcur.w);
      ge_concat_channels (ctx, &hcur, skip, &cat);
      ge_arena_free_floats (ctx->arena, hcur.data);
      ge_arena_free_floats (ctx->arena, skip->data);
      hcur = ge_resnet_forward (ctx, &lv->resnets[l], &cat, emb_act);
      ge_arena_free_floats (ctx->arena, cat.data);
      if (lv->attn) {
        GeTensor a = ge_attn_forward (ctx, &lv->attns[l], &hcur);
        ge_arena_free_floats (ctx->arena, hcur.data);
        hcur = a;
      }
    }
    if (lv->has_sampler) {
      GeTensor up = ge_upsample_forward (ctx, &lv->up, &hcur);
      ge_arena_free_floats (ctx->arena, hcur.data);
      hcur = up;
    }
    ge_model_tap (u->tap, u->tap_data, &hcur, "up_blocks.%d", i);
  }
  GeConvInput norm_out = ge_group_norm_input (ctx, &u->norm_out, &hcur, GE_ACT_SILU);
  GeTensor y = { out, n, u->out_ch, h, w };
  ge_conv2d_ex (ctx, &u->conv_out, &hcur, &norm_out, &y);

  ge_arena_reset (ctx->arena);
  u->last_allocs = ge_arena_n_system_allocs (ctx->arena) - allocs0;
  return TRUE;
}
