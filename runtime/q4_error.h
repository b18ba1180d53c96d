/*
** q4_error.h -- status codes plus a per-thread message (internal).
*/
#ifndef Q4_ERROR_H
#define Q4_ERROR_H

#include "q4tune.h"

/* Record a message for status s on this thread and return s, so that a
** failing path reads `return q4_err(Q4_ERR_DB, "cannot open %s", path);`. */
q4_status q4_err(q4_status s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Clear this thread's message (called on entry to public functions). */
void q4_err_clear(void);

/* Prefix this thread's message with context: "loading foo: <old message>". */
q4_status q4_err_wrap(q4_status s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Debug log to stderr when Q4TUNE_LOG=debug (or info for level 1). */
void q4_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define Q4_LOG_INFO 1
#define Q4_LOG_DEBUG 2

#endif
