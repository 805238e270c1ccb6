-- Retryable FAILED jobs by attempts used, and how many of them wait out a
-- backoff (next attempt after :now): jobs_failed_retryable alone, in its
-- order.
SELECT attempts, COUNT(*), COUNT(CASE WHEN next_attempt_at > :now THEN 1 END)
FROM jobs INDEXED BY jobs_failed_retryable
WHERE state = 'FAILED' AND retryable = 1
GROUP BY attempts
