/*
** q4_ref.h -- the host side of the formats (internal, also used by tests and
** tools): fp16 conversion, random weights, dequantization and a reference
** product in double precision. Slow and obviously correct on purpose.
*/
#ifndef Q4_REF_H
#define Q4_REF_H

#include <stdint.h>

#include "q4_types.h"

/* IEEE binary16 <-> float, round to nearest even. */
uint16_t q4_f2h(float f);
float q4_h2f(uint16_t h);

/* Weights in host memory, laid out as docs/FORMATS.md says. */
typedef struct q4_host_weights {
  q4_shape shape;
  uint32_t *qweight;  /* [K/8][N] */
  uint16_t *scales;   /* [G][N] fp16 */
  uint16_t *zeros;    /* [G][N] fp16 */
  int32_t *perm;      /* [K] for act-order (shape.flags), else NULL */
} q4_host_weights;

/* A deterministic generator (splitmix64) for test data. */
uint64_t q4_rand_next(uint64_t *state);
float q4_rand_uniform(uint64_t *state, float lo, float hi);

/* Random codes 0..15, scales in [0.002, 0.02], zeros in [4, 11] (not all
** integers; all 8 for symmetric shapes), and for act-order shapes a random
** permutation of K, all from `seed`. */
q4_status q4_ref_random(q4_host_weights *w, const q4_shape *s, uint64_t seed);
void q4_ref_free(q4_host_weights *w);

/* Random scales in [0.002, 0.02] and zeros in [4, 11] (three in four
** integers; all 8 for symmetric shapes) for `count` (group, column) pairs,
** drawn from *state: the one recipe of every format's random weights. */
void q4_ref_random_groups(uint64_t *state, const q4_shape *s, uint16_t *scales, uint16_t *zeros, size_t count);

/* Random fp16 activations: uniform in [-1, 1], except one in
** Q4_REF_OUTLIER_EVERY (by index, so the same channels in every row)
** scaled by Q4_REF_OUTLIER_SCALE, like the outlier features of LLM
** activations: a kernel that scales x (q4s_imma's fixed point) is verified
** over a range as wide as it meets in use. */
#define Q4_REF_OUTLIER_EVERY 64
#define Q4_REF_OUTLIER_SCALE 32.0f
void q4_ref_random_x(uint16_t *x, size_t count, uint64_t seed);

/* Code of row k, column n. */
int q4_ref_code(const q4_host_weights *w, int k, int n);
/* (q - z) * s of row k, column n, in double. */
double q4_ref_weight(const q4_host_weights *w, int k, int n);
/* sum_k x[perm[k]] * W[k][n] (x[k] without perm) in double, for one row x
** of length K. */
double q4_ref_dot(const q4_host_weights *w, const uint16_t *x_row, int n);

/* ||y - ref|| / ||ref|| over count values; y fp16; NaN or Inf in y gives
** +inf, so a check against a bound can't pass on unwritten output. */
double q4_rel_error(const uint16_t *y, const double *ref, size_t count);

#endif
