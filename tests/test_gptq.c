/*
** test_gptq.c -- GPTQ import: random weights quantized with
** q4_quantize_rtn, written as GPTQ v1/v2 checkpoints with and without
** act-order, imported back and compared exactly with the quantizer's own
** dequantization and with a dequantization read straight from the
** checkpoint's tensors; quantize_config.json; malformed checkpoints; the
** 'q4tune import' command (when $Q4TUNE_CLI is set).
*/
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "q4_gptq.h"
#include "q4_quant.h"
#include "q4_ref.h"
#include "q4_safetensors.h"
#include "q4test.h"
#include "q4tune.h"

/* tmpdir/sub (created), for a checkpoint folder of its own. */
static void subdir(char *buf, size_t size, const char *sub) {
  if ((size_t)snprintf(buf, size, "%s/%s", tmpdir, sub) >= size) {
    fprintf(stderr, "path too long: %s/%s\n", tmpdir, sub);
    exit(1);
  }
  mkdir(buf, 0755);
}

static void write_text(const char *path, const char *text) {
  FILE *fp = fopen(path, "w");
  if (!fp) {
    perror(path);
    exit(1);
  }
  fputs(text, fp);
  fclose(fp);
}

static float *random_weights(int k, int n, uint64_t seed) {
  float *w = malloc((size_t)k * (size_t)n * sizeof *w);
  for (size_t i = 0; i < (size_t)k * (size_t)n; i++) w[i] = q4_rand_uniform(&seed, -1, 1);
  return w;
}

/* Each row a group, every group K / groups rows, in a shuffled order. */
static int *random_gidx(int k, int groups, uint64_t seed) {
  int *g = malloc((size_t)k * sizeof *g);
  for (int r = 0; r < k; r++) g[r] = r / (k / groups);
  for (int r = k - 1; r > 0; r--) {
    const int j = (int)(q4_rand_next(&seed) % (uint64_t)(r + 1)), t = g[r];
    g[r] = g[j];
    g[j] = t;
  }
  return g;
}

/* The stable sort of rows by group, the slow and obvious way. */
static void sort_perm(const int *g_idx, int k, int groups, int *perm) {
  int i = 0;
  for (int g = 0; g < groups; g++)
    for (int r = 0; r < k; r++)
      if (g_idx[r] == g) perm[i++] = r;
}

static uint32_t word(const q4_st_tensor *t, size_t i) {
  uint32_t v;
  memcpy(&v, (const unsigned char *)t->data + 4 * i, 4);
  return v;
}

/* Checkpoint row r, column c, dequantized from the raw GPTQ tensors. */
static double ckpt_weight(const q4_st_file *f, const char *prefix, int r, int c, int gs, int v1) {
  char name[256];
  q4_st_tensor qw, qz, sc, gi;
  snprintf(name, sizeof name, "%s.qweight", prefix);
  q4_st_find(f, name, &qw);
  snprintf(name, sizeof name, "%s.qzeros", prefix);
  q4_st_find(f, name, &qz);
  snprintf(name, sizeof name, "%s.scales", prefix);
  q4_st_find(f, name, &sc);
  snprintf(name, sizeof name, "%s.g_idx", prefix);
  int g = r / gs;
  if (q4_st_find(f, name, &gi) == Q4_OK) memcpy(&g, (const unsigned char *)gi.data + 4 * (size_t)r, 4);
  const int n = (int)qw.shape[1];
  const int q = (int)(word(&qw, (size_t)(r / 8) * (size_t)n + (size_t)c) >> (4 * (r % 8)) & 0xF);
  const int z = (int)(word(&qz, (size_t)g * (size_t)(n / 8) + (size_t)c / 8) >> (4 * (c % 8)) & 0xF) + v1;
  uint16_t s;
  memcpy(&s, (const unsigned char *)sc.data + 2 * ((size_t)g * (size_t)n + (size_t)c), 2);
  return ((double)q - z) * q4_h2f(s);
}

typedef struct gcase {
  int k, n, group, sym, version, order;  /* order: 0 no g_idx, 1 plain g_idx, 2 act-order */
} gcase;

/* Every imported element against the quantizer's matrix (exact), the raw
** checkpoint (exact) and the float weights (within a quantization step). */
static int compare(const gcase *c, const q4_host_matrix *m, const q4_host_matrix *got, const float *w,
                   const int *perm, const char *path) {
  q4_st_file *f;
  if (q4_st_open(path, &f)) return 0;
  int ok = 1;
  for (int i = 0; i < c->k && ok; i++)
    for (int col = 0; col < c->n && ok; col++) {
      const double d = q4_host_matrix_dequant(got, i, col);
      const int r = perm ? perm[i] : i;
      const double s = q4_h2f(m->scales[(size_t)(i / m->group_size) * (size_t)c->n + (size_t)col]);
      ok = d == q4_host_matrix_dequant(m, i, col) &&
           d == ckpt_weight(f, "layer", r, col, m->group_size, c->version == Q4_GPTQ_V1) &&
           fabs(d - w[(size_t)r * (size_t)c->n + (size_t)col]) <= 1.01 * s;
      if (!ok)
        fprintf(stderr, "k=%d n=%d: row %d (ckpt %d) col %d: got %g, quantizer %g, float %g\n", c->k, c->n, i, r,
                col, d, q4_host_matrix_dequant(m, i, col), w[(size_t)r * (size_t)c->n + (size_t)col]);
    }
  q4_st_close(f);
  return ok;
}

static void run_case(const gcase *c, uint64_t seed) {
  const int groups = c->group ? c->k / c->group : 1;
  float *w = random_weights(c->k, c->n, seed);
  int *g_idx = NULL, *perm = NULL;
  float *wp = w;
  if (c->order) {
    g_idx = c->order == 2 ? random_gidx(c->k, groups, seed + 1) : random_gidx(c->k, 1, 0);
    if (c->order == 1)
      for (int r = 0; r < c->k; r++) g_idx[r] = r / (c->k / groups);
  }
  if (c->order == 2) {  /* quantize the rows in group order, as GPTQ does */
    perm = malloc((size_t)c->k * sizeof *perm);
    sort_perm(g_idx, c->k, groups, perm);
    wp = malloc((size_t)c->k * (size_t)c->n * sizeof *wp);
    for (int i = 0; i < c->k; i++)
      memcpy(wp + (size_t)i * (size_t)c->n, w + (size_t)perm[i] * (size_t)c->n, (size_t)c->n * sizeof *wp);
  }
  q4_host_matrix m, got;
  char path[PATH_MAX + 64];
  snprintf(path, sizeof path, "%s/case.safetensors", tmpdir);
  CHECK_OK(q4_quantize_rtn(wp, c->k, c->n, c->group, c->sym, &m));
  CHECK_OK(q4_gptq_export(path, "layer", &m, (q4_gptq_version)c->version, g_idx));
  CHECK_OK(q4_gptq_import(path, "layer", (q4_gptq_version)c->version, &got));
  CHECK(got.n == c->n && got.k == c->k && got.group_size == (c->group ? c->group : c->k));
  CHECK(got.symmetric == c->sym);
  const int reordered = c->order == 2 && groups > 1;  /* one group needs no reordering */
  CHECK(reordered ? got.perm && !memcmp(got.perm, perm, (size_t)c->k * sizeof *perm) : !got.perm);
  if (got.qweight && (!reordered || got.perm))
    CHECK_MSG(compare(c, &m, &got, w, perm, path), "k=%d n=%d group=%d sym=%d v%d order=%d", c->k, c->n, c->group,
              c->sym, c->version, c->order);
  q4_host_matrix_free(&m);
  q4_host_matrix_free(&got);
  if (wp != w) free(wp);
  free(w);
  free(g_idx);
  free(perm);
}

static void test_roundtrips(void) {
  static const int groups[] = {32, 64, 128, 0};
  int cases = 0;
  for (int gi = 0; gi < 4; gi++)
    for (int sym = 0; sym < 2; sym++)
      for (int v = 1; v <= 2; v++)
        for (int order = 0; order < 3; order++) {
          const gcase c = {256, 72, groups[gi], sym, v, order};
          run_case(&c, (uint64_t)(1000 + cases++));
        }
  const gcase big = {1024, 136, 128, 0, 2, 2};
  run_case(&big, 7);
  printf("round trips: %d cases\n", cases + 1);
}

/* The zero convention: a v1 file read as v2 has every zero 1 lower. */
static void test_versions(void) {
  float *w = random_weights(128, 16, 42);
  q4_host_matrix m, a, b;
  char dir[PATH_MAX], path[PATH_MAX + 64], cfg[PATH_MAX + 64];
  subdir(dir, sizeof dir, "versions");
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  CHECK_OK(q4_quantize_rtn(w, 128, 16, 32, 0, &m));
  CHECK_OK(q4_gptq_export(path, "x", &m, Q4_GPTQ_V1, NULL));
  CHECK_OK(q4_gptq_import(path, "x", Q4_GPTQ_V2, &a));
  CHECK_OK(q4_gptq_import(path, "x", Q4_GPTQ_AUTO, &b));  /* no config: classic */
  int off_by_one = 1, same = 1;
  for (int i = 0; a.zeros && b.zeros && i < 4 * 16; i++) {
    off_by_one &= q4_h2f(a.zeros[i]) == q4_h2f(m.zeros[i]) - 1;
    same &= a.scales[i] == m.scales[i] && b.zeros[i] == m.zeros[i];
  }
  CHECK(off_by_one && same);
  q4_host_matrix_free(&a);
  q4_host_matrix_free(&b);

  /* quantize_config.json says v2: AUTO follows it */
  CHECK_OK(q4_gptq_export(path, "x", &m, Q4_GPTQ_V2, NULL));
  snprintf(cfg, sizeof cfg, "%s/quantize_config.json", dir);
  write_text(cfg, "{\"bits\": 4, \"group_size\": 32, \"sym\": false, \"checkpoint_format\": \"gptq_v2\"}");
  CHECK_OK(q4_gptq_import(path, "x", Q4_GPTQ_AUTO, &a));
  CHECK(a.zeros && !memcmp(a.zeros, m.zeros, 4 * 16 * 2));
  q4_host_matrix_free(&a);
  write_text(cfg, "{\"bits\": 8, \"checkpoint_format\": \"gptq\"}");
  CHECK_ERR(q4_gptq_import(path, "x", Q4_GPTQ_AUTO, &a), Q4_ERR_UNSUPPORTED, "8-bit");
  write_text(cfg, "{\"bits\": 4, \"checkpoint_format\": \"marlin\"}");
  CHECK_ERR(q4_gptq_import(path, "x", Q4_GPTQ_AUTO, &a), Q4_ERR_UNSUPPORTED, "marlin");
  write_text(cfg, "{\"bits\": 4,");
  CHECK_ERR(q4_gptq_import(path, "x", Q4_GPTQ_AUTO, &a), Q4_ERR_IO, "quantize_config.json");
  CHECK(a.qweight == NULL);

  /* config.json's quantization_config, when there is no quantize_config.json */
  unlink(cfg);
  snprintf(cfg, sizeof cfg, "%s/config.json", dir);
  write_text(cfg, "{\"model_type\": \"llama\", \"quantization_config\": {\"quant_method\": \"gptq\", \"bits\": 4,"
                  " \"checkpoint_format\": \"gptq_v2\"}}");
  CHECK_OK(q4_gptq_import(path, "x", Q4_GPTQ_AUTO, &a));
  CHECK(a.zeros && !memcmp(a.zeros, m.zeros, 4 * 16 * 2));
  q4_host_matrix_free(&a);
  write_text(cfg, "{\"quantization_config\": {\"quant_method\": \"awq\", \"bits\": 4}}");
  CHECK_ERR(q4_gptq_import(path, "x", Q4_GPTQ_AUTO, &a), Q4_ERR_UNSUPPORTED, "awq");
  unlink(cfg);
  q4_host_matrix_free(&m);
  free(w);
}

/* Symmetric checkpoints: every zero 8, in both conventions. */
static void test_symmetric(void) {
  float *w = random_weights(64, 32, 5);
  q4_host_matrix m, a;
  char path[PATH_MAX + 64];
  snprintf(path, sizeof path, "%s/sym.safetensors", tmpdir);
  CHECK_OK(q4_quantize_rtn(w, 64, 32, 0, 1, &m));
  for (int v = 1; v <= 2; v++) {
    CHECK_OK(q4_gptq_export(path, "s", &m, (q4_gptq_version)v, NULL));
    CHECK_OK(q4_gptq_import(path, "s", (q4_gptq_version)v, &a));
    CHECK(a.symmetric == 1 && a.group_size == 64 && a.zeros && q4_h2f(a.zeros[31]) == 8);
    q4_host_matrix_free(&a);
  }
  CHECK_OK(q4_gptq_import(path, "s", Q4_GPTQ_V1, &a));  /* v2 read as v1: zeros 9 */
  CHECK(a.symmetric == 0);
  q4_host_matrix_free(&a);
  q4_host_matrix_free(&m);
  free(w);
}

/* An imported act-order matrix exports back to the same checkpoint. */
static void test_reexport(void) {
  const int k = 128, n = 16, groups = 4;
  float *w = random_weights(k, n, 77);
  int *g_idx = random_gidx(k, groups, 78);
  q4_host_matrix m, a, b;
  char p1[PATH_MAX + 64], p2[PATH_MAX + 64];
  snprintf(p1, sizeof p1, "%s/re1.safetensors", tmpdir);
  snprintf(p2, sizeof p2, "%s/re2.safetensors", tmpdir);
  CHECK_OK(q4_quantize_rtn(w, k, n, k / groups, 0, &m));
  CHECK_OK(q4_gptq_export(p1, "r", &m, Q4_GPTQ_V2, g_idx));
  CHECK_OK(q4_gptq_import(p1, "r", Q4_GPTQ_V2, &a));
  CHECK_OK(q4_gptq_export(p2, "r", &a, Q4_GPTQ_V2, NULL));  /* g_idx from a.perm */
  CHECK_OK(q4_gptq_import(p2, "r", Q4_GPTQ_V2, &b));
  CHECK(a.perm && b.perm && !memcmp(a.perm, b.perm, (size_t)k * sizeof(int)));
  CHECK(a.qweight && b.qweight && !memcmp(a.qweight, b.qweight, (size_t)k / 8 * n * 4));
  int j = 1;
  while (g_idx[j] == g_idx[0]) j++;
  const int t = g_idx[0];  /* swap two rows' groups: sizes stay equal, the order changes */
  g_idx[0] = g_idx[j];
  g_idx[j] = t;
  CHECK_ERR(q4_gptq_export(p2, "r", &a, Q4_GPTQ_V2, g_idx), Q4_ERR_INVALID_ARG, "disagrees");
  g_idx[0] = (g_idx[0] + 1) % groups;
  CHECK_ERR(q4_gptq_export(p2, "r", &a, Q4_GPTQ_V2, g_idx), Q4_ERR_UNSUPPORTED, "unequal size");
  q4_host_matrix_free(&m);
  q4_host_matrix_free(&a);
  q4_host_matrix_free(&b);
  free(w);
  free(g_idx);
}

/* ---- malformed checkpoints ------------------------------------------------------ */

typedef struct raw_layer {
  q4_st_dtype qw_dtype;
  int64_t qw_rows, qw_cols, z_groups, z_cols, s_groups, s_cols, gidx_len;
  int gidx_value;  /* -1: g_idx[r] = r / (K / groups) */
} raw_layer;

static q4_status import_raw(const raw_layer *L) {
  static uint32_t zeros_buf[1 << 14];
  char path[PATH_MAX + 64];
  snprintf(path, sizeof path, "%s/raw.safetensors", tmpdir);
  int gidx[1024];
  const int64_t per = L->gidx_len && L->s_groups ? L->gidx_len / L->s_groups : 1;
  for (int r = 0; r < L->gidx_len; r++) gidx[r] = L->gidx_value >= 0 ? L->gidx_value : (int)(r / per);
  const q4_st_tensor t[] = {
      {.name = "L.qweight", .dtype = L->qw_dtype, .rank = 2, .shape = {L->qw_rows, L->qw_cols}, .data = zeros_buf},
      {.name = "L.qzeros", .dtype = Q4_ST_I32, .rank = 2, .shape = {L->z_groups, L->z_cols}, .data = zeros_buf},
      {.name = "L.scales", .dtype = Q4_ST_F16, .rank = 2, .shape = {L->s_groups, L->s_cols}, .data = zeros_buf},
      {.name = "L.g_idx", .dtype = Q4_ST_I32, .rank = 1, .shape = {L->gidx_len}, .data = gidx},
  };
  if (q4_st_write(path, t, L->gidx_len ? 4 : 3, NULL)) return Q4_ERR_IO;
  q4_host_matrix m;
  q4_status st = q4_gptq_import(path, "L", Q4_GPTQ_V2, &m);
  CHECK(st || m.qweight);
  CHECK(!st || (!m.qweight && !m.perm));
  q4_host_matrix_free(&m);
  return st;
}

static void test_malformed(void) {
  /* K = 256, N = 64, 2 groups */
  const raw_layer good = {Q4_ST_I32, 32, 64, 2, 8, 2, 64, 0, -1};
  raw_layer L = good;
  CHECK_OK(import_raw(&L));
  L.gidx_len = 256;
  CHECK_OK(import_raw(&L));
  L.qw_dtype = Q4_ST_F16;
  CHECK_ERR(import_raw(&L), Q4_ERR_INVALID_ARG, "'L.qweight' is F16, GPTQ stores it as I32");
  L = good;
  L.s_cols = 72;
  CHECK_ERR(import_raw(&L), Q4_ERR_INVALID_ARG, "columns");
  L = good;
  L.z_groups = 3;
  CHECK_ERR(import_raw(&L), Q4_ERR_INVALID_ARG, "groups");
  L = good;  /* an 8-bit checkpoint: qweight [K/4][N], qzeros [G][N/4] */
  L.qw_rows = 64;
  L.z_cols = 16;
  CHECK_ERR(import_raw(&L), Q4_ERR_UNSUPPORTED, "8-bit");
  L.z_cols = 8;  /* the qzeros of 4 bits, but g_idx gives K */
  L.gidx_len = 256;
  CHECK_ERR(import_raw(&L), Q4_ERR_UNSUPPORTED, "8-bit");
  L = good;  /* 3 bits: qzeros [G][N*3/32] */
  L.z_cols = 6;
  CHECK_ERR(import_raw(&L), Q4_ERR_UNSUPPORTED, "3-bit");
  L.z_cols = 5;
  CHECK_ERR(import_raw(&L), Q4_ERR_INVALID_ARG, "no bit width");
  L = good;
  L.gidx_len = 200;
  CHECK_ERR(import_raw(&L), Q4_ERR_INVALID_ARG, "g_idx' has 200 entries");
  L = good;
  L.gidx_len = 256;
  L.gidx_value = 2;
  CHECK_ERR(import_raw(&L), Q4_ERR_INVALID_ARG, "is not a group");
  L.gidx_value = 1;  /* every row in group 1, none in group 0 */
  CHECK_ERR(import_raw(&L), Q4_ERR_UNSUPPORTED, "unequal size");
  L = good;  /* K = 256 in 3 groups */
  L.z_groups = L.s_groups = 3;
  CHECK_ERR(import_raw(&L), Q4_ERR_UNSUPPORTED, "equal groups");
  L = good;
  L.qw_rows = 0;
  CHECK_ERR(import_raw(&L), Q4_ERR_INVALID_ARG, "dimension 0");

  q4_host_matrix m;
  char path[PATH_MAX + 64];
  snprintf(path, sizeof path, "%s/raw.safetensors", tmpdir);
  CHECK_ERR(q4_gptq_import(path, "nope", Q4_GPTQ_V1, &m), Q4_ERR_INVALID_ARG, "no tensor 'nope.qweight'");
  snprintf(path, sizeof path, "%s/absent.safetensors", tmpdir);
  CHECK_ERR(q4_gptq_import(path, "L", Q4_GPTQ_V1, &m), Q4_ERR_IO, "absent.safetensors");
  CHECK_ERR(q4_gptq_import(NULL, "L", Q4_GPTQ_V1, &m), Q4_ERR_INVALID_ARG, "NULL");
  CHECK_ERR(q4_gptq_import(path, "L", (q4_gptq_version)7, &m), Q4_ERR_INVALID_ARG, "version");
  q4_host_matrix_free(NULL);
}

static void test_quantize_errors(void) {
  float w[64 * 8] = {0};
  q4_host_matrix m;
  CHECK_ERR(q4_quantize_rtn(w, 64, 8, 48, 0, &m), Q4_ERR_INVALID_ARG, "group size 48");
  CHECK_ERR(q4_quantize_rtn(w, 60, 8, 0, 0, &m), Q4_ERR_INVALID_ARG, "K=60");
  CHECK_ERR(q4_quantize_rtn(NULL, 64, 8, 0, 0, &m), Q4_ERR_INVALID_ARG, "NULL");
  w[3] = NAN;
  CHECK_ERR(q4_quantize_rtn(w, 64, 8, 0, 0, &m), Q4_ERR_INVALID_ARG, "not finite");
  /* all-positive weights give zero 0, which classic qzeros cannot store */
  for (int i = 0; i < 64 * 8; i++) w[i] = 0.5f + (float)(i % 7) / 10;
  CHECK_OK(q4_quantize_rtn(w, 64, 8, 32, 0, &m));
  CHECK(m.zeros && q4_h2f(m.zeros[0]) == 0);
  char path[PATH_MAX + 64];
  snprintf(path, sizeof path, "%s/zero0.safetensors", tmpdir);
  CHECK_ERR(q4_gptq_export(path, "z", &m, Q4_GPTQ_V1, NULL), Q4_ERR_UNSUPPORTED, "write gptq_v2");
  CHECK(access(path, F_OK) != 0);
  CHECK_OK(q4_gptq_export(path, "z", &m, Q4_GPTQ_V2, NULL));
  CHECK_ERR(q4_gptq_export(path, "z", &m, Q4_GPTQ_AUTO, NULL), Q4_ERR_INVALID_ARG, "V1 or V2");
  q4_host_matrix a;
  CHECK_OK(q4_gptq_import(path, "z", Q4_GPTQ_V2, &a));
  for (int r = 0; r < 64 && a.qweight; r++) CHECK(q4_host_matrix_dequant(&a, r, 5) == q4_host_matrix_dequant(&m, r, 5));
  q4_host_matrix_free(&a);
  q4_host_matrix_free(&m);
}

/* ---- the command -------------------------------------------------------------------- */

static int run_cli(const char *cli, const char *args, const char *out) {
  char cmd[4 * PATH_MAX];
  snprintf(cmd, sizeof cmd, "'%s' import %s >'%s' 2>&1", cli, args, out);
  const int rc = system(cmd);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

static int file_has(const char *path, const char *needle) {
  char buf[8192] = {0};
  FILE *fp = fopen(path, "r");
  if (!fp) return 0;
  size_t n = fread(buf, 1, sizeof buf - 1, fp);
  buf[n] = 0;
  fclose(fp);
  return strstr(buf, needle) != NULL;
}

/* The fields after `prefix` on its line of the listing: "N K group act sym". */
static int listing(const char *path, const char *prefix, char *fields, size_t size) {
  char line[512];
  FILE *fp = fopen(path, "r");
  int found = 0;
  while (fp && !found && fgets(line, sizeof line, fp)) {
    const size_t n = strlen(prefix);
    if (strncmp(line, prefix, n) || line[n] != ' ') continue;
    int nn, k;
    char g[16], act[16], sym[16];
    found = sscanf(line + n, "%d %d %15s %15s %15s", &nn, &k, g, act, sym) == 5;
    if (found) snprintf(fields, size, "%d %d %s %s %s", nn, k, g, act, sym);
  }
  if (fp) fclose(fp);
  return found;
}

static void test_cli(void) {
  const char *cli = getenv("Q4TUNE_CLI");
  if (!cli || !*cli) {
    printf("Q4TUNE_CLI not set: skipping the command tests\n");
    return;
  }
  char dir[PATH_MAX], p[PATH_MAX + 64], log[PATH_MAX + 64], out[PATH_MAX + 64], args[3 * PATH_MAX];
  subdir(dir, sizeof dir, "ckpt");
  snprintf(log, sizeof log, "%s/cli.log", tmpdir);
  snprintf(out, sizeof out, "%s/q4.safetensors", tmpdir);
  float *w = random_weights(128, 24, 9);
  int *g_idx = random_gidx(128, 4, 10);
  q4_host_matrix m;
  CHECK_OK(q4_quantize_rtn(w, 128, 24, 32, 0, &m));
  snprintf(p, sizeof p, "%s/model-00001-of-00002.safetensors", dir);
  CHECK_OK(q4_gptq_export(p, "model.layers.0.mlp.down_proj", &m, Q4_GPTQ_V1, g_idx));
  snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", dir);
  CHECK_OK(q4_gptq_export(p, "model.layers.1.self_attn.o_proj", &m, Q4_GPTQ_V1, NULL));

  snprintf(args, sizeof args, "'%s'", dir);
  CHECK(run_cli(cli, args, log) == 0);
  char fields[128] = "";
  CHECK(listing(log, "model.layers.0.mlp.down_proj", fields, sizeof fields) && !strcmp(fields, "24 128 32 yes no"));
  CHECK(listing(log, "model.layers.1.self_attn.o_proj", fields, sizeof fields) &&
        !strcmp(fields, "24 128 32 no no"));
  snprintf(args, sizeof args, "'%s' --layer model.layers.0.mlp.down_proj --v1 --out '%s'", dir, out);
  CHECK(run_cli(cli, args, log) == 0);
  CHECK(file_has(log, "wrote 1 layers"));
  q4_st_file *f;
  CHECK_OK(q4_st_open(out, &f));
  if (f) {
    q4_st_tensor t;
    CHECK(q4_st_count(f) == 4);
    CHECK_OK(q4_st_find(f, "model.layers.0.mlp.down_proj.perm", &t));
    CHECK(t.dtype == Q4_ST_I32 && t.shape[0] == 128);
    CHECK_OK(q4_st_find(f, "model.layers.0.mlp.down_proj.zeros", &t));
    CHECK(t.dtype == Q4_ST_F16 && t.shape[0] == 4 && t.shape[1] == 24 && !memcmp(t.data, m.zeros, 4 * 24 * 2));
    q4_st_close(f);
  }
  /* --out over an input (the checkpoint would be replaced) or into a folder
  ** that is not there: refused before anything is imported, input intact */
  snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", dir);
  snprintf(args, sizeof args, "'%s' --out '%s/./model-00002-of-00002.safetensors'", dir, dir);
  CHECK(run_cli(cli, args, log) == 1 && file_has(log, "is the input") && !file_has(log, "wrote"));
  q4_host_matrix again;
  CHECK_OK(q4_gptq_import(p, "model.layers.1.self_attn.o_proj", Q4_GPTQ_V1, &again));
  q4_host_matrix_free(&again);
  snprintf(args, sizeof args, "'%s' --out '%s/no-such-folder/q4.safetensors'", dir, tmpdir);
  CHECK(run_cli(cli, args, log) == 1 && file_has(log, "cannot write --out") && !file_has(log, "layer "));
  snprintf(args, sizeof args, "'%s' --out '%s'", dir, tmpdir);
  CHECK(run_cli(cli, args, log) == 1 && file_has(log, "is a folder"));
  snprintf(args, sizeof args, "'%s' --layer model.layers.9.nope", dir);
  CHECK(run_cli(cli, args, log) == 1 && file_has(log, "no layer 'model.layers.9.nope'"));
  snprintf(args, sizeof args, "'%s' --v1 --v2", dir);
  CHECK(run_cli(cli, args, log) == 2);
  CHECK(run_cli(cli, "--help", log) == 0 && file_has(log, "usage: q4tune import"));
  CHECK(run_cli(cli, "", log) == 2);
  snprintf(p, sizeof p, "%s/not.safetensors", tmpdir);
  write_text(p, "{\"this is\": \"not a safetensors file\"}\n");
  snprintf(args, sizeof args, "'%s'", p);
  CHECK(run_cli(cli, args, log) == 1 && file_has(log, "Q4_ERR_IO"));
  q4_host_matrix_free(&m);
  free(w);
  free(g_idx);
}

int main(void) {
  make_tmpdir("test_gptq");
  test_roundtrips();
  test_versions();
  test_symmetric();
  test_reexport();
  test_malformed();
  test_quantize_errors();
  test_cli();
  remove_tmpdir();
  return q4test_done("test_gptq");
}
