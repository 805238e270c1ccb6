-- Share-locks job $1 and says whether the fence (epoch $2, owner $3, lease
-- not expired by the server clock) holds.
SELECT coalesce(epoch = $2 AND lease_owner = $3 AND lease_expires_at > now(), false) AS holds
FROM jobs
WHERE job_key = $1
FOR SHARE
