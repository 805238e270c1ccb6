-- The lease columns of one job, for a fence check.
SELECT epoch, lease_owner, lease_expires_at
FROM jobs
WHERE job_key = :job_key
