#include "ge-ops.h"
#include "ge-pool.h"
#include "gemm.h"

#include <cblas.h>
#include <string.h>

/* Time embeddings and projections of a handful of rows: one sgemm, no pool. */
void
ge_linear (GeCtx * ctx, const float *x, int rows, int in, const float *w,
    const float *b, int out, float *y)
{
  cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, rows, out, in, 1.0f,
      x, in, w, in, 0.0f, y, out);
  if (b)
    for (int r = 0; r < rows; r++)
      for (int o = 0; o < out; o++)
        y[(gsize) r * out + o] += b[o];
}

/* Rows of x per task of the 16-bit path: each task converts all of W once
 * (NR columns of W^T at a time, in L1) and runs its rows over it, so the
 * conversion costs about 1/ROWS of the multiply-adds. */
#define ROWS 256
/* Output columns per task when there are few rows (time embeddings): the
 * tasks split W instead. */
#define COLS 256

typedef struct {
  const float *x, *b;
  const void *w;
  GeDType dtype;
  float *y;
  int rows, in, out, row_tasks, rows_per, cols_per;
  float *scratch;               /* per thread: packed rows of x, then the B panel */
  gsize scratch_floats;
} LinJob;

static void
linear16_task (void *data, int t, int thread)
{
  const LinJob *j = data;
  const int r0 = t % j->row_tasks * j->rows_per, c0 = t / j->row_tasks * j->cols_per;
  const int m = MIN (j->rows_per, j->rows - r0), n = MIN (j->cols_per, j->out - c0);
  if (m <= 0 || n <= 0)
    return;
  float *ap = j->scratch + (gsize) thread * j->scratch_floats;
  float *bp = ap + ge_gemm_packed_a_size (j->rows_per, j->in);
  float *y = j->y + (gsize) r0 * j->out + c0;
  ge_gemm_pack_a (j->x + (gsize) r0 * j->in, m, j->in, j->in, ap);
  if (j->b)                     /* the bias first, as cblas callers add it last: y = b + x W^T */
    for (int r = 0; r < m; r++)
      memcpy (y + (gsize) r * j->out, j->b + c0, sizeof (float) * n);
  const gsize esz = j->dtype == GE_DTYPE_F32 ? 4 : 2;
  ge_gemm_packed_bt16 (m, n, j->in, ap, (const guint8 *) j->w + esz * (gsize) c0 * j->in,
      j->dtype, j->in, y, j->out, j->b != NULL, bp);
}

void
ge_linear_ex (GeCtx * ctx, const float *x, int rows, int in, const void *w, GeDType dtype,
    const float *b, int out, float *y)
{
  /* F32 W takes the packed kernel too where it runs, so that a model
   * gives the same bits with F16 weights as with the same numbers in F32. */
  if (dtype == GE_DTYPE_F32 && (guintptr) w % sizeof (float) == 0
      && !ge_gemm_packed_available ()) {
    ge_linear (ctx, x, rows, in, w, b, out, y);
    return;
  }
  const gsize mark = ge_arena_mark (ctx->arena);
  if (!ge_gemm_packed_available ()) {
    /* OpenBLAS: W converted a block of rows at a time (bounded scratch),
     * each block a column range of y. */
    const int blk = MAX (1, (int) MIN ((gsize) out, (gsize) (1 << 18) / MAX (in, 1)));
    float *wf = ge_arena_alloc (ctx->arena, (gsize) blk * in);
    for (int o0 = 0; o0 < out; o0 += blk) {
      const int n = MIN (blk, out - o0);
      const gsize esz = dtype == GE_DTYPE_F32 ? 4 : 2;
      ge_half_to_f32 ((const guint8 *) w + esz * (gsize) o0 * in, dtype, (gsize) n * in, wf);
      cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, rows, n, in, 1.0f,
          x, in, wf, in, 0.0f, y + o0, out);
    }
    if (b)
      for (int r = 0; r < rows; r++)
        for (int o = 0; o < out; o++)
          y[(gsize) r * out + o] += b[o];
    ge_arena_release (ctx->arena, mark);
    return;
  }
  LinJob j = { x, b, w, dtype, y, rows, in, out };
  j.rows_per = MIN (rows, ROWS);
  j.row_tasks = (rows + j.rows_per - 1) / j.rows_per;
  /* Few row tasks: split the outputs too (whole register panels). */
  const int n_threads = ge_pool_n_threads (ctx->pool);
  j.cols_per = out;
  if (j.row_tasks < 2 * n_threads)
    j.cols_per = MAX (COLS, (out / (2 * n_threads) + GE_NR - 1) / GE_NR * GE_NR);
  const int col_tasks = (out + j.cols_per - 1) / j.cols_per;
  j.scratch_floats = ge_gemm_packed_a_size (j.rows_per, in) + GE_GEMM_BT16_SCRATCH;
  j.scratch = ge_arena_alloc (ctx->arena, j.scratch_floats * n_threads);
  ge_pool_run (ctx->pool, j.row_tasks * col_tasks, linear16_task, &j);
  ge_arena_release (ctx->arena, mark);
}
