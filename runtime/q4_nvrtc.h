/*
** q4_nvrtc.h -- compile generated CUDA C++ to a cubin with NVRTC (internal).
**
** libnvrtc is loaded with dlopen on first use (libnvrtc.so.13, then
** libnvrtc.so; $Q4TUNE_LIBNVRTC overrides). The CUDA headers are looked up
** in $CUDA_HOME, then $CUDA_PATH, then the toolkit q4tune was built against,
** then /usr/local/cuda: the first whose include/cuda_fp16.h exists wins.
** Compilation needs no GPU.
*/
#ifndef Q4_NVRTC_H
#define Q4_NVRTC_H

#include <stddef.h>

#include "q4tune.h"

/* NVRTC's version, e.g. 13 and 0. Q4_ERR_NVRTC if libnvrtc can't be loaded. */
q4_status q4_nvrtc_version(int *major, int *minor);

/* The include directory NVRTC gets (".../include"), written to buf.
** Q4_ERR_NO_HEADERS naming every place tried if none has the headers. */
q4_status q4_cuda_include_dir(char *buf, size_t size);

typedef struct q4_compiled {
  void *cubin;        /* malloc'd cubin image */
  size_t size;
  int regs;           /* registers per thread, from ptxas */
  int spill_bytes;    /* spill stores + loads, bytes, from ptxas */
  int smem_static;    /* static shared memory, bytes, from ptxas */
  double compile_ms;  /* wall time of the compilation */
  char *log;          /* malloc'd NVRTC log (may be empty, never NULL on success) */
} q4_compiled;

/* Compile `source` for sm_<arch> (e.g. 80, 90) to a cubin. Thread-safe:
** several threads may compile at once. On a compile error returns
** Q4_ERR_NVRTC with the first lines of the log in the message. */
q4_status q4_nvrtc_compile(const char *source, const char *name, int arch,
                           q4_compiled *out);
void q4_compiled_free(q4_compiled *c);

#endif
