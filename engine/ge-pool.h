/* ge-pool.h: the engine's one thread pool.
 *
 * Ops split their work into independent tasks and call ge_pool_run() once;
 * the calling thread works too and returns when every task is done.  There
 * is no nesting: a task never calls ge_pool_run().
 *
 * OpenBLAS keeps its own threads, and their count is process-global.  The
 * engine calls sgemm from inside its tasks, and several elements (several
 * pipelines) run the engine at once, so the engine sets OpenBLAS to one
 * thread (openblas_set_num_threads (1)) once per process, before its first
 * BLAS call, and never changes it after: a running element never sees the
 * setting change under it.  An application that also uses OpenBLAS
 * directly in the same process gets that setting too; one that raises it
 * afterwards makes each of the engine's threads start OpenBLAS threads.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _GePool GePool;

/* @task runs for task = 0 .. n_tasks-1; @thread is in [0, n_threads) and
 * identifies per-thread scratch space. */
typedef void (*GePoolFunc) (void *user_data, int task, int thread);

/* The once-per-process OpenBLAS setting above.  Every pool calls it when it
 * is created; code that calls BLAS without a pool (the speech model) calls
 * it when it loads. */
void ge_pool_init_blas (void);

/* n_threads <= 0 means one per online processor. */
GePool *ge_pool_new (int n_threads);
void ge_pool_free (GePool * pool);
int ge_pool_n_threads (const GePool * pool);
void ge_pool_run (GePool * pool, int n_tasks, GePoolFunc func, void *user_data);

G_END_DECLS
