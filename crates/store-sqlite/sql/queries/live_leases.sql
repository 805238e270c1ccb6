-- In-flight jobs held by a live lease (only an in-flight job holds a lease):
-- one range of jobs_lease_expiry, read from the index alone.
SELECT COUNT(*)
FROM jobs INDEXED BY jobs_lease_expiry
WHERE lease_expires_at IS NOT NULL
  AND lease_expires_at > :now
