/* ge-pool.h: the engine's one thread pool.
 *
 * Ops split their work into independent tasks and call ge_pool_run() once;
 * the calling thread works too and returns when every task is done.  There
 * is no nesting: a task never calls ge_pool_run().
 *
 * OpenBLAS keeps its own threads, and their count is process-global.  The
 * engine calls sgemm from inside its tasks, so creating a pool sets OpenBLAS
 * to one thread (openblas_set_num_threads (1)); an application that also
 * uses OpenBLAS directly in the same process gets that setting too.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _GePool GePool;

/* @task runs for task = 0 .. n_tasks-1; @thread is in [0, n_threads) and
 * identifies per-thread scratch space. */
typedef void (*GePoolFunc) (void *user_data, int task, int thread);

/* n_threads <= 0 means one per online processor. */
GePool *ge_pool_new (int n_threads);
void ge_pool_free (GePool * pool);
int ge_pool_n_threads (const GePool * pool);
void ge_pool_run (GePool * pool, int n_tasks, GePoolFunc func, void *user_data);

G_END_DECLS
