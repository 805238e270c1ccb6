-- Jobs per state (states with no job are absent; a state may come twice, to
-- be summed): PLANNED and settled jobs from the counters of watch_hosts
-- (schema version 7), leased in-flight jobs, unleased in-flight jobs, each
-- from its partial index.
SELECT grp, SUM(jobs)
FROM watch_hosts
WHERE grp <> 'IN_FLIGHT'
GROUP BY grp
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
