-- The first page of jobs in key order, optionally of one state.
SELECT job_key, work_id, artifact_id, url, canonical_url, expected_sha256, expected_size,
       state, epoch, lease_owner, lease_expires_at, attempts, next_attempt_at, last_error, retryable,
       etag, last_modified, remote_size, path, sha256, size, duplicate_of, expected_content_type
FROM jobs
WHERE (:state IS NULL OR state = :state)
ORDER BY job_key
LIMIT :limit
