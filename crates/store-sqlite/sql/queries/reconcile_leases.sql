-- Frees in-flight jobs whose lease expired at or before the cutoff.
UPDATE jobs INDEXED BY jobs_lease_expiry
SET lease_owner = NULL, lease_expires_at = NULL
WHERE lease_expires_at IS NOT NULL
  AND lease_expires_at <= :cutoff
  AND in_flight = 1
