/*
** q4tune.h -- public API of libq4tune.
**
** y[M][N] = x[M][K] * W[K][N] with W stored as packed 4-bit codes and fp16
** scales and zeros (see docs/FORMATS.md), x and y fp16 row-major, fp32
** accumulation. Kernels are generated from Lua templates, compiled with NVRTC
** at run time and chosen per shape from a tuning database.
**
** Every function returns a q4_status; on failure q4_last_error() gives a
** message for the calling thread. Device pointers are CUDA device addresses
** (what cudaMalloc or cuMemAlloc return) cast to pointers; a stream is a
** cudaStream_t / CUstream, or NULL for the legacy default stream.
*/
#ifndef Q4TUNE_H
#define Q4TUNE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define Q4TUNE_VERSION "0.1.0"

/* Status codes. Q4_OK is zero; every other value is an error. */
typedef enum q4_status {
  Q4_OK = 0,
  Q4_ERR_INVALID_ARG,     /* NULL pointer, non-positive size, bad option */
  Q4_ERR_UNSUPPORTED,     /* a valid request the kernels can't take (shape, format) */
  Q4_ERR_NO_DRIVER,       /* libcuda.so.1 could not be loaded */
  Q4_ERR_NO_DEVICE,       /* no CUDA device, or no device of that ordinal */
  Q4_ERR_DEVICE_TOO_OLD,  /* compute capability below 7.5 */
  Q4_ERR_NO_HEADERS,      /* the CUDA headers NVRTC needs were not found */
  Q4_ERR_NVRTC,           /* NVRTC missing, or a kernel failed to compile */
  Q4_ERR_CUDA,            /* a CUDA driver call failed */
  Q4_ERR_DB,              /* the tuning database is unreadable, corrupt or locked */
  Q4_ERR_NO_MEMORY,       /* host or device allocation failed */
  Q4_ERR_TEMPLATE,        /* a kernel template failed to load or render */
  Q4_ERR_VERIFY,          /* a kernel produced a wrong result */
  Q4_ERR_IO               /* a file could not be read or written */
} q4_status;

/* A short constant name for a status ("Q4_ERR_DB"). Never NULL. */
const char *q4_status_name(q4_status s);

/* The message of the last failed q4tune call on this thread ("" if none). */
const char *q4_last_error(void);

/* Weight formats: dense int4 and 16:32 structured-sparse int4. */
typedef enum q4_format { Q4_FORMAT_Q4 = 0, Q4_FORMAT_Q4S = 1 } q4_format;

/* A weight matrix W[K][N] in device memory, as docs/FORMATS.md lays it out.
** group_size is the number of rows sharing one scale and zero; 0 or k means
** one group (per-channel). mask is used by Q4_FORMAT_Q4S only: a mask word
** without exactly 16 bits set makes q4_matmul write NaN to that column. */
typedef struct q4_weights {
  q4_format format;
  int n, k, group_size;
  const void *qweight;  /* uint32 [K/8][N] (q4), [K/16][N] (q4s) */
  const void *scales;   /* fp16 [K/group_size][N] */
  const void *zeros;    /* fp16 [K/group_size][N] */
  const void *mask;     /* uint32 [K/32][N] (q4s) */
  const void *perm;     /* NULL, or int32 [K] for act-order weights: y = x[:, perm] * W
                           (rows sorted by group, as q4_gptq_import gives them) */
  int symmetric;        /* 1: every zero is 8; zeros is not read and may be NULL */
} q4_weights;

typedef struct q4_handle q4_handle;

/* Open a handle on CUDA device `device` (an ordinal, 0 for the first GPU)
** with the tuning database at db_path; NULL means $Q4TUNE_DB, else
** $XDG_CACHE_HOME/q4tune/tuning.db (~/.cache/q4tune/tuning.db). The database
** is created if missing. A handle may be used from several threads. */
q4_status q4_create(int device, const char *db_path, q4_handle **out);

/* Release a handle and everything it compiled or allocated. NULL is a no-op. */
void q4_destroy(q4_handle *h);

/* Check a weight descriptor without touching the GPU: format, sizes,
** divisibility (N % 8, K % 32, K % group_size, group_size % 32), pointers
** and their alignment. Sparse (Q4_FORMAT_Q4S) weights need a mask and take
** no perm (Q4_ERR_UNSUPPORTED); the mask's contents are not read here
** (q4_sparse_validate does that). */
q4_status q4_weights_check(const q4_weights *w);

/* y[m][N] = x[m][K] * W, enqueued on `stream`. Uses the tuned kernel for
** this device, shape and M bucket, or a default kernel if the shape was never
** tuned. The first call for a kernel compiles it (or loads it from the
** database's cubin cache). On error nothing is enqueued and y is untouched.
**
** Some kernels use scratch memory the handle keeps per stream (split-K
** partials, a two-pass kernel's fp16 weights). A call may be captured in a
** CUDA graph once a call with as many rows or more has run on the stream
** uncaptured (it loads the kernel and sizes the scratch; else the captured
** call fails with Q4_ERR_UNSUPPORTED, saying so). The graph stays
** valid while later calls grow the scratch: outgrown buffers are kept
** until q4_destroy. Graphs captured from one stream share its scratch, so
** replay them one after another, not at once on several streams.
**
** x and y are device arrays, 16-byte aligned; y may not overlap x or any
** array of w that is read (zeros of symmetric weights and the mask of dense
** ones are not).
**
** Errors:
**   Q4_ERR_INVALID_ARG  h, w, x or y NULL; w fails q4_weights_check; m < 1;
**                       x or y not 16-byte aligned; y over an input (the
**                       message names it).
**   Q4_ERR_UNSUPPORTED  no kernel takes this shape or M; or `stream` is being
**                       captured into a CUDA graph and the product needs more
**                       scratch there than it has (see above).
**   Q4_ERR_TEMPLATE     a kernel template failed to render.
**   Q4_ERR_NVRTC, Q4_ERR_NO_HEADERS  the kernel failed to compile.
**   Q4_ERR_DB           the tuning database could not be read.
**   Q4_ERR_NO_MEMORY    no memory for split-K or two-pass scratch.
**   Q4_ERR_CUDA         a driver call failed: a bad device pointer, say, or
**                       an earlier asynchronous error on `stream`. */
q4_status q4_matmul(q4_handle *h, const q4_weights *w, const void *x, void *y,
                    int m, void *stream);

/* Name of the kernel q4_matmul would run for this shape and m, written to
** buf ("q4_decode[WARPS_K=4,...]"); also reports whether it is a tuned
** winner (1) or a default (0). */
q4_status q4_kernel_name(q4_handle *h, const q4_weights *w, int m, char *buf,
                         size_t bufsize, int *tuned);

/* Early launch (off by default; compute capability 9.0 and newer). With
** on = 1, q4_matmul launches its kernel as a programmatic dependent of the
** kernel queued just before it on the stream: the kernel may start while
** that one is still finishing, and its blocks load their first weights
** (qweight, mask, scales, zeros, perm) and build their tables meanwhile.
** It waits for that kernel to finish, its writes visible, before it reads
** x or writes y. So turn it on only where the kernel just before a product
** never writes that product's weights (as in inference, where weights are
** loaded once). What q4_matmul computes does not change.
**
** Errors: Q4_ERR_INVALID_ARG (h NULL, on not 0 or 1); Q4_ERR_UNSUPPORTED
** (on = 1 on a GPU below compute capability 9.0). */
q4_status q4_set_early_launch(q4_handle *h, int on);

/* ---- 16:32 structured-sparse weights on the GPU (runtime/q4_sparse_gpu.c) -- */

/* Pack a dense code matrix and keep-mask into the q4s layout of
** docs/FORMATS.md, on the GPU of handle h.
**
** codes and keep are device arrays of N x K bytes, element (n, k) at
** n*K + k (each column's K rows contiguous): codes 0..15, keep 0 or 1 with
** exactly 16 ones in every block of 32 rows (k = 32b .. 32b+31) of every
** column; any alignment. Writes qweight, uint32 [K/16][N], and mask, uint32
** [K/32][N], both device arrays 16-byte aligned. The result is bit for bit
** that of packing on the host: kept code number i (0..15, increasing k) of
** block b, column n goes in word (2b + i/8, n), bits 4*(i%8) .. 4*(i%8)+3;
** bit j of mask word (b, n) is set when row 32b + j is kept. Pruned codes
** are dropped, whatever their value (it must still be 0..15). The outputs
** may not overlap the inputs or each other.
**
** The input is checked on the GPU first and nothing is written to qweight
** or mask unless all of it is valid. The work runs on `stream` (NULL: the
** legacy default stream) after what is queued there, and the call
** synchronizes `stream`: it returns once the packing is done.
** The first call on a handle compiles the kernels (or loads them from the
** database's cubin cache).
**
** Errors:
**   Q4_ERR_INVALID_ARG  h, codes, keep, qweight or mask NULL; N not a
**                       positive multiple of 8; K not a positive multiple of
**                       32; qweight or mask not 16-byte aligned; an output
**                       overlapping another array (all checked before the
**                       GPU is touched); and for the input, the
**                       first of: a code above 15 or a keep value other than
**                       0 and 1 (the first in (n, k) order, named with its
**                       position and value), or a block of 32 rows keeping
**                       other than 16 (the first in (row block, column)
**                       order, named with its rows, column and count).
**   Q4_ERR_NVRTC, Q4_ERR_NO_HEADERS  the kernels failed to compile.
**   Q4_ERR_DB           the cubin cache could not be read or written.
**   Q4_ERR_NO_MEMORY    no device memory for the check's 16-byte scratch.
**   Q4_ERR_CUDA         a driver call failed: a bad device pointer, say, or
**                       an earlier asynchronous error on `stream`. */
q4_status q4_sparse_pack(q4_handle *h, const void *codes, const void *keep, int n, int k, void *qweight,
                         void *mask, void *stream);

/* Check a q4s mask, uint32 [K/32][N] in device memory (16-byte aligned):
** Q4_OK when every word has exactly 16 bits set. Runs on `stream` after what
** is queued there and synchronizes it.
**
** Errors:
**   Q4_ERR_INVALID_ARG  h or mask NULL; N not a positive multiple of 8; K
**                       not a positive multiple of 32; mask not 16-byte
**                       aligned; or a mask word with other than 16 bits set:
**                       the first in (row block, column) order, named with
**                       its row block, rows, column, value and bit count.
**   Q4_ERR_NVRTC, Q4_ERR_NO_HEADERS, Q4_ERR_DB, Q4_ERR_NO_MEMORY,
**   Q4_ERR_CUDA         as for q4_sparse_pack. */
q4_status q4_sparse_validate(q4_handle *h, const void *mask, int n, int k, void *stream);

/* The inverse of q4_sparse_pack: from qweight, uint32 [K/16][N], and mask,
** uint32 [K/32][N] (device arrays, 16-byte aligned), write codes and keep,
** N x K bytes each in device memory (element (n, k) at n*K + k, any
** alignment): keep 1 and the code for a kept row, keep 0 and code 0 for a
** pruned one. codes and keep may not overlap each other or the inputs.
** The mask is validated first as q4_sparse_validate does; if it is invalid
** nothing is written. Runs on `stream` after what is queued there
** and synchronizes it.
**
** Errors:
**   Q4_ERR_INVALID_ARG  h, qweight, mask, codes or keep NULL; N not a
**                       positive multiple of 8; K not a positive multiple of
**                       32; qweight or mask not 16-byte aligned; codes or
**                       keep overlapping another array; or a mask word with
**                       other than 16 bits set (named as by
**                       q4_sparse_validate).
**   Q4_ERR_NVRTC, Q4_ERR_NO_HEADERS, Q4_ERR_DB, Q4_ERR_NO_MEMORY,
**   Q4_ERR_CUDA         as for q4_sparse_pack. */
q4_status q4_sparse_unpack(q4_handle *h, const void *qweight, const void *mask, int n, int k, void *codes,
                           void *keep, void *stream);

/* ---- GPTQ checkpoint import (runtime/q4_gptq.c, docs/IMPORT.md) ---------- */

/* A weight matrix in host memory in q4tune's layout (docs/FORMATS.md).
** group_size is K / G (K for per-channel). Arrays are malloc'd; free with
** q4_host_matrix_free. */
typedef struct q4_host_matrix {
  int n, k, group_size;
  unsigned *qweight;        /* [K/8][N] */
  unsigned short *scales;   /* fp16 bits [K/group_size][N] */
  unsigned short *zeros;    /* fp16 bits [K/group_size][N] */
  int *perm;                /* NULL, or [K] for act-order: row i of this matrix is
                               row perm[i] of the checkpoint; multiply x[:, perm] by it */
  int symmetric;            /* 1 if every zero is 8 */
} q4_host_matrix;

typedef enum q4_gptq_version { Q4_GPTQ_AUTO = 0, Q4_GPTQ_V1 = 1, Q4_GPTQ_V2 = 2 } q4_gptq_version;

/* Import layer `prefix` (e.g. "model.layers.0.mlp.down_proj") from a GPTQ
** safetensors file: reads prefix.qweight, .qzeros, .scales and the optional
** .g_idx. Only 4-bit weights are taken (other widths: Q4_ERR_UNSUPPORTED
** naming the width). V1 is the classic format (qzeros hold zero - 1), V2
** gptq_v2; AUTO reads "checkpoint_format" from quantize_config.json next to
** the file (or config.json's "quantization_config"), else V1. An act-order
** g_idx is resolved by reordering rows so groups are contiguous (perm).
** Errors: Q4_ERR_IO (unreadable or corrupt file), Q4_ERR_INVALID_ARG
** (missing tensor, inconsistent shapes or dtypes), Q4_ERR_UNSUPPORTED. */
q4_status q4_gptq_import(const char *safetensors_path, const char *prefix, q4_gptq_version version,
                         q4_host_matrix *out);

/* Free the arrays of m and zero it. NULL is a no-op. */
void q4_host_matrix_free(q4_host_matrix *m);

/* (q - z) * s of row k (in this matrix's, i.e. permuted, order), column n. */
double q4_host_matrix_dequant(const q4_host_matrix *m, int k, int n);

/* Round-to-nearest quantization of w[K][N] (row-major floats), per group of
** group_size rows (0 or k: per-channel) and column. Asymmetric: the range
** [min(w, 0), max(w, 0)] in 15 steps with an integer zero 0..15; symmetric:
** zero 8, scale 2 * max|w| / 15. N and K must be multiples of 8. */
q4_status q4_quantize_rtn(const float *w, int k, int n, int group_size, int symmetric, q4_host_matrix *out);

/* ---- end of GPTQ checkpoint import ---------------------------------------- */

#ifdef __cplusplus
}
#endif
#endif
