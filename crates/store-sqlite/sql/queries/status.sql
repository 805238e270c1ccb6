-- Jobs per state (states with no job are absent; a state may come twice, to
-- be summed): settled and PLANNED jobs, leased in-flight jobs, unleased
-- in-flight jobs, each from its partial index.
SELECT state, COUNT(*)
FROM jobs INDEXED BY jobs_not_in_flight
WHERE state NOT IN ('LEASED', 'HEAD_DONE', 'RESUME_OK', 'STREAMING', 'FINALIZED', 'INDEXED', 'DEDUPED')
GROUP BY state
UNION ALL
SELECT state, COUNT(*)
FROM jobs INDEXED BY jobs_lease_expiry
WHERE lease_expires_at IS NOT NULL AND state IN ('LEASED', 'HEAD_DONE', 'RESUME_OK', 'STREAMING', 'FINALIZED', 'INDEXED', 'DEDUPED')
GROUP BY state
UNION ALL
SELECT state, COUNT(*)
FROM jobs INDEXED BY jobs_unleased_in_flight
WHERE lease_expires_at IS NULL AND state IN ('LEASED', 'HEAD_DONE', 'RESUME_OK', 'STREAMING', 'FINALIZED', 'INDEXED', 'DEDUPED')
GROUP BY state
