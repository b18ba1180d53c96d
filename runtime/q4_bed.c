/*
** q4_bed.c -- GPU test bed: data, reference product, verification, timing.
*/
#include "q4_bed.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "q4_error.h"
#include "q4_module.h"

/* The reference: one thread per output, fp32 dequantization and
** accumulation straight from the format's definition, no tiling. Slow and
** easy to check by eye; its result is itself checked against the host's
** double-precision product on sampled elements. */
static const char ref_source[] =
    "#include <cuda_fp16.h>\n"
    "// zeros NULL: symmetric weights (zero 8); perm non-NULL: x[m][perm[k]];\n"
    "// mask non-NULL: sparse weights, code of kept row k is number popc(mask below k)\n"
    "// of its 32-row block, pruned rows are 0\n"
    "extern \"C\" __global__ void q4_reference(const unsigned *qweight, const half *scales,\n"
    "    const half *zeros, const unsigned *mask, const int *perm, const half *x, float *ref,\n"
    "    int M, int N, int K, int group) {\n"
    "  const int n = blockIdx.x * blockDim.x + threadIdx.x, m = blockIdx.y;\n"
    "  if (n >= N || m >= M) return;\n"
    "  float sum = 0.f;\n"
    "  for (int k = 0; k < K; ++k) {\n"
    "    int q;\n"
    "    if (mask) {\n"
    "      const unsigned bits = mask[(size_t)(k / 32) * N + n], j = k % 32;\n"
    "      if (!(bits >> j & 1)) continue;\n"
    "      const int i = __popc(bits & ((1u << j) - 1u));\n"
    "      q = (qweight[(size_t)(2 * (k / 32) + i / 8) * N + n] >> (4 * (i % 8))) & 15;\n"
    "    } else {\n"
    "      q = (qweight[(size_t)(k / 8) * N + n] >> (4 * (k % 8))) & 15;\n"
    "    }\n"
    "    const size_t g = (size_t)(k / group) * N + n;\n"
    "    const float z = zeros ? __half2float(zeros[g]) : 8.f;\n"
    "    const float w = ((float)q - z) * __half2float(scales[g]);\n"
    "    sum += __half2float(x[(size_t)m * K + (perm ? perm[k] : k)]) * w;\n"
    "  }\n"
    "  ref[(size_t)m * N + n] = sum;\n"
    "}\n"
    "// err[0] += (y - ref)^2, err[1] += ref^2, err[2] += 1 for each non-finite y\n"
    "extern \"C\" __global__ void q4_error_sums(const half *y, const float *ref, size_t count, double *err) {\n"
    "  double d = 0, r = 0, bad = 0;\n"
    "  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count; i += (size_t)gridDim.x * blockDim.x) {\n"
    "    const float v = __half2float(y[i]);\n"
    "    if (!isfinite(v)) { bad += 1; continue; }\n"
    "    d += (double)(v - ref[i]) * (v - ref[i]);\n"
    "    r += (double)ref[i] * ref[i];\n"
    "  }\n"
    "  for (int o = 16; o > 0; o /= 2) {\n"
    "    d += __shfl_down_sync(0xffffffffu, d, o);\n"
    "    r += __shfl_down_sync(0xffffffffu, r, o);\n"
    "    bad += __shfl_down_sync(0xffffffffu, bad, o);\n"
    "  }\n"
    "  if ((threadIdx.x & 31) == 0) { atomicAdd(&err[0], d); atomicAdd(&err[1], r); atomicAdd(&err[2], bad); }\n"
    "}\n"
    "// x = src, one block a row: the kernel that writes a product's x (a\n"
    "// normalization, say), for timing and checking products that follow one\n"
    "extern \"C\" __global__ void q4_write_x(const uint4 *src, uint4 *x, int row_vectors) {\n"
    "  const size_t r = blockIdx.x;\n"
    "  for (int i = threadIdx.x; i < row_vectors; i += blockDim.x) x[r * row_vectors + i] = src[r * row_vectors + i];\n"
    "}\n";

#define CU(call, what) \
  do { \
    q4_status s_ = q4_cuda_check((call), what); \
    if (s_) return s_; \
  } while (0)

/* Load the reference module through the same cubin cache as the kernels. */
static q4_status load_reference(q4_bed *b) {
  q4_status st = q4_module_load(b->h, ref_source, "q4_reference", &b->ref_mod);
  if (st) return st;
  CU(b->h->cu->ModuleGetFunction(&b->ref_fn, b->ref_mod, "q4_reference"), "cuModuleGetFunction");
  CU(b->h->cu->ModuleGetFunction(&b->err_fn, b->ref_mod, "q4_error_sums"), "cuModuleGetFunction");
  CU(b->h->cu->ModuleGetFunction(&b->write_fn, b->ref_mod, "q4_write_x"), "cuModuleGetFunction");
  return Q4_OK;
}

double q4_bed_weight(const q4_bed *b, int k, int n) {
  return b->shape.format == Q4_FORMAT_Q4S ? q4s_ref_weight(&b->sparse, k, n) : q4_ref_weight(&b->host, k, n);
}

/* One copy in one allocation: qweight, scales, zeros, then perm or mask. */
static q4_status upload_weights(q4_bed *b, int i) {
  const q4_cuda_api *cu = b->h->cu;
  const q4_shape *s = &b->shape;
  const int sparse = s->format == Q4_FORMAT_Q4S;
  const q4_array_bytes a = q4_shape_arrays(s);
  const size_t qw = a.qweight, sz = a.scales, pb = b->host.perm ? a.perm : 0, mb = a.mask;
  CU(cu->MemAlloc(&b->wmem[i], qw + 2 * sz + pb + mb), "allocating weights");
  CU(cu->MemcpyHtoD(b->wmem[i], sparse ? (const void *)b->sparse.qweight : b->host.qweight, qw), "copying weights");
  CU(cu->MemcpyHtoD(b->wmem[i] + qw, sparse ? b->sparse.scales : b->host.scales, sz), "copying scales");
  CU(cu->MemcpyHtoD(b->wmem[i] + qw + sz, sparse ? b->sparse.zeros : b->host.zeros, sz), "copying zeros");
  if (pb) CU(cu->MemcpyHtoD(b->wmem[i] + qw + 2 * sz, b->host.perm, pb), "copying perm");
  if (mb) CU(cu->MemcpyHtoD(b->wmem[i] + qw + 2 * sz, b->sparse.mask, mb), "copying the mask");
  q4_weights *w = &b->w[i];
  w->format = s->format;
  w->n = s->n;
  w->k = s->k;
  w->group_size = s->group_size;
  w->qweight = (const void *)b->wmem[i];
  w->scales = (const void *)(b->wmem[i] + qw);
  /* symmetric weights go without zeros, so a kernel that read them would fault */
  w->symmetric = (s->flags & Q4_SHAPE_SYMMETRIC) != 0;
  w->zeros = w->symmetric ? NULL : (const void *)(b->wmem[i] + qw + sz);
  w->perm = pb ? (const void *)(b->wmem[i] + qw + 2 * sz) : NULL;
  w->mask = mb ? (const void *)(b->wmem[i] + qw + 2 * sz) : NULL;
  return Q4_OK;
}

q4_status q4_bed_open(q4_bed *b, q4_handle *h, const q4_shape *s, uint64_t seed, int min_copies) {
  memset(b, 0, sizeof *b);
  b->h = h;
  b->shape = *s;
  q4_status st = s->format == Q4_FORMAT_Q4S ? q4s_ref_random(&b->sparse, s, seed) : q4_ref_random(&b->host, s, seed);
  if (st) return st;
  b->weight_bytes = q4_shape_weight_bytes(s);
  b->copies = (int)(2 * h->l2_bytes / b->weight_bytes) + 1;
  if (b->copies < min_copies) b->copies = min_copies;
  if (b->copies < 1) b->copies = 1;
  b->w = calloc((size_t)b->copies, sizeof *b->w);
  b->wmem = calloc((size_t)b->copies, sizeof *b->wmem);
  if (!b->w || !b->wmem) return q4_err(Q4_ERR_NO_MEMORY, "out of host memory");
  if ((st = q4_ctx_push(h))) return st;
  st = load_reference(b);
  for (int i = 0; !st && i < b->copies; i++) st = upload_weights(b, i);
  /* A copy from pageable memory may return before its DMA is done, and the
  ** bed's stream does not wait for the legacy stream: wait here. */
  if (!st) st = q4_cuda_check(h->cu->CtxSynchronize(), "copying the weights");
  if (!st) st = q4_cuda_check(h->cu->StreamCreate(&b->stream, CU_STREAM_NON_BLOCKING), "cuStreamCreate");
  if (!st) st = q4_cuda_check(h->cu->EventCreate(&b->ev0, CU_EVENT_DEFAULT), "cuEventCreate");
  if (!st) st = q4_cuda_check(h->cu->EventCreate(&b->ev1, CU_EVENT_DEFAULT), "cuEventCreate");
  if (!st) st = q4_cuda_check(h->cu->MemAlloc(&b->err, 3 * sizeof(double)), "cuMemAlloc");
  q4_ctx_pop(h);
  return st;
}

void q4_bed_close(q4_bed *b) {
  if (!b->h) return;
  const q4_cuda_api *cu = b->h->cu;
  /* the handle keeps scratch per stream: drop it before the stream goes */
  if (b->stream) q4_forget_stream(b->h, b->stream);
  if (q4_ctx_push(b->h) == Q4_OK) {
    if (b->stream) cu->StreamSynchronize(b->stream);
    for (int i = 0; i < b->copies && b->wmem; i++)
      if (b->wmem[i]) cu->MemFree(b->wmem[i]);
    if (b->x) cu->MemFree(b->x);
    if (b->x_src) cu->MemFree(b->x_src);
    if (b->y) cu->MemFree(b->y);
    if (b->ref) cu->MemFree(b->ref);
    if (b->err) cu->MemFree(b->err);
    if (b->ev0) cu->EventDestroy(b->ev0);
    if (b->ev1) cu->EventDestroy(b->ev1);
    if (b->stream) cu->StreamDestroy(b->stream);
    if (b->ref_mod) cu->ModuleUnload(b->ref_mod);
    q4_ctx_pop(b->h);
  }
  free(b->w);
  free(b->wmem);
  free(b->x_host);
  q4_ref_free(&b->host);
  q4s_ref_free(&b->sparse);
  memset(b, 0, sizeof *b);
}

/* Compare sampled elements of the GPU reference with the host's double
** precision product: the reference is only trusted once they agree. */
static q4_status check_reference(q4_bed *b, uint64_t seed) {
  const q4_cuda_api *cu = b->h->cu;
  const int samples = 48, n_all = b->shape.n;
  uint64_t st = seed * 7919u + 17u;
  double num = 0, den = 0;
  for (int i = 0; i < samples; i++) {
    const int m = (int)(q4_rand_next(&st) % (uint64_t)b->m), n = (int)(q4_rand_next(&st) % (uint64_t)n_all);
    float got;
    CU(cu->MemcpyDtoH(&got, b->ref + ((size_t)m * n_all + n) * 4, 4), "reading the reference");
    const uint16_t *x_row = b->x_host + (size_t)m * b->shape.k;
    const double want = b->shape.format == Q4_FORMAT_Q4S ? q4s_ref_dot(&b->sparse, x_row, n)
                                                         : q4_ref_dot(&b->host, x_row, n);
    if (!isfinite(got) || !isfinite(want))
      return q4_err(Q4_ERR_VERIFY, "the GPU reference y[%d][%d] = %g, the host's %g (M=%d)", m, n, got, want, b->m);
    num += (got - want) * (got - want);
    den += want * want;
  }
  const double rel = den > 0 ? sqrt(num / den) : 0;
  if (!(rel < 1e-4))
    return q4_err(Q4_ERR_VERIFY, "the GPU reference disagrees with the host's (relative error %.3g)", rel);
  return Q4_OK;
}

q4_status q4_bed_set_m(q4_bed *b, int m, uint64_t seed) {
  q4_handle *h = b->h;
  const q4_cuda_api *cu = h->cu;
  const q4_shape *s = &b->shape;
  q4_status st = q4_ctx_push(h);
  if (st) return st;
  if (m > b->m_cap) {
    if (b->x) cu->MemFree(b->x);
    if (b->x_src) cu->MemFree(b->x_src);
    if (b->y) cu->MemFree(b->y);
    if (b->ref) cu->MemFree(b->ref);
    b->x = b->x_src = b->y = b->ref = 0;
    free(b->x_host);
    b->x_host = malloc((size_t)m * s->k * 2);
    if (!b->x_host) st = q4_err(Q4_ERR_NO_MEMORY, "out of host memory");
    if (!st) st = q4_cuda_check(cu->MemAlloc(&b->x, (size_t)m * s->k * 2), "allocating x");
    if (!st) st = q4_cuda_check(cu->MemAlloc(&b->y, (size_t)m * s->n * 2), "allocating y");
    if (!st) st = q4_cuda_check(cu->MemAlloc(&b->ref, (size_t)m * s->n * 4), "allocating the reference");
    if (st) goto done;
    b->m_cap = m;
  }
  /* the writer's source only where a kernel writes x before each product */
  if (b->after_write && !b->x_src &&
      (st = q4_cuda_check(cu->MemAlloc(&b->x_src, (size_t)b->m_cap * s->k * 2), "allocating x")))
    goto done;
  b->m = m;
  q4_ref_random_x(b->x_host, (size_t)m * s->k, seed);
  if ((st = q4_cuda_check(cu->MemcpyHtoD(b->x, b->x_host, (size_t)m * s->k * 2), "copying x"))) goto done;
  if (b->after_write &&
      (st = q4_cuda_check(cu->MemcpyHtoD(b->x_src, b->x_host, (size_t)m * s->k * 2), "copying x")))
    goto done;
  /* (see q4_bed_open: the copy's DMA may still be running) */
  if ((st = q4_cuda_check(cu->CtxSynchronize(), "copying x"))) goto done;
  if ((st = q4_cuda_check(cu->MemsetD8Async(b->ref, 0xff, (size_t)m * s->n * 4, b->stream), "poisoning the reference")))
    goto done;
  {
    const q4_weights *w = &b->w[0];
    CUdeviceptr qw = (CUdeviceptr)w->qweight, sc = (CUdeviceptr)w->scales, ze = (CUdeviceptr)w->zeros;
    CUdeviceptr ma = (CUdeviceptr)w->mask, pe = (CUdeviceptr)w->perm;
    int mm = m, n = s->n, k = s->k, g = s->group_size;
    void *args[] = {&qw, &sc, &ze, &ma, &pe, &b->x, &b->ref, &mm, &n, &k, &g};
    st = q4_cuda_check(cu->LaunchKernel(b->ref_fn, (unsigned)(n + 255) / 256, (unsigned)m, 1, 256, 1, 1, 0,
                                        b->stream, args, NULL), "launching the reference");
  }
  if (!st) st = q4_cuda_check(cu->StreamSynchronize(b->stream), "running the reference");
  if (!st) st = check_reference(b, seed);
done:
  q4_ctx_pop(h);
  return st;
}

q4_status q4_bed_run_kernel(void *ctx, q4_bed *b, const q4_weights *w, CUstream s) {
  pthread_mutex_lock(&b->h->lock);  /* q4_launch may grow the split-K workspace */
  q4_status st = q4_launch(b->h, (const q4_kernel *)ctx, w, (const void *)b->x, (void *)b->y, b->m, s);
  pthread_mutex_unlock(&b->h->lock);
  return st;
}

/* With after_write, the writer kernel, x = x_src, ahead of a product. */
static q4_status write_x(q4_bed *b) {
  if (!b->after_write) return Q4_OK;
  CUdeviceptr src = b->x_src, x = b->x;
  int vectors = b->shape.k / 8;
  void *args[] = {&src, &x, &vectors};
  return q4_cuda_check(b->h->cu->LaunchKernel(b->write_fn, (unsigned)b->m, 1, 1, 128, 1, 1, 0, b->stream, args, NULL),
                       "launching the writer of x");
}

/* One product on weight copy `copy`, after the writer of x where there is one. */
static q4_status write_and_run(q4_bed *b, q4_bed_run run, void *ctx, int copy) {
  q4_status st = write_x(b);
  return st ? st : run(ctx, b, &b->w[copy], b->stream);
}

/* `count` products (each after its writer, if any) on weight copies 0, 1,
** ... in turn, captured from the bed's stream into an instantiated graph. */
static q4_status capture(q4_bed *b, q4_bed_run run, void *ctx, int count, CUgraphExec *exec) {
  const q4_cuda_api *cu = b->h->cu;
  CUgraph g = NULL;
  *exec = NULL;
  /* thread-local: another thread's allocations do not spoil this capture */
  q4_status st = q4_cuda_check(cu->StreamBeginCapture(b->stream, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL),
                               "starting a graph capture");
  if (st) return st;
  for (int r = 0; !st && r < count; r++) st = write_and_run(b, run, ctx, r % b->copies);
  /* ended even after a failed run, so that the stream works again */
  const CUresult ended = cu->StreamEndCapture(b->stream, &g);
  if (!st) st = q4_cuda_check(ended, "capturing the products into a CUDA graph");
  if (!st) st = q4_cuda_check(cu->GraphInstantiate(exec, g, 0), "instantiating the CUDA graph");
  if (g) cu->GraphDestroy(g);
  if (st) *exec = NULL;  /* nothing for the caller to destroy */
  return st;
}

/* One product on weight copy 0, run directly or as a captured graph. */
static q4_status run_once(q4_bed *b, q4_bed_run run, void *ctx) {
  if (!b->graph) return write_and_run(b, run, ctx, 0);
  CUgraphExec exec;
  q4_status st = capture(b, run, ctx, 1, &exec);
  if (!st) st = q4_cuda_check(b->h->cu->GraphLaunch(exec, b->stream), "replaying the CUDA graph");
  /* the launch is queued: destroying the graph now frees it once done */
  if (exec) b->h->cu->GraphExecDestroy(exec);
  return st;
}

/* NaN into the stream's gathered act-order x (q4_launch's scratch), if it
** has one: the gather kernel ahead of a product must fill it before the
** product reads it. */
static q4_status poison_gathered_x(q4_bed *b) {
  q4_status st = Q4_OK;
  pthread_mutex_lock(&b->h->lock);
  for (const q4_workspace *w = b->h->workspaces; w; w = w->next)
    if (w->stream == b->stream && w->xperm)
      st = q4_cuda_check(b->h->cu->MemsetD16Async(w->xperm, 0xffff, w->xperm_bytes / 2, b->stream),
                         "poisoning the gathered x");
  pthread_mutex_unlock(&b->h->lock);
  return st;
}

static q4_status verify(q4_bed *b, q4_bed_run run, void *ctx, double *rel_error) {
  const q4_cuda_api *cu = b->h->cu;
  const size_t count = (size_t)b->m * b->shape.n;
  q4_status st;
  *rel_error = INFINITY;
  /* After a writer, x is NaN until it has run, and so is the gathered
  ** copy of act-order x until the gather kernel has: a product that read
  ** either too early comes out NaN. (A first product makes the copy.)
  ** Before a capture, a first product loads the kernel and sizes the
  ** stream's scratch, neither of which can happen inside one. */
  if (b->after_write || b->graph)
    if ((st = write_and_run(b, run, ctx, 0))) return st;
  if (b->after_write) {
    CU(cu->MemsetD16Async(b->x, 0xffff, (size_t)b->m * b->shape.k, b->stream), "poisoning x");
    if ((st = poison_gathered_x(b))) return st;
  }
  CU(cu->MemsetD16Async(b->y, 0xffff, count, b->stream), "poisoning y");  /* NaN */
  CU(cu->MemsetD8Async(b->err, 0, 3 * sizeof(double), b->stream), "clearing sums");
  st = run_once(b, run, ctx);
  if (st) return st;
  CUdeviceptr y = b->y, ref = b->ref, err = b->err;
  size_t cnt = count;
  void *args[] = {&y, &ref, &cnt, &err};
  CU(cu->LaunchKernel(b->err_fn, 264, 1, 1, 256, 1, 1, 0, b->stream, args, NULL), "launching the error sums");
  CU(cu->StreamSynchronize(b->stream), "running the kernel");
  double sums[3];
  CU(cu->MemcpyDtoH(sums, b->err, sizeof sums), "reading the error sums");
  if (sums[2] > 0) *rel_error = INFINITY;
  else *rel_error = sums[1] > 0 ? sqrt(sums[0] / sums[1]) : INFINITY;
  return Q4_OK;
}

static int cmp_double(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static q4_status time_runs(q4_bed *b, q4_bed_run run, void *ctx, int samples, double *median_us,
                           double *min_us, double *max_us) {
  const q4_cuda_api *cu = b->h->cu;
  q4_status st;
  /* Untimed runs first: clocks up, code and caches warm. */
  const int warm = b->copies < 3 ? b->copies : 3;
  for (int i = 0; i < warm; i++)
    if ((st = write_and_run(b, run, ctx, i))) return st;
  CU(cu->StreamSynchronize(b->stream), "warm-up");
  /* Batch enough runs per sample that each lasts about 200 us. Every run
  ** takes the next weight copy, across samples too, so none finds its
  ** weights in L2 from the run before. */
  float ms = 0;
  CU(cu->EventRecord(b->ev0, b->stream), "cuEventRecord");
  if ((st = write_and_run(b, run, ctx, 0))) return st;
  CU(cu->EventRecord(b->ev1, b->stream), "cuEventRecord");
  CU(cu->EventSynchronize(b->ev1), "cuEventSynchronize");
  CU(cu->EventElapsedTime(&ms, b->ev0, b->ev1), "cuEventElapsedTime");
  int batch = ms > 0 ? (int)(0.2 / ms) + 1 : 1;
  if (batch > 200) batch = 200;
  double *t = malloc((size_t)samples * sizeof *t);
  if (!t) return q4_err(Q4_ERR_NO_MEMORY, "out of host memory");
  CUgraphExec exec = NULL;
  if (b->graph) {
    /* whole cycles of copies, so that replays rotate as the direct runs do */
    batch = (batch + b->copies - 1) / b->copies * b->copies;
    st = capture(b, run, ctx, batch, &exec);
    /* an untimed replay: the graph is uploaded on its first */
    if (!st) st = q4_cuda_check(cu->GraphLaunch(exec, b->stream), "replaying the CUDA graph");
    if (!st) st = q4_cuda_check(cu->StreamSynchronize(b->stream), "replaying the CUDA graph");
  }
  int next = 1 % b->copies;
  for (int sidx = 0; !st && sidx < samples; sidx++) {
    st = q4_cuda_check(cu->EventRecord(b->ev0, b->stream), "cuEventRecord");
    if (exec && !st) st = q4_cuda_check(cu->GraphLaunch(exec, b->stream), "replaying the CUDA graph");
    for (int r = 0; !exec && !st && r < batch; r++) {
      st = write_and_run(b, run, ctx, next);
      next = (next + 1) % b->copies;
    }
    if (!st) st = q4_cuda_check(cu->EventRecord(b->ev1, b->stream), "cuEventRecord");
    if (!st) st = q4_cuda_check(cu->EventSynchronize(b->ev1), "running the timed batch");
    if (!st) st = q4_cuda_check(cu->EventElapsedTime(&ms, b->ev0, b->ev1), "cuEventElapsedTime");
    if (!st) t[sidx] = ms * 1000.0 / batch;
  }
  if (exec) cu->GraphExecDestroy(exec);
  if (!st) {
    qsort(t, (size_t)samples, sizeof *t, cmp_double);
    *median_us = samples % 2 ? t[samples / 2] : 0.5 * (t[samples / 2 - 1] + t[samples / 2]);
    *min_us = t[0];
    *max_us = t[samples - 1];
  }
  free(t);
  return st;
}

q4_status q4_bed_verify(q4_bed *b, q4_bed_run run, void *ctx, double *rel_error) {
  q4_status st = q4_ctx_push(b->h);
  if (st) return st;
  st = verify(b, run, ctx, rel_error);
  q4_ctx_pop(b->h);
  return st;
}

q4_status q4_bed_time(q4_bed *b, q4_bed_run run, void *ctx, int samples, double *median_us, double *min_us,
                      double *max_us) {
  if (samples < 1) return q4_err(Q4_ERR_INVALID_ARG, "q4_bed_time: samples must be at least 1");
  q4_status st = q4_ctx_push(b->h);
  if (st) return st;
  st = time_runs(b, run, ctx, samples, median_us, min_us, max_us);
  q4_ctx_pop(b->h);
  return st;
}
