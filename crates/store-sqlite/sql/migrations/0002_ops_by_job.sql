-- oncefetch ledger, schema version 2: the operations ledger keyed by job.
--
-- Every op key is derived from its job key, so each lookup by op key also
-- knows the job. Leading the unique key with `job_key` keeps one job's rows
-- side by side in one leaf: a commit writes one leaf of each ops index
-- instead of one random leaf per index per op; `ops_job` is no longer
-- needed. `seq` keeps its values (ledger order) but drops AUTOINCREMENT: ops
-- rows are never deleted, so the next seq is always past every earlier one,
-- and no `sqlite_sequence` row is rewritten per insert.
CREATE TABLE ops_v2 (
    seq         INTEGER PRIMARY KEY,
    op_key      TEXT    NOT NULL,
    job_key     TEXT    NOT NULL REFERENCES jobs (job_key),
    kind        TEXT    NOT NULL,
    epoch       INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    result_code TEXT    CHECK (result_code = 'OK' OR result_code = 'ERROR' OR result_code = 'ABANDONED'),
    result      TEXT
);

INSERT INTO ops_v2 (seq, op_key, job_key, kind, epoch, started_at, finished_at, result_code, result)
SELECT seq, op_key, job_key, kind, epoch, started_at, finished_at, result_code, result
FROM ops
ORDER BY seq;

DROP TABLE ops;
ALTER TABLE ops_v2 RENAME TO ops;
DELETE FROM sqlite_sequence WHERE name = 'ops';

-- One attempt per op key and epoch; a job's rows, by op key. The rule of at
-- most one OK row per op key (SPEC §5) is kept by the one writer, which checks
-- for an OK row under the write lock before it writes one; version 1's
-- partial unique index `ops_one_ok` cost a random leaf write per finished op.
CREATE UNIQUE INDEX ops_job_op ON ops (job_key, op_key, epoch);

-- Unfinished attempts in ledger order, for reconcile to abandon in one
-- sequential pass. (A grant abandons its job's few rows through ops_job_op.)
CREATE INDEX ops_unfinished ON ops (seq) WHERE result_code IS NULL;
