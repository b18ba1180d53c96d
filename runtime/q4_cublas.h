/*
** q4_cublas.h -- cuBLAS loaded with dlopen (internal): the fp16 GEMM of
** the two-pass (dequantize, then multiply) variants and `q4tune bench`'s
** fp16 baseline. Only one call is needed: fp16 GEMM, fp32 accumulation.
*/
#ifndef Q4_CUBLAS_H
#define Q4_CUBLAS_H

#include <cuda.h>

#include "q4tune.h"

typedef struct q4_cublas q4_cublas;

/* Load libcublas (libcublas.so.13, .so.12, .so; $Q4TUNE_LIBCUBLAS, when
** set, is the only name tried) and create a handle in the current context. */
q4_status q4_cublas_open(q4_cublas **out);
void q4_cublas_close(q4_cublas *c);

/* Whether cuBLAS loads, without a GPU: its version and the name that
** loaded ("13.1.0 (libcublas.so.13)") in buf, or the error open would
** give. The library stays loaded (for a command about to exit). */
q4_status q4_cublas_probe(char *buf, size_t size);

/* y[m][n] = x[m][k] * w[k][n], all fp16 row-major with leading dimensions
** ldx, ldw, ldy (elements), fp32 accumulation. */
q4_status q4_cublas_gemm(q4_cublas *c, CUstream s, int m, int n, int k, CUdeviceptr x, int ldx, CUdeviceptr w,
                         int ldw, CUdeviceptr y, int ldy);

#endif
