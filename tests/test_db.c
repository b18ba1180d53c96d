/*
** test_db.c -- the tuning database: schema, round trips, resume, a second
** process, bad input and the default path. Runs in a fresh directory under
** $Q4TUNE_TEST_TMP (or /tmp), removed at the end.
*/
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "q4_error.h"
#include "q4db.h"
#include "q4test.h"
#include "q4test_variant.h"

static char dir[1024];  /* this run's directory */

/* dir/name in a static buffer (one at a time is enough here). */
static const char *tmp_path(const char *name) {
  static char buf[2][1200];
  static int i;
  i ^= 1;
  snprintf(buf[i], sizeof buf[i], "%s/%s", dir, name);
  return buf[i];
}

static void mkdir_p(const char *path) {
  char p[1024];
  snprintf(p, sizeof p, "%s", path);
  for (char *s = p + 1; *s; s++)
    if (*s == '/') { *s = '\0'; mkdir(p, 0777); *s = '/'; }
  mkdir(p, 0777);
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb; (void)flag; (void)ftw;
  return remove(path);
}

/* A single-value query through sqlite3 itself, as a user would do it. */
static int sql_text(const char *path, const char *sql, char *out, size_t size) {
  sqlite3 *h;
  sqlite3_stmt *st;
  int ok = 0;
  out[0] = '\0';
  if (sqlite3_open_v2(path, &h, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK &&
      sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK) {
    if (sqlite3_step(st) == SQLITE_ROW) {
      const unsigned char *t = sqlite3_column_text(st, 0);
      snprintf(out, size, "%s", t ? (const char *)t : "NULL");
      ok = 1;
    }
    sqlite3_finalize(st);
  }
  sqlite3_close(h);
  return ok;
}

static int sql_int(const char *path, const char *sql) {
  char buf[64];
  return sql_text(path, sql, buf, sizeof buf) ? atoi(buf) : -1;
}

/* Whether a single-value query gives `want`. */
static int sql_text_is(const char *path, const char *sql, const char *want) {
  char buf[256];
  return sql_text(path, sql, buf, sizeof buf) && !strcmp(buf, want);
}

static q4db_device h100(void) {
  q4db_device d;
  memset(&d, 0, sizeof d);
  snprintf(d.name, sizeof d.name, "NVIDIA H100 80GB HBM3");
  d.cc_major = 9;
  d.cc_minor = 0;
  d.sms = 132;
  d.driver_version = 13000;
  snprintf(d.nvrtc_version, sizeof d.nvrtc_version, "13.0");
  return d;
}

static q4_variant variant(const char *tmpl, const char *params, const char *hash) {
  q4_variant v = q4test_variant(tmpl, params);
  snprintf(v.hash, sizeof v.hash, "%s", hash);
  return v;
}

static q4_shape shape(q4_format f, int n, int k, int g) {
  q4_shape s = {f, n, k, g};
  return s;
}

static const char HASH_A[] = "0123456789abcdef0123456789abcdef";
static const char HASH_B[] = "fedcba9876543210fedcba9876543210";

/* A recognizable cubin of n bytes. */
static unsigned char *fake_cubin(size_t n, unsigned seed) {
  unsigned char *p = malloc(n);
  for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(i * 31u + seed);
  return p;
}

/* ---- schema -------------------------------------------------------------- */

static void test_schema(void) {
  const char *path = tmp_path("a/b/c/tuning.db");  /* parents do not exist */
  q4db *db = NULL;
  CHECK_OK(q4db_open(path, &db));
  CHECK(db != NULL);
  if (!db) return;
  CHECK(strcmp(q4db_path(db), path) == 0);
  char mode[32];
  CHECK(sql_int(path, "PRAGMA user_version") == 2);
  CHECK(sql_text(path, "PRAGMA journal_mode", mode, sizeof mode) && !strcmp(mode, "wal"));
  CHECK(sql_int(path, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN"
                      " ('devices', 'variants', 'cubins', 'measurements', 'winners')") == 5);
  CHECK(sql_int(path, "SELECT count(*) FROM sqlite_master WHERE type = 'view'"
                      " AND name IN ('best', 'runs')") == 2);
  q4db_close(db);
  /* Reopening an existing database leaves it as it was. */
  CHECK_OK(q4db_open(path, &db));
  q4db_close(db);
  CHECK(sql_int(path, "PRAGMA user_version") == 2);
}

/* ---- round trips ----------------------------------------------------------- */

struct rows {
  int count, stop_after;
  q4db_winner_row row[16];
};

static int collect(void *ctx, const q4db_winner_row *r) {
  struct rows *rs = ctx;
  if (rs->count < 16) rs->row[rs->count] = *r;
  rs->count++;
  return rs->stop_after && rs->count >= rs->stop_after;
}

static void test_round_trip(void) {
  const char *path = tmp_path("rt.db");
  q4db *db = NULL;
  CHECK_OK(q4db_open(path, &db));
  if (!db) return;

  /* Devices: same identity, same id; a new driver updates the row. */
  q4db_device d = h100();
  int64_t dev = 0, dev2 = 0, dev3 = 0;
  CHECK_OK(q4db_device_id(db, &d, &dev));
  CHECK(dev > 0);
  d.driver_version = 13010;
  CHECK_OK(q4db_device_id(db, &d, &dev2));
  CHECK(dev2 == dev);
  CHECK(sql_int(path, "SELECT driver_version FROM devices") == 13010);
  q4db_device a100 = h100();
  snprintf(a100.name, sizeof a100.name, "NVIDIA A100-SXM4-80GB");
  a100.cc_major = 8;
  a100.sms = 108;
  CHECK_OK(q4db_device_id(db, &a100, &dev3));
  CHECK(dev3 > 0 && dev3 != dev);

  /* Variants: identity is template, params and hash. */
  q4_variant va = variant("q4_wmma", "BLOCK_M=64,BLOCK_N=128", HASH_A);
  q4_variant vb = variant("q4_decode", "WARPS_K=4", HASH_B);
  int64_t ida = 0, ida2 = 0, idb = 0;
  CHECK_OK(q4db_variant_id(db, &va, &ida));
  CHECK_OK(q4db_variant_id(db, &va, &ida2));
  CHECK_OK(q4db_variant_id(db, &vb, &idb));
  CHECK(ida > 0 && ida == ida2 && idb > 0 && idb != ida);

  /* Cubins: bytes come back equal; a put replaces. */
  size_t n = 70000;
  unsigned char *bin = fake_cubin(n, 7);
  CHECK_OK(q4db_cubin_put(db, HASH_A, 90, "13.0", bin, n, 96, 0, 0, 812.5));
  void *got = NULL;
  size_t got_size = 0;
  int found = -1;
  CHECK_OK(q4db_cubin_get(db, HASH_A, 90, "13.0", &got, &got_size, &found));
  CHECK(found == 1 && got_size == n && got && memcmp(got, bin, n) == 0);
  free(got);
  CHECK_OK(q4db_cubin_get(db, HASH_A, 80, "13.0", &got, &got_size, &found));
  CHECK(found == 0 && got == NULL && got_size == 0);
  CHECK_OK(q4db_cubin_get(db, HASH_A, 90, "12.8", &got, &got_size, &found));
  CHECK(found == 0 && got == NULL);
  unsigned char *bin2 = fake_cubin(100, 9);
  CHECK_OK(q4db_cubin_put(db, HASH_A, 90, "13.0", bin2, 100, 64, 0, 0, 1.0));
  CHECK_OK(q4db_cubin_get(db, HASH_A, 90, "13.0", &got, &got_size, &found));
  CHECK(found == 1 && got_size == 100 && got && memcmp(got, bin2, 100) == 0);
  free(got);
  free(bin2);
  CHECK(sql_int(path, "SELECT count(*) FROM cubins") == 1);
  CHECK(sql_int(path, "SELECT size FROM cubins") == 100);

  /* Measurements: round trip, re-adding replaces, NULL times read as -1. */
  q4db_measurement m;
  memset(&m, 0, sizeof m);
  m.device_id = dev;
  m.variant_id = ida;
  m.shape = shape(Q4_FORMAT_Q4, 4096, 4096, 128);
  m.m = 16;
  m.median_us = 25.5;
  m.min_us = 24.75;
  m.max_us = 30.125;
  m.rel_error = 1.5e-4;
  m.ok = 1;
  CHECK_OK(q4db_measurement_add(db, &m));
  q4db_measurement r;
  found = -1;
  CHECK_OK(q4db_measurement_find(db, dev, ida, &m.shape, 16, &r, &found));
  CHECK(found == 1);
  CHECK(r.device_id == dev && r.variant_id == ida && r.m == 16);
  CHECK(r.shape.format == Q4_FORMAT_Q4 && r.shape.n == 4096 && r.shape.k == 4096 &&
        r.shape.group_size == 128);
  CHECK(r.median_us == 25.5 && r.min_us == 24.75 && r.max_us == 30.125);
  CHECK(r.rel_error == 1.5e-4 && r.ok == 1 && r.note[0] == '\0');
  m.median_us = m.min_us = m.max_us = -1;
  m.rel_error = 0.25;
  m.ok = 0;
  snprintf(m.note, sizeof m.note, "rel_error 0.25 > 1e-2");
  CHECK_OK(q4db_measurement_add(db, &m));
  CHECK_OK(q4db_measurement_find(db, dev, ida, &m.shape, 16, &r, &found));
  CHECK(found == 1 && r.ok == 0 && r.median_us == -1 && r.min_us == -1 &&
        r.max_us == -1 && r.rel_error == 0.25);
  CHECK(strcmp(r.note, "rel_error 0.25 > 1e-2") == 0);
  CHECK(sql_int(path, "SELECT count(*) FROM measurements") == 1);
  CHECK(sql_int(path, "SELECT count(*) FROM runs WHERE median_us IS NULL AND ok = 0") == 1);
  CHECK_OK(q4db_measurement_find(db, dev, ida, &m.shape, 32, &r, &found));
  CHECK(found == 0);
  /* group_size 0 (per-channel) and group_size k name the same problem. */
  m.shape = shape(Q4_FORMAT_Q4S, 4096, 1024, 0);
  m.ok = 1;
  m.median_us = 5;
  CHECK_OK(q4db_measurement_add(db, &m));
  q4_shape per_channel = shape(Q4_FORMAT_Q4S, 4096, 1024, 1024);
  CHECK_OK(q4db_measurement_find(db, dev, ida, &per_channel, 16, &r, &found));
  CHECK(found == 1 && r.median_us == 5 && r.shape.group_size == 1024);
  /* An unknown device id violates a foreign key. */
  m.device_id = 999;
  CHECK(q4db_measurement_add(db, &m) == Q4_ERR_DB);
  CHECK(strstr(q4_last_error(), "FOREIGN KEY") != NULL);

  /* Winners: set, get, replace. */
  q4_shape s1 = shape(Q4_FORMAT_Q4, 4096, 4096, 128);
  CHECK_OK(q4db_winner_set(db, dev, &s1, 16, ida, 25.5));
  q4_variant w;
  memset(&w, 0, sizeof w);
  double us = 0;
  found = -1;
  CHECK_OK(q4db_winner_get(db, dev, &s1, 16, &w, &us, &found));
  CHECK(found == 1 && us == 25.5 && !strcmp(w.tmpl, "q4_wmma") &&
        !strcmp(w.params, "BLOCK_M=64,BLOCK_N=128") && !strcmp(w.hash, HASH_A));
  CHECK(w.source == NULL);
  CHECK_OK(q4db_winner_set(db, dev, &s1, 16, idb, 20.0));
  CHECK_OK(q4db_winner_get(db, dev, &s1, 16, &w, &us, &found));
  CHECK(found == 1 && us == 20.0 && !strcmp(w.tmpl, "q4_decode") && !strcmp(w.hash, HASH_B));
  CHECK(sql_int(path, "SELECT count(*) FROM winners") == 1);
  CHECK_OK(q4db_winner_get(db, dev, &s1, 1, &w, &us, &found));
  CHECK(found == 0);
  CHECK_OK(q4db_winner_get(db, dev3, &s1, 16, &w, &us, &found));
  CHECK(found == 0);

  /* More winners, added out of order, for the listing. */
  q4_shape s2 = shape(Q4_FORMAT_Q4, 1024, 4096, 128);
  q4_shape s3 = shape(Q4_FORMAT_Q4S, 1024, 4096, 128);
  CHECK_OK(q4db_winner_set(db, dev, &s3, 1, ida, 8.0));
  CHECK_OK(q4db_winner_set(db, dev, &s1, 1, ida, 12.0));
  CHECK_OK(q4db_winner_set(db, dev3, &s1, 1, idb, 15.0));
  CHECK_OK(q4db_winner_set(db, dev, &s2, 64, ida, 11.0));
  CHECK_OK(q4db_winner_set(db, dev, &s2, 1, idb, 4.0));

  struct rows all;
  memset(&all, 0, sizeof all);
  CHECK_OK(q4db_winners(db, NULL, collect, &all));
  CHECK(all.count == 6);
  if (all.count == 6) {
    /* A100 first (by name), then H100: q4 n=1024 m=1,64; q4 n=4096 m=1,16; q4s. */
    CHECK(strstr(all.row[0].device, "A100") && all.row[0].cc_major == 8 &&
          all.row[0].cc_minor == 0);
    CHECK(!strcmp(all.row[1].device, "NVIDIA H100 80GB HBM3") && all.row[1].cc_major == 9);
    CHECK(all.row[1].shape.n == 1024 && all.row[1].m == 1 && all.row[1].median_us == 4.0);
    CHECK(all.row[2].shape.n == 1024 && all.row[2].m == 64);
    CHECK(all.row[3].shape.n == 4096 && all.row[3].m == 1);
    CHECK(all.row[4].shape.n == 4096 && all.row[4].m == 16 &&
          !strcmp(all.row[4].tmpl, "q4_decode") && all.row[4].median_us == 20.0);
    CHECK(all.row[5].shape.format == Q4_FORMAT_Q4S && all.row[5].shape.group_size == 128 &&
          all.row[5].shape.k == 4096);
    /* regs comes from the cubin of HASH_A; HASH_B has none. */
    CHECK(all.row[3].regs == 64 && all.row[5].regs == 64);
    CHECK(all.row[1].regs == -1 && all.row[4].regs == -1);
    CHECK(!strcmp(all.row[3].params, "BLOCK_M=64,BLOCK_N=128"));
  }
  struct rows one;
  memset(&one, 0, sizeof one);
  CHECK_OK(q4db_winners(db, "NVIDIA A100-SXM4-80GB", collect, &one));
  CHECK(one.count == 1 && one.row[0].shape.n == 4096 && one.row[0].m == 1);
  memset(&one, 0, sizeof one);
  CHECK_OK(q4db_winners(db, "", collect, &one));
  CHECK(one.count == 6);
  memset(&one, 0, sizeof one);
  CHECK_OK(q4db_winners(db, "no such GPU", collect, &one));
  CHECK(one.count == 0);
  memset(&one, 0, sizeof one);
  one.stop_after = 2;
  CHECK_OK(q4db_winners(db, NULL, collect, &one));
  CHECK(one.count == 2);

  /* The best view, as `sqlite3 tuning.db 'select * from best'` shows it. */
  char text[512];
  CHECK(sql_text(path, "SELECT device || '|' || cc || '|' || format || '|' || n || '|' ||"
                       " k || '|' || group_size || '|' || m || '|' || template || '|' ||"
                       " params || '|' || median_us || '|' || regs || '|' || int4_gbs"
                       " FROM best WHERE cc = '9.0' AND n = 4096 AND m = 1",
                 text, sizeof text));
  /* (4096*4096/2 + 32*4096*4 + 2*1*4096 + 2*1*4096) B / 12 us = 744.1 GB/s */
  CHECK_MSG(!strcmp(text, "NVIDIA H100 80GB HBM3|9.0|q4|4096|4096|128|1|q4_wmma|"
                          "BLOCK_M=64,BLOCK_N=128|12.0|64|744.1"), "%s", text);
  CHECK(sql_int(path, "SELECT count(*) FROM best") == 6);
  CHECK(sql_text(path, "SELECT cc FROM best LIMIT 1", text, sizeof text) &&
        !strcmp(text, "8.0"));
  CHECK(sql_int(path, "SELECT count(*) FROM runs WHERE device LIKE 'NVIDIA H100%'"
                      " AND template = 'q4_wmma'") == 2);

  free(bin);
  q4db_close(db);
}

/* ---- resume and a second process ---------------------------------------- */

static void test_resume(void) {
  const char *path = tmp_path("resume.db");
  q4db *db = NULL;
  q4db_device d = h100();
  q4_variant v = variant("q4_wmma", "BLOCK_M=16", HASH_A);
  int64_t dev = 0, var = 0;
  q4db_measurement m;
  memset(&m, 0, sizeof m);
  CHECK_OK(q4db_open(path, &db));
  if (!db) return;
  CHECK_OK(q4db_device_id(db, &d, &dev));
  CHECK_OK(q4db_variant_id(db, &v, &var));
  m.device_id = dev;
  m.variant_id = var;
  m.shape = shape(Q4_FORMAT_Q4, 2048, 8192, 64);
  m.m = 3;
  m.median_us = m.min_us = m.max_us = 7.0;
  m.rel_error = -1;
  m.ok = 1;
  CHECK_OK(q4db_measurement_add(db, &m));
  q4db_close(db);

  /* A resumed run: fresh connection, same ids, finds the measurement. */
  db = NULL;
  CHECK_OK(q4db_open(path, &db));
  if (!db) return;
  int64_t dev2 = 0, var2 = 0;
  CHECK_OK(q4db_device_id(db, &d, &dev2));
  CHECK_OK(q4db_variant_id(db, &v, &var2));
  CHECK(dev2 == dev && var2 == var);
  q4db_measurement r;
  int found = 0;
  CHECK_OK(q4db_measurement_find(db, dev2, var2, &m.shape, 3, &r, &found));
  CHECK(found == 1 && r.median_us == 7.0 && r.rel_error == -1);
  q4db_close(db);
}

/* A fully timed (note "") or other measurement of variant var at M = 1. */
static void add_time(q4db *db, int64_t dev, int64_t var, const q4_shape *s, double us, int ok, const char *note) {
  q4db_measurement m;
  memset(&m, 0, sizeof m);
  m.device_id = dev;
  m.variant_id = var;
  m.shape = *s;
  m.m = 1;
  m.median_us = m.min_us = m.max_us = us;
  m.rel_error = 1e-4;
  m.ok = ok;
  snprintf(m.note, sizeof m.note, "%s", note);
  CHECK_OK(q4db_measurement_add(db, &m));
}

/* The winner is chosen from the table: the fastest fully timed measurement
** of the run's candidates, whichever run stores last. */
static void test_winner_pick(void) {
  const char *path = tmp_path("pick.db");
  q4db *db = NULL;
  CHECK_OK(q4db_open(path, &db));
  if (!db) return;
  q4db_device d = h100();
  int64_t dev = 0, id[5] = {0};
  CHECK_OK(q4db_device_id(db, &d, &dev));
  static const char *params[5] = {"BLOCK_M=16", "BLOCK_M=32", "BLOCK_M=64", "BLOCK_M=128", "BLOCK_M=256"};
  for (int i = 0; i < 5; i++) {
    q4_variant v = variant("q4_wmma", params[i], HASH_A);
    CHECK_OK(q4db_variant_id(db, &v, &id[i]));
  }
  const q4_shape s = shape(Q4_FORMAT_Q4, 4096, 4096, 128);
  add_time(db, dev, id[0], &s, 10.0, 1, "");
  add_time(db, dev, id[1], &s, 5.0, 1, "screened out: timed with 5 samples");
  add_time(db, dev, id[2], &s, 8.0, 1, "");
  add_time(db, dev, id[3], &s, 4.0, 1, "");  /* not a candidate (another source, say) */
  add_time(db, dev, id[4], &s, 3.0, 0, "wrong result: relative error 2");
  const int64_t cands[4] = {id[0], id[1], id[2], id[4]};
  int64_t won = 0;
  double us = 0;
  int found = 0;
  q4_variant got;
  memset(&got, 0, sizeof got);
  CHECK_OK(q4db_winner_pick(db, dev, &s, 1, cands, 4, &won, &us, &found));
  CHECK_MSG(found && won == id[2] && us == 8.0, "found %d, id %lld, %.2f us", found, (long long)won, us);
  CHECK_OK(q4db_winner_get(db, dev, &s, 1, &got, &us, &found));
  CHECK(found && !strcmp(got.params, "BLOCK_M=64") && us == 8.0);
  /* a second run times a faster one, and an earlier run stores its own
  ** (slower) choice after that: picking again brings the fastest back */
  add_time(db, dev, id[0], &s, 6.0, 1, "");
  CHECK_OK(q4db_winner_set(db, dev, &s, 1, id[2], 8.0));
  CHECK_OK(q4db_winner_pick(db, dev, &s, 1, cands, 4, &won, &us, &found));
  CHECK(found && won == id[0] && us == 6.0);
  /* ties go to the smaller id, whatever the order of the candidates */
  add_time(db, dev, id[2], &s, 6.0, 1, "");
  const int64_t reversed[4] = {id[4], id[2], id[1], id[0]};
  CHECK_OK(q4db_winner_pick(db, dev, &s, 1, reversed, 4, &won, &us, &found));
  CHECK(found && won == id[0]);
  /* no candidate fully timed: nothing stored, the winner stays */
  const int64_t none[2] = {id[1], id[4]};
  CHECK_OK(q4db_winner_pick(db, dev, &s, 1, none, 2, &won, &us, &found));
  CHECK(!found);
  CHECK_OK(q4db_winner_pick(db, dev, &s, 2, cands, 4, &won, &us, &found));  /* M = 2: no rows */
  CHECK(!found);
  CHECK_OK(q4db_winner_get(db, dev, &s, 1, &got, &us, &found));
  CHECK(found && !strcmp(got.params, "BLOCK_M=16") && us == 6.0);
  /* another process (a second tuning run) measures a faster one and picks */
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    q4db *c = NULL;
    int64_t w = 0;
    double t = 0;
    int f = 0;
    if (q4db_open(path, &c) != Q4_OK) _exit(2);
    add_time(c, dev, id[2], &s, 2.5, 1, "");
    if (q4test_fail || q4db_winner_pick(c, dev, &s, 1, reversed, 4, &w, &t, &f) != Q4_OK) _exit(3);
    q4db_close(c);
    _exit(f && w == id[2] && t == 2.5 ? 0 : 4);
  }
  int status = -1;
  CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
  CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
  CHECK_OK(q4db_winner_pick(db, dev, &s, 1, cands, 4, &won, &us, &found));
  CHECK(found && won == id[2] && us == 2.5);
  q4db_close(db);
}

/* A child process opens the same file while the parent holds it open: it
** must see the parent's cubin, and the parent must see the child's write. */
static void test_two_processes(void) {
  const char *path = tmp_path("shared.db");
  q4db *db = NULL;
  CHECK_OK(q4db_open(path, &db));
  if (!db) return;
  size_t n = 5000;
  unsigned char *bin = fake_cubin(n, 42);
  CHECK_OK(q4db_cubin_put(db, HASH_B, 90, "13.0", bin, n, 40, 1024, 0, 100.0));
  /* Prime the cached lookup so a stale snapshot would show up below. */
  void *got = NULL;
  size_t got_size = 0;
  int found = 0;
  CHECK_OK(q4db_cubin_get(db, HASH_A, 80, "13.0", &got, &got_size, &found));
  CHECK(found == 0);

  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    q4db *c = NULL;
    void *cb = NULL;
    size_t cs = 0;
    int cf = 0;
    if (q4db_open(path, &c) != Q4_OK) _exit(2);
    if (q4db_cubin_get(c, HASH_B, 90, "13.0", &cb, &cs, &cf) != Q4_OK) _exit(3);
    if (!cf || cs != n || memcmp(cb, bin, n) != 0) _exit(4);
    if (q4db_cubin_put(c, HASH_A, 80, "13.0", bin, 10, 1, 2, 3, 4.0) != Q4_OK) _exit(5);
    free(cb);
    q4db_close(c);
    _exit(0);
  }
  CHECK(pid > 0);
  int status = -1;
  CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
  CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
  CHECK_OK(q4db_cubin_get(db, HASH_A, 80, "13.0", &got, &got_size, &found));
  CHECK(found == 1 && got_size == 10 && got && memcmp(got, bin, 10) == 0);
  free(got);
  free(bin);
  q4db_close(db);
}

/* Two processes write at once: BEGIN IMMEDIATE and the busy timeout make
** them take turns; nothing is lost. */
static void test_concurrent_writers(void) {
  const char *path = tmp_path("busy.db");
  enum { PER = 40 };
  q4db *db = NULL;
  int64_t dev = 0, var = 0;
  q4db_device d = h100();
  q4_variant v = variant("q4_wmma", "X=1", HASH_A);
  CHECK_OK(q4db_open(path, &db));
  if (!db) return;
  CHECK_OK(q4db_device_id(db, &d, &dev));
  CHECK_OK(q4db_variant_id(db, &v, &var));
  fflush(NULL);
  pid_t pid = fork();
  int first = pid == 0 ? 1 : 1 + PER;
  q4db *w = db;
  if (pid == 0 && q4db_open(path, &w) != Q4_OK) _exit(2);
  int failed = 0;
  for (int i = 0; i < PER; i++) {
    q4db_measurement m;
    memset(&m, 0, sizeof m);
    m.device_id = dev;
    m.variant_id = var;
    m.shape = shape(Q4_FORMAT_Q4, 4096, 4096, 128);
    m.m = first + i;
    m.median_us = m.min_us = m.max_us = m.m;
    m.rel_error = 0;
    m.ok = 1;
    int64_t id;
    q4_variant vi = variant("q4_wmma", pid == 0 ? "child" : "parent", HASH_A);
    if (q4db_measurement_add(w, &m) != Q4_OK || q4db_variant_id(w, &vi, &id) != Q4_OK) {
      failed++;
      if (pid != 0) fprintf(stderr, "parent write: %s\n", q4_last_error());
    }
  }
  if (pid == 0) {
    q4db_close(w);
    _exit(failed ? 3 : 0);
  }
  CHECK(failed == 0);
  int status = -1;
  CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
  CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
  CHECK(sql_int(path, "SELECT count(*) FROM measurements") == 2 * PER);
  CHECK(sql_int(path, "SELECT count(*) FROM variants") == 3);
  q4db_close(db);
}

/* ---- bad input --------------------------------------------------------------- */

static void test_null_args(void) {
  const char *path = tmp_path("null.db");
  q4db *db = NULL;
  CHECK_OK(q4db_open(path, &db));
  if (!db) return;
  q4db_device d = h100();
  q4_variant v = variant("q4_wmma", "", "");
  q4_shape s = shape(Q4_FORMAT_Q4, 64, 64, 32);
  q4db_measurement m;
  memset(&m, 0, sizeof m);
  int64_t id;
  void *p;
  size_t n;
  int found;
  double us;
  char buf[64];
  unsigned char byte = 0;

#define BAD(expr) do { \
    q4_err_clear(); \
    CHECK((expr) == Q4_ERR_INVALID_ARG); \
    CHECK(q4_last_error()[0] != '\0'); \
  } while (0)
  BAD(q4db_default_path(NULL, 10));
  BAD(q4db_default_path(buf, 0));
  BAD(q4db_open(path, NULL));
  q4db *none = (q4db *)&byte;
  BAD(q4db_open("", &none));
  CHECK(none == NULL);
  BAD(q4db_device_id(NULL, &d, &id));
  BAD(q4db_device_id(db, NULL, &id));
  BAD(q4db_device_id(db, &d, NULL));
  d.name[0] = '\0';
  BAD(q4db_device_id(db, &d, &id));
  memset(d.name, 'x', sizeof d.name);  /* not terminated */
  BAD(q4db_device_id(db, &d, &id));
  BAD(q4db_variant_id(NULL, &v, &id));
  BAD(q4db_variant_id(db, NULL, &id));
  BAD(q4db_variant_id(db, &v, NULL));
  BAD(q4db_cubin_get(NULL, HASH_A, 90, "13.0", &p, &n, &found));
  BAD(q4db_cubin_get(db, NULL, 90, "13.0", &p, &n, &found));
  BAD(q4db_cubin_get(db, HASH_A, 90, NULL, &p, &n, &found));
  BAD(q4db_cubin_get(db, HASH_A, 90, "13.0", NULL, &n, &found));
  BAD(q4db_cubin_get(db, HASH_A, 90, "13.0", &p, NULL, &found));
  BAD(q4db_cubin_get(db, HASH_A, 90, "13.0", &p, &n, NULL));
  BAD(q4db_cubin_put(NULL, HASH_A, 90, "13.0", &byte, 1, 0, 0, 0, 0));
  BAD(q4db_cubin_put(db, NULL, 90, "13.0", &byte, 1, 0, 0, 0, 0));
  BAD(q4db_cubin_put(db, HASH_A, 90, NULL, &byte, 1, 0, 0, 0, 0));
  BAD(q4db_cubin_put(db, HASH_A, 90, "13.0", NULL, 1, 0, 0, 0, 0));
  BAD(q4db_cubin_put(db, HASH_A, 90, "13.0", &byte, 0, 0, 0, 0, 0));
  BAD(q4db_measurement_add(NULL, &m));
  BAD(q4db_measurement_add(db, NULL));
  BAD(q4db_measurement_add(db, &m));  /* zero shape and ids */
  m.shape = s;
  m.m = 1;
  BAD(q4db_measurement_add(db, &m));  /* ids still 0 */
  BAD(q4db_measurement_find(NULL, 1, 1, &s, 1, &m, &found));
  BAD(q4db_measurement_find(db, 1, 1, NULL, 1, &m, &found));
  BAD(q4db_measurement_find(db, 1, 1, &s, 1, NULL, &found));
  BAD(q4db_measurement_find(db, 1, 1, &s, 1, &m, NULL));
  q4_shape bad = shape((q4_format)7, 64, 64, 32);
  BAD(q4db_measurement_find(db, 1, 1, &bad, 1, &m, &found));
  bad = shape(Q4_FORMAT_Q4, -64, 64, 32);
  BAD(q4db_measurement_find(db, 1, 1, &bad, 1, &m, &found));
  BAD(q4db_winner_set(NULL, 1, &s, 1, 1, 1.0));
  BAD(q4db_winner_set(db, 1, NULL, 1, 1, 1.0));
  BAD(q4db_winner_set(db, 1, &s, 0, 1, 1.0));
  const int64_t ids[1] = {1};
  int64_t won = 0;
  BAD(q4db_winner_pick(NULL, 1, &s, 1, ids, 1, &won, &us, &found));
  BAD(q4db_winner_pick(db, 1, NULL, 1, ids, 1, &won, &us, &found));
  BAD(q4db_winner_pick(db, 1, &s, 1, NULL, 1, &won, &us, &found));
  BAD(q4db_winner_pick(db, 1, &s, 1, ids, 0, &won, &us, &found));
  BAD(q4db_winner_pick(db, 1, &s, 0, ids, 1, &won, &us, &found));
  BAD(q4db_winner_pick(db, 0, &s, 1, ids, 1, &won, &us, &found));
  BAD(q4db_winner_pick(db, 1, &s, 1, ids, 1, NULL, &us, &found));
  BAD(q4db_winner_get(NULL, 1, &s, 1, &v, &us, &found));
  BAD(q4db_winner_get(db, 1, NULL, 1, &v, &us, &found));
  BAD(q4db_winner_get(db, 1, &s, 1, NULL, &us, &found));
  BAD(q4db_winner_get(db, 1, &s, 1, &v, NULL, &found));
  BAD(q4db_winner_get(db, 1, &s, 1, &v, &us, NULL));
  BAD(q4db_winners(NULL, NULL, collect, NULL));
  BAD(q4db_winners(db, NULL, NULL, NULL));
#undef BAD
  q4db_close(NULL);
  CHECK(q4db_path(NULL) != NULL);
  q4db_close(db);
}

/* Opening must fail with Q4_ERR_DB and a message naming the file. */
static void expect_db_error(const char *path, const char *word) {
  q4db *db = (q4db *)&db;  /* must be reset to NULL */
  q4_err_clear();
  q4_status s = q4db_open(path, &db);
  CHECK_MSG(s == Q4_ERR_DB, "%s: %s", path, q4_status_name(s));
  CHECK(db == NULL);
  CHECK_MSG(strstr(q4_last_error(), path) != NULL, "message \"%s\"", q4_last_error());
  if (word) CHECK_MSG(strstr(q4_last_error(), word) != NULL, "message \"%s\"", q4_last_error());
  if (s == Q4_OK) q4db_close(db);
}

static void test_bad_files(void) {
  /* 4 KB of random bytes. */
  const char *garbage = tmp_path("garbage.db");
  unsigned char bytes[4096];
  srand((unsigned)getpid());
  for (size_t i = 0; i < sizeof bytes; i++) bytes[i] = (unsigned char)rand();
  FILE *f = fopen(garbage, "wb");
  CHECK(f && fwrite(bytes, 1, sizeof bytes, f) == sizeof bytes);
  if (f) fclose(f);
  expect_db_error(garbage, "not a database");

  /* A directory. */
  const char *d = tmp_path("a-directory.db");
  CHECK(mkdir(d, 0777) == 0);
  expect_db_error(d, NULL);

  /* A database written by a newer q4tune. */
  const char *newer = tmp_path("newer.db");
  sqlite3 *h = NULL;
  CHECK(sqlite3_open(newer, &h) == SQLITE_OK);
  CHECK(sqlite3_exec(h, "CREATE TABLE devices(x); PRAGMA user_version = 99",
                     NULL, NULL, NULL) == SQLITE_OK);
  sqlite3_close(h);
  expect_db_error(newer, "newer");
  /* left alone: its version, and its journal not switched to WAL */
  CHECK(sql_int(newer, "PRAGMA user_version") == 99);
  CHECK(sql_text_is(newer, "PRAGMA journal_mode", "delete"));

  /* Another program's database, with or without a clashing table name:
  ** refused, no table added, journal mode as it was. */
  const char *other = tmp_path("other.db");
  CHECK(sqlite3_open(other, &h) == SQLITE_OK);
  CHECK(sqlite3_exec(h, "CREATE TABLE contacts(name)", NULL, NULL, NULL) == SQLITE_OK);
  sqlite3_close(h);
  expect_db_error(other, "another program");
  CHECK(sql_int(other, "SELECT count(*) FROM sqlite_master") == 1);
  CHECK(sql_int(other, "PRAGMA user_version") == 0);
  CHECK(sql_text_is(other, "PRAGMA journal_mode", "delete"));
  const char *clash = tmp_path("clash.db");
  CHECK(sqlite3_open(clash, &h) == SQLITE_OK);
  CHECK(sqlite3_exec(h, "CREATE TABLE devices(x)", NULL, NULL, NULL) == SQLITE_OK);
  sqlite3_close(h);
  expect_db_error(clash, "another program");
  CHECK(sql_int(clash, "SELECT count(*) FROM sqlite_master") == 1);

  /* An empty file is a new database. */
  const char *empty = tmp_path("empty.db");
  f = fopen(empty, "wb");
  CHECK(f != NULL);
  if (f) fclose(f);
  q4db *db = NULL;
  CHECK_OK(q4db_open(empty, &db));
  q4db_close(db);
  CHECK(sql_int(empty, "PRAGMA user_version") == 2);

  /* A parent that is a file, so the directory cannot be created. */
  expect_db_error(tmp_path("garbage.db/sub/tuning.db"), NULL);
}

/* ---- default path ------------------------------------------------------------ */

static void test_default_path(void) {
  char *saved[3];
  const char *names[3] = {"Q4TUNE_DB", "XDG_CACHE_HOME", "HOME"};
  for (int i = 0; i < 3; i++) {
    const char *v = getenv(names[i]);
    saved[i] = v ? strdup(v) : NULL;
  }
  char buf[512];
  setenv("Q4TUNE_DB", "/x/y/tuning.db", 1);
  setenv("XDG_CACHE_HOME", "/xdg", 1);
  setenv("HOME", "/home/u", 1);
  CHECK_OK(q4db_default_path(buf, sizeof buf));
  CHECK(!strcmp(buf, "/x/y/tuning.db"));
  unsetenv("Q4TUNE_DB");
  CHECK_OK(q4db_default_path(buf, sizeof buf));
  CHECK(!strcmp(buf, "/xdg/q4tune/tuning.db"));
  setenv("Q4TUNE_DB", "", 1);  /* empty counts as unset */
  CHECK_OK(q4db_default_path(buf, sizeof buf));
  CHECK(!strcmp(buf, "/xdg/q4tune/tuning.db"));
  unsetenv("XDG_CACHE_HOME");
  CHECK_OK(q4db_default_path(buf, sizeof buf));
  CHECK(!strcmp(buf, "/home/u/.cache/q4tune/tuning.db"));
  CHECK(q4db_default_path(buf, 10) == Q4_ERR_INVALID_ARG && q4_last_error()[0]);
  unsetenv("HOME");
  unsetenv("Q4TUNE_DB");
  CHECK(q4db_default_path(buf, sizeof buf) == Q4_ERR_INVALID_ARG && q4_last_error()[0]);

  /* q4db_open(NULL) uses the default path. */
  setenv("Q4TUNE_DB", tmp_path("env/default.db"), 1);
  q4db *db = NULL;
  CHECK_OK(q4db_open(NULL, &db));
  CHECK(db && !strcmp(q4db_path(db), tmp_path("env/default.db")));
  q4db_close(db);
  CHECK(access(tmp_path("env/default.db"), F_OK) == 0);

  for (int i = 0; i < 3; i++) {
    if (saved[i]) setenv(names[i], saved[i], 1);
    else unsetenv(names[i]);
    free(saved[i]);
  }
}

/* Runs a whole SQL script through sqlite3 itself. */
static int sql_script(const char *path, const char *sql) {
  sqlite3 *h;
  int ok = sqlite3_open(path, &h) == SQLITE_OK && sqlite3_exec(h, sql, NULL, NULL, NULL) == SQLITE_OK;
  sqlite3_close(h);
  return ok;
}

static char *slurp_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)n + 1);
  if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) n = 0;
  if (buf) buf[n] = '\0';
  fclose(f);
  return buf;
}

/* A database made by schema version 1 opens as version 2 with every row
** kept (flags 0), and then takes rows that differ only in flags. */
/* A schema-version-1 file `name` made by tests/data/schema_v1.sql, then
** `rows` run on it; NULL if the script is missing. */
static const char *make_v1(const char *name, const char *rows) {
  char *v1 = slurp_file(Q4TUNE_TEST_DATA "/schema_v1.sql");
  CHECK_MSG(v1 != NULL, "tests/data/schema_v1.sql missing");
  if (!v1) return NULL;
  const char *path = tmp_path(name);
  CHECK(sql_script(path, v1));
  free(v1);
  CHECK(sql_script(path, rows));
  return path;
}

static void test_migration(void) {
  const char *path = make_v1("v1.db",
      "INSERT INTO devices(name, cc_major, cc_minor, sms, driver_version, nvrtc_version)"
      "  VALUES('NVIDIA H100 80GB HBM3', 9, 0, 132, 13000, '13.0');"
      "INSERT INTO variants(template, params, source_hash) VALUES('q4_decode', 'A=1', 'h1');"
      "INSERT INTO measurements(device_id, variant_id, format, n, k, group_size, m, median_us, ok)"
      "  VALUES(1, 1, 'q4', 4096, 4096, 4096, 1, 7.5, 1);"
      "INSERT INTO winners(device_id, format, n, k, group_size, m_bucket, variant_id, median_us)"
      "  VALUES(1, 'q4', 4096, 4096, 4096, 1, 1, 7.5);");
  if (!path) return;
  CHECK(sql_int(path, "PRAGMA user_version") == 1);
  q4db *db = NULL;
  CHECK_OK(q4db_open(path, &db));
  if (!db) return;
  CHECK(sql_int(path, "PRAGMA user_version") == 2);
  CHECK(sql_int(path, "SELECT count(*) FROM measurements WHERE flags = 0 AND median_us = 7.5") == 1);
  CHECK(sql_int(path, "SELECT count(*) FROM best WHERE weights = '' AND m = 1") == 1);
  q4_shape s = shape(Q4_FORMAT_Q4, 4096, 4096, 0);
  q4_variant v;
  double us = 0;
  int found = 0;
  CHECK_OK(q4db_winner_get(db, 1, &s, 1, &v, &us, &found));
  CHECK(found == 1 && us == 7.5 && !strcmp(v.tmpl, "q4_decode"));
  s.flags = Q4_SHAPE_SYMMETRIC;  /* a different problem: no winner yet */
  CHECK_OK(q4db_winner_get(db, 1, &s, 1, &v, &us, &found));
  CHECK(found == 0);
  CHECK_OK(q4db_winner_set(db, 1, &s, 1, 1, 6.5));
  CHECK_OK(q4db_winner_get(db, 1, &s, 1, &v, &us, &found));
  CHECK(found == 1 && us == 6.5);
  CHECK(sql_int(path, "SELECT count(*) FROM winners") == 2);
  CHECK(sql_int(path, "SELECT count(*) FROM best WHERE weights = 'sym'") == 1);
  s.flags = 7;
  CHECK(q4db_winner_set(db, 1, &s, 1, 1, 6.5) == Q4_ERR_INVALID_ARG);
  q4db_close(db);
}

/* A tuned database opened read-only (a SQLite URI here; a file's
** permissions do the same for a user who may not write it, which root
** always may): winners and cubins are found, the device is looked up, not
** added, and writes fail with SQLite's reason. */
static void test_read_only(void) {
  const char *path = tmp_path("ro.db");
  q4db *db = NULL;
  CHECK_OK(q4db_open(path, &db));
  if (!db) return;
  q4db_device d = h100();
  int64_t dev = 0, var = 0;
  q4_variant v = variant("q4_decode", "WARPS_K=4", HASH_A);
  q4_shape s = shape(Q4_FORMAT_Q4, 4096, 4096, 0);
  unsigned char *bin = fake_cubin(100, 3);
  CHECK_OK(q4db_device_id(db, &d, &dev));
  CHECK_OK(q4db_variant_id(db, &v, &var));
  CHECK_OK(q4db_winner_set(db, dev, &s, 1, var, 6.5));
  CHECK_OK(q4db_cubin_put(db, HASH_A, 90, "13.0", bin, 100, 64, 0, 0, 1.0));
  q4db_close(db);

  char uri[600];
  snprintf(uri, sizeof uri, "file:%s?mode=ro", path);
  db = NULL;
  CHECK_OK(q4db_open(uri, &db));
  if (!db) return;
  int64_t dev_ro = -1, other = -1;
  CHECK_OK(q4db_device_id(db, &d, &dev_ro));
  CHECK(dev_ro == dev);
  q4db_device a100 = h100();
  a100.sms = 108;
  CHECK_OK(q4db_device_id(db, &a100, &other));
  CHECK(other == 0);  /* never tuned here: no winners */
  q4_variant got;
  double us = 0;
  int found = 0;
  CHECK_OK(q4db_winner_get(db, dev_ro, &s, 1, &got, &us, &found));
  CHECK(found == 1 && us == 6.5 && !strcmp(got.tmpl, "q4_decode"));
  void *cubin = NULL;
  size_t size = 0;
  CHECK_OK(q4db_cubin_get(db, HASH_A, 90, "13.0", &cubin, &size, &found));
  CHECK(found == 1 && size == 100 && cubin && !memcmp(cubin, bin, 100));
  free(cubin);
  q4_err_clear();
  CHECK(q4db_winner_set(db, dev_ro, &s, 2, var, 7.5) == Q4_ERR_DB);
  CHECK_MSG(strstr(q4_last_error(), "readonly") != NULL, "message \"%s\"", q4_last_error());
  CHECK(q4db_cubin_put(db, HASH_B, 90, "13.0", bin, 100, 64, 0, 0, 1.0) == Q4_ERR_DB);
  q4db_close(db);
  CHECK(sql_int(path, "SELECT count(*) FROM winners") == 1);

  /* read-only needs the schema already there */
  const char *empty = tmp_path("ro_empty.db");
  FILE *f = fopen(empty, "wb");
  CHECK(f != NULL);
  if (f) fclose(f);
  snprintf(uri, sizeof uri, "file:%s?mode=ro", empty);
  expect_db_error(uri, "read-only, and holds no q4tune schema");
  CHECK(sql_int(empty, "SELECT count(*) FROM sqlite_master") == 0);
  /* immutable=1: a file on a read-only file system, no -shm to make */
  snprintf(uri, sizeof uri, "file:%s?immutable=1", path);
  CHECK_OK(q4db_open(uri, &db));
  q4db_close(db);
  free(bin);
}

/* A file of the current version whose views an older build made gets this
** build's views when opened; a file whose views are current is not written. */
static void test_views_refresh(void) {
  const char *path = tmp_path("views.db");
  q4db *db = NULL;
  CHECK_OK(q4db_open(path, &db));
  q4db_close(db);
  const int version = sql_int(path, "PRAGMA schema_version");
  CHECK_OK(q4db_open(path, &db));
  q4db_close(db);
  CHECK(sql_int(path, "PRAGMA schema_version") == version);  /* nothing rewritten */
  const int columns = sql_int(path, "SELECT count(*) FROM pragma_table_info('best')");
  CHECK(columns > 10);
  CHECK(sql_script(path, "DROP VIEW best; CREATE VIEW best AS SELECT 1 AS old;"));
  CHECK(sql_int(path, "SELECT count(*) FROM pragma_table_info('best')") == 1);
  CHECK_OK(q4db_open(path, &db));
  q4db_close(db);
  CHECK(sql_int(path, "SELECT count(*) FROM pragma_table_info('best')") == columns);
  CHECK(sql_int(path, "SELECT count(*) FROM pragma_table_info('runs')") > 5);
}

/* A version-1 file a user has worked on in the sqlite3 shell: a device
** deleted with foreign keys off (its rows left naming nothing), a view of
** ours dropped, a view of their own over measurements. It migrates: the
** orphans go, everything else stays, and their view still works. */
static void test_migration_by_hand(void) {
  const char *path = make_v1("v1_by_hand.db",
      "INSERT INTO devices(name, cc_major, cc_minor, sms, driver_version, nvrtc_version)"
      "  VALUES('NVIDIA H100 80GB HBM3', 9, 0, 132, 13000, '13.0'), ('NVIDIA A100', 8, 0, 108, 13000, '13.0');"
      "INSERT INTO variants(template, params, source_hash) VALUES('q4_decode', 'A=1', 'h1');"
      "INSERT INTO measurements(device_id, variant_id, format, n, k, group_size, m, median_us, ok)"
      "  VALUES(1, 1, 'q4', 4096, 4096, 4096, 1, 7.5, 1), (2, 1, 'q4', 4096, 4096, 4096, 1, 9.5, 1);"
      "INSERT INTO winners(device_id, format, n, k, group_size, m_bucket, variant_id, median_us)"
      "  VALUES(1, 'q4', 4096, 4096, 4096, 1, 1, 7.5), (2, 'q4', 4096, 4096, 4096, 1, 1, 9.5);"
      "PRAGMA foreign_keys = OFF; DELETE FROM devices WHERE id = 2;"
      "DROP VIEW runs;"
      "CREATE VIEW fast AS SELECT n, k, median_us FROM measurements WHERE median_us < 8;");
  if (!path) return;
  q4db *db = NULL;
  CHECK_OK(q4db_open(path, &db));
  q4db_close(db);
  CHECK(sql_int(path, "PRAGMA user_version") == 2);
  CHECK(sql_int(path, "SELECT count(*) FROM measurements") == 1);
  CHECK(sql_int(path, "SELECT count(*) FROM winners") == 1);
  CHECK(sql_int(path, "SELECT count(*) FROM runs") == 1);
  CHECK(sql_int(path, "SELECT count(*) FROM fast") == 1);
  CHECK(sql_int(path, "SELECT count(*) FROM sqlite_master WHERE name LIKE '%\\_2' ESCAPE '\\'") == 0);
  CHECK(sql_int(path, "SELECT count(*) FROM pragma_foreign_key_check") == 0);
}

int main(void) {
  const char *base = getenv("Q4TUNE_TEST_TMP");
  snprintf(dir, sizeof dir, "%s/test_db.%ld", base && *base ? base : "/tmp", (long)getpid());
  mkdir_p(dir);

  test_schema();
  test_round_trip();
  test_resume();
  test_winner_pick();
  test_two_processes();
  test_concurrent_writers();
  test_null_args();
  test_bad_files();
  test_default_path();
  test_migration();
  test_migration_by_hand();
  test_views_refresh();
  test_read_only();

  if (!q4test_fail) nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  return q4test_done("test_db");
}
