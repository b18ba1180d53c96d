/*
** test_cuda_loader.c -- loading libcuda with dlopen. Passes with or without a
** GPU: with one it also checks that the versioned entry points really work.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "q4_cuda.h"
#include "q4_error.h"
#include "q4test.h"

#define STUB "/usr/local/cuda/lib64/stubs/libcuda.so"

/* Run q4_cuda_load in a child with Q4TUNE_LIBCUDA=lib (the load happens once
** per process, so each override needs a fresh one). The child exits 0 if the
** status is `want` and the message contains `needle`. */
static int load_in_child(const char *lib, q4_status want, const char *needle) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) return 0;
  if (pid == 0) {
    setenv("Q4TUNE_LIBCUDA", lib, 1);
    const q4_cuda_api *api = (const q4_cuda_api *)1;
    q4_status s = q4_cuda_load(&api);
    int ok = s == want && api == NULL && strstr(q4_last_error(), needle) != NULL;
    if (!ok)
      fprintf(stderr, "Q4TUNE_LIBCUDA=%s: got %s \"%s\", want %s mentioning \"%s\"\n", lib,
              q4_status_name(s), q4_last_error(), q4_status_name(want), needle);
    _exit(ok ? 0 : 1);
  }
  int st = 0;
  if (waitpid(pid, &st, 0) != pid) return 0;
  return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static void test_overrides(void) {
  CHECK(load_in_child("/nonexistent/libcuda.so.1", Q4_ERR_NO_DRIVER, "/nonexistent/libcuda.so.1"));
  CHECK(load_in_child("/nonexistent/libcuda.so.1", Q4_ERR_NO_DRIVER, "NVIDIA driver"));
  /* A library that isn't a driver at all: the missing symbol is named. */
  CHECK(load_in_child("libc.so.6", Q4_ERR_NO_DRIVER, "cuInit"));
  if (access(STUB, R_OK) == 0) CHECK(load_in_child(STUB, Q4_ERR_NO_DRIVER, "stub"));
  else printf("skipping the stub case: %s is absent\n", STUB);
}

/* With a real GPU: a round trip through the _v2 entry points. */
static void exercise_gpu(const q4_cuda_api *api) {
  int version = 0, count = 0;
  CHECK_OK(q4_cuda_check(api->DriverGetVersion(&version), "cuDriverGetVersion"));
  CHECK_MSG(version >= 12000, "driver version %d", version);
  CHECK_OK(q4_cuda_check(api->DeviceGetCount(&count), "cuDeviceGetCount"));
  CHECK(count >= 1);
  CUdevice dev;
  CUcontext ctx = NULL, popped = NULL;
  size_t total = 0, free_b = 0, total_b = 0;
  CHECK_OK(q4_cuda_check(api->DeviceGet(&dev, 0), "cuDeviceGet"));
  CHECK_OK(q4_cuda_check(api->DeviceTotalMem(&total, dev), "cuDeviceTotalMem"));
  CHECK(total > ((size_t)1 << 30));
  if (q4_cuda_check(api->DevicePrimaryCtxRetain(&ctx, dev), "retain") != Q4_OK) return;
  CHECK_OK(q4_cuda_check(api->CtxPushCurrent(ctx), "cuCtxPushCurrent"));
  CHECK_OK(q4_cuda_check(api->MemGetInfo(&free_b, &total_b), "cuMemGetInfo"));
  CHECK(total_b == total && free_b > 0);

  CUdeviceptr p = 0;
  unsigned char host[256];
  CHECK_OK(q4_cuda_check(api->MemAlloc(&p, sizeof host), "cuMemAlloc"));
  CHECK_OK(q4_cuda_check(api->MemsetD8(p, 0x5a, sizeof host), "cuMemsetD8"));
  CHECK_OK(q4_cuda_check(api->MemcpyDtoH(host, p, sizeof host), "cuMemcpyDtoH"));
  CHECK(host[0] == 0x5a && host[255] == 0x5a);

  CUevent a, b;
  float ms = -1;
  CHECK_OK(q4_cuda_check(api->EventCreate(&a, CU_EVENT_DEFAULT), "cuEventCreate"));
  CHECK_OK(q4_cuda_check(api->EventCreate(&b, CU_EVENT_DEFAULT), "cuEventCreate"));
  CHECK_OK(q4_cuda_check(api->EventRecord(a, NULL), "cuEventRecord"));
  CHECK_OK(q4_cuda_check(api->MemsetD16Async(p, 0x1234, sizeof host / 2, NULL), "memset"));
  CHECK_OK(q4_cuda_check(api->EventRecord(b, NULL), "cuEventRecord"));
  CHECK_OK(q4_cuda_check(api->EventSynchronize(b), "cuEventSynchronize"));
  CHECK_OK(q4_cuda_check(api->EventElapsedTime(&ms, a, b), "cuEventElapsedTime"));
  CHECK(ms >= 0);
  /* A graph captured from a stream: its memset runs only when replayed. */
  CUstream st;
  CUgraph g = NULL;
  CUgraphExec ge = NULL;
  CHECK_OK(q4_cuda_check(api->StreamCreate(&st, CU_STREAM_NON_BLOCKING), "cuStreamCreate"));
  CHECK_OK(q4_cuda_check(api->StreamBeginCapture(st, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL), "cuStreamBeginCapture"));
  CHECK_OK(q4_cuda_check(api->MemsetD8Async(p, 0x77, sizeof host, st), "captured memset"));
  CHECK_OK(q4_cuda_check(api->StreamEndCapture(st, &g), "cuStreamEndCapture"));
  CHECK_OK(q4_cuda_check(api->GraphInstantiate(&ge, g, 0), "cuGraphInstantiate"));
  CHECK_OK(q4_cuda_check(api->MemcpyDtoH(host, p, sizeof host), "cuMemcpyDtoH"));
  CHECK(host[0] == 0x34 && host[1] == 0x12);  /* not yet replayed */
  CHECK_OK(q4_cuda_check(api->GraphLaunch(ge, st), "cuGraphLaunch"));
  CHECK_OK(q4_cuda_check(api->StreamSynchronize(st), "cuStreamSynchronize"));
  CHECK_OK(q4_cuda_check(api->MemcpyDtoH(host, p, sizeof host), "cuMemcpyDtoH"));
  CHECK(host[0] == 0x77 && host[255] == 0x77);
  CHECK_OK(q4_cuda_check(api->GraphExecDestroy(ge), "cuGraphExecDestroy"));
  CHECK_OK(q4_cuda_check(api->GraphDestroy(g), "cuGraphDestroy"));
  CHECK_OK(q4_cuda_check(api->StreamDestroy(st), "cuStreamDestroy"));

  CHECK_OK(q4_cuda_check(api->EventDestroy(a), "cuEventDestroy"));
  CHECK_OK(q4_cuda_check(api->EventDestroy(b), "cuEventDestroy"));
  CHECK_OK(q4_cuda_check(api->MemFree(p), "cuMemFree"));
  CHECK_OK(q4_cuda_check(api->CtxPopCurrent(&popped), "cuCtxPopCurrent"));
  CHECK(popped == ctx);
  CHECK_OK(q4_cuda_check(api->DevicePrimaryCtxRelease(dev), "cuDevicePrimaryCtxRelease"));
}

static void test_load(void) {
  const q4_cuda_api *api = NULL;
  q4_status s = q4_cuda_load(&api);
  char first[1024];
  snprintf(first, sizeof first, "%s", q4_last_error());
  CHECK_MSG(s == Q4_OK || s == Q4_ERR_NO_DRIVER || s == Q4_ERR_NO_DEVICE, "%s: %s",
            q4_status_name(s), first);
  printf("q4_cuda_load: %s%s%s\n", q4_status_name(s), s ? ": " : "", s ? first : "");
  if (s != Q4_OK) {
    CHECK(api == NULL);
    CHECK(first[0] != '\0');
    CHECK_MSG(strstr(first, "driver") != NULL, "%s", first);
  } else {
    CHECK(api != NULL);
  }

  /* The outcome is remembered, message included. */
  q4_err_clear();
  const q4_cuda_api *again = NULL;
  CHECK(q4_cuda_load(&again) == s);
  CHECK(again == api);
  CHECK(s == Q4_OK || !strcmp(q4_last_error(), first));
  CHECK(q4_cuda_load(NULL) == s);

  if (s == Q4_OK) {
    /* Every entry of the table must be filled. */
    void *const *slots = (void *const *)api;
    for (size_t i = 0; i < sizeof *api / sizeof(void *); i++) CHECK_MSG(slots[i], "slot %zu", i);
    exercise_gpu(api);
  }
}

static void test_check(void) {
  CHECK(q4_cuda_check(CUDA_SUCCESS, "cuFoo") == Q4_OK);
  CHECK(q4_cuda_check(CUDA_ERROR_INVALID_VALUE, "cuFoo") == Q4_ERR_CUDA);
  const char *msg = q4_last_error();
  CHECK_MSG(!strncmp(msg, "cuFoo: CUDA_ERROR_INVALID_VALUE: ", 33), "%s", msg);
  CHECK(q4_cuda_check(CUDA_ERROR_OUT_OF_MEMORY, "cuMemAlloc") == Q4_ERR_NO_MEMORY);
  CHECK(strstr(q4_last_error(), "CUDA_ERROR_OUT_OF_MEMORY") != NULL);
  CHECK(q4_cuda_check((CUresult)987654, "cuBar") == Q4_ERR_CUDA);
  CHECK(!strncmp(q4_last_error(), "cuBar: ", 7));
}

int main(void) {
  test_check();      /* before any load: names come from the fallback table */
  test_overrides();  /* forks before this process loads the driver */
  test_load();
  test_check();
  return q4test_done("test_cuda_loader");
}
