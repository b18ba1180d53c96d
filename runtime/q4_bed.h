/*
** q4_bed.h -- a test bed on the GPU for one weight shape (internal): random
** weights (with copies to rotate through, so timed runs stream them from
** memory rather than L2), activations, a poisoned output, and an fp32
** reference product computed by a deliberately simple kernel. Used by the
** tuner, `q4tune check` and `q4tune bench`.
*/
#ifndef Q4_BED_H
#define Q4_BED_H

#include "q4_handle.h"
#include "q4_ref.h"
#include "q4_sparse.h"

typedef struct q4_bed {
  q4_handle *h;
  q4_shape shape;
  q4_host_weights host;   /* the weights on the host too (dense shapes) */
  q4s_host_weights sparse; /* the same for sparse (q4s) shapes */
  int copies;             /* weight copies on the GPU */
  q4_weights *w;          /* [copies] descriptors */
  CUdeviceptr *wmem;      /* [copies] one allocation each */
  int m, m_cap;
  uint16_t *x_host;       /* [m][K] */
  CUdeviceptr x, y, ref;  /* fp16 [m][K], fp16 [m][N], fp32 [m][N] */
  CUdeviceptr x_src;      /* fp16 [m][K]: x, for the writer to copy (after_write only) */
  int after_write;        /* 1: every product follows a kernel writing x (q4_write_x); set before q4_bed_set_m */
  int graph;              /* 1: products captured into a CUDA graph, verified and timed as its replays */
  CUdeviceptr err;        /* 3 doubles: sum (y-ref)^2, sum ref^2, bad count */
  CUfunction ref_fn, err_fn, write_fn;
  CUmodule ref_mod;
  CUstream stream;
  CUevent ev0, ev1;
  size_t weight_bytes;    /* one copy as a product reads it (q4_shape_weight_bytes) */
} q4_bed;

/* W[k][n] of the bed's weights in double (in the weights' row order: for
** act-order the row x's column perm[k] multiplies), exactly 0 if pruned. */
double q4_bed_weight(const q4_bed *b, int k, int n);

/* Random weights from seed and enough copies that `copies` of them exceed
** twice the L2 (min_copies at least). Caller holds no lock. */
q4_status q4_bed_open(q4_bed *b, q4_handle *h, const q4_shape *s, uint64_t seed, int min_copies);
void q4_bed_close(q4_bed *b);

/* New random x with m rows, and its reference product. Also checks the GPU
** reference against the host's double-precision one on sampled elements.
** With after_write, also the writer's source copy of x. */
q4_status q4_bed_set_m(q4_bed *b, int m, uint64_t seed);

/* Runs one product through `run` on weight copy 0 with y poisoned (NaN),
** then measures ||y - ref|| / ||ref|| (+inf if any element is NaN/Inf,
** i.e. unwritten). With after_write, x is poisoned too, and the stream's
** gathered act-order x (after a first product has made it), and a kernel
** writes x just before the product, which must wait for that kernel and
** the gather kernel after it. With graph, the product (and its writer) is
** captured into a graph first, and the replay is what is measured. */
typedef q4_status (*q4_bed_run)(void *ctx, q4_bed *b, const q4_weights *w, CUstream s);
q4_status q4_bed_verify(q4_bed *b, q4_bed_run run, void *ctx, double *rel_error);

/* Median, min and max microseconds of one product over `samples` samples;
** each sample times a batch of runs cycling through the weight copies
** (with after_write, each run after the kernel writing x: both timed).
** With graph, the batch is a CUDA graph of a whole number of cycles,
** captured once and replayed for each sample: no launch gaps from the host. */
q4_status q4_bed_time(q4_bed *b, q4_bed_run run, void *ctx, int samples, double *median_us,
                      double *min_us, double *max_us);

/* A q4_bed_run for a loaded kernel (ctx is the q4_kernel). */
q4_status q4_bed_run_kernel(void *ctx, q4_bed *b, const q4_weights *w, CUstream s);

/* Error bound a kernel must meet: fp16 output with fp32 accumulation. */
#define Q4_REL_ERROR_MAX 2e-3

#endif
