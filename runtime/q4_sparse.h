/*
** q4_sparse.h -- the host side of the 16:32 structured-sparse int4 format
** ("q4s", docs/FORMATS.md; internal, also used by tests and tools): packing
** a dense code matrix plus a keep-mask, validation, unpacking and a double
** precision reference product mirroring q4_ref.h.
**
** Layout, per column n and block b of 32 rows (k = 32b .. 32b+31):
**   mask     uint32 [K/32][N]: bit j of word (b, n) set when row 32b+j is
**            kept; exactly 16 bits set in every word.
**   qweight  uint32 [K/16][N]: kept code number i (0..15, increasing k) in
**            word (2b + i/8, n), bits 4*(i%8) .. 4*(i%8)+3.
**   scales, zeros  fp16 [G][N] as for dense q4.
** Pruned weights are exactly 0, not (0 - z) * s.
*/
#ifndef Q4_SPARSE_H
#define Q4_SPARSE_H

#include <stdint.h>

#include "q4_types.h"

/* codes and keep are N x K bytes (element (n, k) at n*K + k): codes 0..15,
** keep 0 or 1 with exactly 16 ones in every block of 32 rows of a column.
** K must be a multiple of 32 and N positive. qweight gets K/16 * N words,
** mask K/32 * N words; on any error (Q4_ERR_INVALID_ARG, naming the first
** bad element or block) neither is written. */
q4_status q4s_pack(const uint8_t *codes, const uint8_t *keep, int n, int k, uint32_t *qweight,
                   uint32_t *mask);

/* Q4_OK when every word of mask [K/32][N] has exactly 16 bits set, else
** Q4_ERR_INVALID_ARG naming the first bad word in (row block, column) order. */
q4_status q4s_validate(const uint32_t *mask, int n, int k);

/* The inverse of q4s_pack: codes and keep N x K bytes, pruned codes 0.
** Validates mask first; on error nothing is written. */
q4_status q4s_unpack(const uint32_t *qweight, const uint32_t *mask, int n, int k, uint8_t *codes,
                     uint8_t *keep);

/* A random 16-of-32 keep pattern (bit j: row j kept), every one of the
** C(32, 16) equally likely, so kernels meet irregular masks, not one fixed
** one; drawn from *state. */
uint32_t q4s_random_pattern(uint64_t *state);

/* Random codes 0..15 (pruned ones too) and an independent random keep
** pattern for every block and column, as N x K bytes for q4s_pack. */
void q4s_random_dense(uint8_t *codes, uint8_t *keep, int n, int k, uint64_t seed);

/* Sparse weights in host memory. shape.format is Q4_FORMAT_Q4S and
** shape.group_size normalized (K for per-channel). */
typedef struct q4s_host_weights {
  q4_shape shape;
  uint32_t *qweight;  /* [K/16][N] */
  uint32_t *mask;     /* [K/32][N] */
  uint16_t *scales;   /* [G][N] fp16 */
  uint16_t *zeros;    /* [G][N] fp16 */
} q4s_host_weights;

/* Random codes, an independent random 16-of-32 keep pattern for every block
** and column, scales and zeros drawn as q4_ref_random draws them (zeros all
** 8 for symmetric shapes), all from `seed`. Act-order shapes are refused
** (Q4_ERR_UNSUPPORTED): the sparse format has no permutation. */
q4_status q4s_ref_random(q4s_host_weights *w, const q4_shape *s, uint64_t seed);
void q4s_ref_free(q4s_host_weights *w);

/* Exactly 0 for a pruned row, (q - z) * s for a kept one, in double. */
double q4s_ref_weight(const q4s_host_weights *w, int k, int n);
/* sum over kept k of x[k] * W[k][n] in double, for one fp16 row x of length K. */
double q4s_ref_dot(const q4s_host_weights *w, const uint16_t *x_row, int n);

#endif
