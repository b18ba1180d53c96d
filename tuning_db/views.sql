-- views.sql -- the readable views of the tuning database.
--
-- Applied after schema.sql on a new file and after every migration, in the
-- same transaction: a migration that rebuilds a table drops the views first
-- and needs not repeat them.
DROP VIEW IF EXISTS best;
DROP VIEW IF EXISTS runs;

-- The winners, readable: sqlite3 tuning.db 'select * from best'.
-- regs comes from any cubin of the winning source, preferring the device's
-- own architecture; int4_gbs is the bandwidth of the packed weights (4 bits
-- a weight for q4, 3 for q4s, with the mask), their scales and zeros (no
-- zeros for symmetric weights) and the fp16 activations in and out, GB/s.
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
       round(((CASE w.format WHEN 'q4s' THEN 0.375 ELSE 0.5 END) * w.k * w.n
              + (w.k / w.group_size) * w.n * (CASE WHEN w.flags & 1 THEN 2.0 ELSE 4.0 END)
              + 2.0 * w.m_bucket * w.k + 2.0 * w.m_bucket * w.n)
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
