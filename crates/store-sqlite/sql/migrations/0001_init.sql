-- oncefetch ledger, schema version 1.
--
-- Times are milliseconds since the Unix epoch read from the store clock
-- (SQLite's `unixepoch('subsec')` on the host that holds the file).

-- Jobs: one row per planned artifact. `planned_seq` is the rowid, so it is
-- the planning order (FIFO) and every index ends with it for free.
CREATE TABLE jobs (
    planned_seq      INTEGER PRIMARY KEY,
    job_key          TEXT    NOT NULL UNIQUE,
    work_id          TEXT    NOT NULL,
    artifact_id      TEXT    NOT NULL,
    url              TEXT    NOT NULL,
    canonical_url    TEXT    NOT NULL,
    expected_sha256  TEXT,
    expected_size    INTEGER,
    -- The checks are OR chains, not IN lists: SQLite evaluates a constant IN
    -- list of more than two values through a temporary table built at every
    -- execution of a statement that writes the column.
    state            TEXT    NOT NULL DEFAULT 'PLANNED' CHECK (
                         state = 'PLANNED' OR state = 'LEASED' OR state = 'HEAD_DONE' OR state = 'RESUME_OK'
                         OR state = 'STREAMING' OR state = 'FINALIZED' OR state = 'INDEXED' OR state = 'DEDUPED'
                         OR state = 'SUCCESS' OR state = 'FAILED' OR state = 'SKIPPED_DUPLICATE'),
    -- 1 for the states a worker holds a lease in (LEASED … DEDUPED).
    in_flight        INTEGER GENERATED ALWAYS AS (
                         CASE state
                             WHEN 'LEASED' THEN 1 WHEN 'HEAD_DONE' THEN 1 WHEN 'RESUME_OK' THEN 1
                             WHEN 'STREAMING' THEN 1 WHEN 'FINALIZED' THEN 1 WHEN 'INDEXED' THEN 1
                             WHEN 'DEDUPED' THEN 1 ELSE 0
                         END) VIRTUAL,
    epoch            INTEGER NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER,
    last_error       TEXT,
    retryable        INTEGER NOT NULL DEFAULT 0,
    etag             TEXT,
    last_modified    TEXT,
    remote_size      INTEGER,
    path             TEXT,
    sha256           TEXT,
    size             INTEGER,
    duplicate_of     TEXT
);

-- The indexes over jobs are partial so that a worker's step between two
-- in-flight states (the commonest write) touches none of them: only the row
-- changes, and the commit writes one page to the WAL.

-- Jobs that are not in flight, by state: PLANNED ones in planning order (the
-- rowid ends every key), and the counts of settled states.
CREATE INDEX jobs_not_in_flight ON jobs (state)
    WHERE state = 'PLANNED' OR state = 'SUCCESS' OR state = 'FAILED' OR state = 'SKIPPED_DUPLICATE';

-- Leases by expiry: expired ones to grant again, and reconcile. A lease is
-- only ever held by an in-flight job.
CREATE INDEX jobs_lease_expiry ON jobs (lease_expires_at) WHERE lease_expires_at IS NOT NULL;

-- In-flight jobs whose lease was released or reconciled away: runnable now.
CREATE INDEX jobs_unleased_in_flight ON jobs (planned_seq) WHERE in_flight = 1 AND lease_expires_at IS NULL;

-- Retryable FAILED jobs by attempts, then the time their backoff ends: jobs
-- out of attempts fall outside the scanned range.
CREATE INDEX jobs_failed_retryable ON jobs (attempts, next_attempt_at) WHERE state = 'FAILED' AND retryable = 1;

-- One URL in flight at a time: the URLs held by a lease (only in-flight jobs
-- hold one). Planning does not touch it, nor does a step.
CREATE INDEX jobs_leased_url ON jobs (canonical_url) WHERE lease_expires_at IS NOT NULL;

-- The first job of a URL to succeed, for its twins to be skipped as duplicates.
CREATE INDEX jobs_success_url ON jobs (canonical_url) WHERE state = 'SUCCESS';

-- The operations ledger: one row per attempt.
CREATE TABLE ops (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    op_key      TEXT    NOT NULL,
    job_key     TEXT    NOT NULL REFERENCES jobs (job_key),
    kind        TEXT    NOT NULL,
    epoch       INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    result_code TEXT    CHECK (result_code = 'OK' OR result_code = 'ERROR' OR result_code = 'ABANDONED'),
    result      TEXT,
    UNIQUE (op_key, epoch)
);

-- At most one OK row per op key (SPEC §5).
CREATE UNIQUE INDEX ops_one_ok ON ops (op_key) WHERE result_code = 'OK';

-- `ledger --job KEY`, in order (the rowid `seq` ends the key).
CREATE INDEX ops_job ON ops (job_key);

-- Unfinished attempts in ledger order, for reconcile to abandon in one
-- sequential pass. (A grant abandons its job's few rows through ops_job.)
CREATE INDEX ops_unfinished ON ops (seq) WHERE result_code IS NULL;

-- The artifact index: the first stored copy of each content hash.
CREATE TABLE artifacts (
    sha256  TEXT    PRIMARY KEY,
    path    TEXT    NOT NULL,
    size    INTEGER NOT NULL,
    job_key TEXT    NOT NULL REFERENCES jobs (job_key)
) WITHOUT ROWID;
