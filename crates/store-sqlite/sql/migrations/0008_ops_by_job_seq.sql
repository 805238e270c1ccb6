-- oncefetch ledger, schema version 8: a job's op rows are indexed by its
-- planning order, not by its key.
--
-- Version 2 led the op index with `job_key`, a hash: each of a job's commits
-- wrote the index leaf of its key, one random leaf per commit, and the jobs
-- committing together (a group commit) each wrote another. Jobs are leased
-- and run in planning order, so leading the index with the job's
-- `planned_seq` (`job_seq`, set from the job when a row is written, never
-- changed: a job's `planned_seq` never changes) puts the rows of the jobs in
-- flight at once side by side: a group commit writes one or two leaves of
-- the index instead of one per job. Lookups by job key read the job's
-- `planned_seq` first (the jobs key index, read only).
CREATE TABLE ops_v8 (
    seq         INTEGER PRIMARY KEY,
    op_key      TEXT    NOT NULL,
    job_key     TEXT    NOT NULL REFERENCES jobs (job_key),
    kind        TEXT    NOT NULL,
    epoch       INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    result_code TEXT    CHECK (result_code = 'OK' OR result_code = 'ERROR' OR result_code = 'ABANDONED'),
    result      TEXT,
    -- The job's planned_seq.
    job_seq     INTEGER NOT NULL
);

INSERT INTO ops_v8 (seq, op_key, job_key, kind, epoch, started_at, finished_at, result_code, result, job_seq)
SELECT ops.seq, ops.op_key, ops.job_key, ops.kind, ops.epoch, ops.started_at, ops.finished_at, ops.result_code,
       ops.result, jobs.planned_seq
FROM ops JOIN jobs ON jobs.job_key = ops.job_key
ORDER BY ops.seq;

DROP TABLE ops;
ALTER TABLE ops_v8 RENAME TO ops;

-- One attempt per op key and epoch (an op key names one job, so one job
-- seq); a job's rows, by op key.
CREATE UNIQUE INDEX ops_job_op ON ops (job_seq, op_key, epoch);

-- As in version 2.
CREATE INDEX ops_unfinished ON ops (seq) WHERE result_code IS NULL;
