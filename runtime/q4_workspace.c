/*
** q4_workspace.c -- the scratch a handle keeps per stream: split-K fp32
** partials and tile counters, the fp16 chunk of two-pass variants and
** gathered act-order x. Grown on demand, in stream order; a buffer that is
** outgrown is kept until the stream is forgotten, since kernels queued on
** the stream, or a CUDA graph captured from it, may still use it.
*/
#include <stdlib.h>

#include "q4_error.h"
#include "q4_handle.h"

/* Grow one of w's buffers to at least `need` bytes (cleared to zero, in
** stream order, if `clear`), retiring the old one. Doubling where memory
** allows keeps the retired buffers smaller than the one in use; where it
** does not, exactly `need`. On failure *have is 0 (and a buffer that could
** not be cleared is retired next time). */
static q4_status grow(const q4_cuda_api *cu, q4_workspace *w, CUdeviceptr *p, size_t *have, size_t need, int clear,
                      const char *what) {
  if (*have >= need) return Q4_OK;
  if (*p) {
    q4_retired *old = malloc(sizeof *old);
    if (!old) return q4_err(Q4_ERR_NO_MEMORY, "out of host memory");
    old->p = *p;
    old->next = w->retired;
    w->retired = old;
  }
  size_t size = need < 2 * *have ? 2 * *have : need;
  *have = 0;
  CUresult r = cu->MemAlloc(p, size);
  if (r != CUDA_SUCCESS && size > need) r = cu->MemAlloc(p, size = need);
  if (r != CUDA_SUCCESS) *p = 0;
  q4_status st = q4_cuda_check(r, what);
  if (!st && clear) st = q4_cuda_check(cu->MemsetD8Async(*p, 0, size, w->stream), what);
  if (!st) *have = size;
  return st;
}

q4_status q4_workspace_for(q4_handle *h, CUstream stream, size_t partials, size_t counters, size_t chunk,
                           size_t xperm, q4_workspace **out) {
  q4_workspace *w = h->workspaces;
  while (w && w->stream != stream) w = w->next;
  if (!w) {
    if (!(w = calloc(1, sizeof *w))) return q4_err(Q4_ERR_NO_MEMORY, "out of host memory");
    w->stream = stream;
    w->next = h->workspaces;
    h->workspaces = w;
  }
  if (w->partial_bytes < partials || w->counter_count < counters || w->chunk_bytes < chunk || w->xperm_bytes < xperm) {
    /* no memory can be allocated while the stream is captured into a graph */
    CUstreamCaptureStatus capturing = CU_STREAM_CAPTURE_STATUS_NONE;
    if (h->cu->StreamIsCapturing(stream, &capturing) == CUDA_SUCCESS && capturing != CU_STREAM_CAPTURE_STATUS_NONE)
      return q4_err(Q4_ERR_UNSUPPORTED, "this product needs more scratch on its stream than an earlier product "
                    "there had, and the stream is being captured into a CUDA graph, where none can be allocated: "
                    "run one product with as many rows or more on the stream before capturing it");
  }
  size_t counter_bytes = w->counter_count * 4;
  q4_status st = grow(h->cu, w, &w->partials, &w->partial_bytes, partials, 0, "split-K workspace");
  if (!st) {
    st = grow(h->cu, w, &w->counters, &counter_bytes, counters * 4, 1, "split-K counters");
    w->counter_count = counter_bytes / 4;  /* (0 if that failed: grown again next time) */
  }
  if (!st) st = grow(h->cu, w, &w->chunk, &w->chunk_bytes, chunk, 0, "fp16 weight chunk");
  if (!st) st = grow(h->cu, w, &w->xperm, &w->xperm_bytes, xperm, 0, "gathered activations");
  if (st) return st;
  *out = w;
  return Q4_OK;
}

void q4_workspace_free(q4_handle *h, q4_workspace *w, int have_ctx) {
  const CUdeviceptr bufs[] = {w->partials, w->counters, w->chunk, w->xperm};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
    if (have_ctx && bufs[i]) h->cu->MemFree(bufs[i]);
  for (q4_retired *r = w->retired, *next; r; r = next) {
    next = r->next;
    if (have_ctx) h->cu->MemFree(r->p);
    free(r);
  }
  free(w);
}

void q4_forget_stream(q4_handle *h, CUstream stream) {
  pthread_mutex_lock(&h->lock);
  for (q4_workspace **pp = &h->workspaces; *pp; pp = &(*pp)->next) {
    q4_workspace *w = *pp;
    if (w->stream != stream) continue;
    const int have_ctx = q4_ctx_push(h) == Q4_OK;
    if (have_ctx) h->cu->StreamSynchronize(stream);
    *pp = w->next;
    q4_workspace_free(h, w, have_ctx);
    if (have_ctx) q4_ctx_pop(h);
    break;
  }
  pthread_mutex_unlock(&h->lock);
}
