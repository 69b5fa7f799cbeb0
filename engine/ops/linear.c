#include "ge-ops.h"

#include <cblas.h>

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
