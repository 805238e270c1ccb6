-- Plans jobs; a job key already present is left as it is. The code appends
-- one `(?, ?, ?, ?, ?, ?, ?, ?)` tuple per job to this head, binding an empty
-- BLOB as `canonical_url_if_other` when the canonical URL is the URL itself.
INSERT OR IGNORE INTO jobs (job_key, work_id, artifact_id, url, canonical_url_if_other, expected_sha256, expected_size,
                            expected_content_type)
VALUES
