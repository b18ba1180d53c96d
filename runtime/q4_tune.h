/*
** q4_tune.h -- the tuner (internal; the q4tune command's `tune`): for one
** weight shape, enumerate every variant of every template, compile them in
** parallel, verify each on fresh random data, time the survivors and store
** every measurement and the winner of each M bucket.
*/
#ifndef Q4_TUNE_H
#define Q4_TUNE_H

#include <stdint.h>

#include "q4_handle.h"

typedef enum q4_tune_phase {
  Q4_TUNE_COMPILE,   /* one variant compiled (or failed) */
  Q4_TUNE_MEASURE,   /* one variant verified and timed (or rejected) */
  Q4_TUNE_WINNER     /* the winner of one M bucket */
} q4_tune_phase;

typedef struct q4_tune_event {
  q4_tune_phase phase;
  const q4_shape *shape;
  int m;                 /* MEASURE, WINNER */
  int done, total;       /* progress within the phase for this shape */
  const q4_variant *variant;
  int skipped;           /* MEASURE: found in the database, not re-run */
  int ok;
  double median_us, rel_error;
  const char *note;      /* why rejected */
} q4_tune_event;

typedef struct q4_tune_options {
  const int *m;          /* M values; each is tuned as its bucket */
  int m_count;
  int threads;           /* compile threads; 0: one per CPU */
  int samples;           /* timed samples per measurement (at least 20) */
  uint64_t seed;
  int force;             /* re-measure what the database already has */
  void (*progress)(void *ctx, const q4_tune_event *ev);
  void *ctx;
} q4_tune_options;

q4_status q4_tune_shape(q4_handle *h, const q4_shape *s, const q4_tune_options *o);

#endif
