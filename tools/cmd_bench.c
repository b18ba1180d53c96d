/*
** cmd_bench.c -- q4tune bench: the kernels q4_matmul picks, timed next to
** cuBLAS fp16 in the same process and run, weights rotated through enough
** copies that every pass streams them from memory.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "q4_cublas.h"
#include "q4_bed.h"
#include "q4_error.h"

static const char usage[] =
    "usage: q4tune bench [--model NAME | --shape N,K ...] [--m LIST] [--group G] [options]\n"
    "\n"
    "For each shape and M: the kernel q4_matmul runs and its median time, cuBLAS\n"
    "fp16 (fp32 accumulation) on the dequantized weights in the same run, the\n"
    "speed-up over cuBLAS, the share of the measured copy bandwidth the int4\n"
    "product reaches (its weights, x and y over the time) and TFLOP/s. Both are\n"
    "verified against the reference before they are timed. A sparse (q4s) row\n"
    "also gives its time over the dense (q4) row of the same shape and M\n"
    "(\"vs q4\"), when both formats are benchmarked.\n"
    "\n"
    "  --model NAME   shapes of a model preset (default llama-7b)\n"
    "  --shape N,K    a weight shape; repeatable\n"
    "  --m LIST       default 1,16,64,256,1024,2048\n"
    "  --group G      group size (default 0: per-channel)\n"
    "  --symmetric    weights whose zeros are all 8 (no zeros array is read)\n"
    "  --act-order    act-order weights: x gathered through a random permutation\n"
    "  --format F     q4, q4s (16:32 sparse) or all; default: both for a model's\n"
    "                 shapes, q4 for --shape\n"
    "  --after-write  run each product right after a kernel that writes its x (one\n"
    "                 block a row, as a normalization would); the times include it,\n"
    "                 and its time alone is the \"writer us\" column\n"
    "  --early-launch launch the products early, as programmatic dependents of\n"
    "                 the kernel before (sm_90+; q4_set_early_launch)\n"
    "  --graph        capture each batch of products (q4tune's and cuBLAS's) into a\n"
    "                 CUDA graph and time its replays, as a decode loop run in a\n"
    "                 graph sees them: no gaps between launches from the host\n"
    "  --samples S    timed samples (default 25)\n"
    "  --db PATH, --device D, --seed S\n";

typedef struct fp16_weights {
  q4_cublas *blas;
  CUdeviceptr *w;  /* fp16 [K][N] copies */
  int copies;
} fp16_weights;

static q4_status run_matmul(void *ctx, q4_bed *b, const q4_weights *w, CUstream s) {
  return q4_matmul((q4_handle *)ctx, w, (const void *)b->x, (void *)b->y, b->m, s);
}

/* No product: with after_write, times the writer of x alone. */
static q4_status run_none(void *ctx, q4_bed *b, const q4_weights *w, CUstream s) {
  (void)ctx, (void)b, (void)w, (void)s;
  return Q4_OK;
}

static q4_status run_cublas(void *ctx, q4_bed *b, const q4_weights *w, CUstream s) {
  fp16_weights *f = ctx;
  const int i = (int)(w - b->w) % f->copies;
  return q4_cublas_gemm(f->blas, s, b->m, b->shape.n, b->shape.k, b->x, b->shape.k, f->w[i], b->shape.n, b->y,
                        b->shape.n);
}

static q4_status fp16_open(fp16_weights *f, q4_bed *b, q4_cublas *blas) {
  q4_handle *h = b->h;
  const size_t kn = (size_t)b->shape.k * b->shape.n, bytes = kn * 2;
  f->blas = blas;
  f->copies = (int)(2 * h->l2_bytes / bytes) + 1;
  /* Run r takes int4 copy r % b->copies and fp16 copy (that) % f->copies.
  ** Where the int4 copies wrap round, the fp16 copy must change too, or
  ** cuBLAS would find its last run's weights in L2 once a cycle. */
  if (b->copies > 1) {
    if (f->copies < 2) f->copies = 2;
    while (b->copies % f->copies == 1) f->copies++;
  }
  f->w = calloc((size_t)f->copies, sizeof *f->w);
  uint16_t *host = malloc(bytes);
  if (!f->w || !host) {
    free(host);
    return q4_err(Q4_ERR_NO_MEMORY, "out of host memory");
  }
  for (int k = 0; k < b->shape.k; k++)
    for (int n = 0; n < b->shape.n; n++)
      /* act-order: row k of W is row perm[k] of the matrix x multiplies */
      host[(size_t)(b->host.perm ? b->host.perm[k] : k) * b->shape.n + n] =
          q4_f2h((float)q4_bed_weight(b, k, n));
  q4_status st = q4_ctx_push(h);
  if (st) {
    free(host);
    return st;
  }
  for (int i = 0; !st && i < f->copies; i++) {
    st = q4_cuda_check(h->cu->MemAlloc(&f->w[i], bytes), "allocating fp16 weights");
    if (!st) st = q4_cuda_check(h->cu->MemcpyHtoD(f->w[i], host, bytes), "copying fp16 weights");
  }
  /* the copies' DMA may outlast the calls; cuBLAS runs on another stream */
  if (!st) st = q4_cuda_check(h->cu->CtxSynchronize(), "copying fp16 weights");
  q4_ctx_pop(h);
  free(host);
  return st;
}

static void fp16_close(fp16_weights *f, q4_handle *h) {
  if (!f->w) return;
  if (q4_ctx_push(h) == Q4_OK) {
    for (int i = 0; i < f->copies; i++)
      if (f->w[i]) h->cu->MemFree(f->w[i]);
    q4_ctx_pop(h);
  }
  free(f->w);
  f->w = NULL;
}

/* Device-to-device copy bandwidth (bytes read plus written), the ceiling
** a memory-bound kernel is measured against. */
static q4_status copy_bandwidth(q4_handle *h, double *gbs) {
  const q4_cuda_api *cu = h->cu;
  const size_t bytes = (size_t)1 << 30;
  CUdeviceptr a = 0, b = 0;
  CUevent e0 = NULL, e1 = NULL;
  q4_status st = q4_ctx_push(h);
  if (st) return st;
  st = q4_cuda_check(cu->MemAlloc(&a, bytes), "allocating");
  if (!st) st = q4_cuda_check(cu->MemAlloc(&b, bytes), "allocating");
  if (!st) st = q4_cuda_check(cu->EventCreate(&e0, 0), "cuEventCreate");
  if (!st) st = q4_cuda_check(cu->EventCreate(&e1, 0), "cuEventCreate");
  float best = INFINITY;
  for (int i = 0; !st && i < 10; i++) {
    float ms;
    st = q4_cuda_check(cu->EventRecord(e0, NULL), "cuEventRecord");
    if (!st) st = q4_cuda_check(cu->MemcpyDtoD(b, a, bytes), "copying");
    if (!st) st = q4_cuda_check(cu->EventRecord(e1, NULL), "cuEventRecord");
    if (!st) st = q4_cuda_check(cu->EventSynchronize(e1), "copying");
    if (!st) st = q4_cuda_check(cu->EventElapsedTime(&ms, e0, e1), "timing");
    if (!st && i > 0 && ms < best) best = ms;
  }
  *gbs = 2.0 * bytes / (best * 1e-3) / 1e9;
  if (e0) cu->EventDestroy(e0);
  if (e1) cu->EventDestroy(e1);
  if (a) cu->MemFree(a);
  if (b) cu->MemFree(b);
  q4_ctx_pop(h);
  return st;
}

/* Dense times by shape and M, so a sparse row can show its time over the
** dense one of the same run. */
typedef struct dense_time {
  q4_shape s;
  int m;
  double us;
} dense_time;

typedef struct dense_times {
  dense_time t[CLI_MAX_SHAPES * CLI_MAX_M];
  int n;
} dense_times;

static double dense_us(const dense_times *d, const q4_shape *s, int m) {
  for (int i = 0; i < d->n; i++) {
    const q4_shape *a = &d->t[i].s;
    if (a->n == s->n && a->k == s->k && a->group_size == s->group_size && a->flags == s->flags && d->t[i].m == m)
      return d->t[i].us;
  }
  return 0;
}

static q4_status bench_one(q4_handle *h, q4_bed *bed, fp16_weights *f, int m, const cli_opts *o, double bw,
                           const char *name, dense_times *dense) {
  q4_status st = q4_bed_set_m(bed, m, o->seed + (unsigned)m);
  char kname[Q4_NAME_MAX + Q4_PARAMS_MAX + 2];
  int tuned = 0;
  double err_q = INFINITY, err_b = INFINITY, q_us = 0, b_us = 0, lo, hi;
  if (!st) st = q4_kernel_name(h, &bed->w[0], m, kname, sizeof kname, &tuned);
  if (!st) st = q4_bed_verify(bed, run_matmul, h, &err_q);
  if (!st && !(err_q <= Q4_REL_ERROR_MAX))
    st = q4_err(Q4_ERR_VERIFY, "%s M=%d: q4tune's kernel is wrong (relative error %.3g)", name, m, err_q);
  if (!st) st = q4_bed_verify(bed, run_cublas, f, &err_b);
  if (!st && !(err_b <= Q4_REL_ERROR_MAX))
    st = q4_err(Q4_ERR_VERIFY, "%s M=%d: cuBLAS disagrees with the reference (%.3g)", name, m, err_b);
  if (!st) st = q4_bed_time(bed, run_matmul, h, o->samples, &q_us, &lo, &hi);
  if (!st) st = q4_bed_time(bed, run_cublas, f, o->samples, &b_us, &lo, &hi);
  double w_us = 0;
  if (!st && bed->after_write) st = q4_bed_time(bed, run_none, NULL, o->samples, &w_us, &lo, &hi);
  if (st) return st;
  const q4_shape *s = &bed->shape;
  const double bytes = (double)q4_shape_weight_bytes(s) + 2.0 * m * s->k + 2.0 * m * s->n;
  const double flops = 2.0 * m * s->k * s->n;
  char vs[16] = "";
  if (s->format == Q4_FORMAT_Q4 && dense->n < (int)(sizeof dense->t / sizeof dense->t[0]))
    dense->t[dense->n++] = (dense_time){*s, m, q_us};
  const double d_us = s->format == Q4_FORMAT_Q4S ? dense_us(dense, s, m) : 0;
  if (d_us > 0) snprintf(vs, sizeof vs, "%.2fx", q_us / d_us);
  printf("| %-30s | %5d | %9.2f | %9.2f | %6.2fx | %5.1f%% | %7.1f | %6s |", name, m, q_us, b_us, b_us / q_us,
         100.0 * bytes / (q_us * 1e-6) / 1e9 / bw, flops / (q_us * 1e-6) / 1e12, vs);
  if (bed->after_write) printf(" %9.2f |", w_us);
  printf(" %s%s |\n", kname, tuned ? "" : " (untuned)");
  fflush(stdout);
  return Q4_OK;
}

int cmd_bench(int argc, char **argv) {
  cli_opts o;
  static const int default_m[] = {1, 16, 64, 256, 1024, 2048};
  int rc = cli_parse(argc, argv, &o, usage, "llama-7b", default_m, (int)(sizeof default_m / sizeof default_m[0]));
  if (rc) return rc > 0 ? 0 : 2;
  q4_handle *h;
  q4_status st = q4_create(o.device, o.db, &h);
  if (st) return cli_fail("opening the GPU", st);
  q4_cublas *blas = NULL;
  double bw = 0;
  if (!(st = q4_ctx_push(h))) {
    st = q4_cublas_open(&blas);
    q4_ctx_pop(h);
  }
  if (!st && o.early_launch) st = q4_set_early_launch(h, 1);
  if (!st) st = copy_bandwidth(h, &bw);
  if (!st) {
    printf("%s, sm_%d, %d SMs; copy bandwidth %.0f GB/s; median of %d samples%s, weights rotated beyond L2%s%s\n\n",
           h->info.name, h->arch, h->sms, bw, o.samples, o.graph ? " (CUDA graph replays)" : "",
           o.after_write ? "; each product (q4tune's and cuBLAS's) after a kernel writing its x, timed with it" : "",
           o.early_launch ? "; q4tune's kernels launched early" : "");
    printf("| %-30s | %5s | %9s | %9s | %7s | %6s | %7s | %6s |", "shape", "M", "q4tune us", "cuBLAS us", "speedup",
           "% BW", "TFLOP/s", "vs q4");
    if (o.after_write) printf(" %9s |", "writer us");
    printf(" kernel |\n|%s|------:|----------:|----------:|--------:|-------:|--------:|-------:|%s--------|\n",
           "--------------------------------", o.after_write ? "----------:|" : "");
  }
  static dense_times dense;  /* large: not on the stack */
  dense.n = 0;
  for (int i = 0; i < o.nshapes && !st; i++) {
    char name[96];
    cli_shape_name(&o.shapes[i], name, sizeof name);
    q4_bed bed;
    fp16_weights f;
    memset(&f, 0, sizeof f);
    st = q4_bed_open(&bed, h, &o.shapes[i], o.seed + (unsigned)i, 1);
    bed.after_write = o.after_write;
    bed.graph = o.graph;
    if (!st) st = fp16_open(&f, &bed, blas);
    for (int j = 0; j < o.nm && !st; j++) st = bench_one(h, &bed, &f, o.m[j], &o, bw, name, &dense);
    fp16_close(&f, h);
    q4_bed_close(&bed);
  }
  if (blas && q4_ctx_push(h) == Q4_OK) {
    q4_cublas_close(blas);
    q4_ctx_pop(h);
  }
  q4_destroy(h);
  return st ? cli_fail("benchmarking", st) : 0;
}
