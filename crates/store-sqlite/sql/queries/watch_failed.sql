-- The first FAILED jobs in planning order: their range of jobs_not_in_flight.
SELECT job_key, work_id, artifact_id, url, canonical_url, expected_sha256, expected_size,
       state, epoch, lease_owner, lease_expires_at, attempts, next_attempt_at, last_error, retryable,
       etag, last_modified, remote_size, path, sha256, size, duplicate_of, expected_content_type
FROM jobs INDEXED BY jobs_not_in_flight
WHERE (state = 'PLANNED' OR state = 'SUCCESS' OR state = 'FAILED' OR state = 'SKIPPED_DUPLICATE')
  AND state = 'FAILED'
ORDER BY planned_seq
LIMIT :limit
