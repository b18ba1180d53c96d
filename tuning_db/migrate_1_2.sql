-- Schema 1 -> 2: measurements and winners gain `flags` (symmetric weights,
-- act-order) in their keys. SQLite can't change a table's keys in place, so
-- both are rebuilt as SQLite's documentation advises: a new table, the rows
-- copied, the old table dropped, the new one renamed. Every row keeps its
-- values with flags 0, except rows whose device or variant was deleted
-- without foreign keys enforced (the sqlite3 shell's default): those name
-- nothing and would fail the copy. Run inside one transaction by
-- tuning_db/q4db.c with legacy_alter_table on, so that the renames leave
-- the users' own views of these tables by name; views.sql follows and puts
-- back the views dropped here.
DROP VIEW IF EXISTS best;
DROP VIEW IF EXISTS runs;
CREATE TABLE measurements_2 (
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
INSERT INTO measurements_2(id, device_id, variant_id, format, n, k, group_size, m,
                           median_us, min_us, max_us, rel_error, ok, note, measured_at)
  SELECT id, device_id, variant_id, format, n, k, group_size, m,
         median_us, min_us, max_us, rel_error, ok, note, measured_at FROM measurements
   WHERE device_id IN (SELECT id FROM devices) AND variant_id IN (SELECT id FROM variants);
DROP TABLE measurements;
ALTER TABLE measurements_2 RENAME TO measurements;
CREATE INDEX measurements_variant ON measurements(variant_id);
CREATE TABLE winners_2 (
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
INSERT INTO winners_2(device_id, format, n, k, group_size, m_bucket, variant_id, median_us, chosen_at)
  SELECT device_id, format, n, k, group_size, m_bucket, variant_id, median_us, chosen_at FROM winners
   WHERE device_id IN (SELECT id FROM devices) AND variant_id IN (SELECT id FROM variants);
DROP TABLE winners;
ALTER TABLE winners_2 RENAME TO winners;
CREATE INDEX winners_variant ON winners(variant_id);
PRAGMA user_version = 2;
