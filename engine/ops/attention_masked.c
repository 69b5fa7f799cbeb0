/* attention_masked.c: multi-head attention on token-major rows with an
 * additive mask, as transformers' eager attention computes it:
 * softmax(scale q·kᵀ + mask) v per head.
 *
 * Text encoders keep their activations as [tokens, heads*d] rows (every
 * projection is a linear over rows), and need a causal and/or padding mask,
 * so this is a sibling of ge_attention rather than a mode of it.  Queries go
 * in blocks so the score matrix never exceeds [block, tk].
 */
#include "act.h"
#include "ge-pool.h"

#include <cblas.h>

#define SCORE_FLOATS (64 * 1024)

typedef struct {
  const float *q, *k, *v;
  float *out;
  int n, heads, d, tq, tk, block, n_blocks;
  float scale;
  const float *mask;
  gsize mask_stride;
  float *scratch;
} MaskedJob;

static void
masked_task (void *data, int t, int thread)
{
  const MaskedJob *j = data;
  const int per_seq = j->heads * j->n_blocks;
  const int b = t / per_seq, h = (t % per_seq) / j->n_blocks;
  const int q0 = (t % j->n_blocks) * j->block, nq = MIN (j->block, j->tq - q0);
  const int ld = j->heads * j->d, tk = j->tk;
  const float *q = j->q + ((gsize) b * j->tq + q0) * ld + (gsize) h * j->d;
  const float *k = j->k + (gsize) b * tk * ld + (gsize) h * j->d;
  const float *v = j->v + (gsize) b * tk * ld + (gsize) h * j->d;
  float *o = j->out + ((gsize) b * j->tq + q0) * ld + (gsize) h * j->d;
  float *s = j->scratch + (gsize) thread * j->block * tk;

  /* s[nq, tk] = scale q kᵀ (+ mask) */
  cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, nq, tk, j->d, j->scale,
      q, ld, k, ld, 0.0f, s, tk);
  if (j->mask) {
    const float *m = j->mask + b * j->mask_stride + (gsize) q0 * tk;
    for (gsize i = 0; i < (gsize) nq * tk; i++)
      s[i] += m[i];
  }
  for (int i = 0; i < nq; i++)
    ge_softmax_row (s + (gsize) i * tk, tk);
  /* o[nq, d] = s v */
  cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, j->d, tk, 1.0f,
      s, tk, v, ld, 0.0f, o, ld);
}

void
ge_attention_masked (GeCtx * ctx, const float *q, const float *k, const float *v,
    float *out, int n, int heads, int d, int tq, int tk, float scale,
    const float *mask, gsize mask_stride)
{
  if (n <= 0 || heads <= 0 || d <= 0 || tq <= 0 || tk <= 0)
    return;
  MaskedJob j = { q, k, v, out, n, heads, d, tq, tk, 0, 0, scale, mask, mask_stride, NULL };
  j.block = MIN ((int) CLAMP (SCORE_FLOATS / tk, 16, 256), tq);
  j.n_blocks = (tq + j.block - 1) / j.block;
  const int n_threads = ge_pool_n_threads (ctx->pool);
  gsize mark = ge_arena_mark (ctx->arena);
  j.scratch = ge_arena_alloc (ctx->arena, (gsize) j.block * tk * n_threads);
  ge_pool_run (ctx->pool, n * heads * j.n_blocks, masked_task, &j);
  ge_arena_release (ctx->arena, mark);
}
