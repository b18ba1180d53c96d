/*
** fuzz_gptq_layer.c -- libFuzzer target, structure-aware: the input chooses
** the dtypes, ranks, shapes and bytes of a GPTQ layer's tensors (qweight,
** qzeros, scales and an optional g_idx, consistent or not) and the
** quantize_config.json beside them. The file is written with q4_st_write,
** so it is always well-formed safetensors and the importer's own checks
** (bit width, shapes, groups, act-order) are what gets explored.
**
** Build with -DQ4TUNE_FUZZ=ON and clang (tests/fuzz/README.md).
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "q4_safetensors.h"
#include "q4tune.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct input {
  const uint8_t *p;
  size_t n;
} input;

/* The next byte of the input, 0 once it runs out. */
static unsigned next(input *in) {
  if (!in->n) return 0;
  in->n--;
  return *in->p++;
}

#define MAX_ELEMENTS (1 << 16) /* a tensor over this gets a zero dimension */

/* Tensor `t` named `name`: usually of the dtype and rank GPTQ stores, dims
** mostly multiples of 8, bytes from the input. Returns its buffer. */
static void *make_tensor(input *in, q4_st_tensor *t, const char *name, q4_st_dtype want, int want_rank) {
  static const q4_st_dtype other[] = { Q4_ST_I32, Q4_ST_F16, Q4_ST_I64, Q4_ST_U8, Q4_ST_F32 };
  const unsigned c = next(in);
  memset(t, 0, sizeof *t);
  t->name = name;
  t->dtype = (c & 0xe0) ? want : other[c % 5];
  t->rank = (c & 0x18) ? want_rank : (int)(c & 7) % 4;
  size_t numel = 1;
  for (int d = 0; d < t->rank; ++d) {
    const unsigned v = next(in);
    t->shape[d] = (v & 0x80) ? (int64_t)(v & 0x7f) : (int64_t)(v & 0x7f) * 8;
    numel *= (size_t)t->shape[d];
  }
  if (numel > MAX_ELEMENTS) {
    t->rank = 1;
    t->shape[0] = 0;
    numel = 0;
  }
  const size_t bytes = numel * q4_st_dtype_size(t->dtype);
  unsigned char *b = calloc(1, bytes ? bytes : 1);
  if (!b) abort();
  for (size_t j = 0; j < bytes; ++j) b[j] = (uint8_t)next(in);
  t->data = b;
  return b;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  input in = { data, size };
  const char *tmp = getenv("TMPDIR");
  char dir[512], path[600], config[600];
  snprintf(dir, sizeof dir, "%s/q4fuzz_gptq_%d", tmp && *tmp ? tmp : "/tmp", (int)getpid());
  mkdir(dir, 0700);
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  snprintf(config, sizeof config, "%s/quantize_config.json", dir);

  q4_st_tensor t[4];
  void *bufs[4];
  int count = 0;
  const int with_gidx = next(&in) & 1;
  bufs[count] = make_tensor(&in, &t[count], "l.qweight", Q4_ST_I32, 2), count++;
  bufs[count] = make_tensor(&in, &t[count], "l.qzeros", Q4_ST_I32, 2), count++;
  bufs[count] = make_tensor(&in, &t[count], "l.scales", Q4_ST_F16, 2), count++;
  if (with_gidx) {
    unsigned char *g = make_tensor(&in, &t[count], "l.g_idx", Q4_ST_I32, 1);
    bufs[count] = g;
    /* mostly small group numbers, so that valid act-order layers occur */
    if (t[count].dtype == Q4_ST_I32 && t[count].rank == 1)
      for (int64_t j = 0; j < t[count].shape[0]; ++j)
        if (!(g[4 * j + 3] & 0x80)) memset(g + 4 * j + 1, 0, 3), g[4 * j] &= 7;
    count++;
  }
  static const char *configs[] = {
    NULL, "{\"bits\": 4}", "{\"bits\": 8}", "{\"checkpoint_format\": \"gptq_v2\"}",
    "{\"checkpoint_format\": \"marlin\"}", "[1]", "{", "{\"quant_method\": \"awq\"}",
  };
  const char *cj = configs[next(&in) % 8];
  if (cj) {
    FILE *fp = fopen(config, "w");
    if (!fp) abort();
    fputs(cj, fp);
    fclose(fp);
  }
  const q4_gptq_version version = (q4_gptq_version)(next(&in) % 3);
  if (q4_st_write(path, t, count, NULL) == Q4_OK) {
    q4_host_matrix m;
    if (q4_gptq_import(path, "l", version, &m) == Q4_OK) {
      volatile double d = q4_host_matrix_dequant(&m, m.k - 1, m.n - 1);
      (void)d;
      q4_host_matrix_free(&m);
    } else if (!q4_last_error()[0]) {
      abort(); /* every error names its cause */
    }
  }
  for (int i = 0; i < count; ++i) free(bufs[i]);
  unlink(path);
  unlink(config);
  rmdir(dir);
  return 0;
}
