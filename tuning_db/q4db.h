/*
** q4db.h -- the tuning database (SQLite): devices, variants, cached cubins,
** measurements and winners (internal). Schema: tuning_db/schema.sql,
** embedded into the library at build time and versioned with
** PRAGMA user_version. WAL mode, bound parameters only; every write is its
** own transaction, so an interrupted tuning run loses at most the
** measurement in flight.
**
** A q4db is not thread-safe: callers serialize access.
*/
#ifndef Q4DB_H
#define Q4DB_H

#include <stddef.h>
#include <stdint.h>

#include "q4_types.h"

typedef struct q4db q4db;

/* The default path: $Q4TUNE_DB, else $XDG_CACHE_HOME/q4tune/tuning.db,
** else $HOME/.cache/q4tune/tuning.db. */
q4_status q4db_default_path(char *buf, size_t size);

/* Open or create the database at path (NULL: the default path), creating
** missing parent directories and the schema. A path starting "file:" is a
** SQLite URI (file:/srv/tuning.db?mode=ro, or ?immutable=1 on a read-only
** file system). A database opened read-only (so, or by the file's
** permissions) must already have this build's schema; lookups work and
** every write fails with SQLite's "attempt to write a readonly database".
** Q4_ERR_DB with the path and SQLite's reason if the file is unreadable,
** not a database, corrupt, of a newer schema version or another program's. */
q4_status q4db_open(const char *path, q4db **out);
void q4db_close(q4db *db);
const char *q4db_path(const q4db *db);

typedef struct q4db_device {
  char name[128];
  int cc_major, cc_minor;
  int sms;
  int driver_version;            /* cuDriverGetVersion, e.g. 13000 */
  char nvrtc_version[16];        /* "13.0" */
} q4db_device;

/* Insert or update the device (identity: name, cc, sms); returns its id.
** Read-only: looks it up, id 0 (no winners) if it is not there. */
q4_status q4db_device_id(q4db *db, const q4db_device *d, int64_t *id);

/* Insert the variant if new (identity: template, params, source hash). */
q4_status q4db_variant_id(q4db *db, const q4_variant *v, int64_t *id);

/* Cubin cache, keyed by (source hash, arch, NVRTC version). */
q4_status q4db_cubin_get(q4db *db, const char *hash, int arch,
                         const char *nvrtc_version, void **cubin, size_t *size,
                         int *found);
q4_status q4db_cubin_put(q4db *db, const char *hash, int arch,
                         const char *nvrtc_version, const void *cubin,
                         size_t size, int regs, int smem, int spill_bytes,
                         double compile_ms);

/* One timed (or failed) run of a variant on a shape and M. */
typedef struct q4db_measurement {
  int64_t device_id, variant_id;
  q4_shape shape;
  int m;
  double median_us, min_us, max_us;  /* < 0 when not timed */
  double rel_error;                  /* ||y - ref|| / ||ref||, < 0 if unknown */
  int ok;                            /* 1: verified and timed; 0: rejected */
  char note[256];                    /* why rejected, or "" */
} q4db_measurement;

q4_status q4db_measurement_add(q4db *db, const q4db_measurement *m);
/* found = 1 if this device already has a measurement of this variant on
** this shape and m (so a resumed tuning run can skip it). */
q4_status q4db_measurement_find(q4db *db, int64_t device_id, int64_t variant_id,
                                const q4_shape *s, int m,
                                q4db_measurement *out, int *found);

/* The winner of (device, shape, M bucket). */
q4_status q4db_winner_set(q4db *db, int64_t device_id, const q4_shape *s,
                          int m_bucket, int64_t variant_id, double median_us);
/* Chooses the winner of (device, shape, M bucket) from the table and stores
** it, in one write transaction: the fastest fully timed measurement (ok,
** with no note: the tuner's screened rows carry one) at m = m_bucket among
** the count variants in ids (the current templates' candidates), ties to
** the smaller id. So runs that tune the same shape at once agree on the
** fastest of all their measurements, whichever stores last. found = 0, and
** nothing stored, if none of them has such a measurement. */
q4_status q4db_winner_pick(q4db *db, int64_t device_id, const q4_shape *s, int m_bucket,
                           const int64_t *ids, int count, int64_t *variant_id,
                           double *median_us, int *found);
/* Looks the winner up; fills tmpl, params and hash of v (not source). */
q4_status q4db_winner_get(q4db *db, int64_t device_id, const q4_shape *s,
                          int m_bucket, q4_variant *v, double *median_us,
                          int *found);

/* Rows of the `best` view, for `q4tune show`. */
typedef struct q4db_winner_row {
  char device[128];
  int cc_major, cc_minor;
  q4_shape shape;
  int m;
  char tmpl[Q4_NAME_MAX];
  char params[Q4_PARAMS_MAX];
  double median_us;
  int regs;  /* -1 if unknown */
} q4db_winner_row;

/* Calls cb for each winner (device NULL or "" = every device), ordered by
** device, format, n, k, group size, m. A non-zero return from cb stops. */
q4_status q4db_winners(q4db *db, const char *device,
                       int (*cb)(void *ctx, const q4db_winner_row *row),
                       void *ctx);

#endif
