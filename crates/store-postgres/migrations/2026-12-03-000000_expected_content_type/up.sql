-- A job records the media type its manifest line expects (`content_type`,
-- SPEC §1), checked against the response's Content-Type and first bytes
-- while streaming (SPEC §8). Nullable, no default: jobs planned before
-- expect no type (`run --accept` may still give them one at run time), and
-- adding the column rewrites no row.

ALTER TABLE jobs ADD COLUMN expected_content_type text;

-- As before, with the new column last (CREATE OR REPLACE VIEW may only
-- append columns).
CREATE OR REPLACE VIEW job_rows AS
SELECT job_key, work_id, artifact_id, url, canonical_url, expected_sha256, expected_size, state, epoch,
       CASE WHEN lease_expires_at > (SELECT freed_through FROM reconcile_mark)
            THEN lease_owner
       END AS lease_owner,
       CASE WHEN lease_owner IS NOT NULL AND lease_expires_at > (SELECT freed_through FROM reconcile_mark)
            THEN floor(extract(epoch FROM lease_expires_at) * 1000)::bigint
       END AS lease_expires_at,
       attempts, floor(extract(epoch FROM next_attempt_at) * 1000)::bigint AS next_attempt_at,
       last_error, retryable, etag, last_modified, remote_size, path, sha256, size, duplicate_of,
       expected_content_type
FROM jobs;
