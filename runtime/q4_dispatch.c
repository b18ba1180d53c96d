/*
** q4_dispatch.c -- q4_matmul: pick the kernel for a shape and M bucket
** (tuned winner, else default), keep split-K scratch per stream, launch.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "q4_error.h"
#include "q4_handle.h"

static int same_shape(const q4_shape *a, const q4_shape *b) {
  return a->format == b->format && a->n == b->n && a->k == b->k && a->group_size == b->group_size;
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
    if (!st && !strcmp(tuned_hash, v->hash)) {
      *tuned = 1;
      q4_log(Q4_LOG_DEBUG, "%s N=%d K=%d g=%d M<=%d: tuned %s[%s] (%.1f us)", q4_format_name(s->format),
             s->n, s->k, s->group_size, bucket, v->tmpl, v->params, us);
      return Q4_OK;
    }
    q4_log(Q4_LOG_INFO, "tuned winner %s[%s] no longer matches its template; using the default",
           v->tmpl, v->params);
    q4_variant_free(v);
    memset(v, 0, sizeof *v);
  }
  *tuned = 0;
  st = q4gen_default(h->gen, s, h->arch, bucket, v);
  if (!st)
    q4_log(Q4_LOG_DEBUG, "%s N=%d K=%d g=%d M<=%d: untuned, default %s[%s]", q4_format_name(s->format),
           s->n, s->k, s->group_size, bucket, v->tmpl, v->params);
  return st;
}

q4_status q4_plan_get(q4_handle *h, const q4_shape *s, int m, q4_plan **out) {
  const int bucket = q4_m_bucket(m);
  for (q4_plan *p = h->plans; p; p = p->next)
    if (p->m_bucket == bucket && same_shape(&p->shape, s)) {
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

/* Split-K scratch for `stream`, grown on demand. Counters start at zero and
** every kernel leaves them at zero. */
static q4_status workspace_for(q4_handle *h, CUstream stream, size_t partial_bytes, size_t counters,
                               q4_workspace **out) {
  q4_workspace *w = h->workspaces;
  while (w && w->stream != stream) w = w->next;
  if (!w) {
    if (!(w = calloc(1, sizeof *w))) return q4_err(Q4_ERR_NO_MEMORY, "out of host memory");
    w->stream = stream;
    w->next = h->workspaces;
    h->workspaces = w;
  }
  const q4_cuda_api *cu = h->cu;
  q4_status st = Q4_OK;
  if (w->partial_bytes < partial_bytes || w->counter_count < counters) {
    /* kernels queued on this stream may still use the old buffers */
    if ((st = q4_cuda_check(cu->StreamSynchronize(stream), "cuStreamSynchronize"))) return st;
    if (w->partial_bytes < partial_bytes) {
      if (w->partials) cu->MemFree(w->partials);
      w->partials = 0;
      w->partial_bytes = 0;
      if ((st = q4_cuda_check(cu->MemAlloc(&w->partials, partial_bytes), "split-K workspace"))) return st;
      w->partial_bytes = partial_bytes;
    }
    if (w->counter_count < counters) {
      if (w->counters) cu->MemFree(w->counters);
      w->counters = 0;
      w->counter_count = 0;
      if ((st = q4_cuda_check(cu->MemAlloc(&w->counters, counters * 4), "split-K counters")) ||
          (st = q4_cuda_check(cu->MemsetD8(w->counters, 0, counters * 4), "clearing split-K counters")))
        return st;
      w->counter_count = counters;
    }
  }
  *out = w;
  return Q4_OK;
}

q4_status q4_launch(q4_handle *h, const q4_kernel *k, const q4_weights *w, const void *x, void *y,
                    int m, CUstream stream) {
  const q4_variant *v = &k->v;
  const unsigned gx = (unsigned)((w->n + v->tile_n - 1) / v->tile_n);
  const unsigned gy = (unsigned)((m + v->tile_m - 1) / v->tile_m);
  if (gy > 65535) return q4_err(Q4_ERR_UNSUPPORTED, "M=%d needs more than 65535 row tiles", m);
  CUdeviceptr partials = 0, counters = 0;
  if (v->split_k > 1) {
    q4_workspace *ws;
    q4_status st = workspace_for(h, stream, (size_t)v->split_k * m * w->n * 4, (size_t)gx * gy, &ws);
    if (st) return st;
    partials = ws->partials;
    counters = ws->counters;
  }
  CUdeviceptr qw = (CUdeviceptr)w->qweight, sc = (CUdeviceptr)w->scales, ze = (CUdeviceptr)w->zeros;
  CUdeviceptr ma = (CUdeviceptr)w->mask, xp = (CUdeviceptr)x, yp = (CUdeviceptr)y;
  int mm = m;
  void *args[] = {&qw, &sc, &ze, &ma, &xp, &yp, &mm, &partials, &counters};
  return q4_cuda_check(h->cu->LaunchKernel(k->fn, gx, gy, (unsigned)v->split_k, (unsigned)v->threads, 1, 1,
                                           (unsigned)v->smem, stream, args, NULL),
                       "cuLaunchKernel");
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
