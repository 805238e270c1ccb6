-- Gives back a live lease held by this owner at this epoch, and the attempt
-- the epoch counted if it reached STREAMING.
UPDATE jobs
SET lease_owner = NULL, lease_expires_at = NULL,
    -- The attempt this epoch counted at STREAMING is given back
    -- (JobState::counted_attempt).
    attempts = CASE WHEN state IN ('STREAMING', 'FINALIZED', 'INDEXED', 'DEDUPED') AND attempts > 0
                    THEN attempts - 1 ELSE attempts END
WHERE job_key = :job_key AND epoch = :epoch AND lease_owner = :owner AND lease_expires_at > :now
