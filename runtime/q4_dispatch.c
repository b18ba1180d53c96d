/*
** q4_dispatch.c -- q4_matmul: pick the kernel for a shape and M bucket
** (tuned winner, else default) and launch it (scratch: q4_workspace.c).
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "q4_error.h"
#include "q4_handle.h"

int q4_blas_ready(q4_handle *h) {
  if (h->blas) return 1;
  if (h->blas_missing[0]) return 0;
  if (q4_cublas_open(&h->blas) == Q4_OK) return 1;
  snprintf(h->blas_missing, sizeof h->blas_missing, "%s", q4_last_error());
  q4_err_clear();
  q4_log(Q4_LOG_INFO, "%s; two-pass kernels (q4_dqgemm) will not be used", h->blas_missing);
  q4gen_set_cublas(h->gen, 0);
  return 0;
}

q4_status q4_default_variant(q4_handle *h, const q4_shape *s, int bucket, q4_variant *v) {
  q4_status st = q4gen_default(h->gen, s, h->arch, bucket, v);
  if (st || v->chunk_n == 0 || q4_blas_ready(h)) return st;
  q4_variant_free(v);
  return q4gen_default(h->gen, s, h->arch, bucket, v);
}

/* The variant to use: the database's winner if it still renders to the
** source that was tuned, else the templates' default. */
static q4_status choose_variant(q4_handle *h, const q4_shape *s, int bucket, q4_variant *v, int *tuned) {
  int found = 0;
  double us = 0;
  memset(v, 0, sizeof *v);
  q4_status st = q4db_winner_get(h->db, h->device_id, s, bucket, v, &us, &found);
  if (st) return st;
  if (found) {
    char tuned_hash[Q4_HASH_MAX];
    memcpy(tuned_hash, v->hash, sizeof tuned_hash);
    st = q4gen_render(h->gen, s, h->arch, v);
    if (!st && v->chunk_n && !q4_blas_ready(h)) {
      /* tuned where cuBLAS loaded, run where it does not */
      q4_log(Q4_LOG_INFO, "tuned winner %s[%s] needs cuBLAS; using the default", v->tmpl, v->params);
    } else if (!st && !strcmp(tuned_hash, v->hash)) {
      *tuned = 1;
      q4_log(Q4_LOG_DEBUG, "%s N=%d K=%d g=%d M<=%d: tuned %s[%s] (%.1f us)", q4_format_name(s->format),
             s->n, s->k, s->group_size, bucket, v->tmpl, v->params, us);
      return Q4_OK;
    } else {
      q4_log(Q4_LOG_INFO, "tuned winner %s[%s] no longer matches its template; using the default",
             v->tmpl, v->params);
    }
    q4_variant_free(v);
    memset(v, 0, sizeof *v);
  }
  *tuned = 0;
  st = q4_default_variant(h, s, bucket, v);
  if (!st)
    q4_log(Q4_LOG_DEBUG, "%s N=%d K=%d g=%d M<=%d: untuned, default %s[%s]", q4_format_name(s->format),
           s->n, s->k, s->group_size, bucket, v->tmpl, v->params);
  return st;
}

q4_status q4_plan_get(q4_handle *h, const q4_shape *s, int m, q4_plan **out) {
  const int bucket = q4_m_bucket(m);
  for (q4_plan *p = h->plans; p; p = p->next)
    if (p->m_bucket == bucket && q4_shape_same(&p->shape, s)) {
      *out = p;
      return Q4_OK;
    }
  q4_plan *p = calloc(1, sizeof *p);
  if (!p) return q4_err(Q4_ERR_NO_MEMORY, "out of host memory");
  q4_variant v;
  q4_status st = choose_variant(h, s, bucket, &v, &p->tuned);
  if (!st) st = q4_kernel_get(h, &v, &p->kernel);
  q4_variant_free(&v);
  if (st) {
    free(p);
    return st;
  }
  p->shape = *s;
  p->m_bucket = bucket;
  p->next = h->plans;
  h->plans = p;
  *out = p;
  return Q4_OK;
}

/* Act-order weights, for a kernel that reads x in the weights' row order
** (one with a gather kernel): xp = x's columns gathered through perm, the
** x the kernel then takes. xp holds m * K halves. */
static q4_status gather_x(q4_handle *h, const q4_kernel *k, const q4_weights *w, const void *x, CUdeviceptr xp,
                          int m, CUstream stream) {
  CUdeviceptr xs = (CUdeviceptr)x, pe = (CUdeviceptr)w->perm;
  void *args[] = {&xs, &pe, &xp};
  /* C.gather_x gathers every column whatever the grid's height. Above 64
  ** rows of x and for K up to 16384, where it stages a row in shared
  ** memory, a block a row; else a block per row and 2048 columns, from
  ** global memory (more blocks for a few rows, where the staged gather
  ** took 2 to 5 % longer at M = 9) */
  const unsigned blocks_y = m > 64 && w->k <= 16384 ? 1 : (unsigned)((w->k + 2047) / 2048);
  return q4_cuda_check(h->cu->LaunchKernel(k->gather, (unsigned)m, blocks_y, 1, 256, 1, 1, 0, stream, args, NULL),
                       "cuLaunchKernel (gathering act-order x)");
}

/* Two-pass variants: expand chunk_n columns of W to fp16, multiply them
** with cuBLAS into the matching columns of y, next chunk. */
static q4_status launch_two_pass(q4_handle *h, const q4_kernel *k, const q4_weights *w, const void *x, void *y,
                                 int m, CUstream stream) {
  const q4_variant *v = &k->v;
  q4_status st;
  if (!q4_blas_ready(h))
    return q4_err(Q4_ERR_NO_DRIVER, "%s[%s] needs cuBLAS: %s", v->tmpl, v->params, h->blas_missing);
  q4_workspace *ws;
  const size_t xperm = w->perm ? (size_t)m * w->k * 2 : 0;
  if ((st = q4_workspace_for(h, stream, 0, 0, (size_t)w->k * v->chunk_n * 2, xperm, &ws))) return st;
  if (w->perm) {  /* act-order: x's columns in the weights' row order, once */
    if (!k->gather) return q4_err(Q4_ERR_TEMPLATE, "%s[%s] has no gather kernel for act-order weights", v->tmpl, v->params);
    if ((st = gather_x(h, k, w, x, ws->xperm, m, stream))) return st;
    x = (const void *)ws->xperm;
  }
  for (int n0 = 0; n0 < w->n; n0 += v->chunk_n) {
    int cols = w->n - n0 < v->chunk_n ? w->n - n0 : v->chunk_n;
    CUdeviceptr qw = (CUdeviceptr)w->qweight, sc = (CUdeviceptr)w->scales, ze = (CUdeviceptr)w->zeros;
    CUdeviceptr ma = (CUdeviceptr)w->mask, chunk = ws->chunk;
    int first = n0;
    void *args[] = {&qw, &sc, &ze, &ma, &chunk, &first, &cols};
    const unsigned gx = (unsigned)((cols + v->tile_n - 1) / v->tile_n), gy = (unsigned)(w->k / 8);
    st = q4_cuda_check(h->cu->LaunchKernel(k->fn, gx, gy, 1, (unsigned)v->threads, 1, 1, 0, stream, args, NULL),
                       "cuLaunchKernel");
    if (!st) st = q4_cublas_gemm(h->blas, stream, m, cols, w->k, (CUdeviceptr)x, w->k, chunk, cols,
                                 (CUdeviceptr)y + (size_t)n0 * 2, w->n);
    if (st) return st;
  }
  return Q4_OK;
}

/* Launch a single-pass kernel; with early launches on, as a programmatic
** dependent of the kernel before it on the stream (its prologue runs while
** that kernel finishes, and it waits for it before reading x). */
static q4_status launch_single(q4_handle *h, CUfunction fn, unsigned gx, unsigned gy, unsigned gz,
                               unsigned threads, unsigned smem, CUstream stream, void **args) {
  if (!h->early_launch)
    return q4_cuda_check(h->cu->LaunchKernel(fn, gx, gy, gz, threads, 1, 1, smem, stream, args, NULL),
                         "cuLaunchKernel");
  CUlaunchAttribute attr;
  memset(&attr, 0, sizeof attr);
  attr.id = CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
  attr.value.programmaticStreamSerializationAllowed = 1;
  const CUlaunchConfig cfg = {gx, gy, gz, threads, 1, 1, smem, stream, &attr, 1};
  return q4_cuda_check(h->cu->LaunchKernelEx(&cfg, fn, args, NULL), "cuLaunchKernelEx");
}

q4_status q4_set_early_launch(q4_handle *h, int on) {
  q4_err_clear();
  if (!h) return q4_err(Q4_ERR_INVALID_ARG, "q4_set_early_launch: handle is NULL");
  if (on != 0 && on != 1) return q4_err(Q4_ERR_INVALID_ARG, "q4_set_early_launch: on is %d, not 0 or 1", on);
  if (on && h->arch < 90)
    return q4_err(Q4_ERR_UNSUPPORTED,
                  "early launch needs programmatic dependent launch, compute capability 9.0 or newer; "
                  "%s is sm_%d", h->info.name, h->arch);
  pthread_mutex_lock(&h->lock);
  h->early_launch = on;
  pthread_mutex_unlock(&h->lock);
  return Q4_OK;
}

q4_status q4_launch(q4_handle *h, const q4_kernel *k, const q4_weights *w, const void *x, void *y,
                    int m, CUstream stream) {
  const q4_variant *v = &k->v;
  if (v->chunk_n) return launch_two_pass(h, k, w, x, y, m, stream);
  const unsigned gx = (unsigned)((w->n + v->tile_n - 1) / v->tile_n);
  const unsigned gy = (unsigned)((m + v->tile_m - 1) / v->tile_m);
  if (gy > 65535) return q4_err(Q4_ERR_UNSUPPORTED, "M=%d needs more than 65535 row tiles", m);
  /* a variant holding whole rows of x in shared memory is built for m_max rows at most */
  if (v->smem_row && m > v->m_max)
    return q4_err(Q4_ERR_UNSUPPORTED, "%s[%s] holds at most %d rows of x, not M=%d", v->tmpl, v->params, v->m_max, m);
  CUdeviceptr partials = 0, counters = 0;
  const int gathers = w->perm && k->gather;  /* act-order x gathered ahead (else in the kernel's loads) */
  const int splits = v->split_k > 1 && !v->split_cluster;
  if (splits || gathers) {
    q4_workspace *ws = NULL;
    q4_status st = q4_workspace_for(h, stream, splits ? (size_t)v->split_k * m * w->n * 4 : 0,
                                    splits ? (size_t)gx * gy : 0, 0, gathers ? (size_t)m * w->k * 2 : 0, &ws);
    if (!st && gathers) st = gather_x(h, k, w, x, ws->xperm, m, stream);
    if (st) return st;
    if (gathers) x = (const void *)ws->xperm;
    if (splits) partials = ws->partials, counters = ws->counters;
  }
  CUdeviceptr qw = (CUdeviceptr)w->qweight, sc = (CUdeviceptr)w->scales, ze = (CUdeviceptr)w->zeros;
  CUdeviceptr ma = (CUdeviceptr)w->mask, pe = (CUdeviceptr)w->perm, xp = (CUdeviceptr)x, yp = (CUdeviceptr)y;
  int mm = m;
  void *args[] = {&qw, &sc, &ze, &ma, &pe, &xp, &yp, &mm, &partials, &counters};
  return launch_single(h, k->fn, gx, gy, (unsigned)v->split_k, (unsigned)v->threads,
                       (unsigned)q4_variant_smem(v, m), stream, args);
}

q4_status q4_matmul(q4_handle *h, const q4_weights *w, const void *x, void *y, int m, void *stream) {
  q4_err_clear();
  if (!h) return q4_err(Q4_ERR_INVALID_ARG, "q4_matmul: handle is NULL");
  q4_status st = q4_check_args(w, x, y, m);
  if (st) return st;
  const q4_shape s = q4_shape_of(w);
  pthread_mutex_lock(&h->lock);
  if (!(st = q4_ctx_push(h))) {
    q4_plan *p;
    st = q4_plan_get(h, &s, m, &p);
    if (!st) st = q4_launch(h, p->kernel, w, x, y, m, (CUstream)stream);
    q4_ctx_pop(h);
  }
  pthread_mutex_unlock(&h->lock);
  return st;
}

q4_status q4_kernel_name(q4_handle *h, const q4_weights *w, int m, char *buf, size_t bufsize, int *tuned) {
  q4_err_clear();
  if (!h || !buf || !bufsize) return q4_err(Q4_ERR_INVALID_ARG, "q4_kernel_name: NULL argument");
  q4_status st = q4_weights_check(w);
  if (st) return st;
  if (m <= 0) return q4_err(Q4_ERR_INVALID_ARG, "M=%d: must be at least 1", m);
  const q4_shape s = q4_shape_of(w);
  pthread_mutex_lock(&h->lock);
  if (!(st = q4_ctx_push(h))) {
    q4_plan *p;
    st = q4_plan_get(h, &s, m, &p);
    if (!st) {
      snprintf(buf, bufsize, "%s[%s]", p->kernel->v.tmpl, p->kernel->v.params);
      if (tuned) *tuned = p->tuned;
    }
    q4_ctx_pop(h);
  }
  pthread_mutex_unlock(&h->lock);
  return st;
}
