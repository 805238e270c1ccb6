-- Jobs that `run` still waits for: PLANNED or in flight, or FAILED with a
-- retry left. Two index-only counts.
SELECT (SELECT COUNT(*) FROM jobs WHERE state IN ('PLANNED', 'LEASED', 'HEAD_DONE', 'RESUME_OK', 'STREAMING', 'FINALIZED', 'INDEXED', 'DEDUPED'))
     + (SELECT COUNT(*) FROM jobs INDEXED BY jobs_failed_retryable WHERE state = 'FAILED' AND retryable = 1 AND attempts < :max_attempts)
