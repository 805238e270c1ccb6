-- Gives back a live lease held by this owner at this epoch.
UPDATE jobs
SET lease_owner = NULL, lease_expires_at = NULL
WHERE job_key = :job_key AND epoch = :epoch AND lease_owner = :owner AND lease_expires_at > :now
