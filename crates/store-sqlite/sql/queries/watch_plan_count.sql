-- Counts the jobs one insert of a plan batch inserted (planning order past
-- :before: the rowid only grows) as PLANNED under their host, in one
-- statement. Only for an insert that left some of its rows out: the batch
-- counts the hosts of an insert that took all its rows itself.
INSERT INTO watch_hosts (host, grp, jobs, bytes)
SELECT substr(authority, instr(authority, '@') + 1), 'PLANNED', COUNT(*), 0
FROM (
    SELECT substr(rest, 1, instr(rest || '/', '/') - 1) AS authority
    FROM (
        SELECT substr(canonical_url, instr(canonical_url, '://') + 3) AS rest
        FROM jobs
        WHERE planned_seq > :before
    )
)
WHERE true
GROUP BY 1
ON CONFLICT (host, grp) DO UPDATE SET jobs = jobs + excluded.jobs
