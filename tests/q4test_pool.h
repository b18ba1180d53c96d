/*
** q4test_pool.h -- run independent jobs of a test (NVRTC compiles) on a
** pool of threads: one per CPU, at least 2, at most Q4TEST_POOL_MAX. Each
** thread takes the next job index as it finishes one, so long and short
** jobs even out.
*/
#ifndef Q4TEST_POOL_H
#define Q4TEST_POOL_H

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#define Q4TEST_POOL_MAX 64

typedef struct q4test_pool {
  void (*fn)(int i, void *ctx);
  void *ctx;
  int count;
  atomic_int next;
} q4test_pool;

static inline void *q4test_pool_worker(void *arg) {
  q4test_pool *p = arg;
  for (int i; (i = atomic_fetch_add(&p->next, 1)) < p->count;) p->fn(i, p->ctx);
  return NULL;
}

/* Run fn(i, ctx) for every i in [0, count); returns the threads used. */
static inline int q4test_parallel(int count, void (*fn)(int i, void *ctx), void *ctx) {
  q4test_pool p = {fn, ctx, count, 0};
  const long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  const int nthreads = ncpu < 2 ? 2 : ncpu > Q4TEST_POOL_MAX ? Q4TEST_POOL_MAX : (int)ncpu;
  pthread_t th[Q4TEST_POOL_MAX];
  int started = 0;
  for (int i = 0; i < nthreads; i++) started += pthread_create(&th[started], NULL, q4test_pool_worker, &p) == 0;
  if (!started) q4test_pool_worker(&p);  /* no thread to be had: run them here */
  for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
  return started ? started : 1;
}

#endif
