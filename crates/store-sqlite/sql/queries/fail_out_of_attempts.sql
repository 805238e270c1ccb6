-- Ends a job a grant found out of attempts (its lease expired before its body
-- was in): FAILED, not retryable, under the next epoch, with no lease.
UPDATE jobs
SET state = 'FAILED', epoch = :epoch, lease_owner = NULL, lease_expires_at = NULL,
    retryable = 0, last_error = :last_error, next_attempt_at = :now
WHERE planned_seq = :planned_seq
