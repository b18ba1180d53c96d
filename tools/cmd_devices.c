/*
** cmd_devices.c -- q4tune devices: what CUDA devices there are and whether
** q4tune can use them.
*/
#include <stdio.h>

#include "cli.h"
#include "q4_cublas.h"
#include "q4_cuda.h"
#include "q4_handle.h"
#include "q4_nvrtc.h"

static const char usage[] =
    "usage: q4tune devices\n"
    "\n"
    "List the CUDA devices, their compute capability, multiprocessors and memory,\n"
    "the driver, NVRTC and cuBLAS versions, and where NVRTC finds the CUDA headers.\n";

int cmd_devices(int argc, char **argv) {
  cli_opts o;
  int rc = cli_parse(argc, argv, &o, usage, NULL, NULL, 0);
  if (rc) return rc > 0 ? 0 : 2;
  int major = 0, minor = 0;
  char inc[1024];
  q4_status st = q4_nvrtc_version(&major, &minor);
  if (st) printf("NVRTC: unavailable: %s\n", q4_last_error());
  else printf("NVRTC: %d.%d\n", major, minor);
  st = q4_cuda_include_dir(inc, sizeof inc);
  printf("CUDA headers: %s\n", st ? q4_last_error() : inc);
  char blas[512];
  if (q4_cublas_probe(blas, sizeof blas))
    printf("cuBLAS: unavailable: %s (no two-pass kernels; bench needs it)\n", q4_last_error());
  else
    printf("cuBLAS: %s\n", blas);
  const q4_cuda_api *cu;
  if ((st = q4_cuda_load(&cu))) return cli_fail("loading the CUDA driver", st);
  int version = 0, count = 0;
  cu->DriverGetVersion(&version);
  if ((st = q4_cuda_check(cu->DeviceGetCount(&count), "cuDeviceGetCount"))) return cli_fail("counting devices", st);
  printf("driver: CUDA %d.%d, %d device(s)\n", version / 1000, version % 1000 / 10, count);
  for (int i = 0; i < count; i++) {
    CUdevice d;
    char name[128] = "?";
    int ccmaj = 0, ccmin = 0, sms = 0;
    size_t mem = 0;
    cu->DeviceGet(&d, i);
    cu->DeviceGetName(name, sizeof name, d);
    cu->DeviceGetAttribute(&ccmaj, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, d);
    cu->DeviceGetAttribute(&ccmin, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, d);
    cu->DeviceGetAttribute(&sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, d);
    cu->DeviceTotalMem(&mem, d);
    printf("  %d: %s, sm_%d%d, %d SMs, %.1f GiB%s\n", i, name, ccmaj, ccmin, sms, mem / 1073741824.0,
           q4_arch_supported(ccmaj, ccmin) ? "" : " (unsupported: q4tune needs sm_75 or newer)");
  }
  return 0;
}
