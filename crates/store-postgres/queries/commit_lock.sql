-- First statement of a commit: locks job $1 and reports its state, whether
-- the fence (epoch $2, owner $3, lease not expired by the server clock) holds,
-- and what the ledger records of op $4 (the op to finish): whether it has a
-- running attempt under epoch $2, and whether it has an OK row.
SELECT state, attempts, last_error, retryable,
       coalesce(epoch = $2 AND lease_owner = $3 AND lease_expires_at > now(), false) AS holds,
       coalesce((SELECT result_code IS NULL FROM ops WHERE op_key = $4 AND epoch = $2), false) AS finish_running,
       ($4::text IS NOT NULL AND EXISTS (SELECT 1 FROM ops WHERE op_key = $4 AND result_code = 'OK')) AS finish_ok
FROM jobs
WHERE job_key = $1
FOR UPDATE
