-- Gives back the live lease of job $1 (epoch $2, owner $3); the job keeps its
-- state and is runnable at once.
UPDATE jobs
SET lease_owner = NULL, lease_expires_at = NULL
WHERE job_key = $1 AND epoch = $2 AND lease_owner = $3 AND lease_expires_at > now()
