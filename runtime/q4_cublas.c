/*
** q4_cublas.c -- cuBLAS, loaded at run time.
*/
#include "q4_cublas.h"

#include <cublas_api.h>
#include <dlfcn.h>
#include <stdio.h>
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

/* dlopen cuBLAS: $Q4TUNE_LIBCUBLAS alone when it is set (as for the driver
** and NVRTC: a name that does not load means no cuBLAS), else the usual
** names. *name: the one that loaded. */
static q4_status load_library(void **lib, const char **name) {
  static const char *const defaults[] = {"libcublas.so.13", "libcublas.so.12", "libcublas.so",
                                         "/usr/local/cuda/lib64/libcublas.so"};
  const char *env = getenv("Q4TUNE_LIBCUBLAS");
  const int from_env = env && *env;
  const size_t count = from_env ? 1 : sizeof defaults / sizeof defaults[0];
  const char *why = NULL;
  *lib = NULL;
  for (size_t i = 0; i < count && !*lib; i++) {
    *name = from_env ? env : defaults[i];
    if (!(*lib = dlopen(*name, RTLD_NOW | RTLD_LOCAL))) why = dlerror();
  }
  if (*lib) return Q4_OK;
  return q4_err(Q4_ERR_NO_DRIVER, "cannot load cuBLAS (%s%s)", from_env ? "Q4TUNE_LIBCUBLAS: " : "",
                why ? why : "unknown error");
}

q4_status q4_cublas_probe(char *buf, size_t size) {
  void *lib;
  const char *name;
  q4_status st = load_library(&lib, &name);
  if (st) return st;
  cublasStatus_t (*property)(libraryPropertyType, int *);
  *(void **)&property = dlsym(lib, "cublasGetProperty");
  int v[3] = {0, 0, 0};
  if (!property || property(MAJOR_VERSION, &v[0]) || property(MINOR_VERSION, &v[1]) ||
      property(PATCH_LEVEL, &v[2]))
    return q4_err(Q4_ERR_NO_DRIVER, "cannot load cuBLAS: %s has no working cublasGetProperty", name);
  snprintf(buf, size, "%d.%d.%d (%s)", v[0], v[1], v[2], name);
  return Q4_OK;
}

q4_status q4_cublas_open(q4_cublas **out) {
  *out = NULL;
  q4_cublas *c = calloc(1, sizeof *c);
  if (!c) return q4_err(Q4_ERR_NO_MEMORY, "out of host memory");
  const char *name;
  q4_status st = load_library(&c->lib, &name);
  if (st) {
    free(c);
    return st;
  }
  *(void **)&c->create = dlsym(c->lib, "cublasCreate_v2");
  *(void **)&c->destroy = dlsym(c->lib, "cublasDestroy_v2");
  *(void **)&c->set_stream = dlsym(c->lib, "cublasSetStream_v2");
  *(void **)&c->gemm_ex = dlsym(c->lib, "cublasGemmEx");
  const char *lacks = !c->create ? "cublasCreate_v2" : !c->destroy ? "cublasDestroy_v2"
                      : !c->set_stream ? "cublasSetStream_v2" : !c->gemm_ex ? "cublasGemmEx" : NULL;
  cublasStatus_t r = CUBLAS_STATUS_SUCCESS;
  if (!lacks) r = c->create(&c->handle);
  if (lacks || r != CUBLAS_STATUS_SUCCESS) {
    dlclose(c->lib);
    free(c);
    if (lacks) return q4_err(Q4_ERR_NO_DRIVER, "cannot load cuBLAS: %s has no %s", name, lacks);
    return q4_err(Q4_ERR_CUDA, "cuBLAS loaded but could not create a handle (cublasCreate: status %d)", (int)r);
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
