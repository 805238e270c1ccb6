-- Plans jobs; a job key already present is left as it is. The code appends
-- one `(?, ?, ?, ?, ?, ?, ?)` tuple per job to this head.
INSERT OR IGNORE INTO jobs (job_key, work_id, artifact_id, url, canonical_url, expected_sha256, expected_size)
VALUES
