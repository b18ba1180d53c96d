/*
** test_cublas_loader.c -- loading cuBLAS with dlopen: what Q4TUNE_LIBCUBLAS
** does, and the errors when it names no library or not cuBLAS. No GPU needed.
** (The default names are not loaded here: creating a handle needs a GPU,
** and a cuBLAS loaded and closed again leaves allocations LeakSanitizer
** reports. test_cli probes them through `q4tune devices`, and
** scripts/gpu_tests.sh runs them.)
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "q4_cublas.h"
#include "q4_error.h"
#include "q4test.h"

/* With Q4TUNE_LIBCUBLAS=lib: the status `want`, no handle, and `part` in
** the message. */
static void open_with(const char *lib, q4_status want, const char *part) {
  setenv("Q4TUNE_LIBCUBLAS", lib, 1);
  q4_cublas *c = (q4_cublas *)1;
  CHECK_ERR(q4_cublas_open(&c), want, part);
  CHECK(c == NULL);
}

int main(void) {
  /* Set, it is the only name tried: the defaults, which this machine may
  ** have, are not a fallback. */
  open_with("/nonexistent/libcublas.so.13", Q4_ERR_NO_DRIVER, "Q4TUNE_LIBCUBLAS: /nonexistent/libcublas.so.13");
  /* A library that is not cuBLAS: the missing entry point is named. */
  open_with("libc.so.6", Q4_ERR_NO_DRIVER, "libc.so.6 has no cublasCreate_v2");
  /* The probe (`q4tune devices`) goes by the same rule, and needs no GPU. */
  char buf[256] = "";
  setenv("Q4TUNE_LIBCUBLAS", "/nonexistent/libcublas.so.13", 1);
  CHECK_ERR(q4_cublas_probe(buf, sizeof buf), Q4_ERR_NO_DRIVER, "Q4TUNE_LIBCUBLAS: /nonexistent/libcublas.so.13");
  setenv("Q4TUNE_LIBCUBLAS", "libc.so.6", 1);
  CHECK_ERR(q4_cublas_probe(buf, sizeof buf), Q4_ERR_NO_DRIVER, "libc.so.6 has no working cublasGetProperty");
  CHECK(buf[0] == '\0');
  return q4test_done("test_cublas_loader");
}
