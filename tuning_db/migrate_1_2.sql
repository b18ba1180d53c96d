-- Schema 1 -> 2: measurements and winners gain `flags` (symmetric weights,
-- act-order) in their keys. SQLite can't change a table's keys in place, so
-- both are rebuilt; every existing row keeps its values with flags 0. Run
-- inside one transaction by tuning_db/q4db.c, followed by views.sql, which
-- puts back the views dropped here.
DROP VIEW best;
DROP VIEW runs;
ALTER TABLE measurements RENAME TO measurements_1;
ALTER TABLE winners RENAME TO winners_1;
DROP INDEX measurements_variant;
DROP INDEX winners_variant;
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
CREATE INDEX measurements_variant ON measurements(variant_id);
INSERT INTO measurements(id, device_id, variant_id, format, n, k, group_size, m,
                         median_us, min_us, max_us, rel_error, ok, note, measured_at)
  SELECT id, device_id, variant_id, format, n, k, group_size, m,
         median_us, min_us, max_us, rel_error, ok, note, measured_at FROM measurements_1;
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
INSERT INTO winners(device_id, format, n, k, group_size, m_bucket, variant_id, median_us, chosen_at)
  SELECT device_id, format, n, k, group_size, m_bucket, variant_id, median_us, chosen_at FROM winners_1;
DROP TABLE measurements_1;
DROP TABLE winners_1;
PRAGMA user_version = 2;
