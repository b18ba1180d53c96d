/*
** q4db.c -- the tuning database on SQLite (see q4db.h, tuning_db/schema.sql
** and docs/DATABASE.md).
**
** Every statement but the ad-hoc ones is prepared once per connection and
** kept in db->stmt[]; query() prepares, binds and steps it, and every path
** resets it afterwards, so that no statement holds a read transaction (and
** with it an old WAL snapshot) between calls. Writes run inside
** BEGIN IMMEDIATE ... COMMIT: the write lock is taken up front, so two
** tuning processes wait on each other (busy_timeout) instead of failing
** with a lock-upgrade deadlock.
*/
#include "q4db.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <sqlite3.h>

#include "q4_embed.h"
#include "q4_error.h"

#define SCHEMA_VERSION 2
#define BUSY_TIMEOUT_MS 10000

/* The cached statements. */
enum {
  Q_DEVICE_UPSERT,
  Q_DEVICE_FIND,
  Q_VARIANT_FIND,
  Q_VARIANT_INSERT,
  Q_CUBIN_GET,
  Q_CUBIN_PUT,
  Q_MEAS_ADD,
  Q_MEAS_FIND,
  Q_WINNER_SET,
  Q_WINNER_PICK,
  Q_WINNER_GET,
  Q_COUNT
};

/* Setting a winner replaces the one stored for the same problem and bucket. */
#define WINNER_UPSERT                                                    \
  " ON CONFLICT(device_id, format, n, k, group_size, flags, m_bucket)"  \
  " DO UPDATE SET variant_id = excluded.variant_id,"                    \
  " median_us = excluded.median_us, chosen_at = datetime('now')"

static const char *const sql_text[Q_COUNT] = {
  [Q_DEVICE_UPSERT] =
    "INSERT INTO devices(name, cc_major, cc_minor, sms, driver_version,"
    " nvrtc_version) VALUES(?1, ?2, ?3, ?4, ?5, ?6)"
    " ON CONFLICT(name, cc_major, cc_minor, sms) DO UPDATE SET"
    " driver_version = excluded.driver_version,"
    " nvrtc_version = excluded.nvrtc_version, last_seen = datetime('now')"
    " RETURNING id",
  [Q_DEVICE_FIND] =
    "SELECT id FROM devices WHERE name = ?1 AND cc_major = ?2 AND cc_minor = ?3 AND sms = ?4",
  [Q_VARIANT_FIND] =
    "SELECT id FROM variants"
    " WHERE template = ?1 AND params = ?2 AND source_hash = ?3",
  [Q_VARIANT_INSERT] =
    "INSERT OR IGNORE INTO variants(template, params, source_hash)"
    " VALUES(?1, ?2, ?3)",
  [Q_CUBIN_GET] =
    "SELECT cubin FROM cubins"
    " WHERE source_hash = ?1 AND arch = ?2 AND nvrtc_version = ?3",
  [Q_CUBIN_PUT] =
    "INSERT OR REPLACE INTO cubins(source_hash, arch, nvrtc_version, cubin,"
    " size, regs, smem, spill_bytes, compile_ms)"
    " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
  /* An upsert rather than INSERT OR REPLACE keeps the row's id stable. */
  [Q_MEAS_ADD] =
    "INSERT INTO measurements(device_id, variant_id, format, n, k, group_size,"
    " m, median_us, min_us, max_us, rel_error, ok, note, flags)"
    " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
    " ON CONFLICT(device_id, variant_id, format, n, k, group_size, flags, m)"
    " DO UPDATE SET median_us = excluded.median_us,"
    " min_us = excluded.min_us, max_us = excluded.max_us,"
    " rel_error = excluded.rel_error, ok = excluded.ok, note = excluded.note,"
    " measured_at = datetime('now')",
  [Q_MEAS_FIND] =
    "SELECT median_us, min_us, max_us, rel_error, ok, note FROM measurements"
    " WHERE device_id = ?1 AND variant_id = ?2 AND format = ?3 AND n = ?4"
    " AND k = ?5 AND group_size = ?6 AND m = ?7 AND flags = ?8",
  [Q_WINNER_SET] =
    "INSERT INTO winners(device_id, format, n, k, group_size, m_bucket,"
    " variant_id, median_us, flags) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
    WINNER_UPSERT,
  /* The fastest fully timed measurement of the candidates (?8: a JSON array
  ** of variant ids) becomes the winner, ties to the older variant. */
  [Q_WINNER_PICK] =
    "INSERT INTO winners(device_id, format, n, k, group_size, m_bucket,"
    " variant_id, median_us, flags)"
    " SELECT device_id, format, n, k, group_size, m, variant_id, median_us, flags"
    " FROM measurements WHERE device_id = ?1 AND format = ?2 AND n = ?3 AND k = ?4"
    " AND group_size = ?5 AND m = ?6 AND flags = ?7 AND ok = 1 AND note = ''"
    " AND median_us IS NOT NULL AND variant_id IN (SELECT value FROM json_each(?8))"
    " ORDER BY median_us, variant_id LIMIT 1"
    WINNER_UPSERT " RETURNING variant_id, median_us",
  [Q_WINNER_GET] =
    "SELECT v.template, v.params, v.source_hash, w.median_us"
    " FROM winners w JOIN variants v ON v.id = w.variant_id"
    " WHERE w.device_id = ?1 AND w.format = ?2 AND w.n = ?3 AND w.k = ?4"
    " AND w.group_size = ?5 AND w.m_bucket = ?6 AND w.flags = ?7",
};

struct q4db {
  sqlite3 *h;
  char *path;
  int readonly;                 /* opened read-only: winners and cubins are read, nothing written */
  sqlite3_stmt *stmt[Q_COUNT];  /* prepared on first use */
};

/* ---- errors and argument checks ------------------------------------------ */

/* Q4_ERR_DB naming the file, what was being done, and SQLite's reason. */
static q4_status db_fail(q4db *db, const char *what) {
  return q4_err(Q4_ERR_DB, "tuning database %s: %s: %s", db->path, what,
                sqlite3_errmsg(db->h));
}

#define BAD_ARG(fn, what) q4_err(Q4_ERR_INVALID_ARG, "%s: %s", fn, what)

/* A fixed-size string field is valid when it is NUL-terminated inside its
** array (and, if required, non-empty). */
static int text_ok(const char *s, size_t cap, int nonempty) {
  size_t n = strnlen(s, cap);
  return n < cap && (!nonempty || n > 0);
}

/* Checks a shape and gives its key: group_size 0 means per-channel, stored
** as k so that both spellings name the same problem. */
static q4_status shape_key(const char *fn, const q4_shape *s, q4_shape *key) {
  memset(key, 0, sizeof *key);
  if (!s) return BAD_ARG(fn, "shape is NULL");
  if (s->format != Q4_FORMAT_Q4 && s->format != Q4_FORMAT_Q4S)
    return q4_err(Q4_ERR_INVALID_ARG, "%s: unknown format %d", fn, (int)s->format);
  if (s->n <= 0 || s->k <= 0 || s->group_size < 0)
    return q4_err(Q4_ERR_INVALID_ARG, "%s: bad shape n=%d k=%d group_size=%d",
                  fn, s->n, s->k, s->group_size);
  if (s->flags < 0 || s->flags > (Q4_SHAPE_SYMMETRIC | Q4_SHAPE_ACT_ORDER))
    return q4_err(Q4_ERR_INVALID_ARG, "%s: bad shape flags %d", fn, s->flags);
  *key = *s;
  if (key->group_size == 0) key->group_size = key->k;
  return Q4_OK;
}

/* ---- statements ------------------------------------------------------------ */

/* Binds args to st by a type string, one letter per parameter:
**   i int   I int64_t   d double   D double, NULL if negative ("not measured")
**   t const char * (NULL binds NULL)   b const void *, size_t (a blob) */
static q4_status vbind(q4db *db, sqlite3_stmt *st, const char *types,
                       va_list ap) {
  for (int i = 1; *types; types++, i++) {
    int rc = SQLITE_OK;
    switch (*types) {
      case 'i': rc = sqlite3_bind_int(st, i, va_arg(ap, int)); break;
      case 'I': rc = sqlite3_bind_int64(st, i, va_arg(ap, int64_t)); break;
      case 'd': rc = sqlite3_bind_double(st, i, va_arg(ap, double)); break;
      case 'D': {
        double v = va_arg(ap, double);
        rc = v < 0 ? sqlite3_bind_null(st, i) : sqlite3_bind_double(st, i, v);
        break;
      }
      case 't': rc = sqlite3_bind_text(st, i, va_arg(ap, const char *), -1,
                                       SQLITE_TRANSIENT); break;
      case 'b': {
        const void *p = va_arg(ap, const void *);
        size_t n = va_arg(ap, size_t);
        rc = sqlite3_bind_blob64(st, i, p, n, SQLITE_TRANSIENT);
        break;
      }
      default: rc = SQLITE_MISUSE; break;
    }
    if (rc != SQLITE_OK) return db_fail(db, "binding a parameter");
  }
  return Q4_OK;
}

/* Prepares statement id (once), binds args and steps it once. *row is 1 when
** a row is ready: the caller reads it and calls done(). Otherwise (no row,
** or an error) the statement is already reset. row may be NULL for writes. */
static q4_status query(q4db *db, int id, int *row, const char *types, ...) {
  sqlite3_stmt **st = &db->stmt[id];
  if (row) *row = 0;
  if (!*st && sqlite3_prepare_v3(db->h, sql_text[id], -1,
                                 SQLITE_PREPARE_PERSISTENT, st, NULL) != SQLITE_OK)
    return db_fail(db, "preparing a statement");
  va_list ap;
  va_start(ap, types);
  q4_status s = vbind(db, *st, types, ap);
  va_end(ap);
  int rc = s == Q4_OK ? sqlite3_step(*st) : SQLITE_DONE;
  if (rc == SQLITE_ROW && row) {
    *row = 1;
    return Q4_OK;
  }
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) s = db_fail(db, "query failed");
  sqlite3_reset(*st);
  sqlite3_clear_bindings(*st);  /* drop the copies of large blobs */
  return s;
}

/* Ends the use of statement id after its row was read. */
static void done(q4db *db, int id) {
  sqlite3_reset(db->stmt[id]);
  sqlite3_clear_bindings(db->stmt[id]);
}

/* Copies text column col into buf, truncating; NULL reads as "". */
static void column_text(sqlite3_stmt *st, int col, char *buf, size_t size) {
  const unsigned char *t = sqlite3_column_text(st, col);
  snprintf(buf, size, "%s", t ? (const char *)t : "");
}

/* A REAL column that may be NULL ("not measured"): NULL reads as -1. */
static double column_time(sqlite3_stmt *st, int col) {
  return sqlite3_column_type(st, col) == SQLITE_NULL
             ? -1.0 : sqlite3_column_double(st, col);
}

/* ---- transactions ------------------------------------------------------------ */

static q4_status begin(q4db *db) {
  if (sqlite3_exec(db->h, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
    return db_fail(db, "cannot start a write transaction");
  return Q4_OK;
}

/* Commits when s is Q4_OK, else rolls back keeping s's message. */
static q4_status finish(q4db *db, q4_status s) {
  if (s == Q4_OK) {
    if (sqlite3_exec(db->h, "COMMIT", NULL, NULL, NULL) == SQLITE_OK)
      return Q4_OK;
    s = db_fail(db, "commit failed");
  }
  /* SQLite may have rolled back already (e.g. SQLITE_FULL): then this fails
  ** harmlessly with "no transaction is active". */
  sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
  return s;
}

/* ---- opening ---------------------------------------------------------------- */

q4_status q4db_default_path(char *buf, size_t size) {
  if (!buf || size == 0) return BAD_ARG("q4db_default_path", "no buffer");
  const char *env = getenv("Q4TUNE_DB");
  const char *xdg = getenv("XDG_CACHE_HOME");
  const char *home = getenv("HOME");
  int n;
  if (env && *env)
    n = snprintf(buf, size, "%s", env);
  else if (xdg && xdg[0] == '/')  /* the XDG spec: ignore relative paths */
    n = snprintf(buf, size, "%s/q4tune/tuning.db", xdg);
  else if (home && *home)
    n = snprintf(buf, size, "%s/.cache/q4tune/tuning.db", home);
  else {
    buf[0] = '\0';
    return BAD_ARG("q4db_default_path",
                   "none of Q4TUNE_DB, XDG_CACHE_HOME and HOME is set");
  }
  if (n < 0 || (size_t)n >= size) {
    buf[0] = '\0';
    return q4_err(Q4_ERR_INVALID_ARG,
                  "q4db_default_path: buffer of %zu bytes is too small", size);
  }
  return Q4_OK;
}

/* mkdir -p of the directories leading to path (not path itself). */
static q4_status make_parents(const char *path) {
  char dir[PATH_MAX];
  if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir)
    return q4_err(Q4_ERR_DB, "tuning database %s: path too long", path);
  for (char *p = dir + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
      return q4_err(Q4_ERR_DB, "tuning database %s: cannot create directory %s: %s",
                    path, dir, strerror(errno));
    *p = '/';
  }
  return Q4_OK;
}

/* Reads an integer pragma or single-value query. */
static q4_status query_int(q4db *db, const char *sql, int *value) {
  sqlite3_stmt *st;
  *value = 0;
  if (sqlite3_prepare_v2(db->h, sql, -1, &st, NULL) != SQLITE_OK)
    return db_fail(db, "cannot read the database");
  int rc = sqlite3_step(st);
  *value = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
  q4_status s = rc == SQLITE_ROW || rc == SQLITE_DONE
                    ? Q4_OK : db_fail(db, "cannot read the database");
  sqlite3_finalize(st);
  return s;
}

/* The embedded scripts (CMakeLists.txt keeps this order). */
enum { SQL_SCHEMA, SQL_MIGRATE_1_2, SQL_VIEWS, SQL_COUNT };

/* Runs a script and then views.sql in one transaction, if the file is
** still at version `from` once the write lock is held: another process may
** have done the work meanwhile. An interrupted run leaves the file as it
** was. */
static q4_status apply(q4db *db, int from, int script, const char *what) {
  if (q4_schema_count < SQL_COUNT)
    return q4_err(Q4_ERR_DB, "tuning database %s: the schema scripts are not built in", db->path);
  q4_status s = begin(db);
  if (s != Q4_OK) return s;
  int version;
  s = query_int(db, "PRAGMA user_version", &version);
  if (s == Q4_OK && version == from &&
      (sqlite3_exec(db->h, q4_schema[script].data, NULL, NULL, NULL) != SQLITE_OK ||
       sqlite3_exec(db->h, q4_schema[SQL_VIEWS].data, NULL, NULL, NULL) != SQLITE_OK))
    s = db_fail(db, what);
  return finish(db, s);
}

static q4_status create_schema(q4db *db) {
  return apply(db, 0, SQL_SCHEMA, "cannot create the schema");
}

/* tuning_db/migrate_1_2.sql: measurements and winners gain `flags`. */
static q4_status migrate(q4db *db, int from) {
  if (from != 1) return q4_err(Q4_ERR_DB, "tuning database %s: no migration from schema %d", db->path, from);
  /* the renames must not rewrite (or check) views that name the tables */
  sqlite3_exec(db->h, "PRAGMA legacy_alter_table = ON", NULL, NULL, NULL);
  q4_status s = apply(db, 1, SQL_MIGRATE_1_2, "cannot migrate the schema from version 1 to 2");
  sqlite3_exec(db->h, "PRAGMA legacy_alter_table = OFF", NULL, NULL, NULL);
  if (s == Q4_OK) q4_log(Q4_LOG_INFO, "tuning database %s: migrated schema 1 -> 2", db->path);
  return s;
}

/* Whether the file's views are views.sql's, statement for statement: SQLite
** keeps each CREATE VIEW's text (without its ';') in sqlite_master. 1 yes,
** 0 no, -1 the check itself failed. */
static int views_current(q4db *db) {
  const char *script = q4_schema[SQL_VIEWS].data;
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db->h, "SELECT count(*) FROM sqlite_master WHERE type = 'view' AND sql = ?1", -1, &st,
                         NULL) != SQLITE_OK)
    return -1;
  int current = 1;
  for (const char *p = strstr(script, "CREATE VIEW"); p && current == 1; p = strstr(p + 1, "CREATE VIEW")) {
    /* the statement: up to the first ';' that completes it */
    const char *end = p;
    char *text = NULL;
    while ((end = strchr(end, ';'))) {
      free(text);
      text = strndup(p, (size_t)(end - p + 1));
      if (!text || sqlite3_complete(text)) break;
      end++;
    }
    if (!end || !text) {
      current = -1;
    } else {
      text[end - p] = 0;  /* without the ';' */
      sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
      current = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) == 1 : -1;
      sqlite3_reset(st);
      sqlite3_clear_bindings(st);
    }
    free(text);
  }
  sqlite3_finalize(st);
  return current;
}

/* A file of this schema version made by an older build gets this build's
** views (a view's columns or formulas may have changed, not the tables).
** Not fatal: a file this process cannot write keeps the views it has. */
static void refresh_views(q4db *db) {
  if (views_current(db) != 0) return;
  q4_status s = begin(db);
  if (s != Q4_OK) {
    q4_log(Q4_LOG_INFO, "%s (the views stay as they are)", q4_last_error());
    return;
  }
  if (views_current(db) == 0 && sqlite3_exec(db->h, q4_schema[SQL_VIEWS].data, NULL, NULL, NULL) != SQLITE_OK)
    s = db_fail(db, "cannot update the views");
  s = finish(db, s);
  if (s == Q4_OK) q4_log(Q4_LOG_INFO, "tuning database %s: views updated", db->path);
  else q4_log(Q4_LOG_INFO, "%s (the views stay as they are)", q4_last_error());
}

/* Sets connection options and checks the file is a usable database. */
static q4_status setup(q4db *db) {
  sqlite3_extended_result_codes(db->h, 1);
  sqlite3_busy_timeout(db->h, BUSY_TIMEOUT_MS);
  if (sqlite3_exec(db->h, "PRAGMA foreign_keys = ON", NULL, NULL, NULL) != SQLITE_OK)
    return db_fail(db, "cannot enable foreign keys");

  /* The first statement that reads the file: a file that is not a database
  ** fails here with SQLite's "file is not a database". Reading the schema
  ** parses every page of sqlite_master: damage to the header or the schema
  ** shows up now rather than in the middle of a run. (PRAGMA quick_check
  ** would read every page, too slow for a cache of cubins that is opened by
  ** every q4_create.) A file refused here is left as it was: nothing below
  ** has written to it yet. */
  int count = 0, version = 0;
  q4_status s = query_int(db, "SELECT count(*) FROM sqlite_master", &count);
  if (s == Q4_OK) s = query_int(db, "PRAGMA user_version", &version);
  if (s != Q4_OK) return s;
  if (version > SCHEMA_VERSION)
    return q4_err(Q4_ERR_DB,
                  "tuning database %s: created by a newer q4tune (schema "
                  "version %d, this build knows %d)", db->path, version,
                  SCHEMA_VERSION);
  /* The schema and its version are written in one transaction, so tables
  ** without a version are some other program's. */
  if (version == 0 && count > 0)
    return q4_err(Q4_ERR_DB,
                  "tuning database %s: a SQLite database of another program "
                  "(%d schema objects, no q4tune schema version); give q4tune "
                  "a file of its own", db->path, count);

  /* A file the process may not write (its permissions, or a URI with
  ** mode=ro or immutable=1) serves lookups as it is. */
  db->readonly = sqlite3_db_readonly(db->h, "main") == 1;
  if (db->readonly) {
    if (version != SCHEMA_VERSION)
      return q4_err(Q4_ERR_DB, "tuning database %s: read-only, and %s", db->path,
                    version ? "its schema needs migrating to this build's, a write" : "holds no q4tune schema");
    q4_log(Q4_LOG_INFO, "tuning database %s: read-only", db->path);
    return Q4_OK;
  }

  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db->h, "PRAGMA journal_mode = WAL", -1, &st, NULL) != SQLITE_OK)
    return db_fail(db, "cannot open");
  int rc = sqlite3_step(st);
  if (rc != SQLITE_ROW) {
    s = db_fail(db, "cannot open");
    sqlite3_finalize(st);
    return s;
  }
  const char *mode = (const char *)sqlite3_column_text(st, 0);
  if (!mode || strcmp(mode, "wal") != 0)  /* e.g. ":memory:", or no mmap */
    q4_log(Q4_LOG_INFO, "tuning database %s: journal mode %s, not WAL",
           db->path, mode ? mode : "?");
  sqlite3_finalize(st);

  if (version == 0) return create_schema(db);
  if (version == 1) return migrate(db, 1);
  if (q4_schema_count >= SQL_COUNT) refresh_views(db);
  return Q4_OK;
}

q4_status q4db_open(const char *path, q4db **out) {
  if (!out) return BAD_ARG("q4db_open", "out is NULL");
  *out = NULL;
  char defpath[PATH_MAX];
  if (!path) {
    q4_status s = q4db_default_path(defpath, sizeof defpath);
    if (s != Q4_OK) return s;
    path = defpath;
  }
  if (!*path) return BAD_ARG("q4db_open", "empty path");

  /* A "file:" URI goes to SQLite as it is (file:/srv/tuning.db?mode=ro). */
  const int uri = !strncmp(path, "file:", 5);
  q4_status s = uri ? Q4_OK : make_parents(path);
  if (s != Q4_OK) return s;
  /* SQLite would open a directory read-only and fail only at first read. */
  struct stat sb;
  if (!uri && stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
    return q4_err(Q4_ERR_DB, "tuning database %s: is a directory", path);

  q4db *db = calloc(1, sizeof *db);
  if (!db || !(db->path = strdup(path))) {
    free(db);
    return q4_err(Q4_ERR_NO_MEMORY, "tuning database %s: out of memory", path);
  }
  int rc = sqlite3_open_v2(path, &db->h,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | (uri ? SQLITE_OPEN_URI : 0), NULL);
  if (rc != SQLITE_OK) {
    /* SQLite's "unable to open database file" does not say why; errno does. */
    int err = db->h ? sqlite3_system_errno(db->h) : 0;
    s = q4_err(Q4_ERR_DB, "tuning database %s: cannot open: %s%s%s%s", path,
               db->h ? sqlite3_errmsg(db->h) : sqlite3_errstr(rc),
               err ? " (" : "", err ? strerror(err) : "", err ? ")" : "");
  } else {
    s = setup(db);
  }
  if (s != Q4_OK) {
    q4db_close(db);
    return s;
  }
  *out = db;
  return Q4_OK;
}

void q4db_close(q4db *db) {
  if (!db) return;
  for (int i = 0; i < Q_COUNT; i++) sqlite3_finalize(db->stmt[i]);
  sqlite3_close_v2(db->h);  /* NULL is a no-op */
  free(db->path);
  free(db);
}

const char *q4db_path(const q4db *db) { return db ? db->path : ""; }

/* ---- devices and variants --------------------------------------------------- */

q4_status q4db_device_id(q4db *db, const q4db_device *d, int64_t *id) {
  if (!db || !d || !id) return BAD_ARG("q4db_device_id", "NULL argument");
  if (!text_ok(d->name, sizeof d->name, 1) ||
      !text_ok(d->nvrtc_version, sizeof d->nvrtc_version, 0))
    return BAD_ARG("q4db_device_id", "device name empty or not terminated");
  int row;
  if (db->readonly) {  /* looked up, not added: 0 if this GPU was never tuned here */
    *id = 0;
    q4_status s = query(db, Q_DEVICE_FIND, &row, "tiii", d->name, d->cc_major, d->cc_minor, d->sms);
    if (s == Q4_OK && row) {
      *id = sqlite3_column_int64(db->stmt[Q_DEVICE_FIND], 0);
      done(db, Q_DEVICE_FIND);
    }
    return s;
  }
  q4_status s = begin(db);
  if (s != Q4_OK) return s;
  s = query(db, Q_DEVICE_UPSERT, &row, "tiiiit", d->name, d->cc_major,
            d->cc_minor, d->sms, d->driver_version, d->nvrtc_version);
  if (s == Q4_OK && row) {
    *id = sqlite3_column_int64(db->stmt[Q_DEVICE_UPSERT], 0);
    done(db, Q_DEVICE_UPSERT);
  } else if (s == Q4_OK) {
    s = q4_err(Q4_ERR_DB, "tuning database %s: device upsert gave no id", db->path);
  }
  return finish(db, s);
}

/* Looks the variant up; *id = 0 if it is not there. */
static q4_status variant_find(q4db *db, const q4_variant *v, int64_t *id) {
  int row;
  q4_status s = query(db, Q_VARIANT_FIND, &row, "ttt", v->tmpl, v->params, v->hash);
  *id = 0;
  if (s == Q4_OK && row) {
    *id = sqlite3_column_int64(db->stmt[Q_VARIANT_FIND], 0);
    done(db, Q_VARIANT_FIND);
  }
  return s;
}

q4_status q4db_variant_id(q4db *db, const q4_variant *v, int64_t *id) {
  if (!db || !v || !id) return BAD_ARG("q4db_variant_id", "NULL argument");
  if (!text_ok(v->tmpl, sizeof v->tmpl, 1) || !text_ok(v->params, sizeof v->params, 0) ||
      !text_ok(v->hash, sizeof v->hash, 0))
    return BAD_ARG("q4db_variant_id", "template name empty or a field not terminated");
  /* Known variants (the usual case on a resumed run) need no write lock. */
  q4_status s = variant_find(db, v, id);
  if (s != Q4_OK || *id) return s;
  s = begin(db);
  if (s != Q4_OK) return s;
  s = query(db, Q_VARIANT_INSERT, NULL, "ttt", v->tmpl, v->params, v->hash);
  if (s == Q4_OK) s = variant_find(db, v, id);
  if (s == Q4_OK && !*id)
    s = q4_err(Q4_ERR_DB, "tuning database %s: variant insert gave no id", db->path);
  return finish(db, s);
}

/* ---- cubins -------------------------------------------------------------------- */

q4_status q4db_cubin_get(q4db *db, const char *hash, int arch,
                         const char *nvrtc_version, void **cubin, size_t *size,
                         int *found) {
  if (!db || !hash || !nvrtc_version || !cubin || !size || !found)
    return BAD_ARG("q4db_cubin_get", "NULL argument");
  *cubin = NULL;
  *size = 0;
  *found = 0;
  int row;
  q4_status s = query(db, Q_CUBIN_GET, &row, "tit", hash, arch, nvrtc_version);
  if (s != Q4_OK || !row) return s;
  sqlite3_stmt *st = db->stmt[Q_CUBIN_GET];
  const void *blob = sqlite3_column_blob(st, 0);
  size_t n = (size_t)sqlite3_column_bytes(st, 0);
  void *copy = malloc(n ? n : 1);
  if (!copy) {
    s = q4_err(Q4_ERR_NO_MEMORY, "tuning database %s: no memory for a cubin of %zu bytes",
               db->path, n);
  } else {
    if (n) memcpy(copy, blob, n);
    *cubin = copy;
    *size = n;
    *found = 1;
  }
  done(db, Q_CUBIN_GET);
  return s;
}

q4_status q4db_cubin_put(q4db *db, const char *hash, int arch,
                         const char *nvrtc_version, const void *cubin,
                         size_t size, int regs, int smem, int spill_bytes,
                         double compile_ms) {
  if (!db || !hash || !nvrtc_version || !cubin)
    return BAD_ARG("q4db_cubin_put", "NULL argument");
  if (!*hash || size == 0 || size > INT_MAX)
    return q4_err(Q4_ERR_INVALID_ARG, "q4db_cubin_put: empty hash or bad size %zu", size);
  q4_status s = begin(db);
  if (s != Q4_OK) return s;
  s = query(db, Q_CUBIN_PUT, NULL, "titbIiiid", hash, arch, nvrtc_version,
            cubin, size, (int64_t)size, regs, smem, spill_bytes, compile_ms);
  return finish(db, s);
}

/* ---- measurements -------------------------------------------------------------- */

q4_status q4db_measurement_add(q4db *db, const q4db_measurement *m) {
  if (!db || !m) return BAD_ARG("q4db_measurement_add", "NULL argument");
  q4_shape key;
  q4_status s = shape_key("q4db_measurement_add", &m->shape, &key);
  if (s != Q4_OK) return s;
  if (m->device_id <= 0 || m->variant_id <= 0 || m->m <= 0 ||
      !text_ok(m->note, sizeof m->note, 0))
    return q4_err(Q4_ERR_INVALID_ARG,
                  "q4db_measurement_add: bad device id, variant id, m=%d or note",
                  m->m);
  s = begin(db);
  if (s != Q4_OK) return s;
  s = query(db, Q_MEAS_ADD, NULL, "IItiiiiDDDDiti", m->device_id, m->variant_id,
            q4_format_name(key.format), key.n, key.k, key.group_size, m->m,
            m->median_us, m->min_us, m->max_us, m->rel_error, m->ok ? 1 : 0,
            m->note, key.flags);
  return finish(db, s);
}

q4_status q4db_measurement_find(q4db *db, int64_t device_id, int64_t variant_id,
                                const q4_shape *s, int m,
                                q4db_measurement *out, int *found) {
  if (!db || !out || !found) return BAD_ARG("q4db_measurement_find", "NULL argument");
  *found = 0;
  q4_shape key;
  q4_status st = shape_key("q4db_measurement_find", s, &key);
  if (st != Q4_OK) return st;
  int row;
  st = query(db, Q_MEAS_FIND, &row, "IItiiiii", device_id, variant_id,
             q4_format_name(key.format), key.n, key.k, key.group_size, m, key.flags);
  if (st != Q4_OK || !row) return st;
  sqlite3_stmt *q = db->stmt[Q_MEAS_FIND];
  memset(out, 0, sizeof *out);
  out->device_id = device_id;
  out->variant_id = variant_id;
  out->shape = key;
  out->m = m;
  out->median_us = column_time(q, 0);
  out->min_us = column_time(q, 1);
  out->max_us = column_time(q, 2);
  out->rel_error = column_time(q, 3);
  out->ok = sqlite3_column_int(q, 4);
  column_text(q, 5, out->note, sizeof out->note);
  *found = 1;
  done(db, Q_MEAS_FIND);
  return Q4_OK;
}

/* ---- winners -------------------------------------------------------------------- */

q4_status q4db_winner_set(q4db *db, int64_t device_id, const q4_shape *s,
                          int m_bucket, int64_t variant_id, double median_us) {
  if (!db) return BAD_ARG("q4db_winner_set", "db is NULL");
  q4_shape key;
  q4_status st = shape_key("q4db_winner_set", s, &key);
  if (st != Q4_OK) return st;
  if (device_id <= 0 || variant_id <= 0 || m_bucket <= 0)
    return q4_err(Q4_ERR_INVALID_ARG,
                  "q4db_winner_set: bad device id, variant id or m_bucket=%d", m_bucket);
  st = begin(db);
  if (st != Q4_OK) return st;
  st = query(db, Q_WINNER_SET, NULL, "ItiiiiIDi", device_id,
             q4_format_name(key.format), key.n, key.k, key.group_size, m_bucket,
             variant_id, median_us, key.flags);
  return finish(db, st);
}

q4_status q4db_winner_pick(q4db *db, int64_t device_id, const q4_shape *s, int m_bucket,
                           const int64_t *ids, int count, int64_t *variant_id,
                           double *median_us, int *found) {
  if (!db || !ids || !variant_id || !median_us || !found)
    return BAD_ARG("q4db_winner_pick", "NULL argument");
  *found = 0;
  q4_shape key;
  q4_status st = shape_key("q4db_winner_pick", s, &key);
  if (st != Q4_OK) return st;
  if (device_id <= 0 || m_bucket <= 0 || count <= 0)
    return q4_err(Q4_ERR_INVALID_ARG,
                  "q4db_winner_pick: bad device id, m_bucket=%d or count=%d", m_bucket, count);
  /* the ids as a JSON array, for json_each: at most 20 digits and a comma each */
  char *json = malloc((size_t)count * 21 + 3);
  if (!json) return q4_err(Q4_ERR_NO_MEMORY, "q4db_winner_pick: out of host memory");
  size_t len = 0;
  json[len++] = '[';
  for (int i = 0; i < count; i++)
    len += (size_t)sprintf(json + len, "%s%lld", i ? "," : "", (long long)ids[i]);
  json[len++] = ']';
  json[len] = '\0';
  st = begin(db);
  if (st == Q4_OK) {
    int row;
    st = query(db, Q_WINNER_PICK, &row, "Itiiiiit", device_id, q4_format_name(key.format), key.n,
               key.k, key.group_size, m_bucket, key.flags, json);
    if (st == Q4_OK && row) {
      sqlite3_stmt *q = db->stmt[Q_WINNER_PICK];
      *variant_id = sqlite3_column_int64(q, 0);
      *median_us = column_time(q, 1);
      *found = 1;
      done(db, Q_WINNER_PICK);  /* (SQLite made the change at the first step) */
    }
    st = finish(db, st);
    if (st != Q4_OK) *found = 0;
  }
  free(json);
  return st;
}

q4_status q4db_winner_get(q4db *db, int64_t device_id, const q4_shape *s,
                          int m_bucket, q4_variant *v, double *median_us,
                          int *found) {
  if (!db || !v || !median_us || !found)
    return BAD_ARG("q4db_winner_get", "NULL argument");
  *found = 0;
  q4_shape key;
  q4_status st = shape_key("q4db_winner_get", s, &key);
  if (st != Q4_OK) return st;
  int row;
  st = query(db, Q_WINNER_GET, &row, "Itiiiii", device_id,
             q4_format_name(key.format), key.n, key.k, key.group_size, m_bucket, key.flags);
  if (st != Q4_OK || !row) return st;
  sqlite3_stmt *q = db->stmt[Q_WINNER_GET];
  column_text(q, 0, v->tmpl, sizeof v->tmpl);
  column_text(q, 1, v->params, sizeof v->params);
  column_text(q, 2, v->hash, sizeof v->hash);
  *median_us = column_time(q, 3);
  *found = 1;
  done(db, Q_WINNER_GET);
  return Q4_OK;
}

q4_status q4db_winners(q4db *db, const char *device,
                       int (*cb)(void *ctx, const q4db_winner_row *row),
                       void *ctx) {
  if (!db || !cb) return BAD_ARG("q4db_winners", "NULL argument");
  /* Prepared per call, not cached: cb may call back into db. */
  static const char sql[] =
    "SELECT device, cc, format, n, k, group_size, m, template, params,"
    " median_us, regs, weights FROM best WHERE ?1 IS NULL OR device = ?1"
    " ORDER BY device, CAST(cc AS REAL), format, n, k, group_size, weights, m";
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db->h, sql, -1, &st, NULL) != SQLITE_OK)
    return db_fail(db, "cannot list winners");
  q4_status s = Q4_OK;
  if (device && *device &&
      sqlite3_bind_text(st, 1, device, -1, SQLITE_TRANSIENT) != SQLITE_OK)
    s = db_fail(db, "binding a parameter");
  int rc = SQLITE_DONE;
  while (s == Q4_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    q4db_winner_row r;
    memset(&r, 0, sizeof r);
    column_text(st, 0, r.device, sizeof r.device);
    const char *cc = (const char *)sqlite3_column_text(st, 1);
    if (!cc || sscanf(cc, "%d.%d", &r.cc_major, &r.cc_minor) != 2)
      r.cc_major = r.cc_minor = 0;
    const char *fmt = (const char *)sqlite3_column_text(st, 2);
    r.shape.format = fmt && !strcmp(fmt, "q4s") ? Q4_FORMAT_Q4S : Q4_FORMAT_Q4;
    r.shape.n = sqlite3_column_int(st, 3);
    r.shape.k = sqlite3_column_int(st, 4);
    r.shape.group_size = sqlite3_column_int(st, 5);
    r.m = sqlite3_column_int(st, 6);
    column_text(st, 7, r.tmpl, sizeof r.tmpl);
    column_text(st, 8, r.params, sizeof r.params);
    r.median_us = column_time(st, 9);
    r.regs = sqlite3_column_type(st, 10) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 10);
    const char *kind = (const char *)sqlite3_column_text(st, 11);
    r.shape.flags = !kind ? 0 : (strstr(kind, "sym") ? Q4_SHAPE_SYMMETRIC : 0) |
                                (strstr(kind, "act") ? Q4_SHAPE_ACT_ORDER : 0);
    if (cb(ctx, &r)) break;
  }
  if (s == Q4_OK && rc != SQLITE_ROW && rc != SQLITE_DONE)
    s = db_fail(db, "cannot list winners");
  sqlite3_finalize(st);
  return s;
}
