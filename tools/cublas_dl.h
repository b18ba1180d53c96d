/*
** cublas_dl.h -- cuBLAS loaded with dlopen, for `q4tune bench`'s fp16
** baseline. Only what the baseline needs: one fp16 GEMM with fp32
** accumulation.
*/
#ifndef Q4_CUBLAS_DL_H
#define Q4_CUBLAS_DL_H

#include <cuda.h>

#include "q4tune.h"

typedef struct q4_cublas q4_cublas;

/* Load libcublas (libcublas.so.13, .so.12, .so; $Q4TUNE_LIBCUBLAS
** overrides) and create a handle in the current context. */
q4_status q4_cublas_open(q4_cublas **out);
void q4_cublas_close(q4_cublas *c);

/* y[m][n] = x[m][k] * w[k][n], all fp16 row-major, fp32 accumulation. */
q4_status q4_cublas_gemm(q4_cublas *c, CUstream s, int m, int n, int k, CUdeviceptr x, CUdeviceptr w,
                         CUdeviceptr y);

#endif
