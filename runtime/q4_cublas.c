/*
** q4_cublas.c -- cuBLAS, loaded at run time.
*/
#include "q4_cublas.h"

#include <cublas_api.h>
#include <dlfcn.h>
#include <stdlib.h>

#include "q4_error.h"

struct q4_cublas {
  void *lib;
  cublasHandle_t handle;
  cublasStatus_t (*create)(cublasHandle_t *);
  cublasStatus_t (*destroy)(cublasHandle_t);
  cublasStatus_t (*set_stream)(cublasHandle_t, cudaStream_t);
  cublasStatus_t (*gemm_ex)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const void *,
                            const void *, cudaDataType, int, const void *, cudaDataType, int, const void *, void *,
                            cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t);
};

q4_status q4_cublas_open(q4_cublas **out) {
  *out = NULL;
  q4_cublas *c = calloc(1, sizeof *c);
  if (!c) return q4_err(Q4_ERR_NO_MEMORY, "out of host memory");
  const char *names[] = {getenv("Q4TUNE_LIBCUBLAS"), "libcublas.so.13", "libcublas.so.12", "libcublas.so",
                         "/usr/local/cuda/lib64/libcublas.so"};
  for (size_t i = 0; i < sizeof names / sizeof names[0] && !c->lib; i++)
    if (names[i]) c->lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
  if (!c->lib) {
    free(c);
    return q4_err(Q4_ERR_NO_DRIVER, "cannot load cuBLAS (%s): the fp16 baseline needs the CUDA toolkit", dlerror());
  }
  *(void **)&c->create = dlsym(c->lib, "cublasCreate_v2");
  *(void **)&c->destroy = dlsym(c->lib, "cublasDestroy_v2");
  *(void **)&c->set_stream = dlsym(c->lib, "cublasSetStream_v2");
  *(void **)&c->gemm_ex = dlsym(c->lib, "cublasGemmEx");
  if (!c->create || !c->destroy || !c->set_stream || !c->gemm_ex || c->create(&c->handle) != CUBLAS_STATUS_SUCCESS) {
    dlclose(c->lib);
    free(c);
    return q4_err(Q4_ERR_CUDA, "cuBLAS loaded but could not create a handle");
  }
  *out = c;
  return Q4_OK;
}

void q4_cublas_close(q4_cublas *c) {
  if (!c) return;
  c->destroy(c->handle);
  dlclose(c->lib);
  free(c);
}

q4_status q4_cublas_gemm(q4_cublas *c, CUstream s, int m, int n, int k, CUdeviceptr x, int ldx, CUdeviceptr w,
                         int ldw, CUdeviceptr y, int ldy) {
  /* Row-major y = x * w is column-major y^T = w^T * x^T: no transposes. */
  const float one = 1.0f, zero = 0.0f;
  if (c->set_stream(c->handle, (cudaStream_t)s) != CUBLAS_STATUS_SUCCESS)
    return q4_err(Q4_ERR_CUDA, "cublasSetStream failed");
  cublasStatus_t r = c->gemm_ex(c->handle, CUBLAS_OP_N, CUBLAS_OP_N, n, m, k, &one, (const void *)w, CUDA_R_16F, ldw,
                                (const void *)x, CUDA_R_16F, ldx, &zero, (void *)y, CUDA_R_16F, ldy, CUBLAS_COMPUTE_32F,
                                CUBLAS_GEMM_DEFAULT);
  return r == CUBLAS_STATUS_SUCCESS ? Q4_OK : q4_err(Q4_ERR_CUDA, "cublasGemmEx failed with status %d", (int)r);
}
