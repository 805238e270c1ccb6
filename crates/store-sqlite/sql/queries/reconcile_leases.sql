-- Counts the leases that expired after the reconcile mark and at or before
-- the cutoff: one range of jobs_lease_expiry, read from the index alone (only
-- an in-flight job holds a lease: leaving flight clears it). The caller then
-- moves the mark to the cutoff.
SELECT COUNT(*)
FROM jobs INDEXED BY jobs_lease_expiry
WHERE lease_expires_at IS NOT NULL
  AND lease_expires_at > :freed_through
  AND lease_expires_at <= :cutoff
