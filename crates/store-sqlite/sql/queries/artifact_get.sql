-- The first stored copy of some content.
SELECT sha256, path, size, job_key
FROM artifacts
WHERE sha256 = :sha256
