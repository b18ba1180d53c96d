/*
** q4_quant.h -- writing GPTQ checkpoints (internal; tests and tools).
** q4_quantize_rtn, the quantizer, is public (q4tune.h).
*/
#ifndef Q4_QUANT_H
#define Q4_QUANT_H

#include "q4tune.h"

/* Write m as GPTQ tensors prefix.qweight (I32 [K/8][N]), .qzeros (I32
** [G][N/8], zero - 1 for V1), .scales (F16 [G][N]) and, for act-order,
** .g_idx (I32 [K]) to a new safetensors file at path. g_idx (NULL or [K])
** assigns checkpoint row k to group g_idx[k]: row i of m is written to
** checkpoint row perm[i], where perm is the stable sort of the rows by
** g_idx, so q4_gptq_import gives m back. Without g_idx, m->perm (if any)
** gives the order and a matching g_idx is written. Zeros must be integers,
** 0..15 for V2 and 1..16 for V1 (classic qzeros cannot hold a zero of 0):
** else Q4_ERR_UNSUPPORTED. */
q4_status q4_gptq_export(const char *path, const char *prefix, const q4_host_matrix *m, q4_gptq_version version,
                         const int *g_idx);

#endif
