-- Grants job $4 to owner $1 for $2 milliseconds if it is runnable ($3 is
-- max_attempts) and no other job of its URL holds a live lease: the rules of
-- acquire.sql, for one named job, out of attempts included. Returns nothing
-- when it is not granted.
WITH target AS (
    SELECT job_key, canonical_url, state,
           state IN ('LEASED', 'HEAD_DONE', 'RESUME_OK', 'STREAMING') AND lease_expires_at <= now()
               AND attempts >= $3 AS out_of_attempts
    FROM jobs
    WHERE job_key = $4
      AND (state = 'PLANNED' AND (next_attempt_at IS NULL OR next_attempt_at <= now())
           OR state = 'FAILED' AND retryable AND next_attempt_at <= now() AND attempts < $3
           OR state IN ('LEASED', 'HEAD_DONE', 'RESUME_OK', 'STREAMING', 'FINALIZED', 'INDEXED', 'DEDUPED')
              AND (lease_expires_at IS NULL OR lease_expires_at <= now()))
    FOR UPDATE OF jobs SKIP LOCKED
),
free AS (
    SELECT job_key, state AS previous_state, out_of_attempts
    FROM target
    WHERE job_key IN (SELECT free_of_other_leases(array[canonical_url], array[job_key]) FROM target)
),
picked AS (
    SELECT job_key, previous_state FROM free WHERE NOT out_of_attempts
),
granted AS (
    UPDATE jobs AS j
    SET epoch = j.epoch + 1,
        state = 'LEASED',
        lease_owner = $1,
        lease_expires_at = now() + $2 * interval '1 millisecond'
    FROM picked AS p
    WHERE j.job_key = p.job_key
    RETURNING j.*, p.previous_state
),
failed AS (
    UPDATE jobs AS j
    SET epoch = j.epoch + 1,
        state = 'FAILED',
        retryable = false,
        last_error = format('lease expired in %s with %s of %s attempts used (worker died or stalled)', j.state, j.attempts, $3)
            || coalesce('; last error: ' || j.last_error, ''),
        next_attempt_at = now(),
        lease_owner = NULL,
        lease_expires_at = NULL
    FROM free AS x
    WHERE x.out_of_attempts AND j.job_key = x.job_key
    RETURNING j.job_key, j.epoch, j.last_error, x.previous_state
),
abandoned AS (
    UPDATE ops AS o
    SET result_code = 'ABANDONED', finished_at = now()
    FROM (SELECT job_key, epoch FROM granted UNION ALL SELECT job_key, epoch FROM failed) AS g
    WHERE o.job_key = g.job_key AND o.result_code IS NULL AND o.epoch < g.epoch
),
relet AS (
    INSERT INTO ops (op_key, job_key, kind, epoch, started_at, finished_at, result_code, result)
    SELECT epoch_action_key('RELET', job_key, epoch), job_key, 'RELET', epoch, now(), now(), 'OK',
           jsonb_build_object('from', previous_state, 'epoch', epoch)
    FROM granted
    WHERE previous_state IN ('LEASED', 'HEAD_DONE', 'RESUME_OK', 'STREAMING', 'FINALIZED', 'INDEXED', 'DEDUPED')
    UNION ALL
    SELECT epoch_action_key('RELET', job_key, epoch), job_key, 'RELET', epoch, now(), now(), 'OK',
           jsonb_build_object('from', previous_state, 'epoch', epoch, 'to', 'FAILED', 'last_error', last_error)
    FROM failed
)
SELECT job_key, work_id, artifact_id, url, canonical_url, expected_sha256, expected_size, state, epoch,
       lease_owner, floor(extract(epoch FROM lease_expires_at) * 1000)::bigint AS lease_expires_at,
       attempts, floor(extract(epoch FROM next_attempt_at) * 1000)::bigint AS next_attempt_at,
       last_error, retryable, etag, last_modified, remote_size, path, sha256, size, duplicate_of,
       expected_content_type, previous_state
FROM granted
