DROP VIEW job_rows;
CREATE VIEW job_rows AS
SELECT job_key, work_id, artifact_id, url, canonical_url, expected_sha256, expected_size, state, epoch,
       CASE WHEN lease_expires_at > (SELECT freed_through FROM reconcile_mark)
            THEN lease_owner
       END AS lease_owner,
       CASE WHEN lease_owner IS NOT NULL AND lease_expires_at > (SELECT freed_through FROM reconcile_mark)
            THEN floor(extract(epoch FROM lease_expires_at) * 1000)::bigint
       END AS lease_expires_at,
       attempts, floor(extract(epoch FROM next_attempt_at) * 1000)::bigint AS next_attempt_at,
       last_error, retryable, etag, last_modified, remote_size, path, sha256, size, duplicate_of
FROM jobs;
ALTER TABLE jobs DROP COLUMN expected_content_type;
