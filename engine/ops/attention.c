/* attention.c: softmax(Q^T K * scale) V per head, queries in blocks.
 *
 * Tokens are the columns of channel-major [heads*d, T] matrices, which is
 * what a 1x1 projection of an NCHW tensor gives, so no transposes are
 * materialised: sgemm reads Q transposed.  A block of queries needs a
 * [block, T] score matrix, never [T, T]: 64x64 latents (T = 4096) would
 * otherwise need 64 MB per head.
 */
#include "act.h"
#include "ge-pool.h"

#include <cblas.h>
#include <math.h>

#define SCORE_FLOATS (128 * 1024)

typedef struct {
  const float *q, *k, *v;
  float *out;
  int heads, d, tokens, block, n_blocks;
  float scale;
  float *scratch;
} AttnJob;

/* Max-subtracted softmax of one row, in place; vectorised (ge_expf). */
GE_VECTOR_CLONES static void
softmax_row (float *row, int n)
{
  float m = row[0];
  for (int k = 1; k < n; k++)
    m = row[k] > m ? row[k] : m;
  float sum = 0;
  for (int k = 0; k < n; k++) {
    row[k] = ge_expf (row[k] - m);
    sum += row[k];
  }
  const float inv = 1.0f / sum;
  for (int k = 0; k < n; k++)
    row[k] *= inv;
}

static void
attn_task (void *data, int t, int thread)
{
  const AttnJob *j = data;
  const int h = t / j->n_blocks, b0 = (t % j->n_blocks) * j->block;
  const int nb = MIN (j->block, j->tokens - b0), T = j->tokens, d = j->d;
  const gsize hoff = (gsize) h * d * T;
  float *s = j->scratch + (gsize) thread * j->block * T;

  /* s[nb, T] = Q[:, b0:b0+nb]^T K * scale */
  cblas_sgemm (CblasRowMajor, CblasTrans, CblasNoTrans, nb, T, d, j->scale,
      j->q + hoff + b0, T, j->k + hoff, T, 0.0f, s, T);
  for (int i = 0; i < nb; i++)
    softmax_row (s + (gsize) i * T, T);
  /* out[:, b0:b0+nb] = V s^T */
  cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, d, nb, T, 1.0f,
      j->v + hoff, T, s, T, 0.0f, j->out + hoff + b0, T);
}

void
ge_attention (GeCtx * ctx, const float *q, const float *k, const float *v,
    float *out, int heads, int d, int tokens, float scale)
{
  AttnJob j = { q, k, v, out, heads, d, tokens, 0, 0, scale, NULL };
  j.block = (int) CLAMP (SCORE_FLOATS / MAX (tokens, 1), 16, 256);
  j.block = MIN (j.block, tokens);
  j.n_blocks = (tokens + j.block - 1) / j.block;
  const int n_threads = ge_pool_n_threads (ctx->pool);
  gsize mark = ge_arena_mark (ctx->arena);
  j.scratch = ge_arena_alloc (ctx->arena, (gsize) j.block * tokens * n_threads);
  ge_pool_run (ctx->pool, heads * j.n_blocks, attn_task, &j);
  ge_arena_release (ctx->arena, mark);
}
