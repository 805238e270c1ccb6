-- In-flight jobs whose lease expires after :after, the earliest expiry first
-- (a range of jobs_lease_expiry).
SELECT job_key, work_id, artifact_id, url, canonical_url, expected_sha256, expected_size,
       state, epoch, lease_owner, lease_expires_at, attempts, next_attempt_at, last_error, retryable,
       etag, last_modified, remote_size, path, sha256, size, duplicate_of, expected_content_type
FROM jobs INDEXED BY jobs_lease_expiry
WHERE lease_expires_at IS NOT NULL AND lease_expires_at > :after AND in_flight = 1
ORDER BY lease_expires_at, planned_seq
LIMIT :limit
