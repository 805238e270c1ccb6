-- Writes a job's state, attempts and recorded fields after a fenced, checked
-- commit that left the lease, backoff and error columns alone. It sets no
-- indexed column, so a step between in-flight states rewrites only the row.
UPDATE jobs
SET state = :state,
    attempts = :attempts,
    etag = :etag,
    last_modified = :last_modified,
    remote_size = :remote_size,
    path = :path,
    sha256 = :sha256,
    size = :size,
    duplicate_of = :duplicate_of
WHERE planned_seq = :planned_seq
