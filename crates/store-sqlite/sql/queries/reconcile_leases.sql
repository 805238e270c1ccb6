-- Frees in-flight jobs whose lease expired at or before the cutoff.
UPDATE jobs INDEXED BY jobs_in_flight_expiry
SET lease_owner = NULL, lease_expires_at = NULL
WHERE state IN ('LEASED', 'HEAD_DONE', 'RESUME_OK', 'STREAMING', 'FINALIZED', 'INDEXED', 'DEDUPED')
  AND lease_expires_at <= :cutoff
