-- Sends job $1 (locked, checked against the table by the caller) back to
-- PLANNED with its result fields cleared; marks its OK rows of effect kinds
-- ABANDONED (their results no longer describe the world, so the effects run
-- again instead of replaying; the rows stay for the audit); and records a
-- REQUEUE row $2 under its current epoch $3 with result $4 plus the count of
-- superseded rows.
WITH reset AS (
    UPDATE jobs
    SET state = 'PLANNED', lease_owner = NULL, lease_expires_at = NULL, attempts = 0,
        next_attempt_at = NULL, last_error = NULL, retryable = false, etag = NULL,
        last_modified = NULL, remote_size = NULL, path = NULL, sha256 = NULL, size = NULL,
        duplicate_of = NULL
    WHERE job_key = $1
),
superseded AS (
    UPDATE ops
    SET result_code = 'ABANDONED'
    WHERE job_key = $1
      AND result_code = 'OK'
      AND kind IN ('HEAD', 'STREAM', 'FINALIZE', 'INDEX', 'DEDUPE')
    RETURNING 1
)
INSERT INTO ops (op_key, job_key, kind, epoch, started_at, finished_at, result_code, result)
VALUES ($2, $1, 'REQUEUE', $3, now(), now(), 'OK',
        $4 || jsonb_build_object('superseded_ops', (SELECT count(*) FROM superseded)))
