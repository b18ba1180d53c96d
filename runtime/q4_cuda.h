/*
** q4_cuda.h -- the CUDA driver API, loaded at run time with dlopen (internal).
**
** libq4tune does not link libcuda: it loads libcuda.so.1 on first use so that
** the library (and the q4tune command) load on a machine with no GPU and say
** clearly why they can't run. Only types come from <cuda.h>.
*/
#ifndef Q4_CUDA_H
#define Q4_CUDA_H

#include <cuda.h>

#include "q4tune.h"

typedef struct q4_cuda_api {
  CUresult (*Init)(unsigned int flags);
  CUresult (*DriverGetVersion)(int *version);
  CUresult (*GetErrorName)(CUresult r, const char **s);
  CUresult (*GetErrorString)(CUresult r, const char **s);
  CUresult (*DeviceGetCount)(int *count);
  CUresult (*DeviceGet)(CUdevice *dev, int ordinal);
  CUresult (*DeviceGetName)(char *name, int len, CUdevice dev);
  CUresult (*DeviceGetAttribute)(int *v, CUdevice_attribute a, CUdevice dev);
  CUresult (*DeviceTotalMem)(size_t *bytes, CUdevice dev);
  CUresult (*DevicePrimaryCtxRetain)(CUcontext *ctx, CUdevice dev);
  CUresult (*DevicePrimaryCtxRelease)(CUdevice dev);
  CUresult (*CtxPushCurrent)(CUcontext ctx);
  CUresult (*CtxPopCurrent)(CUcontext *ctx);
  CUresult (*CtxSynchronize)(void);
  CUresult (*ModuleLoadData)(CUmodule *mod, const void *image);
  CUresult (*ModuleUnload)(CUmodule mod);
  CUresult (*ModuleGetFunction)(CUfunction *f, CUmodule mod, const char *name);
  CUresult (*FuncGetAttribute)(int *v, CUfunction_attribute a, CUfunction f);
  CUresult (*FuncSetAttribute)(CUfunction f, CUfunction_attribute a, int v);
  CUresult (*LaunchKernel)(CUfunction f, unsigned gx, unsigned gy, unsigned gz,
                           unsigned bx, unsigned by, unsigned bz,
                           unsigned smem, CUstream s, void **params, void **extra);
  CUresult (*LaunchKernelEx)(const CUlaunchConfig *config, CUfunction f, void **params, void **extra);
  CUresult (*MemAlloc)(CUdeviceptr *p, size_t bytes);
  CUresult (*MemFree)(CUdeviceptr p);
  CUresult (*MemGetInfo)(size_t *free_bytes, size_t *total_bytes);
  CUresult (*MemcpyHtoD)(CUdeviceptr dst, const void *src, size_t bytes);
  CUresult (*MemcpyDtoH)(void *dst, CUdeviceptr src, size_t bytes);
  CUresult (*MemcpyDtoD)(CUdeviceptr dst, CUdeviceptr src, size_t bytes);
  CUresult (*MemsetD8)(CUdeviceptr p, unsigned char v, size_t n);
  CUresult (*MemsetD16)(CUdeviceptr p, unsigned short v, size_t n);
  CUresult (*MemsetD8Async)(CUdeviceptr p, unsigned char v, size_t n, CUstream s);
  CUresult (*MemsetD16Async)(CUdeviceptr p, unsigned short v, size_t n, CUstream s);
  CUresult (*PointerGetAttribute)(void *data, CUpointer_attribute a, CUdeviceptr p);
  CUresult (*StreamCreate)(CUstream *s, unsigned int flags);
  CUresult (*StreamDestroy)(CUstream s);
  CUresult (*StreamSynchronize)(CUstream s);
  CUresult (*StreamIsCapturing)(CUstream s, CUstreamCaptureStatus *status);
  CUresult (*StreamBeginCapture)(CUstream s, CUstreamCaptureMode mode);
  CUresult (*StreamEndCapture)(CUstream s, CUgraph *graph);
  CUresult (*GraphInstantiate)(CUgraphExec *exec, CUgraph graph, unsigned long long flags);
  CUresult (*GraphLaunch)(CUgraphExec exec, CUstream s);
  CUresult (*GraphExecDestroy)(CUgraphExec exec);
  CUresult (*GraphDestroy)(CUgraph graph);
  CUresult (*EventCreate)(CUevent *e, unsigned int flags);
  CUresult (*EventDestroy)(CUevent e);
  CUresult (*EventRecord)(CUevent e, CUstream s);
  CUresult (*EventSynchronize)(CUevent e);
  CUresult (*EventElapsedTime)(float *ms, CUevent start, CUevent end);
} q4_cuda_api;

/* Load libcuda.so.1 ($Q4TUNE_LIBCUDA overrides the name) and call cuInit
** once per process. Q4_ERR_NO_DRIVER with the dlopen reason if it is absent,
** Q4_ERR_NO_DEVICE if cuInit finds no device. Thread-safe. */
q4_status q4_cuda_load(const q4_cuda_api **out);

/* Turn a failed driver call into Q4_ERR_CUDA with "what: NAME: message";
** returns Q4_OK for CUDA_SUCCESS. */
q4_status q4_cuda_check(CUresult r, const char *what);

#endif
