-- At a filtered requeue: every job with a REQUEUE row after :mark (the rows
-- this requeue wrote, under the write lock) goes back to PLANNED as freshly
-- planned, keeping its epoch (as requeue.sql does for one job).
UPDATE jobs
SET state = 'PLANNED', lease_owner = NULL, lease_expires_at = NULL, attempts = 0, next_attempt_at = NULL,
    last_error = NULL, retryable = 0, etag = NULL, last_modified = NULL, remote_size = NULL, path = NULL,
    sha256 = NULL, size = NULL, duplicate_of = NULL
WHERE job_key IN (SELECT job_key FROM ops WHERE seq > :mark AND kind = 'REQUEUE')
