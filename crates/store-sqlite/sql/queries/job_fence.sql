-- The lease columns of one job, for a fence check, and its planned_seq.
SELECT epoch, lease_owner, lease_expires_at, planned_seq
FROM jobs
WHERE job_key = :job_key
