/*
** q4_ref.c -- host reference of the int4 formats.
*/
#include "q4_ref.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "q4_error.h"

uint16_t q4_f2h(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t absx = x & 0x7fffffffu;
  if (absx >= 0x7f800000u)  /* Inf or NaN */
    return (uint16_t)(sign | 0x7c00u | (absx > 0x7f800000u ? 0x200u : 0));
  if (absx >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);  /* rounds past 65504 */
  if (absx < 0x38800000u) {  /* fp16 subnormal or zero: scale by 2^24 and round */
    float a;
    memcpy(&a, &absx, 4);
    return (uint16_t)(sign | (uint32_t)lrintf(a * 16777216.0f));
  }
  /* normal: drop 13 mantissa bits with round-to-nearest-even */
  uint32_t h = ((absx - 0x38000000u) >> 13);
  const uint32_t rest = absx & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++;
  return (uint16_t)(sign | h);
}

float q4_h2f(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  float f;
  if (e == 0) {
    f = ldexpf((float)m, -24);
  } else if (e == 31) {
    f = m ? NAN : INFINITY;
  } else {
    f = ldexpf((float)(m | 0x400u), (int)e - 25);
  }
  uint32_t bits;
  memcpy(&bits, &f, 4);
  bits |= sign;
  memcpy(&f, &bits, 4);
  return f;
}

uint64_t q4_rand_next(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

float q4_rand_uniform(uint64_t *state, float lo, float hi) {
  return lo + (hi - lo) * (float)((q4_rand_next(state) >> 40) * (1.0 / 16777216.0));
}

void q4_ref_random_groups(uint64_t *state, const q4_shape *s, uint16_t *scales, uint16_t *zeros, size_t count) {
  for (size_t i = 0; i < count; i++) {
    scales[i] = q4_f2h(q4_rand_uniform(state, 0.002f, 0.02f));
    /* three zeros in four are integers (GPTQ, AWQ), the rest fractional */
    const float z = q4_rand_uniform(state, 4.0f, 11.0f);
    zeros[i] = (s->flags & Q4_SHAPE_SYMMETRIC) ? q4_f2h(8.0f) : q4_f2h((q4_rand_next(state) & 3) ? floorf(z) : z);
  }
}

q4_status q4_ref_random(q4_host_weights *w, const q4_shape *s, uint64_t seed) {
  if (!w || !s || s->n <= 0 || s->k <= 0 || s->k % 8 || s->group_size <= 0 || s->k % s->group_size)
    return q4_err(Q4_ERR_INVALID_ARG, "q4_ref_random: bad shape");
  memset(w, 0, sizeof *w);
  w->shape = *s;
  const size_t words = (size_t)s->k / 8 * s->n, groups = (size_t)(s->k / s->group_size) * s->n;
  w->qweight = malloc(words * 4);
  w->scales = malloc(groups * 2);
  w->zeros = malloc(groups * 2);
  if (!w->qweight || !w->scales || !w->zeros) {
    q4_ref_free(w);
    return q4_err(Q4_ERR_NO_MEMORY, "q4_ref_random: out of host memory");
  }
  uint64_t st = seed;
  for (size_t i = 0; i < words; i++) w->qweight[i] = (uint32_t)q4_rand_next(&st);
  q4_ref_random_groups(&st, s, w->scales, w->zeros, groups);
  if (s->flags & Q4_SHAPE_ACT_ORDER) {
    if (!(w->perm = malloc((size_t)s->k * sizeof *w->perm))) {
      q4_ref_free(w);
      return q4_err(Q4_ERR_NO_MEMORY, "q4_ref_random: out of host memory");
    }
    for (int k = 0; k < s->k; k++) w->perm[k] = k;
    for (int k = s->k - 1; k > 0; k--) {  /* Fisher-Yates */
      const int j = (int)(q4_rand_next(&st) % (uint64_t)(k + 1));
      const int32_t t = w->perm[k];
      w->perm[k] = w->perm[j];
      w->perm[j] = t;
    }
  }
  return Q4_OK;
}

void q4_ref_free(q4_host_weights *w) {
  if (!w) return;
  free(w->qweight);
  free(w->scales);
  free(w->zeros);
  free(w->perm);
  w->perm = NULL;
  w->qweight = NULL;
  w->scales = w->zeros = NULL;
}

void q4_ref_random_x(uint16_t *x, size_t count, uint64_t seed) {
  uint64_t st = seed ^ 0x5851f42d4c957f2dull;
  for (size_t i = 0; i < count; i++) {
    const float v = q4_rand_uniform(&st, -1.0f, 1.0f);
    x[i] = q4_f2h(i % Q4_REF_OUTLIER_EVERY == Q4_REF_OUTLIER_EVERY / 2 ? Q4_REF_OUTLIER_SCALE * v : v);
  }
}

int q4_ref_code(const q4_host_weights *w, int k, int n) {
  return (int)((w->qweight[(size_t)(k / 8) * w->shape.n + n] >> (4 * (k % 8))) & 15u);
}

double q4_ref_weight(const q4_host_weights *w, int k, int n) {
  const size_t gi = (size_t)(k / w->shape.group_size) * w->shape.n + n;
  return ((double)q4_ref_code(w, k, n) - q4_h2f(w->zeros[gi])) * q4_h2f(w->scales[gi]);
}

double q4_ref_dot(const q4_host_weights *w, const uint16_t *x_row, int n) {
  double sum = 0;
  for (int k = 0; k < w->shape.k; k++)
    sum += (double)q4_h2f(x_row[w->perm ? w->perm[k] : k]) * q4_ref_weight(w, k, n);
  return sum;
}

double q4_rel_error(const uint16_t *y, const double *ref, size_t count) {
  double num = 0, den = 0;
  for (size_t i = 0; i < count; i++) {
    const double v = q4_h2f(y[i]);
    if (!isfinite(v)) return INFINITY;
    num += (v - ref[i]) * (v - ref[i]);
    den += ref[i] * ref[i];
  }
  return den > 0 ? sqrt(num / den) : (num > 0 ? INFINITY : 0);
}
