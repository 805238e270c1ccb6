-- Runnable jobs whose canonical URL no live lease holds, in batch order.
-- Column order: see rows.rs (the job, then its rowid). The order a batch takes them in:
--   1. in-flight jobs whose lease was released,
--   2. in-flight jobs whose lease expired, reconciled or not (they hold work
--      already done),
--   3. retryable FAILED jobs with attempts left, past their backoff,
--   4. PLANNED jobs in planning order.
--
-- Each arm is one range of a partial index, so live leases and settled jobs
-- are never scanned; the compound stops at :limit rows.
SELECT c.job_key, c.work_id, c.artifact_id, c.url, c.canonical_url, c.expected_sha256, c.expected_size,
       c.state, c.epoch, c.lease_owner, c.lease_expires_at, c.attempts, c.next_attempt_at, c.last_error, c.retryable,
       c.etag, c.last_modified, c.remote_size, c.path, c.sha256, c.size, c.duplicate_of, c.expected_content_type, c.planned_seq
FROM jobs AS c INDEXED BY jobs_unleased_in_flight
WHERE c.in_flight = 1
  AND c.lease_expires_at IS NULL
  AND NOT EXISTS (
      SELECT 1 FROM jobs AS b INDEXED BY jobs_leased_url
      WHERE b.canonical_url = c.canonical_url
        AND b.lease_expires_at IS NOT NULL
        AND b.lease_expires_at > :now
        AND b.in_flight = 1)
UNION ALL
SELECT c.job_key, c.work_id, c.artifact_id, c.url, c.canonical_url, c.expected_sha256, c.expected_size,
       c.state, c.epoch, c.lease_owner, c.lease_expires_at, c.attempts, c.next_attempt_at, c.last_error, c.retryable,
       c.etag, c.last_modified, c.remote_size, c.path, c.sha256, c.size, c.duplicate_of, c.expected_content_type, c.planned_seq
FROM jobs AS c INDEXED BY jobs_lease_expiry
WHERE c.lease_expires_at IS NOT NULL
  AND c.lease_expires_at <= :now
  AND c.in_flight = 1
  AND NOT EXISTS (
      SELECT 1 FROM jobs AS b INDEXED BY jobs_leased_url
      WHERE b.canonical_url = c.canonical_url
        AND b.lease_expires_at IS NOT NULL
        AND b.lease_expires_at > :now
        AND b.in_flight = 1)
UNION ALL
SELECT c.job_key, c.work_id, c.artifact_id, c.url, c.canonical_url, c.expected_sha256, c.expected_size,
       c.state, c.epoch, c.lease_owner, c.lease_expires_at, c.attempts, c.next_attempt_at, c.last_error, c.retryable,
       c.etag, c.last_modified, c.remote_size, c.path, c.sha256, c.size, c.duplicate_of, c.expected_content_type, c.planned_seq
FROM jobs AS c INDEXED BY jobs_failed_retryable
WHERE c.state = 'FAILED' AND c.retryable = 1
  AND c.attempts < :max_attempts
  AND c.next_attempt_at <= :now
  AND NOT EXISTS (
      SELECT 1 FROM jobs AS b INDEXED BY jobs_leased_url
      WHERE b.canonical_url = c.canonical_url
        AND b.lease_expires_at IS NOT NULL
        AND b.lease_expires_at > :now
        AND b.in_flight = 1)
UNION ALL
SELECT * FROM (
    SELECT c.job_key, c.work_id, c.artifact_id, c.url, c.canonical_url, c.expected_sha256, c.expected_size,
       c.state, c.epoch, c.lease_owner, c.lease_expires_at, c.attempts, c.next_attempt_at, c.last_error, c.retryable,
       c.etag, c.last_modified, c.remote_size, c.path, c.sha256, c.size, c.duplicate_of, c.expected_content_type, c.planned_seq
    FROM jobs AS c INDEXED BY jobs_not_in_flight
    WHERE c.state = 'PLANNED'
      AND (c.next_attempt_at IS NULL OR c.next_attempt_at <= :now)
      AND NOT EXISTS (
      SELECT 1 FROM jobs AS b INDEXED BY jobs_leased_url
      WHERE b.canonical_url = c.canonical_url
        AND b.lease_expires_at IS NOT NULL
        AND b.lease_expires_at > :now
        AND b.in_flight = 1)
    ORDER BY c.planned_seq
    LIMIT :limit)
LIMIT :limit
