/* ge-pool.c: a fixed set of workers woken by a generation counter.  Tasks
 * are claimed with an atomic counter, so uneven tasks balance themselves. */
#include "ge-pool.h"

#include <cblas.h>

struct _GePool {
  int n_threads;
  GThread **workers;

  GMutex lock;
  GCond wake;                   /* workers wait here for a new generation */
  GCond done;                   /* the caller waits here for stragglers */
  gint generation;              /* atomic; written under the lock */
  gint quit;                    /* atomic */

  GePoolFunc func;
  void *user_data;
  int n_tasks;
  gint next_task;               /* atomic */
  gint n_busy;                  /* atomic: workers still inside this generation */
};

/* Ops come back to back (hundreds per U-Net forward), so a worker spins a
 * little before sleeping on the condition variable, and the caller spins
 * before waiting for stragglers: a futex wake-up costs tens of
 * microseconds, as much as a small op.  About 50 us of spinning at most. */
#define SPIN_ITERATIONS 20000

static inline void
cpu_relax (void)
{
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause ();
#endif
}

static void
work (GePool * pool, int thread)
{
  for (;;) {
    int task = g_atomic_int_add (&pool->next_task, 1);
    if (task >= pool->n_tasks)
      break;
    pool->func (pool->user_data, task, thread);
  }
}

typedef struct {
  GePool *pool;
  int index;
} WorkerArg;

static gpointer
worker_main (gpointer data)
{
  WorkerArg *arg = data;
  GePool *pool = arg->pool;
  int index = arg->index;
  g_free (arg);
  guint seen = 0;

  for (;;) {
    for (int i = 0; i < SPIN_ITERATIONS && (guint) g_atomic_int_get (&pool->generation) == seen
        && !g_atomic_int_get (&pool->quit); i++)
      cpu_relax ();
    g_mutex_lock (&pool->lock);
    while (!g_atomic_int_get (&pool->quit) && (guint) g_atomic_int_get (&pool->generation) == seen)
      g_cond_wait (&pool->wake, &pool->lock);
    g_mutex_unlock (&pool->lock);
    if (g_atomic_int_get (&pool->quit))
      break;
    seen = (guint) g_atomic_int_get (&pool->generation);

    work (pool, index);

    if (g_atomic_int_dec_and_test (&pool->n_busy)) {
      g_mutex_lock (&pool->lock);
      g_cond_signal (&pool->done);
      g_mutex_unlock (&pool->lock);
    }
  }
  return NULL;
}

GePool *
ge_pool_new (int n_threads)
{
  GePool *pool = g_new0 (GePool, 1);
  if (n_threads <= 0)
    n_threads = (int) g_get_num_processors ();
  pool->n_threads = MAX (n_threads, 1);
  g_mutex_init (&pool->lock);
  g_cond_init (&pool->wake);
  g_cond_init (&pool->done);
  /* Our tasks call sgemm; OpenBLAS threads inside them would oversubscribe. */
  openblas_set_num_threads (1);
  pool->workers = g_new0 (GThread *, pool->n_threads);
  for (int i = 1; i < pool->n_threads; i++) {
    WorkerArg *arg = g_new (WorkerArg, 1);
    arg->pool = pool;
    arg->index = i;
    pool->workers[i] = g_thread_new ("ge-worker", worker_main, arg);
  }
  return pool;
}

void
ge_pool_free (GePool * pool)
{
  if (!pool)
    return;
  g_mutex_lock (&pool->lock);
  g_atomic_int_set (&pool->quit, TRUE);
  g_cond_broadcast (&pool->wake);
  g_mutex_unlock (&pool->lock);
  for (int i = 1; i < pool->n_threads; i++)
    g_thread_join (pool->workers[i]);
  g_free (pool->workers);
  g_mutex_clear (&pool->lock);
  g_cond_clear (&pool->wake);
  g_cond_clear (&pool->done);
  g_free (pool);
}

int
ge_pool_n_threads (const GePool * pool)
{
  return pool->n_threads;
}

void
ge_pool_run (GePool * pool, int n_tasks, GePoolFunc func, void *user_data)
{
  if (n_tasks <= 0)
    return;
  if (pool->n_threads == 1 || n_tasks == 1) {
    for (int t = 0; t < n_tasks; t++)
      func (user_data, t, 0);
    return;
  }
  g_mutex_lock (&pool->lock);
  pool->func = func;
  pool->user_data = user_data;
  pool->n_tasks = n_tasks;
  g_atomic_int_set (&pool->next_task, 0);
  g_atomic_int_set (&pool->n_busy, pool->n_threads - 1);
  /* The job's fields are published before the generation a spinning
   * worker reads (atomic ops are full barriers in GLib). */
  g_atomic_int_inc (&pool->generation);
  g_cond_broadcast (&pool->wake);
  g_mutex_unlock (&pool->lock);

  work (pool, 0);

  for (int i = 0; i < SPIN_ITERATIONS && g_atomic_int_get (&pool->n_busy) > 0; i++)
    cpu_relax ();
  g_mutex_lock (&pool->lock);
  while (g_atomic_int_get (&pool->n_busy) > 0)
    g_cond_wait (&pool->done, &pool->lock);
  g_mutex_unlock (&pool->lock);
}
