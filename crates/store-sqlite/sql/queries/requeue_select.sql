-- The jobs a filtered requeue takes, with the count of their OK rows of
-- effect kinds (OpKind::is_effect) that it supersedes: jobs of :state from
-- its range of jobs_not_in_flight, narrowed by the filters that are not NULL
-- (a FAILED job only when retryable or :include_permanent). The host is
-- core's url::host_port: the authority after "://" up to the path, from the
-- first '@' on; :host matches it alone or followed by ':' and a port.
WITH candidates AS (
    SELECT job_key, planned_seq, epoch, retryable, substr(canonical_url, instr(canonical_url, '://') + 3) AS rest
    FROM jobs INDEXED BY jobs_not_in_flight
    WHERE (state = 'PLANNED' OR state = 'SUCCESS' OR state = 'FAILED' OR state = 'SKIPPED_DUPLICATE')
      AND state = :state
      AND (:include_permanent OR retryable = 1 OR state <> 'FAILED')
      AND (:job_key IS NULL OR job_key = :job_key)
      AND (:work_id IS NULL OR work_id = :work_id)
      AND (:error IS NULL OR instr(last_error, :error) > 0)
),
authorities AS (
    SELECT job_key, planned_seq, epoch, retryable, substr(rest, 1, instr(rest || '/', '/') - 1) AS authority
    FROM candidates
),
hosts AS (
    SELECT job_key, planned_seq, epoch, retryable, substr(authority, instr(authority, '@') + 1) AS host_port
    FROM authorities
)
SELECT job_key, epoch, retryable,
       (SELECT COUNT(*) FROM ops
        WHERE ops.job_seq = hosts.planned_seq
          AND result_code = 'OK'
          AND kind IN ('HEAD', 'STREAM', 'FINALIZE', 'INDEX', 'DEDUPE')) AS superseded,
       planned_seq
FROM hosts
WHERE :host IS NULL
   OR host_port = :host
   OR substr(host_port, 1, length(:host) + 1) = :host || ':'
