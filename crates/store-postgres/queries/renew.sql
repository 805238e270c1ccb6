-- Extends the live lease of job $1 (epoch $2, owner $3) to now + $4 ms.
UPDATE jobs
SET lease_expires_at = now() + $4 * interval '1 millisecond'
WHERE job_key = $1 AND epoch = $2 AND lease_owner = $3 AND lease_expires_at > now()
RETURNING floor(extract(epoch FROM lease_expires_at) * 1000)::bigint AS expires_at
