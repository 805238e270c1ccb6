-- The sum of the sizes of the SUCCESS jobs (0 when there is none), from the
-- counters of watch_hosts.
SELECT COALESCE(SUM(bytes), 0)
FROM watch_hosts
WHERE grp = 'SUCCESS'
