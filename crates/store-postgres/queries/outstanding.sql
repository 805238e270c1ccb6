-- Jobs not yet settled for `run` with max_attempts $1.
SELECT count(*) AS n
FROM jobs
WHERE state NOT IN ('SUCCESS', 'SKIPPED_DUPLICATE')
  AND NOT (state = 'FAILED' AND (NOT retryable OR attempts >= $1))
