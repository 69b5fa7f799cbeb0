/* ge-pool.c: a fixed set of workers woken by a generation counter.  Tasks
 * are claimed with an atomic counter, so uneven tasks balance themselves. */
#include "ge-pool.h"

#include <cblas.h>

/* One job per generation.  Two slots: generation g's job stays in place
 * until generation g + 2 is started, which cannot happen before every task
 * of g + 1, and so of g, is done. */
typedef struct {
  GePoolFunc func;
  void *user_data;
  int n_tasks;
} Job;

struct _GePool {
  int n_threads;
  GThread **workers;

  GMutex lock;
  GCond wake;                   /* workers wait here for a new generation */
  GCond done_cond;              /* the caller waits here for the last task */
  gint generation;              /* atomic; written under the lock */
  gint quit;                    /* atomic */

  Job jobs[2];                  /* [generation & 1] */
  /* (generation << 32) | next task: a task is claimed by a compare and
   * swap that also checks the generation, so a worker that wakes late
   * claims nothing of a later job. */
  guint64 claim;
  gint done;                    /* atomic: tasks finished in this generation */
};

/* Ops come back to back (hundreds per U-Net forward), so a worker spins a
 * little before sleeping on the condition variable, and the caller spins
 * before waiting for the last task: a futex wake-up costs tens of
 * microseconds, as much as a small op.  About 50 us of spinning at most.
 *
 * The caller waits for the TASKS, not for the workers: on a loaded machine
 * (more runnable threads than cores) a worker may not run for a whole time
 * slice, and an op whose tasks the caller finished alone must not wait for
 * it to show up. */
#define SPIN_ITERATIONS 20000

static inline void
cpu_relax (void)
{
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause ();
#endif
}

/* Claims and runs the tasks of generation @gen until none is left. */
static void
work (GePool * pool, guint gen, int thread)
{
  for (;;) {
    guint64 v = __atomic_load_n (&pool->claim, __ATOMIC_ACQUIRE);
    if ((guint) (v >> 32) != gen)
      return;
    const Job *job = &pool->jobs[gen & 1];
    const guint task = (guint) v;
    if (task >= (guint) job->n_tasks)
      return;
    if (!__atomic_compare_exchange_n (&pool->claim, &v, v + 1, FALSE, __ATOMIC_ACQ_REL,
            __ATOMIC_ACQUIRE))
      continue;
    job->func (job->user_data, (int) task, thread);
    if (g_atomic_int_add (&pool->done, 1) + 1 == job->n_tasks) {
      g_mutex_lock (&pool->lock);
      g_cond_signal (&pool->done_cond);
      g_mutex_unlock (&pool->lock);
    }
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
    work (pool, seen, index);
  }
  return NULL;
}

void
ge_pool_init_blas (void)
{
  static gsize done = 0;

  /* Once: other threads calling in meanwhile wait here, so no engine BLAS
   * call runs before the setting, nor while it changes. */
  if (g_once_init_enter (&done)) {
    openblas_set_num_threads (1);
    g_once_init_leave (&done, 1);
  }
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
  g_cond_init (&pool->done_cond);
  /* Our tasks call sgemm; OpenBLAS threads inside them would oversubscribe. */
  ge_pool_init_blas ();
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
  g_cond_clear (&pool->done_cond);
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
  const guint gen = (guint) g_atomic_int_get (&pool->generation) + 1;
  Job *job = &pool->jobs[gen & 1];
  job->func = func;
  job->user_data = user_data;
  job->n_tasks = n_tasks;
  g_atomic_int_set (&pool->done, 0);
  /* The job is published before the claim word that names its
   * generation (release), and both before the generation workers wait on. */
  __atomic_store_n (&pool->claim, (guint64) gen << 32, __ATOMIC_RELEASE);
  g_atomic_int_set (&pool->generation, (gint) gen);
  g_cond_broadcast (&pool->wake);
  g_mutex_unlock (&pool->lock);

  work (pool, gen, 0);

  for (int i = 0; i < SPIN_ITERATIONS && g_atomic_int_get (&pool->done) < n_tasks; i++)
    cpu_relax ();
  g_mutex_lock (&pool->lock);
  while (g_atomic_int_get (&pool->done) < n_tasks)
    g_cond_wait (&pool->done_cond, &pool->lock);
  g_mutex_unlock (&pool->lock);
}
