-- Lease owners of in-flight jobs whose lease expires after :after: their
-- live leases (expiry after :now) and latest expiry.
SELECT lease_owner, COUNT(CASE WHEN lease_expires_at > :now THEN 1 END), MAX(lease_expires_at)
FROM jobs INDEXED BY jobs_lease_expiry
WHERE lease_expires_at IS NOT NULL AND lease_expires_at > :after AND in_flight = 1 AND lease_owner IS NOT NULL
GROUP BY lease_owner
ORDER BY lease_owner
