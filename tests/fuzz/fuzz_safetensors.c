/*
** fuzz_safetensors.c -- libFuzzer target: the input is a whole safetensors
** file. It is opened (every tensor's bytes read, to catch a pointer out of
** the mapping) and imported as GPTQ layer "l", classic and v2.
**
** Build with -DQ4TUNE_FUZZ=ON and clang (tests/fuzz/README.md).
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "q4_safetensors.h"
#include "q4tune.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* the reader maps a file: give it one (per process, for -jobs) */
  const char *tmp = getenv("TMPDIR");
  char path[512];
  snprintf(path, sizeof path, "%s/q4fuzz_st_%d.safetensors", tmp && *tmp ? tmp : "/tmp", (int)getpid());
  FILE *fp = fopen(path, "wb");
  if (!fp || (size && fwrite(data, 1, size, fp) != size)) abort();
  fclose(fp);

  q4_st_file *f = NULL;
  const q4_status st = q4_st_open(path, &f);
  if (st != Q4_OK && !q4_last_error()[0]) abort(); /* every error names its cause */
  if (st == Q4_OK) {
    volatile unsigned sum = 0;
    for (int i = 0; i < q4_st_count(f); ++i) {
      q4_st_tensor t;
      q4_st_get(f, i, &t);
      const unsigned char *b = t.data;
      for (size_t j = 0; j < t.nbytes; ++j) sum += b[j];
    }
    (void)q4_st_meta(f, "checkpoint_format");
    q4_st_close(f);
    for (int v = Q4_GPTQ_V1; v <= Q4_GPTQ_V2; ++v) {
      q4_host_matrix m;
      if (q4_gptq_import(path, "l", (q4_gptq_version)v, &m) == Q4_OK) {
        volatile double d = q4_host_matrix_dequant(&m, m.k - 1, m.n - 1);
        (void)d;
        q4_host_matrix_free(&m);
      } else if (!q4_last_error()[0]) {
        abort();
      }
    }
  }
  unlink(path);
  return 0;
}
