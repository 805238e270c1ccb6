-- Gives back the live lease of job $1 (epoch $2, owner $3); the job keeps its
-- state and is runnable at once; the
-- attempt its epoch counted at STREAMING is not counted.
UPDATE jobs
SET lease_owner = NULL, lease_expires_at = NULL,
    -- The attempt this epoch counted at STREAMING is given back
    -- (JobState::counted_attempt).
    attempts = CASE WHEN state IN ('STREAMING', 'FINALIZED', 'INDEXED', 'DEDUPED') AND attempts > 0
                    THEN attempts - 1 ELSE attempts END
WHERE job_key = $1 AND epoch = $2 AND lease_owner = $3 AND lease_expires_at > now()
