-- Jobs not yet settled for `run` with max_attempts $1: a retryable FAILED
-- job due later than $2 milliseconds from now is not waited for ($2 NULL:
-- every one is).
SELECT count(*) AS n
FROM jobs
WHERE state NOT IN ('SUCCESS', 'SKIPPED_DUPLICATE')
  AND NOT (state = 'FAILED' AND (NOT retryable OR attempts >= $1
      OR coalesce(next_attempt_at > now() + $2::bigint * interval '1 millisecond', false)))
