-- schema.sql -- the q4tune tuning database, schema version 1.
--
-- Embedded into the library at build time (cmake/embed.cmake) and applied by
-- q4db_open() inside one BEGIN IMMEDIATE transaction when a file has
-- user_version 0. It can also be applied by hand:
--   sqlite3 tuning.db < tuning_db/schema.sql
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

-- The winners, readable: sqlite3 tuning.db 'select * from best'.
-- regs comes from any cubin of the winning source, preferring the device's
-- own architecture; int4_gbs is the bandwidth of the int4 weights plus fp16
-- activations in and out, GB/s.
CREATE VIEW best AS
SELECT d.name                               AS device,
       d.cc_major || '.' || d.cc_minor      AS cc,
       w.format                             AS format,
       w.n                                  AS n,
       w.k                                  AS k,
       w.group_size                         AS group_size,
       CASE w.flags WHEN 0 THEN '' WHEN 1 THEN 'sym' WHEN 2 THEN 'act'
                    ELSE 'sym+act' END      AS weights,
       w.m_bucket                           AS m,
       v.template                           AS template,
       v.params                             AS params,
       round(w.median_us, 3)                AS median_us,
       coalesce((SELECT c.regs FROM cubins c
                  WHERE c.source_hash = v.source_hash
                    AND c.arch = d.cc_major * 10 + d.cc_minor
                  ORDER BY c.created DESC LIMIT 1),
                (SELECT c.regs FROM cubins c
                  WHERE c.source_hash = v.source_hash
                  ORDER BY c.created DESC LIMIT 1)) AS regs,
       round((w.k * w.n / 2 + 2.0 * w.m_bucket * w.k + 2.0 * w.m_bucket * w.n)
             / w.median_us / 1e3, 1)        AS int4_gbs
  FROM winners w
  JOIN devices d  ON d.id = w.device_id
  JOIN variants v ON v.id = w.variant_id
 ORDER BY d.name, d.cc_major, d.cc_minor, w.format, w.n, w.k, w.group_size, w.flags, w.m_bucket;

-- Every measurement, readable: sqlite3 tuning.db 'select * from runs'.
CREATE VIEW runs AS
SELECT m.id                                 AS id,
       d.name                               AS device,
       d.cc_major || '.' || d.cc_minor      AS cc,
       m.format                             AS format,
       m.n                                  AS n,
       m.k                                  AS k,
       m.group_size                         AS group_size,
       CASE m.flags WHEN 0 THEN '' WHEN 1 THEN 'sym' WHEN 2 THEN 'act'
                    ELSE 'sym+act' END      AS weights,
       m.m                                  AS m,
       v.template                           AS template,
       v.params                             AS params,
       round(m.median_us, 3)                AS median_us,
       round(m.min_us, 3)                   AS min_us,
       round(m.max_us, 3)                   AS max_us,
       m.rel_error                          AS rel_error,
       m.ok                                 AS ok,
       m.note                               AS note,
       m.measured_at                        AS measured_at
  FROM measurements m
  JOIN devices d  ON d.id = m.device_id
  JOIN variants v ON v.id = m.variant_id
 ORDER BY d.name, d.cc_major, d.cc_minor, m.format, m.n, m.k, m.group_size, m.flags, m.m, m.median_us;

-- Last, so that a partly applied schema is never mistaken for a complete one.
PRAGMA user_version = 2;
