-- schema.sql -- the q4tune tuning database, schema version 2: the tables.
--
-- Embedded into the library at build time (cmake/embed.cmake) and applied by
-- q4db_open() inside one BEGIN IMMEDIATE transaction when a file has
-- user_version 0, followed by views.sql. It can also be applied by hand:
--   cat tuning_db/schema.sql tuning_db/views.sql | sqlite3 tuning.db
-- Plain CREATE TABLE (not IF NOT EXISTS) on purpose: an unrelated database
-- that happens to hold a table of the same name fails at open, not later.
--
-- Times are UTC text ('YYYY-MM-DD HH:MM:SS') so the sqlite3 shell shows them
-- as they are. A time that was not measured is NULL, never a negative number.

-- One GPU model as the tuner saw it. Identity is (name, cc, sms): two cards
-- of the same model share their tuning results.
CREATE TABLE devices (
  id             INTEGER PRIMARY KEY,
  name           TEXT    NOT NULL,
  cc_major       INTEGER NOT NULL,
  cc_minor       INTEGER NOT NULL,
  sms            INTEGER NOT NULL,
  driver_version INTEGER NOT NULL,            -- cuDriverGetVersion, e.g. 13000
  nvrtc_version  TEXT    NOT NULL,            -- "13.0"
  first_seen     TEXT    NOT NULL DEFAULT (datetime('now')),
  last_seen      TEXT    NOT NULL DEFAULT (datetime('now')),
  UNIQUE (name, cc_major, cc_minor, sms)
);

-- One rendered kernel: a template with its parameters. The source hash is
-- part of the identity so that editing a template yields a new variant
-- rather than silently reusing measurements of the old code.
CREATE TABLE variants (
  id          INTEGER PRIMARY KEY,
  template    TEXT NOT NULL,                  -- "q4_wmma"
  params      TEXT NOT NULL,                  -- "BLOCK_M=64,BLOCK_N=128,..."
  source_hash TEXT NOT NULL,                  -- XXH3-128 of the source, hex
  created     TEXT NOT NULL DEFAULT (datetime('now')),
  UNIQUE (template, params, source_hash)
);

-- Compiled kernels. Keyed by source hash, not variant, because the cubin
-- depends only on the source text, the target and the compiler.
CREATE TABLE cubins (
  source_hash   TEXT    NOT NULL,
  arch          INTEGER NOT NULL,             -- 10 * cc_major + cc_minor: 90
  nvrtc_version TEXT    NOT NULL,
  cubin         BLOB    NOT NULL,
  size          INTEGER NOT NULL,             -- bytes of cubin
  regs          INTEGER NOT NULL,             -- registers per thread
  smem          INTEGER NOT NULL,             -- static shared memory, bytes
  spill_bytes   INTEGER NOT NULL,
  compile_ms    REAL    NOT NULL,
  created       TEXT    NOT NULL DEFAULT (datetime('now')),
  PRIMARY KEY (source_hash, arch, nvrtc_version)
);

-- Every timed (or rejected) run. Adding the same (device, variant, problem)
-- again replaces the row, so the table holds the latest result only.
CREATE TABLE measurements (
  id          INTEGER PRIMARY KEY,
  device_id   INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
  variant_id  INTEGER NOT NULL REFERENCES variants(id) ON DELETE CASCADE,
  format      TEXT    NOT NULL CHECK (format IN ('q4', 'q4s')),
  n           INTEGER NOT NULL CHECK (n > 0),
  k           INTEGER NOT NULL CHECK (k > 0),
  group_size  INTEGER NOT NULL CHECK (group_size > 0),
  m           INTEGER NOT NULL CHECK (m > 0),
  flags       INTEGER NOT NULL DEFAULT 0      -- 1: symmetric, 2: act-order
              CHECK (flags BETWEEN 0 AND 3),
  median_us   REAL,                           -- NULL: not timed
  min_us      REAL,
  max_us      REAL,
  rel_error   REAL,                           -- NULL: not verified
  ok          INTEGER NOT NULL CHECK (ok IN (0, 1)),
  note        TEXT    NOT NULL DEFAULT '',    -- why it was rejected
  measured_at TEXT    NOT NULL DEFAULT (datetime('now')),
  UNIQUE (device_id, variant_id, format, n, k, group_size, flags, m)
);
-- Foreign keys are checked on delete through the child's column: index it.
CREATE INDEX measurements_variant ON measurements(variant_id);

-- The chosen kernel per device, problem and M bucket.
CREATE TABLE winners (
  device_id  INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
  format     TEXT    NOT NULL CHECK (format IN ('q4', 'q4s')),
  n          INTEGER NOT NULL CHECK (n > 0),
  k          INTEGER NOT NULL CHECK (k > 0),
  group_size INTEGER NOT NULL CHECK (group_size > 0),
  m_bucket   INTEGER NOT NULL CHECK (m_bucket > 0),
  flags      INTEGER NOT NULL DEFAULT 0 CHECK (flags BETWEEN 0 AND 3),
  variant_id INTEGER NOT NULL REFERENCES variants(id) ON DELETE CASCADE,
  median_us  REAL,
  chosen_at  TEXT    NOT NULL DEFAULT (datetime('now')),
  PRIMARY KEY (device_id, format, n, k, group_size, flags, m_bucket)
);
CREATE INDEX winners_variant ON winners(variant_id);

-- Last, so that a partly applied schema is never mistaken for a complete one
-- (q4db_open applies it and views.sql in one transaction anyway).
PRAGMA user_version = 2;
