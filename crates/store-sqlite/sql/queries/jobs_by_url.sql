-- Jobs of one canonical URL in key order, optionally of one state and after a
-- key. Only SUCCESS jobs are indexed by URL (jobs_success_by_url.sql): this
-- query reads the whole table.
SELECT job_key, work_id, artifact_id, url, canonical_url, expected_sha256, expected_size,
       state, epoch, lease_owner, lease_expires_at, attempts, next_attempt_at, last_error, retryable,
       etag, last_modified, remote_size, path, sha256, size, duplicate_of, expected_content_type
FROM jobs
WHERE canonical_url = :canonical_url
  AND (:state IS NULL OR state = :state)
  AND (:after IS NULL OR job_key > :after)
ORDER BY job_key
LIMIT :limit
