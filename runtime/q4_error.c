/*
** q4_error.c -- per-thread error messages and the debug log.
*/
#include "q4_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char errbuf[1024];

const char *q4_status_name(q4_status s) {
  switch (s) {
    case Q4_OK: return "Q4_OK";
    case Q4_ERR_INVALID_ARG: return "Q4_ERR_INVALID_ARG";
    case Q4_ERR_UNSUPPORTED: return "Q4_ERR_UNSUPPORTED";
    case Q4_ERR_NO_DRIVER: return "Q4_ERR_NO_DRIVER";
    case Q4_ERR_NO_DEVICE: return "Q4_ERR_NO_DEVICE";
    case Q4_ERR_DEVICE_TOO_OLD: return "Q4_ERR_DEVICE_TOO_OLD";
    case Q4_ERR_NO_HEADERS: return "Q4_ERR_NO_HEADERS";
    case Q4_ERR_NVRTC: return "Q4_ERR_NVRTC";
    case Q4_ERR_CUDA: return "Q4_ERR_CUDA";
    case Q4_ERR_DB: return "Q4_ERR_DB";
    case Q4_ERR_NO_MEMORY: return "Q4_ERR_NO_MEMORY";
    case Q4_ERR_TEMPLATE: return "Q4_ERR_TEMPLATE";
    case Q4_ERR_VERIFY: return "Q4_ERR_VERIFY";
    case Q4_ERR_IO: return "Q4_ERR_IO";
  }
  return "Q4_ERR_UNKNOWN";
}

const char *q4_last_error(void) { return errbuf; }

void q4_err_clear(void) { errbuf[0] = '\0'; }

q4_status q4_err(q4_status s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(errbuf, sizeof errbuf, fmt, ap);
  va_end(ap);
  return s;
}

q4_status q4_err_wrap(q4_status s, const char *fmt, ...) {
  char old[sizeof errbuf];
  memcpy(old, errbuf, sizeof old);
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(errbuf, sizeof errbuf, fmt, ap);
  va_end(ap);
  /* append ": <old message>", cut to fit */
  if (n >= 0 && (size_t)n + 2 < sizeof errbuf) {
    size_t used = (size_t)n;
    memcpy(errbuf + used, ": ", 2);
    used += 2;
    size_t rest = strlen(old);
    if (rest > sizeof errbuf - 1 - used) rest = sizeof errbuf - 1 - used;
    memcpy(errbuf + used, old, rest);
    errbuf[used + rest] = '\0';
  }
  return s;
}

static int log_level(void) {
  static int level = -1;  /* benign race: every thread computes the same value */
  if (level < 0) {
    const char *e = getenv("Q4TUNE_LOG");
    level = !e ? 0 : !strcmp(e, "debug") ? Q4_LOG_DEBUG : !strcmp(e, "info") ? Q4_LOG_INFO : 0;
  }
  return level;
}

void q4_log(int level, const char *fmt, ...) {
  if (level > log_level()) return;
  va_list ap;
  va_start(ap, fmt);
  fputs("q4tune: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}
