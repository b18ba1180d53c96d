/*
** test_api.c -- argument validation of the public API and of the internal
** helpers it rests on, on a machine without a GPU (no libcuda): every call
** must fail cleanly with the right status and a message, and nothing may
** crash. Meant to run under AddressSanitizer and UBSan.
*/
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "q4_handle.h"
#include "q4_nvrtc.h"
#include "q4db.h"
#include "q4test.h"
#include "q4tune.h"

/* Case-insensitive substring test. */
static int has_ci(const char *hay, const char *needle) {
  size_t n = strlen(needle);
  for (; *hay; hay++)
    if (!strncasecmp(hay, needle, n)) return 1;
  return 0;
}

static int has(const char *hay, const char *needle) { return strstr(hay, needle) != NULL; }

/* status s and a message containing `part` */
/* ---- q4_create / q4_destroy --------------------------------------------- */

static void test_create(void) {
  char db[PATH_MAX + 32];
  snprintf(db, sizeof db, "%s/create.db", tmpdir);
  q4_handle *h = (q4_handle *)(uintptr_t)0x1;  /* must be overwritten */
  q4_status s = q4_create(0, db, &h);
  const char *msg = q4_last_error();
  if (s == Q4_OK) {
    /* a GPU after all: nothing to check here */
    printf("test_api: q4_create found a GPU; skipping the no-driver checks\n");
    q4_destroy(h);
  } else {
    CHECK_MSG(s == Q4_ERR_NO_DRIVER || s == Q4_ERR_NO_DEVICE, "q4_create(0) without a GPU gave %s: %s",
              q4_status_name(s), msg);
    CHECK(h == NULL);
    CHECK(msg[0] != '\0');
    CHECK_MSG(has_ci(msg, "driver") || has_ci(msg, "libcuda"), "message does not mention the driver: %s", msg);
    printf("test_api: q4_create(0): %s: %s\n", q4_status_name(s), msg);
    /* a second attempt gives the same answer (the load is cached, not retried into a crash) */
    h = (q4_handle *)(uintptr_t)0x1;
    CHECK(q4_create(0, db, &h) == s);
    CHECK(h == NULL);
    CHECK(q4_last_error()[0] != '\0');
  }

  CHECK_ERR(q4_create(0, db, NULL), Q4_ERR_INVALID_ARG, "out");
  h = (q4_handle *)(uintptr_t)0x1;
  CHECK_ERR(q4_create(-1, db, &h), Q4_ERR_INVALID_ARG, "-1");
  CHECK(h == NULL);
  h = (q4_handle *)(uintptr_t)0x1;
  CHECK(q4_create(INT_MIN, NULL, &h) == Q4_ERR_INVALID_ARG);
  CHECK(h == NULL);
  /* a huge ordinal: no device of that number (or no driver at all) */
  h = (q4_handle *)(uintptr_t)0x1;
  s = q4_create(1000, db, &h);
  CHECK(s == Q4_ERR_NO_DRIVER || s == Q4_ERR_NO_DEVICE);
  CHECK(h == NULL);

  q4_destroy(NULL);  /* a no-op */
  CHECK(1);
}

/* ---- weight descriptors --------------------------------------------------- */

#define QW ((const void *)(uintptr_t)0x1000)
#define SC ((const void *)(uintptr_t)0x2000)
#define ZE ((const void *)(uintptr_t)0x3000)

static q4_weights valid(void) {
  q4_weights w = {Q4_FORMAT_Q4, 4096, 4096, 128, QW, SC, ZE, NULL};
  return w;
}

static void test_weights_check(void) {
  q4_weights w = valid();
  CHECK_OK(q4_weights_check(&w));
  w.group_size = 0;  /* per-channel */
  CHECK_OK(q4_weights_check(&w));
  w.group_size = 4096;
  CHECK_OK(q4_weights_check(&w));
  w = valid();
  w.n = 8;
  w.k = 32;
  w.group_size = 32;
  CHECK_OK(q4_weights_check(&w));
  w = valid();
  w.n = 22016;
  CHECK_OK(q4_weights_check(&w));

  CHECK_ERR(q4_weights_check(NULL), Q4_ERR_INVALID_ARG, "NULL");

  w = valid();
  w.format = (q4_format)7;
  CHECK_ERR(q4_weights_check(&w), Q4_ERR_INVALID_ARG, "format");
  w.format = (q4_format)-1;
  CHECK_ERR(q4_weights_check(&w), Q4_ERR_INVALID_ARG, "format");

  /* sparse weights: a mask, 16-byte aligned, and no act-order */
  w = valid();
  w.format = Q4_FORMAT_Q4S;
  CHECK_ERR(q4_weights_check(&w), Q4_ERR_INVALID_ARG, "mask");
  w.mask = (const void *)(uintptr_t)0x4008;
  CHECK_ERR(q4_weights_check(&w), Q4_ERR_INVALID_ARG, "aligned");
  w.mask = (const void *)(uintptr_t)0x4000;
  CHECK_OK(q4_weights_check(&w));
  w.perm = (const void *)(uintptr_t)0x8000;
  CHECK_ERR(q4_weights_check(&w), Q4_ERR_UNSUPPORTED, "act-order");

  w = valid();
  w.n = 0;
  CHECK_ERR(q4_weights_check(&w), Q4_ERR_INVALID_ARG, "N=0");
  w.n = -8;
  CHECK_ERR(q4_weights_check(&w), Q4_ERR_INVALID_ARG, "positive");
  w = valid();
  w.k = 0;
  CHECK_ERR(q4_weights_check(&w), Q4_ERR_INVALID_ARG, "K=0");
  w.k = -4096;
  CHECK_ERR(q4_weights_check(&w), Q4_ERR_INVALID_ARG, "positive");

  w = valid();
  w.n = 4100;
  CHECK_ERR(q4_weights_check(&w), Q4_ERR_INVALID_ARG, "N=4100 is not a multiple of 8");
  w.n = 1;
  CHECK_ERR(q4_weights_check(&w), Q4_ERR_INVALID_ARG, "multiple of 8");

  w = valid();
  w.k = 4112;  /* multiple of 8 and 16, not of 32 */
  w.group_size = 0;
  CHECK_ERR(q4_weights_check(&w), Q4_ERR_INVALID_ARG, "K=4112 is not a multiple of 32");

  w = valid();
  w.group_size = 100;
  CHECK_ERR(q4_weights_check(&w), Q4_ERR_INVALID_ARG, "group size 100 is not a multiple of 32");
  w.group_size = 16;
  CHECK_ERR(q4_weights_check(&w), Q4_ERR_INVALID_ARG, "multiple of 32");

  w = valid();
  w.group_size = 96;  /* multiple of 32, 4096 % 96 != 0 */
  CHECK_ERR(q4_weights_check(&w), Q4_ERR_INVALID_ARG, "not a multiple of the group size 96");
  w.group_size = 8192;  /* larger than K */
  CHECK_ERR(q4_weights_check(&w), Q4_ERR_INVALID_ARG, "group size");

  w = valid();
  w.group_size = -128;
  CHECK_ERR(q4_weights_check(&w), Q4_ERR_INVALID_ARG, "negative");

  w = valid();
  w.qweight = NULL;
  CHECK_ERR(q4_weights_check(&w), Q4_ERR_INVALID_ARG, "qweight");
  w = valid();
  w.scales = NULL;
  CHECK_ERR(q4_weights_check(&w), Q4_ERR_INVALID_ARG, "scales");
  w = valid();
  w.zeros = NULL;
  CHECK_ERR(q4_weights_check(&w), Q4_ERR_INVALID_ARG, "zeros");

  w = valid();
  w.qweight = (const void *)(uintptr_t)0x1008;  /* 8- but not 16-byte aligned */
  CHECK_ERR(q4_weights_check(&w), Q4_ERR_INVALID_ARG, "aligned");
  w = valid();
  w.qweight = (const void *)(uintptr_t)0x1001;
  CHECK_ERR(q4_weights_check(&w), Q4_ERR_INVALID_ARG, "aligned");
  w = valid();
  w.scales = (const void *)(uintptr_t)0x2002;
  CHECK_ERR(q4_weights_check(&w), Q4_ERR_INVALID_ARG, "aligned");
  w = valid();
  w.zeros = (const void *)(uintptr_t)0x3004;
  CHECK_ERR(q4_weights_check(&w), Q4_ERR_INVALID_ARG, "aligned");
  w = valid();
  w.scales = (const void *)(uintptr_t)0x2008;  /* 8-byte alignment is enough */
  w.zeros = (const void *)(uintptr_t)0x3018;
  CHECK_OK(q4_weights_check(&w));

  /* symmetric weights need no zeros; anything but 0 or 1 is refused */
  w = valid();
  w.symmetric = 1;
  w.zeros = NULL;
  CHECK_OK(q4_weights_check(&w));
  w.symmetric = 2;
  CHECK_ERR(q4_weights_check(&w), Q4_ERR_INVALID_ARG, "symmetric");
  /* act-order: perm is read in 16-byte vectors */
  w = valid();
  w.perm = (const void *)(uintptr_t)0x4000;
  CHECK_OK(q4_weights_check(&w));
  w.perm = (const void *)(uintptr_t)0x4004;
  CHECK_ERR(q4_weights_check(&w), Q4_ERR_INVALID_ARG, "perm");
  /* both show in the shape record, which keys kernels and tuning results */
  w = valid();
  w.symmetric = 1;
  w.perm = (const void *)(uintptr_t)0x4000;
  CHECK(q4_shape_of(&w).flags == (Q4_SHAPE_SYMMETRIC | Q4_SHAPE_ACT_ORDER));
  w.perm = NULL;
  CHECK(q4_shape_of(&w).flags == Q4_SHAPE_SYMMETRIC);

  /* the shape record: group size normalized */
  w = valid();
  q4_shape s = q4_shape_of(&w);
  CHECK(s.format == Q4_FORMAT_Q4 && s.n == 4096 && s.k == 4096 && s.group_size == 128);
  w.group_size = 0;
  s = q4_shape_of(&w);
  CHECK(s.group_size == 4096);
  w.n = 22016;
  w.group_size = 4096;
  s = q4_shape_of(&w);
  CHECK(s.n == 22016 && s.group_size == 4096);
}

/* ---- products ----------------------------------------------------------- */

/* (far from the weights' fake addresses and from each other: 1e5 rows of
** x or y are under 1 GB) */
#define XP ((const void *)(uintptr_t)0x100000000)
#define YP ((void *)(uintptr_t)0x200000000)

static void test_check_args(void) {
  q4_weights w = valid();
  CHECK_OK(q4_check_args(&w, XP, YP, 1));
  CHECK_OK(q4_check_args(&w, XP, YP, 4096));
  CHECK_OK(q4_check_args(&w, XP, YP, 100000));
  CHECK_ERR(q4_check_args(&w, XP, YP, 0), Q4_ERR_INVALID_ARG, "M=0");
  CHECK_ERR(q4_check_args(&w, XP, YP, -5), Q4_ERR_INVALID_ARG, "M=-5");
  CHECK_ERR(q4_check_args(&w, NULL, YP, 1), Q4_ERR_INVALID_ARG, "NULL");
  CHECK_ERR(q4_check_args(&w, XP, NULL, 1), Q4_ERR_INVALID_ARG, "NULL");
  CHECK_ERR(q4_check_args(&w, (const void *)(uintptr_t)0x100000008, YP, 1), Q4_ERR_INVALID_ARG, "aligned");
  CHECK_ERR(q4_check_args(&w, XP, (void *)(uintptr_t)0x200000002, 1), Q4_ERR_INVALID_ARG, "aligned");
  CHECK_ERR(q4_check_args(NULL, XP, YP, 1), Q4_ERR_INVALID_ARG, "NULL");
  /* y written over an input: refused, naming it; next to one: fine */
  const uintptr_t x = (uintptr_t)XP, qw = (uintptr_t)w.qweight, x_rows = 4096 * 2, y_rows = 4096 * 2;
  CHECK_ERR(q4_check_args(&w, XP, (void *)x, 1), Q4_ERR_INVALID_ARG, "overlaps x");
  CHECK_ERR(q4_check_args(&w, XP, (void *)(x + 3 * x_rows), 4), Q4_ERR_INVALID_ARG, "overlaps x");
  CHECK_ERR(q4_check_args(&w, XP, (void *)(x - 3 * y_rows), 4), Q4_ERR_INVALID_ARG, "overlaps x");
  CHECK_OK(q4_check_args(&w, XP, (void *)(x + 4 * x_rows), 4));
  CHECK_OK(q4_check_args(&w, XP, (void *)(x - 4 * y_rows), 4));
  CHECK_ERR(q4_check_args(&w, XP, (void *)(qw + 4096 / 8 * 4096 * 4 - 16), 1), Q4_ERR_INVALID_ARG, "qweight");
  CHECK_OK(q4_check_args(&w, XP, (void *)(qw + 4096 / 8 * 4096 * 4 + 0x10000), 1));
  w.zeros = (const void *)(uintptr_t)0x300000000;
  CHECK_ERR(q4_check_args(&w, XP, (void *)(uintptr_t)0x300000000, 1), Q4_ERR_INVALID_ARG, "zeros");
  w.symmetric = 1;  /* zeros not read */
  CHECK_OK(q4_check_args(&w, XP, (void *)(uintptr_t)0x300000000, 1));
  w.symmetric = 0;
  w.mask = (const void *)(uintptr_t)0x400000000;  /* dense weights: mask not read */
  CHECK_OK(q4_check_args(&w, XP, (void *)(uintptr_t)0x400000000, 1));
  w.format = Q4_FORMAT_Q4S;
  CHECK_ERR(q4_check_args(&w, XP, (void *)(uintptr_t)0x400000000, 1), Q4_ERR_INVALID_ARG, "mask");
  w = valid();
  w.perm = (const void *)(uintptr_t)0x500000000;
  CHECK_ERR(q4_check_args(&w, XP, (void *)(uintptr_t)(0x500000000 + 4096 * 4 - 16), 1), Q4_ERR_INVALID_ARG, "perm");
  CHECK_OK(q4_check_args(&w, XP, (void *)(uintptr_t)(0x500000000 + 4096 * 4), 1));
  w = valid();
  w.n = 12;
  CHECK_ERR(q4_check_args(&w, XP, YP, 1), Q4_ERR_INVALID_ARG, "multiple of 8");
}

static void test_matmul_null(void) {
  q4_weights w = valid();
  CHECK_ERR(q4_matmul(NULL, &w, XP, YP, 1, NULL), Q4_ERR_INVALID_ARG, "handle");
  CHECK(q4_matmul(NULL, NULL, NULL, NULL, 0, NULL) == Q4_ERR_INVALID_ARG);
  CHECK(q4_matmul(NULL, &w, NULL, NULL, -1, (void *)(uintptr_t)0x1234) == Q4_ERR_INVALID_ARG);
  CHECK(q4_last_error()[0] != '\0');

  char buf[128] = "untouched";
  int tuned = 7;
  CHECK_ERR(q4_kernel_name(NULL, &w, 1, buf, sizeof buf, &tuned), Q4_ERR_INVALID_ARG, "NULL");
  CHECK(tuned == 7);
  CHECK(q4_kernel_name(NULL, NULL, 0, NULL, 0, NULL) == Q4_ERR_INVALID_ARG);
  CHECK(q4_kernel_name(NULL, &w, 1, buf, 0, NULL) == Q4_ERR_INVALID_ARG);
  CHECK_ERR(q4_set_early_launch(NULL, 1), Q4_ERR_INVALID_ARG, "NULL");
  CHECK_ERR(q4_set_early_launch(NULL, 0), Q4_ERR_INVALID_ARG, "NULL");
}

/* ---- status names, buckets, archs ------------------------------------------ */

static void test_status_names(void) {
  const char *names[Q4_ERR_IO + 1];
  for (int s = Q4_OK; s <= Q4_ERR_IO; s++) {
    names[s] = q4_status_name((q4_status)s);
    CHECK_MSG(names[s] && names[s][0], "status %d has no name", s);
    if (!names[s]) names[s] = "";
    CHECK_MSG(!strncmp(names[s], "Q4_", 3), "status %d is named '%s'", s, names[s]);
    for (int t = 0; t < s; t++) CHECK_MSG(strcmp(names[s], names[t]), "statuses %d and %d share '%s'", t, s, names[s]);
  }
  CHECK(!strcmp(q4_status_name(Q4_OK), "Q4_OK"));
  CHECK(!strcmp(q4_status_name(Q4_ERR_DB), "Q4_ERR_DB"));
  CHECK(!strcmp(q4_status_name(Q4_ERR_NO_DRIVER), "Q4_ERR_NO_DRIVER"));
  CHECK(!strcmp(q4_status_name(Q4_ERR_NO_HEADERS), "Q4_ERR_NO_HEADERS"));
  /* out of range: still a non-NULL name */
  const char *u = q4_status_name((q4_status)999);
  CHECK(u && u[0]);
  u = q4_status_name((q4_status)-1);
  CHECK(u && u[0]);
}

static void test_buckets(void) {
  static const int cases[][2] = {{1, 1},    {2, 2},       {3, 4},       {4, 4},       {5, 8},
                                 {16, 16},  {17, 32},     {100, 128},   {128, 128},   {129, 256},
                                 {2048, 2048}, {2049, 4096}, {4096, 4096}, {4097, 4096}, {9000, 4096},
                                 {INT_MAX, 4096}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    CHECK_MSG(q4_m_bucket(cases[i][0]) == cases[i][1], "q4_m_bucket(%d) = %d, want %d", cases[i][0],
              q4_m_bucket(cases[i][0]), cases[i][1]);

  /* The "device below sm_70" check: no such GPU is on this machine, so the
  ** predicate that q4_create applies to the device's compute capability is
  ** tested directly (q4_create then fails with Q4_ERR_DEVICE_TOO_OLD). */
  CHECK(q4_arch_supported(6, 1) == 0);
  CHECK(q4_arch_supported(6, 0) == 0);
  CHECK(q4_arch_supported(5, 2) == 0);
  CHECK(q4_arch_supported(3, 5) == 0);
  CHECK(q4_arch_supported(7, 0) == 0);  /* CUDA 13 NVRTC starts at sm_75 */
  CHECK(q4_arch_supported(7, 5) == 1);
  CHECK(q4_arch_supported(8, 0) == 1);
  CHECK(q4_arch_supported(8, 9) == 1);
  CHECK(q4_arch_supported(9, 0) == 1);
  CHECK(q4_arch_supported(12, 0) == 1);
}

/* ---- the database at the API level --------------------------------------- */

static void write_file(const char *path, const void *data, size_t size) {
  FILE *f = fopen(path, "wb");
  if (!f) {
    perror(path);
    return;
  }
  fwrite(data, 1, size, f);
  fclose(f);
}

static void test_db(void) {
  char path[PATH_MAX + 64];
  q4db *db = (q4db *)(uintptr_t)0x1;

  /* random bytes, large enough to hold a "header" */
  snprintf(path, sizeof path, "%s/garbage.db", tmpdir);
  unsigned char junk[8192];
  uint64_t st = 99;
  for (size_t i = 0; i < sizeof junk; i++) {
    st = st * 6364136223846793005ull + 1442695040888963407ull;
    junk[i] = (unsigned char)(st >> 56);
  }
  write_file(path, junk, sizeof junk);
  q4_status s = q4db_open(path, &db);
  CHECK_MSG(s == Q4_ERR_DB, "q4db_open(garbage) gave %s: %s", q4_status_name(s), q4_last_error());
  CHECK(db == NULL);
  CHECK_MSG(has(q4_last_error(), path), "message does not name the path: %s", q4_last_error());
  printf("test_api: garbage database: %s\n", q4_last_error());

  /* a text file */
  snprintf(path, sizeof path, "%s/text.db", tmpdir);
  static const char text[] = "this is not a database, it is a text file that happens to be long enough\n";
  write_file(path, text, sizeof text - 1);
  db = (q4db *)(uintptr_t)0x1;
  CHECK_ERR(q4db_open(path, &db), Q4_ERR_DB, path);
  CHECK(db == NULL);

  /* a valid header followed by junk: SQLite format 3 magic, garbage pages */
  snprintf(path, sizeof path, "%s/badpages.db", tmpdir);
  memcpy(junk, "SQLite format 3", 16);
  write_file(path, junk, sizeof junk);
  db = (q4db *)(uintptr_t)0x1;
  s = q4db_open(path, &db);
  CHECK_MSG(s == Q4_ERR_DB, "q4db_open(bad pages) gave %s: %s", q4_status_name(s), q4_last_error());
  CHECK(db == NULL);
  if (s != Q4_OK) CHECK_MSG(has(q4_last_error(), path), "message does not name the path: %s", q4_last_error());
  q4db_close(db == (q4db *)(uintptr_t)0x1 ? NULL : db);

  /* a directory */
  snprintf(path, sizeof path, "%s/adir.db", tmpdir);
  mkdir(path, 0755);
  db = (q4db *)(uintptr_t)0x1;
  CHECK_ERR(q4db_open(path, &db), Q4_ERR_DB, path);
  CHECK(db == NULL);

  /* bad arguments */
  CHECK(q4db_open(path, NULL) == Q4_ERR_INVALID_ARG);
  CHECK(q4db_open("", &db) == Q4_ERR_INVALID_ARG);
  q4db_close(NULL);

  /* a fresh database opens, and reopens */
  snprintf(path, sizeof path, "%s/fresh.db", tmpdir);
  unlink(path);
  CHECK_OK(q4db_open(path, &db));
  if (db) {
    CHECK(!strcmp(q4db_path(db), path));
    q4db_close(db);
  }
  db = NULL;
  CHECK_OK(q4db_open(path, &db));
  q4db_close(db);

  /* parents are created */
  snprintf(path, sizeof path, "%s/sub/dir/nested.db", tmpdir);
  db = NULL;
  CHECK_OK(q4db_open(path, &db));
  q4db_close(db);
}

/* ---- missing CUDA headers ------------------------------------------------ */

static void test_no_headers(void) {
  /* Load NVRTC with the environment as it is first, so that the bogus
  ** CUDA_HOME below can only affect the header lookup. */
  int major = 0, minor = 0;
  q4_status nv = q4_nvrtc_version(&major, &minor);
  if (nv != Q4_OK) printf("test_api: NVRTC unavailable (%s): %s\n", q4_status_name(nv), q4_last_error());

  char *old_home = getenv("CUDA_HOME") ? strdup(getenv("CUDA_HOME")) : NULL;
  char *old_path = getenv("CUDA_PATH") ? strdup(getenv("CUDA_PATH")) : NULL;

  char inc[4096];
  setenv("CUDA_HOME", "/nonexistent", 1);
  unsetenv("CUDA_PATH");
  CHECK_ERR(q4_cuda_include_dir(inc, sizeof inc), Q4_ERR_NO_HEADERS, "/nonexistent");
  CHECK(inc[0] == '\0');
  CHECK(has(q4_last_error(), "CUDA_HOME"));
  if (nv == Q4_OK) {
    q4_compiled c;
    CHECK_ERR(q4_nvrtc_compile("extern \"C\" __global__ void k() {}\n", "k.cu", 80, &c), Q4_ERR_NO_HEADERS,
              "/nonexistent");
    CHECK(c.cubin == NULL && c.log == NULL);
  }
  /* CUDA_PATH is consulted when CUDA_HOME is unset */
  unsetenv("CUDA_HOME");
  setenv("CUDA_PATH", "/nonexistent/cuda", 1);
  CHECK_ERR(q4_cuda_include_dir(inc, sizeof inc), Q4_ERR_NO_HEADERS, "CUDA_PATH");

  if (old_home) setenv("CUDA_HOME", old_home, 1);
  else unsetenv("CUDA_HOME");
  if (old_path) setenv("CUDA_PATH", old_path, 1);
  else unsetenv("CUDA_PATH");
  free(old_home);
  free(old_path);

  /* restored: the headers are found again */
  CHECK_OK(q4_cuda_include_dir(inc, sizeof inc));
  CHECK(inc[0] != '\0');
  CHECK(q4_cuda_include_dir(NULL, 10) == Q4_ERR_INVALID_ARG);
  CHECK(q4_cuda_include_dir(inc, 0) == Q4_ERR_INVALID_ARG);
  char tiny[4];
  CHECK(q4_cuda_include_dir(tiny, sizeof tiny) != Q4_OK);

  /* compile argument checks */
  q4_compiled c;
  CHECK(q4_nvrtc_compile(NULL, "x", 80, &c) == Q4_ERR_INVALID_ARG);
  CHECK(q4_nvrtc_compile("x", NULL, 80, &c) == Q4_ERR_INVALID_ARG);
  CHECK(q4_nvrtc_compile("x", "", 80, &c) == Q4_ERR_INVALID_ARG);
  CHECK(q4_nvrtc_compile("x", "x", 80, NULL) == Q4_ERR_INVALID_ARG);
  CHECK(q4_nvrtc_compile("x", "x", 0, &c) == Q4_ERR_INVALID_ARG);
  CHECK(q4_nvrtc_compile("x", "x", 61, &c) == Q4_ERR_UNSUPPORTED);
  q4_compiled_free(NULL);
}

int main(void) {
  make_tmpdir("test_api");
  test_create();
  test_weights_check();
  test_check_args();
  test_matmul_null();
  test_status_names();
  test_buckets();
  test_db();
  test_no_headers();
  return q4test_done("test_api");
}
