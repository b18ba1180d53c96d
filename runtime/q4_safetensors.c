/*
** q4_safetensors.c -- strict safetensors reader (mmap) and writer, with
** jansson for the JSON header.
*/
#include "q4_safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "q4_error.h"

typedef struct st_entry {
  char *name;
  q4_st_dtype dtype;
  int rank;
  int64_t shape[Q4_ST_MAX_RANK];
  uint64_t begin, end;  /* offsets into the byte buffer */
} st_entry;

struct q4_st_file {
  char *path;
  unsigned char *map;
  size_t size;
  const unsigned char *data;  /* the byte buffer after the header */
  uint64_t data_size;
  st_entry *e;
  int count;
  char **meta;  /* key, value, key, value ... */
  int nmeta;
};

static const struct {
  const char *name;
  size_t size;
} dtypes[Q4_ST_DTYPE_COUNT] = {
    [Q4_ST_BOOL] = {"BOOL", 1},       [Q4_ST_U8] = {"U8", 1},     [Q4_ST_I8] = {"I8", 1},
    [Q4_ST_F8_E4M3] = {"F8_E4M3", 1}, [Q4_ST_F8_E5M2] = {"F8_E5M2", 1},
    [Q4_ST_I16] = {"I16", 2},         [Q4_ST_U16] = {"U16", 2},   [Q4_ST_F16] = {"F16", 2},
    [Q4_ST_BF16] = {"BF16", 2},       [Q4_ST_I32] = {"I32", 4},   [Q4_ST_U32] = {"U32", 4},
    [Q4_ST_F32] = {"F32", 4},         [Q4_ST_I64] = {"I64", 8},   [Q4_ST_U64] = {"U64", 8},
    [Q4_ST_F64] = {"F64", 8},
};

const char *q4_st_dtype_name(q4_st_dtype d) {
  return (unsigned)d < Q4_ST_DTYPE_COUNT ? dtypes[d].name : NULL;
}

size_t q4_st_dtype_size(q4_st_dtype d) { return (unsigned)d < Q4_ST_DTYPE_COUNT ? dtypes[d].size : 0; }

static int dtype_from_name(const char *s) {
  for (int i = 0; i < Q4_ST_DTYPE_COUNT; i++)
    if (!strcmp(s, dtypes[i].name)) return i;
  return -1;
}

int64_t q4_st_numel(const int64_t *shape, int rank) {
  int64_t n = 1;
  for (int i = 0; i < rank; i++) {
    if (shape[i] < 0) return -1;
    if (shape[i] && n > INT64_MAX / shape[i]) return -1;
    n *= shape[i];
  }
  return n;
}

/* Bytes of a tensor, or -1 on overflow. */
static int64_t tensor_bytes(q4_st_dtype d, const int64_t *shape, int rank) {
  int64_t n = q4_st_numel(shape, rank);
  int64_t sz = (int64_t)q4_st_dtype_size(d);
  if (n < 0 || sz == 0 || n > INT64_MAX / sz) return -1;
  return n * sz;
}

/* ---- reading -------------------------------------------------------------- */

static void free_file(q4_st_file *f) {
  if (!f) return;
  for (int i = 0; i < f->count; i++) free(f->e[i].name);
  for (int i = 0; i < 2 * f->nmeta; i++) free(f->meta[i]);
  free(f->e);
  free(f->meta);
  if (f->map) munmap(f->map, f->size);
  free(f->path);
  free(f);
}

static q4_status parse_metadata(q4_st_file *f, json_t *obj) {
  if (!json_is_object(obj)) return q4_err(Q4_ERR_IO, "%s: __metadata__ is not a JSON object", f->path);
  f->meta = calloc(2 * json_object_size(obj) + 1, sizeof *f->meta);
  if (!f->meta) return q4_err(Q4_ERR_NO_MEMORY, "%s: out of memory", f->path);
  const char *key;
  json_t *val;
  json_object_foreach(obj, key, val) {
    if (!json_is_string(val))
      return q4_err(Q4_ERR_IO, "%s: __metadata__ value of '%s' is not a string", f->path, key);
    f->meta[2 * f->nmeta] = strdup(key);
    f->meta[2 * f->nmeta + 1] = strdup(json_string_value(val));
    f->nmeta++;
    if (!f->meta[2 * f->nmeta - 2] || !f->meta[2 * f->nmeta - 1])
      return q4_err(Q4_ERR_NO_MEMORY, "%s: out of memory", f->path);
  }
  return Q4_OK;
}

/* A non-negative JSON integer. */
static int get_uint(json_t *v, uint64_t *out) {
  if (!json_is_integer(v) || json_integer_value(v) < 0) return -1;
  *out = (uint64_t)json_integer_value(v);
  return 0;
}

static q4_status parse_shape(const q4_st_file *f, const char *name, json_t *shape, st_entry *e) {
  if (!json_is_array(shape))
    return q4_err(Q4_ERR_IO, "%s: tensor '%s': shape is not an array", f->path, name);
  if (json_array_size(shape) > Q4_ST_MAX_RANK)
    return q4_err(Q4_ERR_IO, "%s: tensor '%s': rank %zu, at most %d supported", f->path, name,
                  json_array_size(shape), Q4_ST_MAX_RANK);
  e->rank = (int)json_array_size(shape);
  for (int i = 0; i < e->rank; i++) {
    uint64_t d;
    if (get_uint(json_array_get(shape, (size_t)i), &d))
      return q4_err(Q4_ERR_IO, "%s: tensor '%s': shape[%d] is not a non-negative integer", f->path, name, i);
    e->shape[i] = (int64_t)d;
  }
  return Q4_OK;
}

static q4_status parse_offsets(const q4_st_file *f, const char *name, json_t *off, st_entry *e) {
  if (!json_is_array(off) || json_array_size(off) != 2 || get_uint(json_array_get(off, 0), &e->begin) ||
      get_uint(json_array_get(off, 1), &e->end))
    return q4_err(Q4_ERR_IO, "%s: tensor '%s': data_offsets is not [begin, end] of non-negative integers",
                  f->path, name);
  if (e->begin > e->end || e->end > f->data_size)
    return q4_err(Q4_ERR_IO, "%s: tensor '%s': data_offsets [%llu, %llu] out of range (buffer has %llu bytes)",
                  f->path, name, (unsigned long long)e->begin, (unsigned long long)e->end,
                  (unsigned long long)f->data_size);
  int64_t want = tensor_bytes(e->dtype, e->shape, e->rank);
  if (want < 0) return q4_err(Q4_ERR_IO, "%s: tensor '%s': shape too large", f->path, name);
  if ((uint64_t)want != e->end - e->begin)
    return q4_err(Q4_ERR_IO, "%s: tensor '%s': %s with this shape needs %lld bytes, data_offsets give %llu",
                  f->path, name, q4_st_dtype_name(e->dtype), (long long)want,
                  (unsigned long long)(e->end - e->begin));
  return Q4_OK;
}

static q4_status parse_entry(q4_st_file *f, const char *name, json_t *obj, st_entry *e) {
  if (!json_is_object(obj)) return q4_err(Q4_ERR_IO, "%s: tensor '%s': entry is not a JSON object", f->path, name);
  const char *key;
  json_t *val;
  json_object_foreach(obj, key, val) {
    if (strcmp(key, "dtype") && strcmp(key, "shape") && strcmp(key, "data_offsets"))
      return q4_err(Q4_ERR_IO, "%s: tensor '%s': unknown field '%s'", f->path, name, key);
  }
  json_t *dt = json_object_get(obj, "dtype");
  if (!json_is_string(dt)) return q4_err(Q4_ERR_IO, "%s: tensor '%s': no dtype string", f->path, name);
  int d = dtype_from_name(json_string_value(dt));
  if (d < 0) return q4_err(Q4_ERR_IO, "%s: tensor '%s': unknown dtype '%s'", f->path, name, json_string_value(dt));
  e->dtype = (q4_st_dtype)d;
  q4_status st = parse_shape(f, name, json_object_get(obj, "shape"), e);
  if (st) return st;
  st = parse_offsets(f, name, json_object_get(obj, "data_offsets"), e);
  if (st) return st;
  e->name = strdup(name);
  return e->name ? Q4_OK : q4_err(Q4_ERR_NO_MEMORY, "%s: out of memory", f->path);
}

static int cmp_offset(const void *a, const void *b) {
  const st_entry *x = a, *y = b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  return x->end < y->end ? -1 : x->end > y->end;
}

static int cmp_name(const void *a, const void *b) {
  return strcmp(((const st_entry *)a)->name, ((const st_entry *)b)->name);
}

/* Tensors must tile the buffer exactly: no overlap, no gap, nothing after. */
static q4_status check_layout(q4_st_file *f) {
  qsort(f->e, (size_t)f->count, sizeof *f->e, cmp_offset);
  uint64_t at = 0;
  for (int i = 0; i < f->count; i++) {
    const st_entry *e = &f->e[i];
    if (e->begin < at)
      return q4_err(Q4_ERR_IO, "%s: tensor '%s' overlaps tensor '%s' (offset %llu < %llu)", f->path, e->name,
                    f->e[i - 1].name, (unsigned long long)e->begin, (unsigned long long)at);
    if (e->begin > at)
      return q4_err(Q4_ERR_IO, "%s: tensor '%s' is not contiguous: %llu unused bytes before it", f->path, e->name,
                    (unsigned long long)(e->begin - at));
    at = e->end;
  }
  if (at != f->data_size)
    return q4_err(Q4_ERR_IO, "%s: %llu bytes after the last tensor are not described by the header", f->path,
                  (unsigned long long)(f->data_size - at));
  qsort(f->e, (size_t)f->count, sizeof *f->e, cmp_name);
  return Q4_OK;
}

static q4_status parse_header(q4_st_file *f, json_t *root) {
  if (!json_is_object(root)) return q4_err(Q4_ERR_IO, "%s: safetensors header is not a JSON object", f->path);
  f->e = calloc(json_object_size(root) + 1, sizeof *f->e);
  if (!f->e) return q4_err(Q4_ERR_NO_MEMORY, "%s: out of memory", f->path);
  const char *key;
  json_t *val;
  json_object_foreach(root, key, val) {
    q4_status st;
    if (!strcmp(key, "__metadata__")) st = parse_metadata(f, val);
    else {
      st = parse_entry(f, key, val, &f->e[f->count]);
      if (!st) f->count++;
    }
    if (st) return st;
  }
  return check_layout(f);
}

static q4_status map_file(q4_st_file *f) {
  int fd = open(f->path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return q4_err(Q4_ERR_IO, "cannot open %s: %s", f->path, strerror(errno));
  struct stat sb;
  q4_status st = Q4_OK;
  if (fstat(fd, &sb)) st = q4_err(Q4_ERR_IO, "cannot stat %s: %s", f->path, strerror(errno));
  else if (!S_ISREG(sb.st_mode)) st = q4_err(Q4_ERR_IO, "%s is not a regular file", f->path);
  else if (sb.st_size < 8)
    st = q4_err(Q4_ERR_IO, "%s: truncated safetensors file (%lld bytes, the header length alone is 8)", f->path,
                (long long)sb.st_size);
  if (!st) {
    f->size = (size_t)sb.st_size;
    void *p = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) st = q4_err(Q4_ERR_IO, "cannot map %s: %s", f->path, strerror(errno));
    else f->map = p;
  }
  close(fd);
  return st;
}

static q4_status load(q4_st_file *f) {
  q4_status st = map_file(f);
  if (st) return st;
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--) hlen = hlen << 8 | f->map[i];
  if (hlen > Q4_ST_MAX_HEADER)
    return q4_err(Q4_ERR_IO, "%s: header length %llu is over the %u-byte limit (not a safetensors file?)", f->path,
                  (unsigned long long)hlen, Q4_ST_MAX_HEADER);
  if (hlen > f->size - 8)
    return q4_err(Q4_ERR_IO, "%s: header length %llu beyond the file size %zu (truncated?)", f->path,
                  (unsigned long long)hlen, f->size);
  f->data = f->map + 8 + hlen;
  f->data_size = f->size - 8 - hlen;
  json_error_t jerr;
  json_t *root = json_loadb((const char *)f->map + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
  if (!root)
    return q4_err(Q4_ERR_IO, "%s: invalid JSON header at byte %d: %s", f->path, jerr.position, jerr.text);
  st = parse_header(f, root);
  json_decref(root);
  return st;
}

q4_status q4_st_open(const char *path, q4_st_file **out) {
  if (!out) return q4_err(Q4_ERR_INVALID_ARG, "q4_st_open: out is NULL");
  *out = NULL;
  if (!path) return q4_err(Q4_ERR_INVALID_ARG, "q4_st_open: path is NULL");
  q4_st_file *f = calloc(1, sizeof *f);
  if (!f || !(f->path = strdup(path))) {
    free(f);
    return q4_err(Q4_ERR_NO_MEMORY, "out of memory opening %s", path);
  }
  q4_status st = load(f);
  if (st) free_file(f);
  else *out = f;
  return st;
}

void q4_st_close(q4_st_file *f) { free_file(f); }

const char *q4_st_path(const q4_st_file *f) { return f->path; }
int q4_st_count(const q4_st_file *f) { return f->count; }

const char *q4_st_name(const q4_st_file *f, int i) {
  return i >= 0 && i < f->count ? f->e[i].name : NULL;
}

void q4_st_get(const q4_st_file *f, int i, q4_st_tensor *out) {
  memset(out, 0, sizeof *out);
  if (i < 0 || i >= f->count) return;
  const st_entry *e = &f->e[i];
  out->name = e->name;
  out->dtype = e->dtype;
  out->rank = e->rank;
  memcpy(out->shape, e->shape, sizeof out->shape);
  out->data = f->data + e->begin;
  out->nbytes = (size_t)(e->end - e->begin);
}

int q4_st_index(const q4_st_file *f, const char *name) {
  int lo = 0, hi = f->count - 1;
  while (lo <= hi) {
    int mid = lo + (hi - lo) / 2;
    int c = strcmp(name, f->e[mid].name);
    if (!c) return mid;
    if (c < 0) hi = mid - 1;
    else lo = mid + 1;
  }
  return -1;
}

q4_status q4_st_find(const q4_st_file *f, const char *name, q4_st_tensor *out) {
  int i = q4_st_index(f, name);
  if (i < 0) return q4_err(Q4_ERR_INVALID_ARG, "%s: no tensor '%s'", f->path, name);
  q4_st_get(f, i, out);
  return Q4_OK;
}

const char *q4_st_meta(const q4_st_file *f, const char *key) {
  for (int i = 0; i < f->nmeta; i++)
    if (!strcmp(f->meta[2 * i], key)) return f->meta[2 * i + 1];
  return NULL;
}

/* ---- writing -------------------------------------------------------------- */

static q4_status check_out_tensor(const char *path, const q4_st_tensor *t, json_t *root) {
  if (!t->name || !*t->name || !strcmp(t->name, "__metadata__"))
    return q4_err(Q4_ERR_INVALID_ARG, "%s: invalid tensor name '%s'", path, t->name ? t->name : "(null)");
  if (json_object_get(root, t->name)) return q4_err(Q4_ERR_INVALID_ARG, "%s: duplicate tensor '%s'", path, t->name);
  if (!q4_st_dtype_name(t->dtype) || t->rank < 0 || t->rank > Q4_ST_MAX_RANK ||
      tensor_bytes(t->dtype, t->shape, t->rank) < 0)
    return q4_err(Q4_ERR_INVALID_ARG, "%s: tensor '%s': invalid dtype or shape", path, t->name);
  if (!t->data && tensor_bytes(t->dtype, t->shape, t->rank) > 0)
    return q4_err(Q4_ERR_INVALID_ARG, "%s: tensor '%s': data is NULL", path, t->name);
  return Q4_OK;
}

static json_t *entry_json(const q4_st_tensor *t, uint64_t begin, uint64_t end) {
  json_t *shape = json_array();
  for (int i = 0; i < t->rank; i++) json_array_append_new(shape, json_integer(t->shape[i]));
  return json_pack("{s:s, s:o, s:[I,I]}", "dtype", q4_st_dtype_name(t->dtype), "shape", shape, "data_offsets",
                   (json_int_t)begin, (json_int_t)end);
}

/* The header as text, padded with spaces so the buffer starts 8-aligned. */
static q4_status build_header(const char *path, const q4_st_tensor *t, int count, const char *const *meta,
                              char **text, size_t *len) {
  json_t *root = json_object();
  q4_status st = root ? Q4_OK : q4_err(Q4_ERR_NO_MEMORY, "out of memory");
  if (!st && meta && meta[0]) {
    json_t *m = json_object();
    for (int i = 0; meta[i] && meta[i + 1]; i += 2) json_object_set_new(m, meta[i], json_string(meta[i + 1]));
    json_object_set_new(root, "__metadata__", m);
  }
  uint64_t at = 0;
  for (int i = 0; !st && i < count; i++) {
    st = check_out_tensor(path, &t[i], root);
    if (st) break;
    uint64_t end = at + (uint64_t)tensor_bytes(t[i].dtype, t[i].shape, t[i].rank);
    json_t *e = entry_json(&t[i], at, end);
    if (!e || json_object_set_new(root, t[i].name, e))
      st = q4_err(Q4_ERR_INVALID_ARG, "%s: cannot encode tensor '%s' (not UTF-8?)", path, t[i].name);
    at = end;
  }
  char *s = st ? NULL : json_dumps(root, JSON_COMPACT);
  json_decref(root);
  if (st) return st;
  if (!s) return q4_err(Q4_ERR_NO_MEMORY, "%s: cannot encode the header", path);
  size_t n = strlen(s), padded = (n + 7) / 8 * 8;
  char *p = realloc(s, padded + 1);
  if (!p) {
    free(s);
    return q4_err(Q4_ERR_NO_MEMORY, "out of memory");
  }
  memset(p + n, ' ', padded - n);
  p[padded] = 0;
  *text = p;
  *len = padded;
  return Q4_OK;
}

static int write_all(FILE *fp, const void *p, size_t n) { return n == 0 || fwrite(p, 1, n, fp) == n ? 0 : -1; }

static q4_status write_body(FILE *fp, const char *tmp, const char *hdr, size_t hlen, const q4_st_tensor *t,
                            int count) {
  unsigned char len8[8];
  for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
  int bad = write_all(fp, len8, 8) || write_all(fp, hdr, hlen);
  for (int i = 0; !bad && i < count; i++)
    bad = write_all(fp, t[i].data, (size_t)tensor_bytes(t[i].dtype, t[i].shape, t[i].rank));
  if (!bad) bad = fflush(fp) || fsync(fileno(fp));
  return bad ? q4_err(Q4_ERR_IO, "cannot write %s: %s", tmp, strerror(errno)) : Q4_OK;
}

q4_status q4_st_write(const char *path, const q4_st_tensor *t, int count, const char *const *metadata) {
  if (!path || count < 0 || (count && !t)) return q4_err(Q4_ERR_INVALID_ARG, "q4_st_write: bad arguments");
  char *hdr = NULL;
  size_t hlen = 0;
  q4_status st = build_header(path, t, count, metadata, &hdr, &hlen);
  if (st) return st;
  size_t tlen = strlen(path) + 5;
  char *tmp = malloc(tlen);
  FILE *fp = NULL;
  if (!tmp) st = q4_err(Q4_ERR_NO_MEMORY, "out of memory");
  else {
    snprintf(tmp, tlen, "%s.tmp", path);
    fp = fopen(tmp, "wb");
    if (!fp) st = q4_err(Q4_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
  }
  if (fp) {
    st = write_body(fp, tmp, hdr, hlen, t, count);
    if (fclose(fp) && !st) st = q4_err(Q4_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
    if (!st && rename(tmp, path)) st = q4_err(Q4_ERR_IO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    if (st) unlink(tmp);
  }
  free(tmp);
  free(hdr);
  return st;
}
