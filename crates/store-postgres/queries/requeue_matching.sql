-- Requeues every job of state $1 the filters take, in one statement: a
-- FAILED job only when retryable or $2 (include permanent failures); then,
-- each only when not NULL, job key $3, work id $4, host $5 (core's
-- url::host_port: the authority after "://" up to the path, from the first
-- '@' on, alone or followed by ':' and a port) and $6 a substring of
-- last_error. As requeue.sql does for one job: the jobs go back to PLANNED
-- with their result fields cleared, their OK rows of effect kinds become
-- ABANDONED, and each gets a REQUEUE row under its epoch (core's op key,
-- epoch_action_key) with reason $7 and its count of superseded rows.
-- Answers the requeued jobs counted by kind.
WITH picked AS (
    SELECT jobs.job_key, jobs.epoch, jobs.state, jobs.retryable
    FROM jobs
    CROSS JOIN LATERAL (
        SELECT substring(jobs.canonical_url FROM '^[^:/]*://(?:[^@/]*@)?([^/]*)') AS host_port
    ) AS url
    -- The literal list lets even a generic plan use jobs_settled_state.
    WHERE jobs.state IN ('SUCCESS', 'SKIPPED_DUPLICATE', 'FAILED')
      AND jobs.state = $1
      AND ($2 OR jobs.retryable OR jobs.state <> 'FAILED')
      AND ($3::text IS NULL OR jobs.job_key = $3)
      AND ($4::text IS NULL OR jobs.work_id = $4)
      AND ($5::text IS NULL OR url.host_port = $5 OR left(url.host_port, length($5) + 1) = $5 || ':')
      AND ($6::text IS NULL OR strpos(jobs.last_error, $6) > 0)
    FOR UPDATE OF jobs
),
reset AS (
    UPDATE jobs
    SET state = 'PLANNED', lease_owner = NULL, lease_expires_at = NULL, attempts = 0,
        next_attempt_at = NULL, last_error = NULL, retryable = false, etag = NULL,
        last_modified = NULL, remote_size = NULL, path = NULL, sha256 = NULL, size = NULL,
        duplicate_of = NULL
    FROM picked
    WHERE jobs.job_key = picked.job_key
),
superseded AS (
    UPDATE ops
    SET result_code = 'ABANDONED'
    FROM picked
    WHERE ops.job_key = picked.job_key
      AND ops.result_code = 'OK'
      AND ops.kind IN ('HEAD', 'STREAM', 'FINALIZE', 'INDEX', 'DEDUPE')
    RETURNING ops.job_key
),
superseded_per_job AS (
    SELECT job_key, count(*) AS n FROM superseded GROUP BY job_key
),
noted AS (
    INSERT INTO ops (op_key, job_key, kind, epoch, started_at, finished_at, result_code, result)
    SELECT epoch_action_key('REQUEUE', picked.job_key, picked.epoch), picked.job_key, 'REQUEUE', picked.epoch,
           now(), now(), 'OK',
           jsonb_build_object('from', picked.state, 'reason', $7::text,
                              'superseded_ops', coalesce(superseded_per_job.n, 0))
    FROM picked
    LEFT JOIN superseded_per_job ON superseded_per_job.job_key = picked.job_key
)
SELECT count(*) FILTER (WHERE state = 'FAILED' AND retryable) AS retryable,
       count(*) FILTER (WHERE state = 'FAILED' AND NOT retryable) AS permanent,
       count(*) FILTER (WHERE state <> 'FAILED') AS finished
FROM picked
