/*
** test_threads.c -- one handle, several threads: q4tune.h promises that a
** handle may be used from several threads. Each thread takes its own
** weights (a shape and format of its own, so that plans are made, kernels
** compiled and split-K workspaces grown while the others run products)
** and its own stream, and checks every product against the reference.
** Three of them have weights of one size in three kinds (asymmetric,
** symmetric, act-order), which must not share plans.
**
** Needs a GPU (prints "skipped" without one). A fresh database, so every
** kernel is a default compiled in this run.
*/
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "q4_bed.h"
#include "q4_handle.h"
#include "q4test.h"
#include "q4tune.h"

#define ROUNDS 3
static const int m_values[] = {1, 17, 100, 300};
#define M_COUNT (int)(sizeof m_values / sizeof m_values[0])

typedef struct worker {
  q4_handle *h;
  q4_shape shape;
  int products, passed;     /* products checked, and within the error bound */
  q4_status st;             /* the first failure that ended the thread's run */
  char why[256];
} worker;

/* A product through q4_matmul on the bed's stream (as `check` runs it). */
static q4_status run_matmul(void *ctx, q4_bed *b, const q4_weights *w, CUstream s) {
  return q4_matmul((q4_handle *)ctx, w, (const void *)b->x, (void *)b->y, b->m, s);
}

static void *work(void *arg) {
  worker *t = arg;
  q4_bed bed;
  /* data of its own for each shape and kind of weights */
  const unsigned seed = 1000u + (unsigned)t->shape.n + (unsigned)t->shape.format + 7u * (unsigned)t->shape.flags;
  t->st = q4_bed_open(&bed, t->h, &t->shape, seed, 1);
  for (int r = 0; !t->st && r < ROUNDS; r++)
    for (int j = 0; !t->st && j < M_COUNT; j++) {
      /* rounds run the M values in turn, each thread from its own start */
      const int m = m_values[(j + r + t->shape.format) % M_COUNT];
      double err = INFINITY;
      t->st = q4_bed_set_m(&bed, m, (uint64_t)(r * 97 + j));
      if (!t->st) t->st = q4_bed_verify(&bed, run_matmul, t->h, &err);
      if (t->st) break;
      t->products++;
      if (err <= Q4_REL_ERROR_MAX) t->passed++;
      else fprintf(stderr, "test_threads: %s N=%d K=%d g=%d M=%d: relative error %.3g\n",
                   q4_format_name(t->shape.format), t->shape.n, t->shape.k, t->shape.group_size, m, err);
    }
  if (t->st) snprintf(t->why, sizeof t->why, "%s", q4_last_error());  /* (the error is per thread) */
  if (bed.h) q4_bed_close(&bed);
  return NULL;
}

int main(void) {
  make_tmpdir("threads");
  q4_handle *h = q4test_gpu("test_threads");
  if (h) {
    printf("test_threads: on %s (sm_%d)\n", h->info.name, h->arch);
    /* two threads on one shape, sharing its plans; the others alone (the
    ** three of 11008 x 4096 g128 each in a kind of their own) */
    worker t[] = {
        {.h = h, .shape = {Q4_FORMAT_Q4, 4096, 4096, 4096, 0}},
        {.h = h, .shape = {Q4_FORMAT_Q4, 4096, 4096, 4096, 0}},
        {.h = h, .shape = {Q4_FORMAT_Q4, 11008, 4096, 128, 0}},
        {.h = h, .shape = {Q4_FORMAT_Q4, 11008, 4096, 128, Q4_SHAPE_SYMMETRIC}},
        {.h = h, .shape = {Q4_FORMAT_Q4, 11008, 4096, 128, Q4_SHAPE_ACT_ORDER}},
        {.h = h, .shape = {Q4_FORMAT_Q4S, 4096, 11008, 11008, 0}},
        {.h = h, .shape = {Q4_FORMAT_Q4S, 5120, 4096, 128, Q4_SHAPE_SYMMETRIC}},
    };
    const int count = (int)(sizeof t / sizeof t[0]);
    pthread_t tid[sizeof t / sizeof t[0]];
    for (int i = 0; i < count; i++) CHECK(pthread_create(&tid[i], NULL, work, &t[i]) == 0);
    for (int i = 0; i < count; i++) pthread_join(tid[i], NULL);
    for (int i = 0; i < count; i++) {
      CHECK_MSG(t[i].st == Q4_OK, "thread %d: %s: %s", i, q4_status_name(t[i].st), t[i].why);
      CHECK_MSG(t[i].products == ROUNDS * M_COUNT && t[i].passed == t[i].products, "thread %d: %d of %d passed", i,
                t[i].passed, t[i].products);
      printf("test_threads: thread %d, %s N=%d K=%d g=%d flags=%d: %d of %d products right\n", i,
             q4_format_name(t[i].shape.format), t[i].shape.n, t[i].shape.k, t[i].shape.group_size, t[i].shape.flags,
             t[i].passed, ROUNDS * M_COUNT);
    }
    q4_destroy(h);
  }
  remove_tmpdir();
  return q4test_done("test_threads");
}
