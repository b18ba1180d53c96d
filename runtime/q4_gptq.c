/*
** q4_gptq.c -- import of GPTQ checkpoints (safetensors) into q4tune's q4
** layout: qzeros unpacked to fp16, the classic zero - 1 undone, act-order
** rows reordered so every group is contiguous.
*/
#include "q4_gptq.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "q4_error.h"
#include "q4_ref.h"
#include "q4_safetensors.h"

#define FP16_EIGHT 0x4800 /* 8.0 in binary16 */
#define MAX_DIM (1 << 30)

q4_status q4_host_matrix_alloc(q4_host_matrix *m, int n, int k, int groups, int with_perm) {
  memset(m, 0, sizeof *m);
  m->n = n;
  m->k = k;
  m->group_size = k / groups;
  m->qweight = calloc((size_t)k / 8 * (size_t)n, sizeof *m->qweight);
  m->scales = calloc((size_t)groups * (size_t)n, sizeof *m->scales);
  m->zeros = calloc((size_t)groups * (size_t)n, sizeof *m->zeros);
  if (with_perm) m->perm = calloc((size_t)k, sizeof *m->perm);
  if (m->qweight && m->scales && m->zeros && (m->perm || !with_perm)) return Q4_OK;
  q4_host_matrix_free(m);
  return q4_err(Q4_ERR_NO_MEMORY, "out of memory for a %d x %d matrix", k, n);
}

void q4_host_matrix_free(q4_host_matrix *m) {
  if (!m) return;
  free(m->qweight);
  free(m->scales);
  free(m->zeros);
  free(m->perm);
  memset(m, 0, sizeof *m);
}

double q4_host_matrix_dequant(const q4_host_matrix *m, int k, int n) {
  const size_t gi = (size_t)(k / m->group_size) * (size_t)m->n + (size_t)n;
  const int q = q4_code_get(m->qweight, m->n, k, n);
  return ((double)q - q4_h2f(m->zeros[gi])) * q4_h2f(m->scales[gi]);
}

q4_status q4_gidx_perm(const int *g_idx, int k, int groups, int *perm, int *identity) {
  const int gs = k / groups;
  int *start = calloc((size_t)groups + 1, sizeof *start);
  if (!start) return q4_err(Q4_ERR_NO_MEMORY, "out of memory");
  *identity = 1;
  for (int r = 0; r < k; r++) {
    start[g_idx[r] + 1]++;
    if (g_idx[r] != r / gs) *identity = 0;
  }
  for (int g = 0; g < groups; g++) {
    if (start[g + 1] != gs) {
      q4_status st = q4_err(Q4_ERR_UNSUPPORTED,
                            "act-order groups of unequal size: group %d has %d rows, q4 needs %d in every group",
                            g, start[g + 1], gs);
      free(start);
      return st;
    }
    start[g + 1] += start[g];
  }
  for (int r = 0; r < k; r++) perm[start[g_idx[r]]++] = r;  /* counting sort: stable */
  free(start);
  return Q4_OK;
}

/* ---- checkpoint configuration ----------------------------------------------- */

typedef struct gptq_config {
  q4_gptq_version version;  /* AUTO when the config does not say */
  int bits;                 /* 0 when unknown */
  char file[64];            /* where it came from, for messages */
} gptq_config;

/* The directory part of path, with a trailing slash ("" for a bare name). */
static void dir_of(const char *path, char *buf, size_t size) {
  const char *slash = strrchr(path, '/');
  size_t len = slash ? (size_t)(slash - path) + 1 : 0;
  if (len >= size) len = 0;
  memcpy(buf, path, len);
  buf[len] = 0;
}

static q4_status config_fields(json_t *q, const char *file, gptq_config *c) {
  json_t *method = json_object_get(q, "quant_method");
  if (json_is_string(method) && strcmp(json_string_value(method), "gptq"))
    return q4_err(Q4_ERR_UNSUPPORTED, "%s: quant_method '%s' is not gptq", file, json_string_value(method));
  json_t *bits = json_object_get(q, "bits");
  if (json_is_integer(bits)) c->bits = (int)json_integer_value(bits);
  json_t *fmt = json_object_get(q, "checkpoint_format");
  if (!json_is_string(fmt)) return Q4_OK;
  const char *s = json_string_value(fmt);
  if (!strcmp(s, "gptq")) c->version = Q4_GPTQ_V1;
  else if (!strcmp(s, "gptq_v2")) c->version = Q4_GPTQ_V2;
  else return q4_err(Q4_ERR_UNSUPPORTED, "%s: checkpoint_format '%s' (q4tune reads gptq and gptq_v2)", file, s);
  return Q4_OK;
}

/* Read quantize_config.json, else config.json's quantization_config, from
** the checkpoint's directory. Neither present is fine. */
static q4_status read_config(const char *st_path, gptq_config *c) {
  static const char *const names[] = {"quantize_config.json", "config.json"};
  char dir[4096], path[4200];
  dir_of(st_path, dir, sizeof dir);
  memset(c, 0, sizeof *c);
  for (int i = 0; i < 2; i++) {
    snprintf(path, sizeof path, "%s%s", dir, names[i]);
    FILE *fp = fopen(path, "rb");
    if (!fp) continue;
    json_error_t jerr;
    json_t *root = json_loadf(fp, 0, &jerr);
    fclose(fp);
    if (!root && i == 1) continue;  /* a model's config.json is not ours to judge */
    if (!root) return q4_err(Q4_ERR_IO, "%s: invalid JSON at line %d: %s", path, jerr.line, jerr.text);
    json_t *q = i == 0 ? root : json_object_get(root, "quantization_config");
    const int found = json_is_object(q);
    q4_status st = Q4_OK;
    snprintf(c->file, sizeof c->file, "%s", names[i]);
    if (found) st = config_fields(q, path, c);
    else if (i == 0) st = q4_err(Q4_ERR_IO, "%s: not a JSON object", path);
    json_decref(root);
    if (st || i == 0 || found) return st;
  }
  return Q4_OK;
}

/* ---- tensors ---------------------------------------------------------------- */

typedef struct gptq_in {
  const q4_st_file *f;
  const char *prefix;
  q4_st_tensor qweight, qzeros, scales, g_idx;
  int has_gidx;
  int n, k, groups;
} gptq_in;

static q4_status find_typed(gptq_in *in, const char *suffix, q4_st_dtype dtype, int rank, q4_st_tensor *t,
                            int optional) {
  char name[1024];
  snprintf(name, sizeof name, "%s.%s", in->prefix, suffix);
  if (optional && q4_st_index(in->f, name) < 0) return Q4_OK;
  q4_status st = q4_st_find(in->f, name, t);
  if (st) return st;
  const char *path = q4_st_path(in->f);
  if (t->dtype != dtype)
    return q4_err(Q4_ERR_INVALID_ARG, "%s: tensor '%s' is %s, GPTQ stores it as %s", path, name,
                  q4_st_dtype_name(t->dtype), q4_st_dtype_name(dtype));
  if (t->rank != rank)
    return q4_err(Q4_ERR_INVALID_ARG, "%s: tensor '%s' has rank %d, want %d", path, name, t->rank, rank);
  for (int i = 0; i < rank; i++)
    if (t->shape[i] <= 0 || t->shape[i] > MAX_DIM)
      return q4_err(Q4_ERR_INVALID_ARG, "%s: tensor '%s' has dimension %lld", path, name, (long long)t->shape[i]);
  return Q4_OK;
}

static q4_status find_all(gptq_in *in) {
  q4_status st = find_typed(in, "qweight", Q4_ST_I32, 2, &in->qweight, 0);
  if (!st) st = find_typed(in, "qzeros", Q4_ST_I32, 2, &in->qzeros, 0);
  if (!st) st = find_typed(in, "scales", Q4_ST_F16, 2, &in->scales, 0);
  if (!st) st = find_typed(in, "g_idx", Q4_ST_I32, 1, &in->g_idx, 1);
  in->has_gidx = in->g_idx.name != NULL;
  return st;
}

static q4_status not_four_bits(const gptq_in *in, int bits, const char *from) {
  return q4_err(Q4_ERR_UNSUPPORTED, "%s: layer '%s' has %d-bit weights (from %s); q4tune imports 4-bit only",
                q4_st_path(in->f), in->prefix, bits, from);
}

/* Bit width from the packing: qzeros hold N * bits / 32 words a row,
** qweight K * bits / 32 rows (K known only from g_idx). */
static q4_status check_bits(const gptq_in *in, const gptq_config *c) {
  const char *path = q4_st_path(in->f);
  if (c->bits && c->bits != 4) return not_four_bits(in, c->bits, c->file);
  const int64_t zc = in->qzeros.shape[1], rows = in->qweight.shape[0];
  if (zc * 32 % in->n)
    return q4_err(Q4_ERR_INVALID_ARG, "%s: '%s.qzeros' has %lld words a row, which packs no bit width for N=%d",
                  path, in->prefix, (long long)zc, in->n);
  if (zc * 32 / in->n != 4) return not_four_bits(in, (int)(zc * 32 / in->n), "the qzeros shape");
  if (in->has_gidx && rows * 32 % in->g_idx.shape[0] == 0 && rows * 32 / in->g_idx.shape[0] != 4)
    return not_four_bits(in, (int)(rows * 32 / in->g_idx.shape[0]), "the qweight and g_idx shapes");
  return Q4_OK;
}

static q4_status check_shapes(gptq_in *in, const gptq_config *c) {
  const char *path = q4_st_path(in->f), *p = in->prefix;
  in->n = (int)in->scales.shape[1];
  in->groups = (int)in->scales.shape[0];
  if (in->qweight.shape[1] != in->n)
    return q4_err(Q4_ERR_INVALID_ARG, "%s: '%s.qweight' has %lld columns but '%s.scales' has %d", path, p,
                  (long long)in->qweight.shape[1], p, in->n);
  if (in->qzeros.shape[0] != in->groups)
    return q4_err(Q4_ERR_INVALID_ARG, "%s: '%s.qzeros' has %lld groups but '%s.scales' has %d", path, p,
                  (long long)in->qzeros.shape[0], p, in->groups);
  q4_status st = check_bits(in, c);
  if (st) return st;
  const int64_t k = in->qweight.shape[0] * 8;
  if (k > MAX_DIM) return q4_err(Q4_ERR_UNSUPPORTED, "%s: '%s' has K=%lld rows", path, p, (long long)k);
  in->k = (int)k;
  if (in->has_gidx && in->g_idx.shape[0] != k)
    return q4_err(Q4_ERR_INVALID_ARG, "%s: '%s.g_idx' has %lld entries for K=%d rows", path, p,
                  (long long)in->g_idx.shape[0], in->k);
  if (in->k % in->groups)
    return q4_err(Q4_ERR_UNSUPPORTED, "%s: '%s': K=%d rows do not split into %d equal groups", path, p, in->k,
                  in->groups);
  return Q4_OK;
}

/* g_idx as ints, each checked to name a group. */
static q4_status read_gidx(const gptq_in *in, int *g_idx) {
  memcpy(g_idx, in->g_idx.data, (size_t)in->k * sizeof *g_idx);  /* the mapping may be unaligned */
  for (int r = 0; r < in->k; r++)
    if (g_idx[r] < 0 || g_idx[r] >= in->groups)
      return q4_err(Q4_ERR_INVALID_ARG, "%s: '%s.g_idx'[%d] = %d is not a group (0..%d)", q4_st_path(in->f),
                    in->prefix, r, g_idx[r], in->groups - 1);
  return Q4_OK;
}

static uint32_t load_u32(const void *base, size_t i) {
  uint32_t v;
  memcpy(&v, (const unsigned char *)base + 4 * i, 4);
  return v;
}

/* Row i of out is checkpoint row perm[i] (or row i without perm). */
static void copy_codes(const gptq_in *in, q4_host_matrix *out) {
  const size_t words = (size_t)in->k / 8 * (size_t)in->n;
  if (!out->perm) {
    memcpy(out->qweight, in->qweight.data, words * 4);
    return;
  }
  for (int i = 0; i < in->k; i++) {
    const int r = out->perm[i];
    const size_t row = (size_t)(r / 8) * (size_t)in->n;
    for (int c = 0; c < in->n; c++) {
      const int q = (int)(load_u32(in->qweight.data, row + (size_t)c) >> (4 * (r % 8)) & 0xF);
      q4_code_set(out->qweight, in->n, i, c, q);
    }
  }
}

static void copy_scales_zeros(const gptq_in *in, int add_one, q4_host_matrix *out) {
  const size_t cells = (size_t)in->groups * (size_t)in->n;
  memcpy(out->scales, in->scales.data, cells * 2);
  const size_t zc = (size_t)in->n / 8;
  out->symmetric = 1;
  for (int g = 0; g < in->groups; g++)
    for (int c = 0; c < in->n; c++) {
      const uint32_t w = load_u32(in->qzeros.data, (size_t)g * zc + (size_t)c / 8);
      const int z = (int)(w >> (4 * (c % 8)) & 0xF) + add_one;
      out->zeros[(size_t)g * (size_t)in->n + (size_t)c] = q4_f2h((float)z);
      if (z != 8) out->symmetric = 0;
    }
}

/* The permutation out of g_idx, or none when g_idx is the plain k / gs. */
static q4_status resolve_order(const gptq_in *in, q4_host_matrix *out) {
  if (!in->has_gidx) return Q4_OK;
  int *g_idx = malloc((size_t)in->k * sizeof *g_idx), *perm = malloc((size_t)in->k * sizeof *perm);
  int identity = 1;
  q4_status st = g_idx && perm ? read_gidx(in, g_idx) : q4_err(Q4_ERR_NO_MEMORY, "out of memory");
  if (!st) st = q4_gidx_perm(g_idx, in->k, in->groups, perm, &identity);
  if (st && st != Q4_ERR_NO_MEMORY && st != Q4_ERR_INVALID_ARG)
    q4_err_wrap(st, "%s: layer '%s'", q4_st_path(in->f), in->prefix);
  free(g_idx);
  if (!st && !identity) out->perm = perm;
  else free(perm);
  return st;
}

static q4_status import_layer(gptq_in *in, q4_gptq_version version, q4_host_matrix *out) {
  gptq_config cfg;
  q4_status st = read_config(q4_st_path(in->f), &cfg);
  if (!st) st = find_all(in);
  if (!st) st = check_shapes(in, &cfg);
  if (st) return st;
  if (version == Q4_GPTQ_AUTO) version = cfg.version == Q4_GPTQ_V2 ? Q4_GPTQ_V2 : Q4_GPTQ_V1;
  q4_host_matrix m;
  st = q4_host_matrix_alloc(&m, in->n, in->k, in->groups, 0);
  if (!st) st = resolve_order(in, &m);
  if (st) {
    q4_host_matrix_free(&m);
    return st;
  }
  copy_codes(in, &m);
  copy_scales_zeros(in, version == Q4_GPTQ_V1, &m);
  *out = m;
  return Q4_OK;
}

q4_status q4_gptq_import(const char *safetensors_path, const char *prefix, q4_gptq_version version,
                         q4_host_matrix *out) {
  q4_err_clear();
  if (out) memset(out, 0, sizeof *out);
  if (!safetensors_path || !prefix || !out)
    return q4_err(Q4_ERR_INVALID_ARG, "q4_gptq_import: NULL argument");
  if (version != Q4_GPTQ_AUTO && version != Q4_GPTQ_V1 && version != Q4_GPTQ_V2)
    return q4_err(Q4_ERR_INVALID_ARG, "q4_gptq_import: unknown version %d", (int)version);
  q4_st_file *f;
  q4_status st = q4_st_open(safetensors_path, &f);
  if (st) return st;
  gptq_in in = {.f = f, .prefix = prefix};
  st = import_layer(&in, version, out);
  q4_st_close(f);
  return st;
}
