/*
** q4_gptq.h -- helpers shared by the GPTQ importer, the quantizer and the
** exporter (internal). The public functions are in q4tune.h.
*/
#ifndef Q4_GPTQ_H
#define Q4_GPTQ_H

#include <stdint.h>

#include "q4tune.h"

/* The 4-bit code of row k, column col of a [K/8][N] packed array. */
static inline int q4_code_get(const uint32_t *qw, int n, int k, int col) {
  return (int)(qw[(size_t)(k / 8) * (size_t)n + (size_t)col] >> (4 * (k % 8)) & 0xF);
}

/* Set that code (the word's other nibbles are kept). */
static inline void q4_code_set(uint32_t *qw, int n, int k, int col, int code) {
  uint32_t *w = &qw[(size_t)(k / 8) * (size_t)n + (size_t)col];
  const int sh = 4 * (k % 8);
  *w = (*w & ~(0xFu << sh)) | ((uint32_t)code & 0xF) << sh;
}

/* Allocate (zeroed) arrays for an n x k matrix with `groups` groups, and a
** perm of K entries if with_perm. */
q4_status q4_host_matrix_alloc(q4_host_matrix *m, int n, int k, int groups, int with_perm);

/* The act-order row order of g_idx[K] (values 0..groups-1): a stable sort of
** the rows by group, written to perm[K]. Every group must hold K / groups
** rows (else Q4_ERR_UNSUPPORTED). *identity is set when g_idx[k] is
** k / (K / groups) for every k, i.e. there is no reordering. */
q4_status q4_gidx_perm(const int *g_idx, int k, int groups, int *perm, int *identity);

#endif
