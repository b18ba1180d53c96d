/*
** q4_safetensors.h -- a strict reader and writer of the safetensors format
** (internal, also used by tools and tests).
**
** A file is an 8-byte little-endian header length, a JSON object header
**   {"name": {"dtype": "I32", "shape": [..], "data_offsets": [begin, end]},
**    "__metadata__": {"key": "value", ...}}
** and then the byte buffer the offsets index. The reader maps the file
** read-only and checks everything before handing out a pointer: a tensor's
** bytes always lie inside the file and match its shape and dtype.
*/
#ifndef Q4_SAFETENSORS_H
#define Q4_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "q4tune.h"

typedef enum q4_st_dtype {
  Q4_ST_BOOL, Q4_ST_U8, Q4_ST_I8, Q4_ST_F8_E4M3, Q4_ST_F8_E5M2,
  Q4_ST_I16, Q4_ST_U16, Q4_ST_F16, Q4_ST_BF16,
  Q4_ST_I32, Q4_ST_U32, Q4_ST_F32,
  Q4_ST_I64, Q4_ST_U64, Q4_ST_F64,
  Q4_ST_DTYPE_COUNT
} q4_st_dtype;

#define Q4_ST_MAX_RANK 8
#define Q4_ST_MAX_HEADER (100u * 1000u * 1000u) /* bytes: larger is refused */

/* One tensor. For reading, name and data point into the open file (valid
** until q4_st_close) and data may be unaligned: copy with memcpy. For
** writing, the caller fills name, dtype, rank, shape and data. */
typedef struct q4_st_tensor {
  const char *name;
  q4_st_dtype dtype;
  int rank;
  int64_t shape[Q4_ST_MAX_RANK];
  const void *data;
  size_t nbytes;  /* set by the reader; the writer computes it */
} q4_st_tensor;

typedef struct q4_st_file q4_st_file;

/* "I32", ... ; NULL for an out-of-range value. */
const char *q4_st_dtype_name(q4_st_dtype d);
/* Bytes per element (1, 2, 4 or 8). */
size_t q4_st_dtype_size(q4_st_dtype d);
/* Element count of a shape, or -1 on overflow / negative dimension. */
int64_t q4_st_numel(const int64_t *shape, int rank);

/* Open and validate a file. Errors: Q4_ERR_IO (cannot read, truncated,
** corrupt header or layout), Q4_ERR_INVALID_ARG (NULL arguments),
** Q4_ERR_NO_MEMORY. Messages name the file and the tensor. */
q4_status q4_st_open(const char *path, q4_st_file **out);
void q4_st_close(q4_st_file *f);  /* NULL is a no-op */

const char *q4_st_path(const q4_st_file *f);
/* Tensors are listed sorted by name. */
int q4_st_count(const q4_st_file *f);
const char *q4_st_name(const q4_st_file *f, int i);
void q4_st_get(const q4_st_file *f, int i, q4_st_tensor *out);
/* Index of a tensor, or -1. */
int q4_st_index(const q4_st_file *f, const char *name);
/* Look a tensor up; Q4_ERR_INVALID_ARG "<file>: no tensor '<name>'" if absent. */
q4_status q4_st_find(const q4_st_file *f, const char *name, q4_st_tensor *out);
/* A __metadata__ value, or NULL. */
const char *q4_st_meta(const q4_st_file *f, const char *key);

/* Write `count` tensors (in that order) and optional metadata, given as
** key, value pairs ending with a NULL key (NULL: none). The file is written
** to "<path>.tmp" and renamed over path, so a failed or interrupted write
** leaves no partial file. */
q4_status q4_st_write(const char *path, const q4_st_tensor *t, int count, const char *const *metadata);

#endif
