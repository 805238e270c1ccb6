-- Sends a job back to PLANNED as freshly planned, keeping its epoch.
UPDATE jobs
SET state = 'PLANNED', lease_owner = NULL, lease_expires_at = NULL, attempts = 0, next_attempt_at = NULL,
    last_error = NULL, retryable = 0, etag = NULL, last_modified = NULL, remote_size = NULL, path = NULL,
    sha256 = NULL, size = NULL, duplicate_of = NULL
WHERE planned_seq = :planned_seq
