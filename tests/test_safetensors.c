/*
** test_safetensors.c -- the safetensors reader and writer: a round trip,
** writer argument errors, hand-made malformed files (each must fail with
** Q4_ERR_IO and a message naming the problem) and a fuzz loop of random
** byte flips and truncations that must never crash (run under ASan/UBSan).
*/
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "q4_ref.h"
#include "q4_safetensors.h"
#include "q4test.h"
#include "q4tune.h"

static void tmp_path(char *buf, size_t size, const char *name) { snprintf(buf, size, "%s/%s", tmpdir, name); }

static void write_bytes(const char *path, const void *p, size_t n) {
  FILE *fp = fopen(path, "wb");
  if (!fp || (n && fwrite(p, 1, n, fp) != n)) {
    perror(path);
    exit(1);
  }
  fclose(fp);
}

/* A file with this header text, the given header length field, then dlen
** bytes of buffer. */
static void write_raw(const char *path, const char *header, uint64_t hlen, size_t dlen) {
  const size_t n = strlen(header);
  unsigned char *b = calloc(1, 8 + n + dlen + 1);
  for (int i = 0; i < 8; i++) b[i] = (unsigned char)(hlen >> (8 * i));
  memcpy(b + 8, header, n);
  for (size_t i = 0; i < dlen; i++) b[8 + n + i] = (unsigned char)i;
  write_bytes(path, b, 8 + n + dlen);
  free(b);
}

static q4_status open_raw(const char *header, uint64_t hlen, size_t dlen) {
  char path[PATH_MAX + 32];
  tmp_path(path, sizeof path, "raw.safetensors");
  write_raw(path, header, hlen, dlen);
  q4_st_file *f = NULL;
  q4_status st = q4_st_open(path, &f);
  CHECK(st || f);
  q4_st_close(f);
  return st;
}

static unsigned char *read_all(const char *path, size_t *n) {
  FILE *fp = fopen(path, "rb");
  if (!fp) return NULL;
  fseek(fp, 0, SEEK_END);
  *n = (size_t)ftell(fp);
  fseek(fp, 0, SEEK_SET);
  unsigned char *b = malloc(*n + 1);
  if (fread(b, 1, *n, fp) != *n) *n = 0;
  fclose(fp);
  return b;
}

/* ---- round trip ----------------------------------------------------------- */

static void test_roundtrip(void) {
  int32_t a[3][4];
  uint16_t h[5];
  float s = 3.5f;
  uint16_t bf[2][2][2];
  for (int i = 0; i < 12; i++) a[i / 4][i % 4] = i * 1000 - 7;
  for (int i = 0; i < 5; i++) h[i] = q4_f2h((float)i / 4);
  for (int i = 0; i < 8; i++) bf[i / 4][i / 2 % 2][i % 2] = (uint16_t)(0x3f80 + i);
  const q4_st_tensor t[] = {
      {.name = "zeta.int", .dtype = Q4_ST_I32, .rank = 2, .shape = {3, 4}, .data = a},
      {.name = "alpha.half", .dtype = Q4_ST_F16, .rank = 1, .shape = {5}, .data = h},
      {.name = "scalar", .dtype = Q4_ST_F32, .rank = 0, .data = &s},
      {.name = "empty", .dtype = Q4_ST_U8, .rank = 1, .shape = {0}, .data = NULL},
      {.name = "m.bf16", .dtype = Q4_ST_BF16, .rank = 3, .shape = {2, 2, 2}, .data = bf},
  };
  const char *meta[] = {"format", "pt", "note", "caf\xc3\xa9", NULL};
  char path[PATH_MAX + 32], tmp[PATH_MAX + 40];
  tmp_path(path, sizeof path, "rt.safetensors");
  CHECK_OK(q4_st_write(path, t, 5, meta));
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  CHECK(access(tmp, F_OK) != 0);

  size_t n;
  unsigned char *raw = read_all(path, &n);
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--) hlen = hlen << 8 | raw[i];
  CHECK((8 + hlen) % 8 == 0);  /* the buffer starts 8-aligned */
  free(raw);

  q4_st_file *f;
  CHECK_OK(q4_st_open(path, &f));
  if (!f) return;
  CHECK(q4_st_count(f) == 5);
  CHECK(!strcmp(q4_st_name(f, 0), "alpha.half") && !strcmp(q4_st_name(f, 4), "zeta.int"));
  CHECK(q4_st_name(f, 5) == NULL);
  for (int i = 0; i < 5; i++) {
    q4_st_tensor g;
    CHECK_OK(q4_st_find(f, t[i].name, &g));
    CHECK(g.dtype == t[i].dtype && g.rank == t[i].rank);
    CHECK(!memcmp(g.shape, t[i].shape, sizeof g.shape));
    const size_t bytes = (size_t)q4_st_numel(t[i].shape, t[i].rank) * q4_st_dtype_size(t[i].dtype);
    CHECK(g.nbytes == bytes);
    CHECK(bytes == 0 || !memcmp(g.data, t[i].data, bytes));
  }
  CHECK(q4_st_meta(f, "format") && !strcmp(q4_st_meta(f, "format"), "pt"));
  CHECK(q4_st_meta(f, "note") && !strcmp(q4_st_meta(f, "note"), "caf\xc3\xa9"));
  CHECK(q4_st_meta(f, "nope") == NULL);
  q4_st_tensor g;
  CHECK_ERR(q4_st_find(f, "missing", &g), Q4_ERR_INVALID_ARG, "no tensor 'missing'");
  CHECK(q4_st_index(f, "scalar") >= 0 && q4_st_index(f, "scalaR") < 0);
  q4_st_close(f);
  q4_st_close(NULL);
}

static void test_writer_errors(void) {
  int32_t a[2] = {1, 2};
  char path[PATH_MAX + 32];
  tmp_path(path, sizeof path, "bad_write.safetensors");
  q4_st_tensor t[2] = {{.name = "x", .dtype = Q4_ST_I32, .rank = 1, .shape = {2}, .data = a},
                       {.name = "x", .dtype = Q4_ST_I32, .rank = 1, .shape = {2}, .data = a}};
  CHECK_ERR(q4_st_write(path, t, 2, NULL), Q4_ERR_INVALID_ARG, "duplicate tensor 'x'");
  t[1].name = "__metadata__";
  CHECK_ERR(q4_st_write(path, t, 2, NULL), Q4_ERR_INVALID_ARG, "invalid tensor name");
  t[1].name = "y";
  t[1].data = NULL;
  CHECK_ERR(q4_st_write(path, t, 2, NULL), Q4_ERR_INVALID_ARG, "data is NULL");
  t[1].data = a;
  t[1].dtype = (q4_st_dtype)99;
  CHECK_ERR(q4_st_write(path, t, 2, NULL), Q4_ERR_INVALID_ARG, "invalid dtype");
  t[1].dtype = Q4_ST_I32;
  t[1].shape[0] = -1;
  CHECK_ERR(q4_st_write(path, t, 2, NULL), Q4_ERR_INVALID_ARG, "shape");
  CHECK(access(path, F_OK) != 0);
  CHECK_ERR(q4_st_write("/nonexistent-dir/x.safetensors", t, 1, NULL), Q4_ERR_IO, "cannot create");
  CHECK_ERR(q4_st_write(NULL, t, 1, NULL), Q4_ERR_INVALID_ARG, "bad arguments");
  CHECK_OK(q4_st_write(path, t, 0, NULL));  /* an empty file is valid */
  q4_st_file *f;
  CHECK_OK(q4_st_open(path, &f));
  CHECK(f && q4_st_count(f) == 0);
  q4_st_close(f);
}

/* ---- malformed files -------------------------------------------------------- */

#define HDR(s) s, (uint64_t)strlen(s)

static void test_malformed(void) {
  CHECK_ERR(open_raw("", 0, 0), Q4_ERR_IO, "header");  /* "{}"-less: empty JSON */
  char path[PATH_MAX + 32];
  tmp_path(path, sizeof path, "short.safetensors");
  write_bytes(path, "\x02\0\0", 3);
  q4_st_file *f = NULL;
  CHECK_ERR(q4_st_open(path, &f), Q4_ERR_IO, "truncated");
  CHECK(f == NULL);
  CHECK_ERR(open_raw("{}", 1000, 0), Q4_ERR_IO, "beyond the file size");
  CHECK_ERR(open_raw("{}", 200u * 1000 * 1000, 0), Q4_ERR_IO, "over the");
  CHECK_ERR(open_raw("{}", UINT64_MAX, 0), Q4_ERR_IO, "over the");
  CHECK_ERR(open_raw(HDR("{\"a\": "), 0), Q4_ERR_IO, "invalid JSON");
  CHECK_ERR(open_raw(HDR("{} trailing"), 0), Q4_ERR_IO, "invalid JSON");
  CHECK_ERR(open_raw(HDR("[1, 2]"), 0), Q4_ERR_IO, "not a JSON object");
  CHECK_ERR(open_raw(HDR("{\"t\": 5}"), 0), Q4_ERR_IO, "tensor 't': entry is not");
  CHECK_ERR(open_raw(HDR("{\"t\": {\"dtype\": \"Q7\", \"shape\": [1], \"data_offsets\": [0, 1]}}"), 1), Q4_ERR_IO,
            "unknown dtype 'Q7'");
  CHECK_ERR(open_raw(HDR("{\"t\": {\"shape\": [1], \"data_offsets\": [0, 1]}}"), 1), Q4_ERR_IO, "no dtype");
  CHECK_ERR(open_raw(HDR("{\"t\": {\"dtype\": \"I32\", \"shape\": [2], \"data_offsets\": [0, 4]}}"), 4), Q4_ERR_IO,
            "needs 8 bytes");
  CHECK_ERR(open_raw(HDR("{\"t\": {\"dtype\": \"I32\", \"shape\": [4], \"data_offsets\": [0, 16]}}"), 8), Q4_ERR_IO,
            "out of range");
  CHECK_ERR(open_raw(HDR("{\"t\": {\"dtype\": \"I32\", \"shape\": [1], \"data_offsets\": [4, 0]}}"), 8), Q4_ERR_IO,
            "out of range");
  CHECK_ERR(open_raw(HDR("{\"a\": {\"dtype\": \"I32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
                         " \"b\": {\"dtype\": \"I32\", \"shape\": [2], \"data_offsets\": [4, 12]}}"), 12),
            Q4_ERR_IO, "overlaps");
  CHECK_ERR(open_raw(HDR("{\"a\": {\"dtype\": \"I32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
                         " \"b\": {\"dtype\": \"I32\", \"shape\": [1], \"data_offsets\": [8, 12]}}"), 12),
            Q4_ERR_IO, "not contiguous");
  CHECK_ERR(open_raw(HDR("{\"a\": {\"dtype\": \"I32\", \"shape\": [1], \"data_offsets\": [0, 4]}}"), 8), Q4_ERR_IO,
            "after the last tensor");
  CHECK_ERR(open_raw(HDR("{\"a\": {\"dtype\": \"I32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
                         " \"a\": {\"dtype\": \"I32\", \"shape\": [1], \"data_offsets\": [4, 8]}}"), 8),
            Q4_ERR_IO, "duplicate");
  CHECK_ERR(open_raw(HDR("{\"__metadata__\": {\"k\": 1}}"), 0), Q4_ERR_IO, "__metadata__ value of 'k'");
  CHECK_ERR(open_raw(HDR("{\"__metadata__\": [1]}"), 0), Q4_ERR_IO, "__metadata__ is not");
  CHECK_ERR(open_raw(HDR("{\"t\": {\"dtype\": \"I32\", \"shape\": [-1], \"data_offsets\": [0, 0]}}"), 0), Q4_ERR_IO,
            "shape[0]");
  CHECK_ERR(open_raw(HDR("{\"t\": {\"dtype\": \"I32\", \"shape\": [1.0], \"data_offsets\": [0, 4]}}"), 4), Q4_ERR_IO,
            "shape[0]");
  CHECK_ERR(open_raw(HDR("{\"t\": {\"dtype\": \"I32\", \"shape\": [1], \"data_offsets\": [0.0, 4]}}"), 4), Q4_ERR_IO,
            "data_offsets");
  CHECK_ERR(open_raw(HDR("{\"t\": {\"dtype\": \"I32\", \"shape\": [1], \"data_offsets\": [0, 4, 8]}}"), 4), Q4_ERR_IO,
            "data_offsets");
  CHECK_ERR(open_raw(HDR("{\"t\": {\"dtype\": \"I32\", \"shape\": [1,1,1,1,1,1,1,1,1], \"data_offsets\": [0, 4]}}"),
                     4), Q4_ERR_IO, "rank 9");
  CHECK_ERR(open_raw(HDR("{\"t\": {\"dtype\": \"I32\", \"shape\": [4611686018427387904, 4],"
                         " \"data_offsets\": [0, 4]}}"), 4), Q4_ERR_IO, "'t'");
  CHECK_ERR(open_raw(HDR("{\"t\": {\"dtype\": \"I32\", \"shape\": [1], \"data_offsets\": [0, 4], \"x\": 1}}"), 4),
            Q4_ERR_IO, "unknown field 'x'");
  CHECK_ERR(open_raw(HDR("{\"t\\u0000x\": {\"dtype\": \"I32\", \"shape\": [1], \"data_offsets\": [0, 4]}}"), 4),
            Q4_ERR_IO, "invalid JSON");
  CHECK_OK(open_raw(HDR("{\"t\": {\"dtype\": \"I32\", \"shape\": [1], \"data_offsets\": [0, 4]}}   "), 4));

  /* a valid file cut short */
  int32_t a[64] = {0};
  q4_st_tensor t = {.name = "w", .dtype = Q4_ST_I32, .rank = 2, .shape = {8, 8}, .data = a};
  tmp_path(path, sizeof path, "cut.safetensors");
  CHECK_OK(q4_st_write(path, &t, 1, NULL));
  CHECK(truncate(path, 100) == 0);
  CHECK_ERR(q4_st_open(path, &f), Q4_ERR_IO, "'w'");
  CHECK_ERR(q4_st_open(tmpdir, &f), Q4_ERR_IO, "not a regular file");
  tmp_path(path, sizeof path, "missing.safetensors");
  CHECK_ERR(q4_st_open(path, &f), Q4_ERR_IO, "cannot open");
  CHECK_ERR(q4_st_open(NULL, &f), Q4_ERR_INVALID_ARG, "NULL");
  CHECK_ERR(q4_st_open(path, NULL), Q4_ERR_INVALID_ARG, "NULL");
}

/* ---- fuzz ---------------------------------------------------------------------- */

static unsigned char *valid_file(size_t *n) {
  static int32_t a[4][16];
  static uint16_t h[3][8];
  for (int i = 0; i < 64; i++) a[i / 16][i % 16] = i;
  for (int i = 0; i < 24; i++) h[i / 8][i % 8] = (uint16_t)i;
  const q4_st_tensor t[] = {
      {.name = "l.qweight", .dtype = Q4_ST_I32, .rank = 2, .shape = {4, 16}, .data = a},
      {.name = "l.scales", .dtype = Q4_ST_F16, .rank = 2, .shape = {3, 8}, .data = h},
      {.name = "l.g_idx", .dtype = Q4_ST_I32, .rank = 1, .shape = {2}, .data = a},
  };
  const char *meta[] = {"format", "pt", NULL};
  char path[PATH_MAX + 32];
  tmp_path(path, sizeof path, "fuzz_base.safetensors");
  if (q4_st_write(path, t, 3, meta)) return NULL;
  return read_all(path, n);
}

/* Touch every byte of every tensor, so ASan sees any out-of-bounds pointer. */
static unsigned touch(const q4_st_file *f) {
  unsigned sum = 0;
  for (int i = 0; i < q4_st_count(f); i++) {
    q4_st_tensor t;
    q4_st_get(f, i, &t);
    const int64_t numel = q4_st_numel(t.shape, t.rank);
    CHECK(numel >= 0 && (size_t)numel * q4_st_dtype_size(t.dtype) == t.nbytes);
    for (size_t j = 0; j < t.nbytes; j++) sum += ((const unsigned char *)t.data)[j];
  }
  return sum;
}

static void mutate(unsigned char *b, size_t *n, uint64_t *rng) {
  const int kind = (int)(q4_rand_next(rng) % 4);
  if (kind == 0 && *n) {
    *n = (size_t)(q4_rand_next(rng) % *n);  /* truncate */
    return;
  }
  const int flips = 1 + (int)(q4_rand_next(rng) % 4);
  for (int i = 0; i < flips && *n; i++) {
    /* mostly the header (length and JSON), where the parser is */
    const size_t span = kind == 1 ? *n : (*n < 160 ? *n : 160);
    const size_t at = (size_t)(q4_rand_next(rng) % span);
    const uint64_t r = q4_rand_next(rng);
    b[at] = kind == 2 ? (unsigned char)(b[at] ^ (1u << (r % 8))) : (unsigned char)r;
  }
}

static void test_fuzz(void) {
  size_t n0 = 0;
  unsigned char *base = valid_file(&n0);
  CHECK(base && n0 > 8);
  if (!base) return;
  unsigned char *b = malloc(n0);
  char path[PATH_MAX + 32];
  tmp_path(path, sizeof path, "fuzz.safetensors");
  uint64_t rng = 0x5eed;
  int opened = 0, bad_status = 0;
  unsigned sum = 0;
  for (int it = 0; it < 2000; it++) {
    size_t n = n0;
    memcpy(b, base, n0);
    mutate(b, &n, &rng);
    write_bytes(path, b, n);
    q4_st_file *f = NULL;
    q4_status st = q4_st_open(path, &f);
    if (st == Q4_OK) {
      opened++;
      sum += touch(f);
      q4_st_close(f);
    } else if (st != Q4_ERR_IO || !*q4_last_error()) {
      bad_status++;
      fprintf(stderr, "fuzz %d: %s %s\n", it, q4_status_name(st), q4_last_error());
    }
  }
  CHECK(bad_status == 0);
  CHECK(opened > 0 && opened < 2000);
  printf("fuzz: 2000 files, %d opened (checksum %u), the rest refused\n", opened, sum);
  free(b);
  free(base);
}

int main(void) {
  make_tmpdir("test_safetensors");
  test_roundtrip();
  test_writer_errors();
  test_malformed();
  test_fuzz();
  remove_tmpdir();
  return q4test_done("test_safetensors");
}
