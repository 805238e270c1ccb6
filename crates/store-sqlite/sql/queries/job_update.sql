-- Writes a job's mutable columns after a fenced, checked commit.
UPDATE jobs
SET state = :state,
    lease_owner = :lease_owner,
    lease_expires_at = :lease_expires_at,
    attempts = :attempts,
    next_attempt_at = :next_attempt_at,
    last_error = :last_error,
    retryable = :retryable,
    etag = :etag,
    last_modified = :last_modified,
    remote_size = :remote_size,
    path = :path,
    sha256 = :sha256,
    size = :size,
    duplicate_of = :duplicate_of
WHERE planned_seq = :planned_seq
