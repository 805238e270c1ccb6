-- Jobs that `run` still waits for: PLANNED, in flight (leased or not), or
-- FAILED with a retry left that is due by :horizon (milliseconds); one
-- partial index each.
SELECT (SELECT COUNT(*) FROM jobs INDEXED BY jobs_not_in_flight
        WHERE state = 'PLANNED')
     + (SELECT COUNT(*) FROM jobs INDEXED BY jobs_lease_expiry
        WHERE lease_expires_at IS NOT NULL AND in_flight = 1)
     + (SELECT COUNT(*) FROM jobs INDEXED BY jobs_unleased_in_flight
        WHERE in_flight = 1 AND lease_expires_at IS NULL)
     + (SELECT COUNT(*) FROM jobs INDEXED BY jobs_failed_retryable
        WHERE state = 'FAILED' AND retryable = 1 AND attempts < :max_attempts
          AND (next_attempt_at IS NULL OR next_attempt_at <= :horizon))
