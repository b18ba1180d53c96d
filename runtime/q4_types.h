/*
** q4_types.h -- the problem and kernel-variant records shared by the
** generator, the compiler, the database and the dispatcher (internal).
*/
#ifndef Q4_TYPES_H
#define Q4_TYPES_H

#include "q4tune.h"

#define Q4_NAME_MAX 64
#define Q4_PARAMS_MAX 256
#define Q4_HASH_MAX 33 /* 32 hex digits of XXH3-128 plus NUL */

/* The compile-time part of a problem: everything but M. group_size is
** normalized (per-channel means group_size == k). */
typedef struct q4_shape {
  q4_format format;
  int n, k, group_size;
  int flags;  /* Q4_SHAPE_SYMMETRIC | Q4_SHAPE_ACT_ORDER */
} q4_shape;

#define Q4_SHAPE_SYMMETRIC 1  /* every zero is 8: no zeros array is read */
#define Q4_SHAPE_ACT_ORDER 2  /* x's columns are gathered through a permutation */

/* Whether a and b are one shape: the same kernels serve both. Weights of
** one size in another kind (symmetric, act-order) take other kernels. */
static inline int q4_shape_same(const q4_shape *a, const q4_shape *b) {
  return a->format == b->format && a->n == b->n && a->k == b->k && a->group_size == b->group_size &&
         a->flags == b->flags;
}

/* One kernel variant of one template for one shape and architecture.
** Launch geometry is the same for every template family:
**   grid  = (ceil(N / tile_n), ceil(M / tile_m), split_k)
**   block = (threads, 1, 1), dynamic shared memory = q4_variant_smem(v, M)
**   bytes: smem, plus smem_row for each row of x a block holds (a block
**   holds min(tile_m, M) rows).
** A variant with split_k > 1 needs a workspace of split_k * M * N floats plus
** one zeroed counter (uint32) per (x, y) tile; see runtime/q4_dispatch.c. */
typedef struct q4_variant {
  char tmpl[Q4_NAME_MAX];      /* template name, e.g. "q4_wmma" */
  char params[Q4_PARAMS_MAX];  /* "BLOCK_M=64,BLOCK_N=128,..." in declared order */
  int threads;                 /* threads per block */
  int smem;                    /* dynamic shared memory, bytes */
  int smem_row;                /* more of it per row of x in the block, bytes */
  int tile_m, tile_n, split_k;
  int split_cluster;           /* 1: the split_k blocks of a tile run as one
                                  cluster (sm_90+) and sum their partial tiles
                                  in distributed shared memory; 0: through a
                                  global workspace and counters */
  int m_min, m_max;            /* M range where the tuner tries this variant;
                                  with smem_row, the most M it can launch */
  int chunk_n;                 /* 0: one fused kernel. > 0: a two-pass variant
                                  whose kernel q4tune_dequant expands chunk_n
                                  columns of W to fp16 at a time, each chunk
                                  then multiplied by cuBLAS */
  char *source;                /* rendered CUDA C++ (malloc'd), NULL until rendered */
  char hash[Q4_HASH_MAX];      /* XXH3-128 of source in hex, "" until rendered */
} q4_variant;

/* Dynamic shared memory of a launch of v for M rows of x (M = INT_MAX: the
** most any launch asks for). */
static inline int q4_variant_smem(const q4_variant *v, int m) {
  return v->smem + v->smem_row * (m < v->tile_m ? m : v->tile_m);
}

static inline const char *q4_format_name(q4_format f) {
  return f == Q4_FORMAT_Q4S ? "q4s" : "q4";
}

/* The bytes of each array of weights of shape s (docs/FORMATS.md): qweight
** (4 bits a weight; q4s 2, its 16 kept codes of 32 rows), scales and as
** many of zeros, the q4s mask (1 bit a weight) and an act-order perm; 0 for
** an array the shape has not. */
typedef struct q4_array_bytes {
  size_t qweight, scales, mask, perm;
} q4_array_bytes;

static inline q4_array_bytes q4_shape_arrays(const q4_shape *s) {
  const size_t n = (size_t)s->n, k = (size_t)s->k;
  const int sparse = s->format == Q4_FORMAT_Q4S;
  const size_t groups = (size_t)(s->group_size > 0 ? s->k / s->group_size : 1);
  const q4_array_bytes a = {k / (sparse ? 16 : 8) * n * 4, groups * n * 2, sparse ? k / 32 * n * 4 : 0,
                            (s->flags & Q4_SHAPE_ACT_ORDER) ? k * 4 : 0};
  return a;
}

/* Bytes of one weight matrix of shape s that a product reads: the codes (4
** bits a weight; q4s 3, its mask included), the fp16 scales and, unless
** symmetric, the zeros. At small M this is nearly all a product moves. */
static inline size_t q4_shape_weight_bytes(const q4_shape *s) {
  const q4_array_bytes a = q4_shape_arrays(s);
  return a.qweight + a.mask + a.scales * ((s->flags & Q4_SHAPE_SYMMETRIC) ? 1 : 2);
}

#endif
