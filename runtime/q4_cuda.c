/*
** q4_cuda.c -- load the CUDA driver API with dlopen, once per process.
**
** Symbols are resolved with cuGetProcAddress_v2 when the driver has it, so
** that we get the ABI version matching the <cuda.h> types we were built with;
** older drivers (and the stub) fall back to dlsym of the versioned names that
** <cuda.h> #defines (cuMemAlloc -> cuMemAlloc_v2 and so on).
*/
#include "q4_cuda.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "q4_error.h"

/* One table entry: where the pointer goes, the base name cuGetProcAddress
** takes, and the exported names to dlsym if it can't help. `alt` is a second
** exported name with the same signature (NULL if none). `pin`, if not 0, is
** the CUDA version to ask cuGetProcAddress for: the last one whose entry
** point has the signature q4_cuda_api declares. */
typedef struct sym {
  size_t offset;
  const char *base;
  const char *exported;
  const char *alt;
  int pin;
} sym;

#define S(field, base, exported, alt) \
  { offsetof(q4_cuda_api, field), base, exported, alt, 0 }

static const sym syms[] = {
  S(Init, "cuInit", "cuInit", NULL),
  S(DriverGetVersion, "cuDriverGetVersion", "cuDriverGetVersion", NULL),
  S(GetErrorName, "cuGetErrorName", "cuGetErrorName", NULL),
  S(GetErrorString, "cuGetErrorString", "cuGetErrorString", NULL),
  S(DeviceGetCount, "cuDeviceGetCount", "cuDeviceGetCount", NULL),
  S(DeviceGet, "cuDeviceGet", "cuDeviceGet", NULL),
  S(DeviceGetName, "cuDeviceGetName", "cuDeviceGetName", NULL),
  S(DeviceGetAttribute, "cuDeviceGetAttribute", "cuDeviceGetAttribute", NULL),
  S(DeviceTotalMem, "cuDeviceTotalMem", "cuDeviceTotalMem_v2", NULL),
  S(DevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain", "cuDevicePrimaryCtxRetain", NULL),
  S(DevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease", "cuDevicePrimaryCtxRelease_v2", NULL),
  S(CtxPushCurrent, "cuCtxPushCurrent", "cuCtxPushCurrent_v2", NULL),
  S(CtxPopCurrent, "cuCtxPopCurrent", "cuCtxPopCurrent_v2", NULL),
  /* CUDA 13 answers "cuCtxSynchronize" with cuCtxSynchronize_v2(CUcontext) */
  {offsetof(q4_cuda_api, CtxSynchronize), "cuCtxSynchronize", "cuCtxSynchronize", NULL, 12000},
  S(ModuleLoadData, "cuModuleLoadData", "cuModuleLoadData", NULL),
  S(ModuleUnload, "cuModuleUnload", "cuModuleUnload", NULL),
  S(ModuleGetFunction, "cuModuleGetFunction", "cuModuleGetFunction", NULL),
  S(FuncGetAttribute, "cuFuncGetAttribute", "cuFuncGetAttribute", NULL),
  S(FuncSetAttribute, "cuFuncSetAttribute", "cuFuncSetAttribute", NULL),
  S(LaunchKernel, "cuLaunchKernel", "cuLaunchKernel", NULL),
  S(LaunchKernelEx, "cuLaunchKernelEx", "cuLaunchKernelEx", NULL),
  S(MemAlloc, "cuMemAlloc", "cuMemAlloc_v2", NULL),
  S(MemFree, "cuMemFree", "cuMemFree_v2", NULL),
  S(MemGetInfo, "cuMemGetInfo", "cuMemGetInfo_v2", NULL),
  S(MemcpyHtoD, "cuMemcpyHtoD", "cuMemcpyHtoD_v2", NULL),
  S(MemcpyDtoH, "cuMemcpyDtoH", "cuMemcpyDtoH_v2", NULL),
  S(MemcpyDtoD, "cuMemcpyDtoD", "cuMemcpyDtoD_v2", NULL),
  S(MemsetD8, "cuMemsetD8", "cuMemsetD8_v2", NULL),
  S(MemsetD16, "cuMemsetD16", "cuMemsetD16_v2", NULL),
  S(MemsetD8Async, "cuMemsetD8Async", "cuMemsetD8Async", NULL),
  S(MemsetD16Async, "cuMemsetD16Async", "cuMemsetD16Async", NULL),
  S(PointerGetAttribute, "cuPointerGetAttribute", "cuPointerGetAttribute", NULL),
  S(StreamCreate, "cuStreamCreate", "cuStreamCreate", NULL),
  S(StreamDestroy, "cuStreamDestroy", "cuStreamDestroy_v2", NULL),
  S(StreamSynchronize, "cuStreamSynchronize", "cuStreamSynchronize", NULL),
  S(StreamIsCapturing, "cuStreamIsCapturing", "cuStreamIsCapturing", NULL),
  S(StreamBeginCapture, "cuStreamBeginCapture", "cuStreamBeginCapture_v2", NULL),
  S(StreamEndCapture, "cuStreamEndCapture", "cuStreamEndCapture", NULL),
  S(GraphInstantiate, "cuGraphInstantiateWithFlags", "cuGraphInstantiateWithFlags", NULL),
  S(GraphLaunch, "cuGraphLaunch", "cuGraphLaunch", NULL),
  S(GraphExecDestroy, "cuGraphExecDestroy", "cuGraphExecDestroy", NULL),
  S(GraphDestroy, "cuGraphDestroy", "cuGraphDestroy", NULL),
  S(EventCreate, "cuEventCreate", "cuEventCreate", NULL),
  S(EventDestroy, "cuEventDestroy", "cuEventDestroy_v2", NULL),
  S(EventRecord, "cuEventRecord", "cuEventRecord", NULL),
  S(EventSynchronize, "cuEventSynchronize", "cuEventSynchronize", NULL),
  /* _v2 appeared in 12.8 and CUDA 13 dropped the plain export; both share a
  ** signature, so a pre-12.8 driver's plain one is an acceptable fallback. */
  S(EventElapsedTime, "cuEventElapsedTime", "cuEventElapsedTime_v2", "cuEventElapsedTime"),
};

#undef S

typedef CUresult (*get_proc_fn)(const char *symbol, void **pfn, int cuda_version,
                                cuuint64_t flags, CUdriverProcAddressQueryResult *status);

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static q4_cuda_api api;
static q4_status load_status;
static char load_msg[768];
/* Set once the symbols resolved, so q4_cuda_check can name errors even from
** threads that never called q4_cuda_load (or when cuInit itself failed). */
static _Atomic(const q4_cuda_api *) named_api;

static void **slot(const sym *s) { return (void **)((char *)&api + s->offset); }

/* The CUDA version to ask cuGetProcAddress for: what our <cuda.h> describes,
** or the driver's own version if that is older. 12000 if it won't say. */
static int proc_version(void *lib) {
  CUresult (*get_version)(int *) = (CUresult (*)(int *))dlsym(lib, "cuDriverGetVersion");
  int v = 0;
  if (!get_version || get_version(&v) != CUDA_SUCCESS || v <= 0) return 12000;
  return v < CUDA_VERSION ? v : CUDA_VERSION;
}

static void *resolve(void *lib, get_proc_fn get_proc, int version, const sym *s) {
  void *p = NULL;
  CUdriverProcAddressQueryResult qs = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
  if (get_proc &&
      get_proc(s->base, &p, s->pin && s->pin < version ? s->pin : version, CU_GET_PROC_ADDRESS_DEFAULT, &qs) ==
          CUDA_SUCCESS &&
      qs == CU_GET_PROC_ADDRESS_SUCCESS && p)
    return p;
  p = dlsym(lib, s->exported);
  if (!p && s->alt) p = dlsym(lib, s->alt);
  return p;
}

static q4_status fail(q4_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static q4_status fail(q4_status s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(load_msg, sizeof load_msg, fmt, ap);
  va_end(ap);
  return s;
}

static q4_status resolve_all(void *lib, const char *name) {
  /* dlsym the _v2 export by name: the unversioned symbol has another ABI. */
  get_proc_fn get_proc = (get_proc_fn)dlsym(lib, "cuGetProcAddress_v2");
  int version = get_proc ? proc_version(lib) : 0;
  for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++) {
    void *p = resolve(lib, get_proc, version, &syms[i]);
    if (!p)
      return fail(Q4_ERR_NO_DRIVER,
                  "the CUDA driver %s has no %s: the NVIDIA driver is too old for "
                  "q4tune (or this is not libcuda); install a driver for CUDA 12 or newer",
                  name, syms[i].exported);
    *slot(&syms[i]) = p;
  }
  return Q4_OK;
}

static const char *err_name(CUresult r) {
  const char *s = NULL;
  if (api.GetErrorName && api.GetErrorName(r, &s) == CUDA_SUCCESS && s) return s;
  return "unknown CUDA error";
}

static q4_status init_driver(const char *name) {
  CUresult r = api.Init(0);
  if (r == CUDA_SUCCESS) return Q4_OK;
  if (r == CUDA_ERROR_STUB_LIBRARY)
    return fail(Q4_ERR_NO_DRIVER,
                "the stub libcuda was loaded (%s) instead of the real CUDA driver: install "
                "the NVIDIA driver, and keep the toolkit's lib64/stubs out of "
                "LD_LIBRARY_PATH and Q4TUNE_LIBCUDA", name);
  /* AddressSanitizer's shadow gap collides with the driver's address space. */
  if (r == CUDA_ERROR_OUT_OF_MEMORY && dlsym(RTLD_DEFAULT, "__asan_init"))
    return fail(Q4_ERR_NO_DRIVER,
                "the CUDA driver failed to initialize (cuInit: CUDA_ERROR_OUT_OF_MEMORY) "
                "under AddressSanitizer: run with ASAN_OPTIONS=protect_shadow_gap=0");
  if (r == CUDA_ERROR_NO_DEVICE)
    return fail(Q4_ERR_NO_DEVICE,
                "the CUDA driver found no GPU (CUDA_ERROR_NO_DEVICE): check nvidia-smi "
                "and CUDA_VISIBLE_DEVICES");
  return fail(Q4_ERR_NO_DRIVER,
              "the CUDA driver failed to initialize (cuInit: %s %d): check that the "
              "NVIDIA driver and kernel module are installed and match (nvidia-smi)",
              err_name(r), (int)r);
}

static void load(void) {
  const char *env = getenv("Q4TUNE_LIBCUDA");
  const char *name = env && *env ? env : "libcuda.so.1";
  void *lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    const char *why = dlerror();
    load_status = fail(Q4_ERR_NO_DRIVER,
                       "cannot load the CUDA driver (%s: %s): is an NVIDIA driver installed?",
                       name, why ? why : "unknown error");
    return;
  }
  load_status = resolve_all(lib, name);
  if (load_status != Q4_OK) {
    memset(&api, 0, sizeof api);
    dlclose(lib);
    return;
  }
  atomic_store(&named_api, &api);
  /* The library stays loaded for the life of the process, even if cuInit
  ** fails: error names remain useful and unloading a driver is never safe. */
  load_status = init_driver(name);
  if (load_status == Q4_OK) q4_log(Q4_LOG_DEBUG, "loaded the CUDA driver from %s", name);
}

q4_status q4_cuda_load(const q4_cuda_api **out) {
  if (out) *out = NULL;
  pthread_once(&load_once, load);
  if (load_status != Q4_OK) return q4_err(load_status, "%s", load_msg);
  if (out) *out = &api;
  return Q4_OK;
}

/* Names for common codes when the driver (and cuGetErrorName) isn't loaded. */
static const char *fallback_name(CUresult r) {
  switch (r) {
    case CUDA_ERROR_INVALID_VALUE: return "CUDA_ERROR_INVALID_VALUE";
    case CUDA_ERROR_OUT_OF_MEMORY: return "CUDA_ERROR_OUT_OF_MEMORY";
    case CUDA_ERROR_NOT_INITIALIZED: return "CUDA_ERROR_NOT_INITIALIZED";
    case CUDA_ERROR_NO_DEVICE: return "CUDA_ERROR_NO_DEVICE";
    case CUDA_ERROR_INVALID_DEVICE: return "CUDA_ERROR_INVALID_DEVICE";
    case CUDA_ERROR_INVALID_CONTEXT: return "CUDA_ERROR_INVALID_CONTEXT";
    case CUDA_ERROR_INVALID_IMAGE: return "CUDA_ERROR_INVALID_IMAGE";
    case CUDA_ERROR_NO_BINARY_FOR_GPU: return "CUDA_ERROR_NO_BINARY_FOR_GPU";
    case CUDA_ERROR_NOT_FOUND: return "CUDA_ERROR_NOT_FOUND";
    case CUDA_ERROR_ILLEGAL_ADDRESS: return "CUDA_ERROR_ILLEGAL_ADDRESS";
    case CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES: return "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES";
    case CUDA_ERROR_LAUNCH_FAILED: return "CUDA_ERROR_LAUNCH_FAILED";
    default: return NULL;
  }
}

q4_status q4_cuda_check(CUresult r, const char *what) {
  if (r == CUDA_SUCCESS) return Q4_OK;
  if (!what) what = "CUDA driver call";
  const q4_cuda_api *a = atomic_load(&named_api);
  const char *name = NULL, *desc = NULL;
  if (a) {
    if (a->GetErrorName(r, &name) != CUDA_SUCCESS) name = NULL;
    if (a->GetErrorString(r, &desc) != CUDA_SUCCESS) desc = NULL;
  }
  if (!name) name = fallback_name(r);
  q4_status s = r == CUDA_ERROR_OUT_OF_MEMORY ? Q4_ERR_NO_MEMORY : Q4_ERR_CUDA;
  if (!name) return q4_err(s, "%s: CUDA error %d", what, (int)r);
  return q4_err(s, "%s: %s: %s", what, name, desc ? desc : "(no description: driver not loaded)");
}
