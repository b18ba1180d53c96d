/*
** q4_sparse.c -- host side of the 16:32 structured-sparse int4 format (q4s):
** pack, validate, unpack and a double-precision reference. Layout in
** q4_sparse.h and docs/FORMATS.md.
*/
#include "q4_sparse.h"

#include <stdlib.h>
#include <string.h>

#include "q4_error.h"
#include "q4_ref.h"

static int popcount32(uint32_t v) { return __builtin_popcount((unsigned)v); }

/* The sizes every routine shares; fn names the caller in the message. */
static q4_status check_nk(const char *fn, int n, int k) {
  if (n <= 0) return q4_err(Q4_ERR_INVALID_ARG, "%s: N = %d; it must be positive", fn, n);
  if (k <= 0 || k % 32)
    return q4_err(Q4_ERR_INVALID_ARG, "%s: K = %d is not a positive multiple of 32 (16:32 sparsity works on blocks of 32 rows)",
                  fn, k);
  return Q4_OK;
}

q4_status q4s_validate(const uint32_t *mask, int n, int k) {
  if (!mask) return q4_err(Q4_ERR_INVALID_ARG, "q4s_validate: mask is NULL");
  q4_status st = check_nk("q4s_validate", n, k);
  if (st) return st;
  /* Memory order of mask [K/32][N] is (row block, column): the first bad
  ** word found is the first in that order. */
  const int blocks = k / 32;
  for (int b = 0; b < blocks; b++)
    for (int c = 0; c < n; c++) {
      const int bits = popcount32(mask[(size_t)b * n + c]);
      if (bits != 16)
        return q4_err(Q4_ERR_INVALID_ARG,
                      "q4s mask word at row block %d (rows %d..%d), column %d is 0x%08x with %d bits set; "
                      "the 16:32 format keeps exactly 16 rows of every block",
                      b, 32 * b, 32 * b + 31, c, (unsigned)mask[(size_t)b * n + c], bits);
    }
  return Q4_OK;
}

q4_status q4s_pack(const uint8_t *codes, const uint8_t *keep, int n, int k, uint32_t *qweight,
                   uint32_t *mask) {
  if (!codes || !keep || !qweight || !mask)
    return q4_err(Q4_ERR_INVALID_ARG, "q4s_pack: %s is NULL",
                  !codes ? "codes" : !keep ? "keep" : !qweight ? "qweight" : "mask");
  q4_status st = check_nk("q4s_pack", n, k);
  if (st) return st;
  /* Everything is checked before anything is written, so a caller never
  ** sees half-packed output. First the elements, in memory order (n, k)... */
  const size_t total = (size_t)n * k;
  for (size_t e = 0; e < total; e++) {
    if (codes[e] > 15)
      return q4_err(Q4_ERR_INVALID_ARG, "q4s_pack: code at (n=%d, k=%d) is %u; 4-bit codes are 0..15",
                    (int)(e / k), (int)(e % k), codes[e]);
    if (keep[e] > 1)
      return q4_err(Q4_ERR_INVALID_ARG, "q4s_pack: keep-mask value at (n=%d, k=%d) is %u; it must be 0 or 1",
                    (int)(e / k), (int)(e % k), keep[e]);
  }
  /* ...then the 16-of-32 rule, in (row block, column) order like q4s_validate. */
  const int blocks = k / 32;
  for (int b = 0; b < blocks; b++)
    for (int c = 0; c < n; c++) {
      const uint8_t *kp = keep + (size_t)c * k + 32 * b;
      int kept = 0;
      for (int j = 0; j < 32; j++) kept += kp[j];
      if (kept != 16)
        return q4_err(Q4_ERR_INVALID_ARG,
                      "q4s_pack: keep-mask breaks the 16-of-32 rule at row block %d (rows %d..%d), column %d: "
                      "%d rows kept; every block of 32 rows of a column must keep exactly 16",
                      b, 32 * b, 32 * b + 31, c, kept);
    }
  for (int c = 0; c < n; c++)
    for (int b = 0; b < blocks; b++) {
      const uint8_t *cp = codes + (size_t)c * k + 32 * b, *kp = keep + (size_t)c * k + 32 * b;
      uint32_t m = 0, w[2] = {0, 0};
      int i = 0;  /* kept code number within the block */
      for (int j = 0; j < 32; j++) {
        if (!kp[j]) continue;
        m |= 1u << j;
        w[i / 8] |= (uint32_t)cp[j] << (4 * (i % 8));
        i++;
      }
      mask[(size_t)b * n + c] = m;
      qweight[(size_t)(2 * b) * n + c] = w[0];
      qweight[(size_t)(2 * b + 1) * n + c] = w[1];
    }
  return Q4_OK;
}

q4_status q4s_unpack(const uint32_t *qweight, const uint32_t *mask, int n, int k, uint8_t *codes,
                     uint8_t *keep) {
  if (!qweight || !mask || !codes || !keep)
    return q4_err(Q4_ERR_INVALID_ARG, "q4s_unpack: %s is NULL",
                  !qweight ? "qweight" : !mask ? "mask" : !codes ? "codes" : "keep");
  /* A mask with other than 16 bits would index past the block's two words. */
  q4_status st = q4s_validate(mask, n, k);
  if (st) return st;
  const int blocks = k / 32;
  for (int c = 0; c < n; c++)
    for (int b = 0; b < blocks; b++) {
      const uint32_t m = mask[(size_t)b * n + c];
      const uint32_t w[2] = {qweight[(size_t)(2 * b) * n + c], qweight[(size_t)(2 * b + 1) * n + c]};
      uint8_t *cp = codes + (size_t)c * k + 32 * b, *kp = keep + (size_t)c * k + 32 * b;
      int i = 0;
      for (int j = 0; j < 32; j++) {
        const int kept = (m >> j) & 1u;
        kp[j] = (uint8_t)kept;
        cp[j] = kept ? (uint8_t)((w[i / 8] >> (4 * (i % 8))) & 15u) : 0;
        i += kept;
      }
    }
  return Q4_OK;
}

uint32_t q4s_random_pattern(uint64_t *state) {
  /* 16 of 32 rows by a partial Fisher-Yates shuffle */
  int rows[32];
  for (int j = 0; j < 32; j++) rows[j] = j;
  uint32_t m = 0;
  for (int j = 0; j < 16; j++) {
    const int r = j + (int)(q4_rand_next(state) % (uint64_t)(32 - j));
    const int t = rows[j];
    rows[j] = rows[r];
    rows[r] = t;
    m |= 1u << rows[j];
  }
  return m;
}

void q4s_random_dense(uint8_t *codes, uint8_t *keep, int n, int k, uint64_t seed) {
  uint64_t st = seed;
  for (size_t e = 0; e < (size_t)n * k; e++) codes[e] = (uint8_t)(q4_rand_next(&st) & 15);
  for (int c = 0; c < n; c++)
    for (int b = 0; b < k / 32; b++) {
      const uint32_t m = q4s_random_pattern(&st);
      for (int j = 0; j < 32; j++) keep[(size_t)c * k + 32 * b + j] = (uint8_t)((m >> j) & 1u);
    }
}

q4_status q4s_ref_random(q4s_host_weights *w, const q4_shape *s, uint64_t seed) {
  if (!w || !s) return q4_err(Q4_ERR_INVALID_ARG, "q4s_ref_random: NULL argument");
  q4_status st = check_nk("q4s_ref_random", s->n, s->k);
  if (st) return st;
  if (s->group_size <= 0 || s->k % s->group_size)
    return q4_err(Q4_ERR_INVALID_ARG, "q4s_ref_random: group size %d does not divide K = %d", s->group_size, s->k);
  if (s->flags & Q4_SHAPE_ACT_ORDER)
    return q4_err(Q4_ERR_UNSUPPORTED, "q4s_ref_random: act-order (a row permutation) is not defined for the q4s format");
  memset(w, 0, sizeof *w);
  w->shape = *s;
  w->shape.format = Q4_FORMAT_Q4S;
  const int blocks = s->k / 32;
  const size_t nblk = (size_t)blocks * s->n, groups = (size_t)(s->k / s->group_size) * s->n;
  w->qweight = malloc(nblk * 2 * sizeof *w->qweight);
  w->mask = malloc(nblk * sizeof *w->mask);
  w->scales = malloc(groups * 2);
  w->zeros = malloc(groups * 2);
  if (!w->qweight || !w->mask || !w->scales || !w->zeros) {
    q4s_ref_free(w);
    return q4_err(Q4_ERR_NO_MEMORY, "q4s_ref_random: out of host memory");
  }
  uint64_t rs = seed;
  for (size_t i = 0; i < nblk; i++) w->mask[i] = q4s_random_pattern(&rs);
  for (size_t i = 0; i < nblk * 2; i++) w->qweight[i] = (uint32_t)q4_rand_next(&rs);
  /* the same recipe as q4_ref_random, so both formats see alike values */
  q4_ref_random_groups(&rs, s, w->scales, w->zeros, groups);
  return Q4_OK;
}

void q4s_ref_free(q4s_host_weights *w) {
  if (!w) return;
  free(w->qweight);
  free(w->mask);
  free(w->scales);
  free(w->zeros);
  w->qweight = w->mask = NULL;
  w->scales = w->zeros = NULL;
}

double q4s_ref_weight(const q4s_host_weights *w, int k, int n) {
  const int nn = w->shape.n, b = k / 32, j = k % 32;
  const uint32_t m = w->mask[(size_t)b * nn + n];
  if (!((m >> j) & 1u)) return 0.0;  /* pruned: exactly zero, no (0 - z) * s */
  const int i = popcount32(m & ((1u << j) - 1u));  /* kept rows below k in this block */
  const int q = (int)((w->qweight[(size_t)(2 * b + i / 8) * nn + n] >> (4 * (i % 8))) & 15u);
  const size_t gi = (size_t)(k / w->shape.group_size) * nn + n;
  return ((double)q - q4_h2f(w->zeros[gi])) * q4_h2f(w->scales[gi]);
}

double q4s_ref_dot(const q4s_host_weights *w, const uint16_t *x_row, int n) {
  double sum = 0;
  for (int k = 0; k < w->shape.k; k++) {
    /* Skip pruned rows rather than add x * 0: a pruned weight must not turn
    ** an Inf in x into NaN, as a kernel that never reads it would not. */
    if (!((w->mask[(size_t)(k / 32) * w->shape.n + n] >> (k % 32)) & 1u)) continue;
    sum += (double)q4_h2f(x_row[k]) * q4s_ref_weight(w, k, n);
  }
  return sum;
}
