-- Jobs per state (states with no job are absent; a state may come twice, to
-- be summed): settled and PLANNED jobs, leased in-flight jobs, unleased
-- in-flight jobs, each from its partial index.
SELECT state, COUNT(*)
FROM jobs INDEXED BY jobs_not_in_flight
WHERE state = 'PLANNED' OR state = 'SUCCESS' OR state = 'FAILED' OR state = 'SKIPPED_DUPLICATE'
GROUP BY state
UNION ALL
SELECT state, COUNT(*)
FROM jobs INDEXED BY jobs_lease_expiry
WHERE lease_expires_at IS NOT NULL AND in_flight = 1
GROUP BY state
UNION ALL
SELECT state, COUNT(*)
FROM jobs INDEXED BY jobs_unleased_in_flight
WHERE in_flight = 1 AND lease_expires_at IS NULL
GROUP BY state
