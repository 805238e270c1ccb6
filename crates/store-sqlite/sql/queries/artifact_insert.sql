-- Indexes content unless its hash is indexed already (first writer wins).
INSERT OR IGNORE INTO artifacts (sha256, path, size, job_key)
VALUES (:sha256, :path, :size, :job_key)
