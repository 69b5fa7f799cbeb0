/* attention.c: softmax(Q^T K * scale) V per head, queries in blocks.
 *
 * Tokens are the columns of channel-major [heads*d, T] matrices, which is
 * what a 1x1 projection of an NCHW tensor gives, so no transposes are
 * materialised: sgemm reads Q transposed.  A block of queries needs a
 * [block, Tk] score matrix, never [Tq, Tk]: 64x64 latents (T = 4096) would
 * otherwise need 64 MB per head.  Queries and keys may differ in number
 * (cross-attention: Tq image tokens over Tk text tokens).
 */
#include "act.h"
#include "ge-pool.h"
#include "gemm.h"

#include <cblas.h>
#include <math.h>

#define SCORE_FLOATS (128 * 1024)

typedef struct {
  const float *q, *k, *v;
  float *out;
  int heads, d, tq, tk, block, n_blocks;
  float scale;
  float *scratch;
} AttnJob;

static void
attn_task (void *data, int t, int thread)
{
  const AttnJob *j = data;
  const int h = t / j->n_blocks, b0 = (t % j->n_blocks) * j->block;
  const int nb = MIN (j->block, j->tq - b0), Tq = j->tq, Tk = j->tk, d = j->d;
  const gsize qoff = (gsize) h * d * Tq, koff = (gsize) h * d * Tk;
  float *s = j->scratch + (gsize) thread * j->block * Tk;

  /* s[nb, Tk] = Q[:, b0:b0+nb]^T K * scale */
  cblas_sgemm (CblasRowMajor, CblasTrans, CblasNoTrans, nb, Tk, d, j->scale,
      j->q + qoff + b0, Tq, j->k + koff, Tk, 0.0f, s, Tk);
  for (int i = 0; i < nb; i++)
    ge_softmax_row (s + (gsize) i * Tk, Tk);
  /* out[:, b0:b0+nb] = V s^T */
  cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, d, nb, Tk, 1.0f,
      j->v + koff, Tk, s, Tk, 0.0f, j->out + qoff + b0, Tq);
}

/* ---- packed-kernel path (AVX-512) ----------------------------------------
 *
 * Scores are computed transposed, S^T [T, block] = (scale K)^T Q_block, so
 * both products read their B operand straight from channel-major memory
 * (Q, then S^T) and the second one, V S^T, writes the output columns in
 * place: no transposes of large matrices, only K^T and V packed once per
 * head. */

#define PACKED_BLOCK 128

typedef struct {
  const float *q;
  float *out;
  int heads, d, tq, tk, n_blocks;
  const float *kt_packed, *v_packed;    /* per head */
  gsize kt_size, v_size;
  const int *q_off;             /* c * T */
  float *scratch;               /* per thread: S^T + offsets */
  gsize scratch_floats;
  const float *k, *v;
  float scale;
} PackedJob;

static void
pack_task (void *data, int h, int thread)
{
  PackedJob *j = data;
  const gsize hoff = (gsize) h * j->d * j->tk;
  ge_gemm_pack_a_t (j->k + hoff, j->tk, j->d, j->tk, j->scale,
      (float *) j->kt_packed + h * j->kt_size);
  ge_gemm_pack_a (j->v + hoff, j->d, j->tk, j->tk, (float *) j->v_packed + h * j->v_size);
}

/* Softmax down the columns of s [rows, n] (each column one query). */
GE_VECTOR_CLONES static void
softmax_columns (float *s, int rows, int n)
{
  float m[PACKED_BLOCK], sum[PACKED_BLOCK];
  for (int b = 0; b < n; b++) {
    m[b] = s[b];
    sum[b] = 0.0f;
  }
  for (int t = 1; t < rows; t++)
    for (int b = 0; b < n; b++)
      m[b] = s[(gsize) t * n + b] > m[b] ? s[(gsize) t * n + b] : m[b];
  for (int t = 0; t < rows; t++)
    for (int b = 0; b < n; b++) {
      const float e = ge_expf (s[(gsize) t * n + b] - m[b]);
      s[(gsize) t * n + b] = e;
      sum[b] += e;
    }
  for (int b = 0; b < n; b++)
    sum[b] = 1.0f / sum[b];
  for (int t = 0; t < rows; t++)
    for (int b = 0; b < n; b++)
      s[(gsize) t * n + b] *= sum[b];
}

static void
packed_task (void *data, int task, int thread)
{
  const PackedJob *j = data;
  const int h = task / j->n_blocks, b0 = (task % j->n_blocks) * PACKED_BLOCK;
  const int nb = MIN (PACKED_BLOCK, j->tq - b0), Tk = j->tk;
  const gsize qoff = (gsize) h * j->d * j->tq;
  float *s = j->scratch + (gsize) thread * j->scratch_floats;
  int *s_off = (int *) (s + (gsize) Tk * nb);
  for (int t = 0; t < Tk; t++)
    s_off[t] = t * nb;
  ge_gemm_packed (Tk, nb, j->d, j->kt_packed + h * j->kt_size, j->q + qoff + b0, j->q_off,
      s, nb, NULL, FALSE);
  softmax_columns (s, Tk, nb);
  ge_gemm_packed (j->d, nb, Tk, j->v_packed + h * j->v_size, s, s_off, j->out + qoff + b0,
      j->tq, NULL, FALSE);
}

static void
attention_packed (GeCtx * ctx, const float *q, const float *k, const float *v,
    float *out, int heads, int d, int tq, int tk, float scale)
{
  const int n_threads = ge_pool_n_threads (ctx->pool);
  PackedJob j = { q, out, heads, d, tq, tk, (tq + PACKED_BLOCK - 1) / PACKED_BLOCK };
  j.k = k;
  j.v = v;
  j.scale = scale;
  j.kt_size = ge_gemm_packed_a_size (tk, d);
  j.v_size = ge_gemm_packed_a_size (d, tk);
  gsize mark = ge_arena_mark (ctx->arena);
  j.kt_packed = ge_arena_alloc (ctx->arena, j.kt_size * heads);
  j.v_packed = ge_arena_alloc (ctx->arena, j.v_size * heads);
  int *q_off = (int *) ge_arena_alloc (ctx->arena, d);
  for (int c = 0; c < d; c++)
    q_off[c] = c * tq;
  j.q_off = q_off;
  j.scratch_floats = (gsize) tk * PACKED_BLOCK + tk + 16;
  j.scratch = ge_arena_alloc (ctx->arena, j.scratch_floats * n_threads);
  ge_pool_run (ctx->pool, heads, pack_task, &j);
  ge_pool_run (ctx->pool, heads * j.n_blocks, packed_task, &j);
  ge_arena_release (ctx->arena, mark);
}

/* ---- bf16 (ctx->precision) ----------------------------------------------
 *
 * The same two products on the bf16 kernel: S^T = (scale K)^T Q pairs
 * channels (2c, 2c + 1), V S^T pairs keys (2t, 2t + 1).  Q and the
 * softmaxed scores are rounded to bf16 per block as they are paired, K^T
 * and V once per head; scores, softmax and output stay f32. */

typedef struct {
  const float *q;
  float *out;
  int heads, d, tq, tk, n_blocks, dp, tkp;
  guint32 *kt, *v;              /* per head, packed for ge_gemm_bf16 */
  gsize kt_size, v_size;
  const int *q_off, *s_off;     /* pair rows: c * PACKED_BLOCK, p * PACKED_BLOCK */
  float *scratch;               /* per thread: S^T, then the pairs of Q and of S */
  gsize scratch_floats;
  const float *k, *vf;
  float scale;
} Bf16Job;

static void
pack_bf16_task (void *data, int h, int thread)
{
  Bf16Job *j = data;
  const int d = j->d, tk = j->tk;
  const float *k = j->k + (gsize) h * d * tk, *v = j->vf + (gsize) h * d * tk;
  guint32 *kt = j->kt + h * j->kt_size, *vp = j->v + h * j->v_size;
  /* K^T [tk][d]: row t, pair c = (scale K[2c][t], scale K[2c + 1][t]) */
  for (int t = 0; t < (int) (j->kt_size / j->dp); t++)
    for (int c = 0; c < j->dp; c++) {
      const float lo = t < tk ? j->scale * k[(gsize) 2 * c * tk + t] : 0.0f;
      const float hi = t < tk && 2 * c + 1 < d ? j->scale * k[(gsize) (2 * c + 1) * tk + t] : 0.0f;
      kt[((gsize) (t / GE_MR) * j->dp + c) * GE_MR + t % GE_MR] = ge_bf16_pair (lo, hi);
    }
  /* V [d][tk]: row c, pair p = (V[c][2p], V[c][2p + 1]) */
  for (int c = 0; c < (int) (j->v_size / j->tkp); c++)
    for (int p = 0; p < j->tkp; p++) {
      const float lo = c < d ? v[(gsize) c * tk + 2 * p] : 0.0f;
      const float hi = c < d && 2 * p + 1 < tk ? v[(gsize) c * tk + 2 * p + 1] : 0.0f;
      vp[((gsize) (c / GE_MR) * j->tkp + p) * GE_MR + c % GE_MR] = ge_bf16_pair (lo, hi);
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* softmax_columns, then pairs of its rows as bf16 (row pair p at pairs +
 * p * PACKED_BLOCK): what bf16_task needs, in three passes instead of
 * four.  exp to degree 4 (5e-5 relative; the weights are rounded to bf16's
 * 8 bits next), normalised by a reciprocal refined by one Newton step. */
__attribute__((target ("avx512f,avx512bw,avx512vl,avx512bf16")))
static void
softmax_pairs_bf16 (float *s, int rows, int n, guint32 * pairs)
{
  static const short idx_[32] = { 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23,
    8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31
  };
  const __m512i idx = _mm512_loadu_si512 (idx_);
  const __m512 one = _mm512_set1_ps (1.0f), log2e = _mm512_set1_ps (1.44269504088896341f);
  const __m512 c1 = _mm512_set1_ps (0.693359375f), c2 = _mm512_set1_ps (-2.12194440e-4f);
  const __m512 lo = _mm512_set1_ps (-87.0f);
  for (int b = 0; b < n; b += 16) {
    const __mmask16 m = n - b >= 16 ? 0xffff : (__mmask16) ((1u << (n - b)) - 1);
    __m512 mx = _mm512_maskz_loadu_ps (m, s + b), sum = _mm512_setzero_ps ();
    for (int t = 1; t < rows; t++)
      mx = _mm512_max_ps (mx, _mm512_maskz_loadu_ps (m, s + (gsize) t * n + b));
    for (int t = 0; t < rows; t++) {
      float *row = s + (gsize) t * n + b;
      const __m512 x = _mm512_max_ps (_mm512_sub_ps (_mm512_maskz_loadu_ps (m, row), mx), lo);
      const __m512 fn = _mm512_roundscale_ps (_mm512_mul_ps (x, log2e),
          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      __m512 r = _mm512_fnmadd_ps (fn, c1, x);
      r = _mm512_fnmadd_ps (fn, c2, r);
      __m512 p = _mm512_fmadd_ps (_mm512_set1_ps (1.0f / 24), r, _mm512_set1_ps (1.0f / 6));
      p = _mm512_fmadd_ps (p, r, _mm512_set1_ps (0.5f));
      p = _mm512_fmadd_ps (p, r, one);
      p = _mm512_fmadd_ps (p, r, one);
      const __m512 e = _mm512_scalef_ps (p, fn);
      sum = _mm512_add_ps (sum, e);
      _mm512_mask_storeu_ps (row, m, e);
    }
    __m512 inv = _mm512_rcp14_ps (sum);
    inv = _mm512_mul_ps (inv, _mm512_fnmadd_ps (sum, inv, _mm512_set1_ps (2.0f)));
    for (int t = 0; t < rows; t += 2) {
      const __m512 a = _mm512_mul_ps (_mm512_maskz_loadu_ps (m, s + (gsize) t * n + b), inv);
      const __m512 c = t + 1 < rows
          ? _mm512_mul_ps (_mm512_maskz_loadu_ps (m, s + (gsize) (t + 1) * n + b), inv)
          : _mm512_setzero_ps ();
      const __m512i w = (__m512i) _mm512_cvtne2ps_pbh (c, a);
      _mm512_mask_storeu_epi32 (pairs + (gsize) t / 2 * PACKED_BLOCK + b, m,
          _mm512_permutexvar_epi16 (idx, w));
    }
  }
}
#endif

static void
bf16_task (void *data, int task, int thread)
{
  const Bf16Job *j = data;
  const int h = task / j->n_blocks, b0 = (task % j->n_blocks) * PACKED_BLOCK;
  const int nb = MIN (PACKED_BLOCK, j->tq - b0), Tk = j->tk, d = j->d;
  const gsize qoff = (gsize) h * d * j->tq;
  float *s = j->scratch + (gsize) thread * j->scratch_floats;
  guint32 *pairs = (guint32 *) (s + (gsize) Tk * PACKED_BLOCK);
  const float *q = j->q + qoff + b0;
  for (int c = 0; c < j->dp; c++)
    ge_bf16_pairs (q + (gsize) 2 * c * j->tq, 2 * c + 1 < d ? q + (gsize) (2 * c + 1) * j->tq : NULL,
        nb, pairs + (gsize) c * PACKED_BLOCK);
  ge_gemm_bf16 (Tk, nb, j->dp, j->kt + h * j->kt_size, pairs, j->q_off, s, nb, NULL, FALSE,
      FALSE);
#if defined(__x86_64__) && defined(__GNUC__)
  softmax_pairs_bf16 (s, Tk, nb, pairs);
#else
  softmax_columns (s, Tk, nb);
  for (int p = 0; p < j->tkp; p++)
    ge_bf16_pairs (s + (gsize) 2 * p * nb, 2 * p + 1 < Tk ? s + (gsize) (2 * p + 1) * nb : NULL,
        nb, pairs + (gsize) p * PACKED_BLOCK);
#endif
  ge_gemm_bf16 (d, nb, j->tkp, j->v + h * j->v_size, pairs, j->s_off, j->out + qoff + b0, j->tq,
      NULL, FALSE, FALSE);
}

static void
attention_bf16 (GeCtx * ctx, const float *q, const float *k, const float *v,
    float *out, int heads, int d, int tq, int tk, float scale)
{
  const int n_threads = ge_pool_n_threads (ctx->pool);
  Bf16Job j = { q, out, heads, d, tq, tk, (tq + PACKED_BLOCK - 1) / PACKED_BLOCK,
    (d + 1) / 2, (tk + 1) / 2
  };
  j.k = k;
  j.vf = v;
  j.scale = scale;
  j.kt_size = ge_gemm_bf16_a_size (tk, j.dp);
  j.v_size = ge_gemm_bf16_a_size (d, j.tkp);
  gsize mark = ge_arena_mark (ctx->arena);
  j.kt = (guint32 *) ge_arena_alloc (ctx->arena, j.kt_size * heads);
  j.v = (guint32 *) ge_arena_alloc (ctx->arena, j.v_size * heads);
  const int n_off = MAX (j.dp, j.tkp);
  int *off = (int *) ge_arena_alloc (ctx->arena, n_off);
  for (int i = 0; i < n_off; i++)
    off[i] = i * PACKED_BLOCK;
  j.q_off = j.s_off = off;
  j.scratch_floats = (gsize) tk * PACKED_BLOCK + (gsize) MAX (j.dp, j.tkp) * PACKED_BLOCK + 16;
  j.scratch = ge_arena_alloc (ctx->arena, j.scratch_floats * n_threads);
  ge_pool_run (ctx->pool, heads, pack_bf16_task, &j);
  ge_pool_run (ctx->pool, heads * j.n_blocks, bf16_task, &j);
  ge_arena_release (ctx->arena, mark);
}

void
ge_cross_attention (GeCtx * ctx, const float *q, int tq, const float *k, const float *v,
    int tk, float *out, int heads, int d, float scale)
{
  if (tq <= 0 || tk <= 0 || heads <= 0 || d <= 0)
    return;
  if (ge_precision_uses_bf16 (ctx->precision) && ge_gemm_bf16_available ()) {
    attention_bf16 (ctx, q, k, v, out, heads, d, tq, tk, scale);
    return;
  }
  if (ge_gemm_packed_available ()) {
    attention_packed (ctx, q, k, v, out, heads, d, tq, tk, scale);
    return;
  }
  AttnJob j = { q, k, v, out, heads, d, tq, tk, 0, 0, scale, NULL };
  j.block = (int) CLAMP (SCORE_FLOATS / tk, 16, 256);
  j.block = MIN (j.block, tq);
  j.n_blocks = (tq + j.block - 1) / j.block;
  const int n_threads = ge_pool_n_threads (ctx->pool);
  gsize mark = ge_arena_mark (ctx->arena);
  j.scratch = ge_arena_alloc (ctx->arena, (gsize) j.block * tk * n_threads);
  ge_pool_run (ctx->pool, heads * j.n_blocks, attn_task, &j);
  ge_arena_release (ctx->arena, mark);
}

void
ge_attention (GeCtx * ctx, const float *q, const float *k, const float *v,
    float *out, int heads, int d, int tokens, float scale)
{
  ge_cross_attention (ctx, q, tokens, k, v, tokens, out, heads, d, scale);
}
