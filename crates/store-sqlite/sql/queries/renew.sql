-- Extends a live lease held by this owner at this epoch.
UPDATE jobs
SET lease_expires_at = :expires_at
WHERE job_key = :job_key AND epoch = :epoch AND lease_owner = :owner AND lease_expires_at > :now
