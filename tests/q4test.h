/*
** q4test.h -- a tiny assertion kit for the C tests. Each failed CHECK prints
** file:line and the expression; q4test_done() prints "N passed, N failed"
** and returns the exit status.
*/
#ifndef Q4TEST_H
#define Q4TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static inline int q4test_done(const char *name) {
  printf("%s: %d passed, %d failed\n", name, q4test_pass, q4test_fail);
  return q4test_fail ? 1 : 0;
}

#endif
