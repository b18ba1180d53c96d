/*
** test_workspace.c -- the per-stream scratch (runtime/q4_workspace.c) on a
** stand-in for the driver's memory calls, so it runs without a GPU: device
** memory is host memory with a budget, a stream's capture state is a flag.
** Checks how buffers grow (doubled, else exact), that outgrown ones are kept
** until the stream is forgotten, that counters are cleared in stream order,
** that a failed allocation leaves nothing stale, and that growing a stream
** captured into a graph is refused with a reason. Under ASan (the sanitizer
** build) every clear is bounds-checked and every buffer must be freed.
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "q4_error.h"
#include "q4_handle.h"
#include "q4test.h"

/* --- the stand-in driver ---------------------------------------------------- */

static size_t budget = SIZE_MAX;  /* device bytes that may still be allocated */
static size_t in_use;             /* device bytes allocated and not freed */
static int live, syncs, capturing;
static CUdeviceptr cleared_p;     /* the last MemsetD8Async */
static size_t cleared_n;
static CUstream cleared_on;

/* Each allocation is a header (its size) and the bytes handed out. */
static CUresult fake_alloc(CUdeviceptr *p, size_t bytes) {
  if (bytes > budget - in_use) return CUDA_ERROR_OUT_OF_MEMORY;
  size_t *a = malloc(sizeof(size_t) + bytes);
  if (!a) return CUDA_ERROR_OUT_OF_MEMORY;
  *a = bytes;
  in_use += bytes;
  live++;
  *p = (CUdeviceptr)(uintptr_t)(a + 1);
  return CUDA_SUCCESS;
}

static CUresult fake_free(CUdeviceptr p) {
  size_t *a = (size_t *)(uintptr_t)p - 1;
  in_use -= *a;
  live--;
  free(a);
  return CUDA_SUCCESS;
}

static CUresult fake_memset(CUdeviceptr p, unsigned char v, size_t n, CUstream s) {
  memset((void *)(uintptr_t)p, v, n);
  cleared_p = p, cleared_n = n, cleared_on = s;
  return CUDA_SUCCESS;
}

static CUresult fake_capturing(CUstream s, CUstreamCaptureStatus *status) {
  (void)s;
  *status = capturing ? CU_STREAM_CAPTURE_STATUS_ACTIVE : CU_STREAM_CAPTURE_STATUS_NONE;
  return CUDA_SUCCESS;
}

static CUresult fake_sync(CUstream s) {
  (void)s;
  syncs++;
  return CUDA_SUCCESS;
}

static CUresult fake_push(CUcontext c) {
  (void)c;
  return CUDA_SUCCESS;
}

static CUresult fake_pop(CUcontext *c) {
  *c = NULL;
  return CUDA_SUCCESS;
}

static size_t size_of(CUdeviceptr p) { return ((size_t *)(uintptr_t)p)[-1]; }

/* --- tests --------------------------------------------------------------------- */

static const CUstream S1 = (CUstream)(uintptr_t)0x10, S2 = (CUstream)(uintptr_t)0x20;

/* Grown to what is asked, doubled where that is more, and never shrunk;
** an outgrown buffer stays allocated. */
static void test_growth(q4_handle *h) {
  q4_workspace *w = NULL;
  CHECK_OK(q4_workspace_for(h, S1, 1000, 10, 0, 0, &w));
  CHECK(w && w->stream == S1 && w->partials && w->counters && !w->chunk && !w->xperm);
  if (!w) return;
  CHECK(w->partial_bytes == 1000 && size_of(w->partials) == 1000 && w->counter_count == 10);
  /* counters zero, cleared on the stream */
  CHECK(cleared_p == w->counters && cleared_n == 40 && cleared_on == S1);
  const int32_t *c = (const int32_t *)(uintptr_t)w->counters;
  int zero = 1;
  for (int i = 0; i < 10; i++) zero &= c[i] == 0;
  CHECK(zero);
  CHECK(live == 2);

  /* less than it has: the same buffers */
  const CUdeviceptr p0 = w->partials;
  q4_workspace *again = NULL;
  CHECK_OK(q4_workspace_for(h, S1, 600, 4, 0, 0, &again));
  CHECK(again == w && w->partials == p0 && w->partial_bytes == 1000 && live == 2);

  /* a little more: doubled, and the old buffer kept */
  CHECK_OK(q4_workspace_for(h, S1, 1500, 10, 0, 0, &w));
  CHECK(w->partials != p0 && w->partial_bytes == 2000 && size_of(w->partials) == 2000);
  CHECK(w->retired && w->retired->p == p0 && live == 3);

  /* far more: exactly that */
  CHECK_OK(q4_workspace_for(h, S1, 9000, 10, 0, 0, &w));
  CHECK(w->partial_bytes == 9000 && live == 4);

  /* doubling does not fit, the need does: the need */
  budget = in_use + 12000;
  CHECK_OK(q4_workspace_for(h, S1, 10000, 10, 0, 0, &w));
  CHECK(w->partial_bytes == 10000 && size_of(w->partials) == 10000);
  budget = SIZE_MAX;

  /* more counters: the grown buffer is cleared whole */
  CHECK_OK(q4_workspace_for(h, S1, 0, 100, 0, 0, &w));
  CHECK(w->counter_count == 100 && cleared_p == w->counters && cleared_n == 400 && cleared_on == S1);

  /* the two-pass chunk and gathered x, beside the rest */
  CHECK_OK(q4_workspace_for(h, S1, 0, 0, 4096, 512, &w));
  CHECK(w->chunk_bytes == 4096 && w->xperm_bytes == 512 && w->partial_bytes == 10000 && w->counter_count == 100);
}

/* An allocation that fails says what it was for and leaves the buffer
** empty, not stale; the next product grows it again. */
static void test_out_of_memory(q4_handle *h) {
  q4_workspace *w = NULL;
  CHECK_OK(q4_workspace_for(h, S2, 100, 1, 0, 0, &w));
  if (!w) return;
  budget = in_use + 50;
  CHECK_ERR(q4_workspace_for(h, S2, 1 << 20, 1, 0, 0, &w), Q4_ERR_NO_MEMORY, "split-K workspace");
  CHECK(w->partials == 0 && w->partial_bytes == 0);
  /* the counters fail: none counted beside a null buffer */
  budget = in_use + (1 << 20) + 100;
  CHECK_ERR(q4_workspace_for(h, S2, 1 << 20, 1 << 20, 0, 0, &w), Q4_ERR_NO_MEMORY, "split-K counters");
  CHECK(w->counters == 0 && w->counter_count == 0 && w->partial_bytes == 1 << 20);
  budget = SIZE_MAX;
  CHECK_OK(q4_workspace_for(h, S2, 1 << 20, 8, 0, 0, &w));
  CHECK(w->counters && w->counter_count == 8 && cleared_p == w->counters && cleared_n == 32 && cleared_on == S2);
}

/* While a stream is captured into a graph: what fits is used, growing is
** refused with the reason and nothing changes. */
static void test_capture(q4_handle *h) {
  q4_workspace *w = NULL;
  CHECK_OK(q4_workspace_for(h, S1, 0, 0, 0, 0, &w));
  if (!w) return;
  const CUdeviceptr p = w->partials;
  const size_t bytes = w->partial_bytes;
  const int before = live;
  capturing = 1;
  q4_workspace *same = NULL;
  CHECK_OK(q4_workspace_for(h, S1, bytes, 1, 0, 0, &same));
  CHECK(same == w);
  CHECK_ERR(q4_workspace_for(h, S1, 2 * bytes, 1, 0, 0, &same), Q4_ERR_UNSUPPORTED, "captured into a CUDA graph");
  CHECK(w->partials == p && w->partial_bytes == bytes && live == before);
  capturing = 0;
}

/* Forgetting a stream waits for it and frees its buffers, outgrown ones
** too; the other stream's stay. */
static void test_forget(q4_handle *h) {
  int streams = 0;
  for (q4_workspace *w = h->workspaces; w; w = w->next) streams++;
  CHECK(streams == 2);
  const int synced = syncs;
  q4_forget_stream(h, S1);
  CHECK(syncs == synced + 1);
  CHECK(h->workspaces && h->workspaces->stream == S2 && !h->workspaces->next);
  if (!h->workspaces) return;
  const q4_workspace *w = h->workspaces;
  int left = !!w->partials + !!w->counters + !!w->chunk + !!w->xperm;
  for (const q4_retired *r = w->retired; r; r = r->next) left++;
  CHECK_MSG(live == left, "%d device buffers live, %d held by the stream left", live, left);
  q4_forget_stream(h, S1);  /* a stream it has no scratch for: nothing */
  CHECK(syncs == synced + 1 && live == left);
  q4_forget_stream(h, S2);
  CHECK(!h->workspaces && live == 0 && in_use == 0);
}

int main(void) {
  q4_cuda_api cu;
  memset(&cu, 0, sizeof cu);
  cu.MemAlloc = fake_alloc;
  cu.MemFree = fake_free;
  cu.MemsetD8Async = fake_memset;
  cu.StreamIsCapturing = fake_capturing;
  cu.StreamSynchronize = fake_sync;
  cu.CtxPushCurrent = fake_push;
  cu.CtxPopCurrent = fake_pop;
  q4_handle h;
  memset(&h, 0, sizeof h);
  h.cu = &cu;
  pthread_mutex_init(&h.lock, NULL);

  test_growth(&h);
  test_out_of_memory(&h);
  test_capture(&h);
  test_forget(&h);

  pthread_mutex_destroy(&h.lock);
  return q4test_done("test_workspace");
}
