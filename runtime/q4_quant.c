/*
** q4_quant.c -- round-to-nearest quantization into the q4 layout, and
** writing a q4 matrix as a GPTQ checkpoint (for tests and conversions).
*/
#include "q4_quant.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "q4_error.h"
#include "q4_gptq.h"
#include "q4_ref.h"
#include "q4_safetensors.h"

/* ---- quantization ------------------------------------------------------------ */

/* Scale and integer zero of one group of one column, GPTQ's way: the range
** always includes 0, and an all-zero range becomes [-1, 1]. */
static void group_params(const float *w, int n, int rows, int symmetric, float *scale, int *zero) {
  float lo = 0, hi = 0;
  for (int r = 0; r < rows; r++) {
    const float v = w[(size_t)r * (size_t)n];
    lo = v < lo ? v : lo;
    hi = v > hi ? v : hi;
  }
  if (symmetric) {
    const float m = fmaxf(-lo, hi);
    *scale = (m > 0 ? m : 1) * 2 / 15;
    *zero = 8;
    return;
  }
  if (lo == hi) lo = -1, hi = 1;
  *scale = (hi - lo) / 15;
  const long z = lroundf(-lo / *scale);
  *zero = (int)(z < 0 ? 0 : z > 15 ? 15 : z);
}

static void quantize_group(const float *w, q4_host_matrix *m, int g, int c, int symmetric) {
  const int gs = m->group_size;
  float scale;
  int zero;
  group_params(w + (size_t)g * (size_t)gs * (size_t)m->n + (size_t)c, m->n, gs, symmetric, &scale, &zero);
  uint16_t hs = q4_f2h(scale);
  if (q4_h2f(hs) <= 0) hs = 1;  /* underflow: the smallest subnormal, never a zero scale */
  const float s = q4_h2f(hs);
  m->scales[(size_t)g * (size_t)m->n + (size_t)c] = hs;
  m->zeros[(size_t)g * (size_t)m->n + (size_t)c] = q4_f2h((float)zero);
  for (int r = g * gs; r < (g + 1) * gs; r++) {
    const long q = lroundf(w[(size_t)r * (size_t)m->n + (size_t)c] / s) + zero;
    q4_code_set(m->qweight, m->n, r, c, (int)(q < 0 ? 0 : q > 15 ? 15 : q));
  }
}

q4_status q4_quantize_rtn(const float *w, int k, int n, int group_size, int symmetric, q4_host_matrix *out) {
  q4_err_clear();
  if (out) memset(out, 0, sizeof *out);
  if (!w || !out) return q4_err(Q4_ERR_INVALID_ARG, "q4_quantize_rtn: NULL argument");
  if (group_size == 0) group_size = k;
  if (k <= 0 || n <= 0 || k % 8 || n % 8 || group_size < 0 || k % group_size)
    return q4_err(Q4_ERR_INVALID_ARG,
                  "q4_quantize_rtn: K=%d and N=%d must be positive multiples of 8 and the group size %d divide K", k,
                  n, group_size);
  for (size_t i = 0; i < (size_t)k * (size_t)n; i++)
    if (!isfinite(w[i])) return q4_err(Q4_ERR_INVALID_ARG, "q4_quantize_rtn: w[%zu] is not finite", i);
  q4_status st = q4_host_matrix_alloc(out, n, k, k / group_size, 0);
  if (st) return st;
  for (int g = 0; g < k / group_size; g++)
    for (int c = 0; c < n; c++) quantize_group(w, out, g, c, symmetric);
  out->symmetric = symmetric ? 1 : 0;
  return Q4_OK;
}

/* ---- export --------------------------------------------------------------------- */

typedef struct gptq_out {
  uint32_t *qweight, *qzeros;
  int *g_idx, *perm;
} gptq_out;

static void out_free(gptq_out *o) {
  free(o->qweight);
  free(o->qzeros);
  free(o->g_idx);
  free(o->perm);
}

/* qzeros packed along N; V1 stores zero - 1. */
static q4_status pack_zeros(const q4_host_matrix *m, q4_gptq_version v, uint32_t *qz) {
  const int groups = m->k / m->group_size, lo = v == Q4_GPTQ_V1 ? 1 : 0;
  for (int g = 0; g < groups; g++)
    for (int c = 0; c < m->n; c++) {
      const float z = q4_h2f(m->zeros[(size_t)g * (size_t)m->n + (size_t)c]);
      if (z != floorf(z) || z < lo || z > lo + 15)
        return q4_err(Q4_ERR_UNSUPPORTED, "zero %g (group %d, column %d) cannot be stored in %s qzeros (%d..%d)%s",
                      z, g, c, v == Q4_GPTQ_V1 ? "classic gptq" : "gptq_v2", lo, lo + 15,
                      v == Q4_GPTQ_V1 && z == 0 ? ": write gptq_v2" : "");
      qz[(size_t)g * (size_t)(m->n / 8) + (size_t)c / 8] |= (uint32_t)((int)z - lo) << (4 * (c % 8));
    }
  return Q4_OK;
}

/* The checkpoint's row order and g_idx, from g_idx or from m->perm. */
static q4_status order_rows(const q4_host_matrix *m, const int *g_idx, gptq_out *o) {
  const int groups = m->k / m->group_size;
  if (!g_idx && !m->perm) return Q4_OK;
  o->g_idx = malloc((size_t)m->k * sizeof *o->g_idx);
  o->perm = malloc((size_t)m->k * sizeof *o->perm);
  if (!o->g_idx || !o->perm) return q4_err(Q4_ERR_NO_MEMORY, "out of memory");
  if (!g_idx) {  /* row i of m is checkpoint row perm[i], in group i / gs */
    for (int r = 0; r < m->k; r++) o->g_idx[r] = -1;
    for (int i = 0; i < m->k; i++) {
      const int r = m->perm[i];
      if (r < 0 || r >= m->k || o->g_idx[r] >= 0)
        return q4_err(Q4_ERR_INVALID_ARG, "q4_gptq_export: perm is not a permutation of 0..%d", m->k - 1);
      o->g_idx[r] = i / m->group_size;
    }
  } else {
    for (int r = 0; r < m->k; r++)
      if (g_idx[r] < 0 || g_idx[r] >= groups)
        return q4_err(Q4_ERR_INVALID_ARG, "q4_gptq_export: g_idx[%d] = %d is not a group", r, g_idx[r]);
    memcpy(o->g_idx, g_idx, (size_t)m->k * sizeof *g_idx);
  }
  int identity;
  q4_status st = q4_gidx_perm(o->g_idx, m->k, groups, o->perm, &identity);
  if (!st && g_idx && m->perm && memcmp(o->perm, m->perm, (size_t)m->k * sizeof *o->perm))
    return q4_err(Q4_ERR_INVALID_ARG, "q4_gptq_export: g_idx disagrees with the matrix's perm");
  return st;
}

static q4_status build(const q4_host_matrix *m, q4_gptq_version v, const int *g_idx, gptq_out *o) {
  const size_t words = (size_t)m->k / 8 * (size_t)m->n;
  o->qweight = malloc(words * 4);
  o->qzeros = calloc((size_t)(m->k / m->group_size) * (size_t)(m->n / 8), 4);
  if (!o->qweight || !o->qzeros) return q4_err(Q4_ERR_NO_MEMORY, "out of memory");
  q4_status st = pack_zeros(m, v, o->qzeros);
  if (!st) st = order_rows(m, g_idx, o);
  if (st) return st;
  if (!o->perm) {
    memcpy(o->qweight, m->qweight, words * 4);
    return Q4_OK;
  }
  for (int i = 0; i < m->k; i++)
    for (int c = 0; c < m->n; c++) q4_code_set(o->qweight, m->n, o->perm[i], c, q4_code_get(m->qweight, m->n, i, c));
  return Q4_OK;
}

static q4_st_tensor tensor(const char *name, q4_st_dtype d, int64_t d0, int64_t d1, const void *data) {
  q4_st_tensor t = {.name = name, .dtype = d, .rank = d1 ? 2 : 1, .shape = {d0, d1}, .data = data};
  return t;
}

static q4_status write_out(const char *path, const char *prefix, const q4_host_matrix *m, const gptq_out *o) {
  const size_t len = strlen(prefix) + 16;
  char *names = malloc(4 * len);
  if (!names) return q4_err(Q4_ERR_NO_MEMORY, "out of memory");
  static const char *const suffix[] = {"qweight", "qzeros", "scales", "g_idx"};
  for (int i = 0; i < 4; i++) snprintf(names + i * len, len, "%s.%s", prefix, suffix[i]);
  const int groups = m->k / m->group_size;
  q4_st_tensor t[4] = {tensor(names, Q4_ST_I32, m->k / 8, m->n, o->qweight),
                       tensor(names + len, Q4_ST_I32, groups, m->n / 8, o->qzeros),
                       tensor(names + 2 * len, Q4_ST_F16, groups, m->n, m->scales),
                       tensor(names + 3 * len, Q4_ST_I32, m->k, 0, o->g_idx)};
  static const char *const meta[] = {"format", "pt", NULL};
  q4_status st = q4_st_write(path, t, o->g_idx ? 4 : 3, meta);
  free(names);
  return st;
}

q4_status q4_gptq_export(const char *path, const char *prefix, const q4_host_matrix *m, q4_gptq_version version,
                         const int *g_idx) {
  q4_err_clear();
  if (!path || !prefix || !m || !m->qweight || !m->scales || !m->zeros)
    return q4_err(Q4_ERR_INVALID_ARG, "q4_gptq_export: NULL argument");
  if (version != Q4_GPTQ_V1 && version != Q4_GPTQ_V2)
    return q4_err(Q4_ERR_INVALID_ARG, "q4_gptq_export: the version must be V1 or V2");
  if (m->k <= 0 || m->n <= 0 || m->k % 8 || m->n % 8 || m->group_size <= 0 || m->k % m->group_size)
    return q4_err(Q4_ERR_INVALID_ARG, "q4_gptq_export: bad shape K=%d N=%d group %d", m->k, m->n, m->group_size);
  gptq_out o = {0};
  q4_status st = build(m, version, g_idx, &o);
  if (!st) st = write_out(path, prefix, m, &o);
  out_free(&o);
  return st;
}
