-- The expectations a job records: read back at planning only for a line
-- that declares some and whose job key was already present.
SELECT expected_sha256, expected_size, expected_content_type
FROM jobs
WHERE job_key = :job_key
