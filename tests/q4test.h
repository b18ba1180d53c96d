/*
** q4test.h -- a tiny assertion kit for the C tests. Each failed CHECK prints
** file:line and the expression; q4test_done() prints "N passed, N failed"
** and returns the exit status.
*/
#ifndef Q4TEST_H
#define Q4TEST_H

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "q4tune.h"

static int q4test_pass, q4test_fail;

#define CHECK(cond) do { \
    if (cond) q4test_pass++; \
    else { q4test_fail++; fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); } \
  } while (0)

#define CHECK_MSG(cond, ...) do { \
    if (cond) q4test_pass++; \
    else { q4test_fail++; fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
           fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } \
  } while (0)

/* Status check that prints the library's message on failure. */
#define CHECK_OK(expr) do { \
    q4_status s_ = (expr); \
    CHECK_MSG(s_ == Q4_OK, "%s: %s", q4_status_name(s_), q4_last_error()); \
  } while (0)

/* Status and a part of the message: CHECK_ERR(call, Q4_ERR_X, "words"). */
#define CHECK_ERR(expr, want, part) do { \
    q4_status got_ = (expr); \
    const char *msg_ = q4_last_error(); \
    CHECK_MSG(got_ == (want) && strstr(msg_, part), "%s -> %s \"%s\"; want %s with \"%s\"", #expr, \
              q4_status_name(got_), msg_, q4_status_name(want), part); \
  } while (0)

/* A test's own scratch folder: $Q4TUNE_TEST_TMP/<name>.<pid> (set by
** ctest), else a fresh one under /tmp. */
static char tmpdir[4096];

static inline void make_tmpdir(const char *name) {
  const char *t = getenv("Q4TUNE_TEST_TMP");
  if (t && *t) {
    snprintf(tmpdir, sizeof tmpdir, "%s/%s.%d", t, name, (int)getpid());
    mkdir(t, 0755);
    if (mkdir(tmpdir, 0755) == 0 || errno == EEXIST) return;
  }
  snprintf(tmpdir, sizeof tmpdir, "/tmp/q4test_%s.XXXXXX", name);
  if (!mkdtemp(tmpdir)) {
    perror("mkdtemp");
    exit(1);
  }
}

static inline int q4test_remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  return remove(path);
}

/* Leave the files behind only when something failed. */
static inline void remove_tmpdir(void) {
  if (!q4test_fail) nftw(tmpdir, q4test_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A handle on GPU 0 with its database, q4test_db, in the test's scratch
** folder (call make_tmpdir first), or NULL after printing "<name>:
** skipped: no GPU". */
static char q4test_db[sizeof tmpdir + 16];

static inline q4_handle *q4test_gpu(const char *name) {
  snprintf(q4test_db, sizeof q4test_db, "%s/tuning.db", tmpdir);
  q4_handle *h = NULL;
  const q4_status s = q4_create(0, q4test_db, &h);
  if (s == Q4_OK) return h;
  printf("%s: skipped: no GPU (%s: %s)\n", name, q4_status_name(s), q4_last_error());
  return NULL;
}

static inline int q4test_done(const char *name) {
  printf("%s: %d passed, %d failed\n", name, q4test_pass, q4test_fail);
  return q4test_fail ? 1 : 0;
}

#endif
