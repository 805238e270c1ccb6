-- Grants up to $3 runnable jobs to owner $1 for $2 milliseconds, in one
-- statement; $4 is max_attempts. Returns the granted jobs (timestamps in
-- milliseconds) with the state each was in before, in planning order.
--
-- Runnable comes in four kinds, each read from its own partial index in order
-- and locked FOR UPDATE SKIP LOCKED, so concurrent grants pass each other's
-- rows instead of waiting; a row updated meanwhile is re-checked against the
-- WHERE clause on its newest version before it is locked.
--
-- A URL with a live lease under another job is passed by twice. The scans
-- check it as this statement's snapshot sees it, one probe of jobs_live_url
-- per row (OFFSET 0 keeps the EXISTS from becoming a join or a hash of every
-- live lease, coalesce keeps it off jobs_in_flight: the cost must not depend
-- on statistics, which lag behind the leases); this lets the scans move past
-- busy URLs. Of the rows locked, free_of_other_leases (see the migration)
-- then keeps those whose URL is free also against concurrent grants, and
-- DISTINCT ON one job per URL.
--
-- The same statement abandons the unfinished op attempts of older epochs and
-- records a RELET row for each job taken over after its lease expired in
-- flight. An expired job out of attempts (before its body was in, attempts
-- at $4: core's `out_of_attempts`) takes its place in the batch but gets no
-- lease: it ends FAILED under the next epoch, its RELET row saying so.
WITH planned AS (
    SELECT job_key, canonical_url, state, planned_seq
    FROM jobs
    WHERE state = 'PLANNED'
      AND (next_attempt_at IS NULL OR next_attempt_at <= now())
      AND NOT EXISTS (
          SELECT 1 FROM jobs AS live
          WHERE live.canonical_url = jobs.canonical_url
            AND in_flight(live.state)
            AND live.lease_owner IS NOT NULL
            AND coalesce(live.lease_expires_at, '-infinity') > now()
          OFFSET 0)
    ORDER BY planned_seq
    LIMIT $3
    FOR UPDATE OF jobs SKIP LOCKED
),
retry AS (
    SELECT job_key, canonical_url, state, planned_seq
    FROM jobs
    WHERE state = 'FAILED' AND retryable
      AND next_attempt_at <= now()
      AND attempts < $4
      AND NOT EXISTS (
          SELECT 1 FROM jobs AS live
          WHERE live.canonical_url = jobs.canonical_url
            AND in_flight(live.state)
            AND live.lease_owner IS NOT NULL
            AND coalesce(live.lease_expires_at, '-infinity') > now()
          OFFSET 0)
    ORDER BY next_attempt_at
    LIMIT $3
    FOR UPDATE OF jobs SKIP LOCKED
),
released AS (
    SELECT job_key, canonical_url, state, planned_seq
    FROM jobs
    WHERE in_flight(state)
      AND lease_expires_at IS NULL
      AND NOT EXISTS (
          SELECT 1 FROM jobs AS live
          WHERE live.canonical_url = jobs.canonical_url
            AND in_flight(live.state)
            AND live.lease_owner IS NOT NULL
            AND coalesce(live.lease_expires_at, '-infinity') > now()
          OFFSET 0)
    LIMIT $3
    FOR UPDATE OF jobs SKIP LOCKED
),
expired AS (
    SELECT job_key, canonical_url, state, planned_seq,
           before_body(state) AND attempts >= $4 AS out_of_attempts
    FROM jobs
    WHERE in_flight(state)
      AND lease_expires_at <= now()
      AND NOT EXISTS (
          SELECT 1 FROM jobs AS live
          WHERE live.canonical_url = jobs.canonical_url
            AND in_flight(live.state)
            AND live.lease_owner IS NOT NULL
            AND coalesce(live.lease_expires_at, '-infinity') > now()
          OFFSET 0)
    ORDER BY lease_expires_at
    LIMIT $3
    FOR UPDATE OF jobs SKIP LOCKED
),
candidates AS (
    SELECT * FROM planned
    UNION ALL SELECT * FROM retry
    UNION ALL SELECT * FROM released
    UNION ALL SELECT job_key, canonical_url, state, planned_seq FROM expired WHERE NOT out_of_attempts
),
free AS (
    SELECT free_of_other_leases(array_agg(canonical_url), array_agg(job_key)) AS job_key
    FROM candidates
),
picked AS (
    SELECT job_key, state AS previous_state, planned_seq
    FROM (
        SELECT DISTINCT ON (canonical_url) job_key, state, planned_seq
        FROM candidates
        WHERE job_key IN (SELECT job_key FROM free)
        ORDER BY canonical_url, planned_seq
    ) AS one_per_url
    ORDER BY planned_seq
    LIMIT $3
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
        last_error = format('lease expired in %s with %s of %s attempts used (worker died or stalled)', j.state, j.attempts, $4)
            || coalesce('; last error: ' || j.last_error, ''),
        next_attempt_at = now(),
        lease_owner = NULL,
        lease_expires_at = NULL
    FROM expired AS x
    WHERE x.out_of_attempts AND j.job_key = x.job_key
    RETURNING j.job_key, j.epoch, j.last_error, x.state AS previous_state
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
    WHERE in_flight(previous_state)
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
ORDER BY planned_seq
