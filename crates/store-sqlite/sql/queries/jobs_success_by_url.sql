-- The SUCCESS jobs of one canonical URL in key order, optionally after a key:
-- the original a twin is skipped as a duplicate of.
SELECT job_key, work_id, artifact_id, url, canonical_url, expected_sha256, expected_size,
       state, epoch, lease_owner, lease_expires_at, attempts, next_attempt_at, last_error, retryable,
       etag, last_modified, remote_size, path, sha256, size, duplicate_of, expected_content_type
FROM jobs INDEXED BY jobs_success_url
WHERE canonical_url = :canonical_url
  AND state = 'SUCCESS'
  AND (:after IS NULL OR job_key > :after)
ORDER BY job_key
LIMIT :limit
