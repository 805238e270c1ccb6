-- Each host's jobs by group (the most jobs first), from the counters.
SELECT host, grp, jobs, bytes
FROM watch_hosts
WHERE host IN (
    SELECT host FROM watch_hosts GROUP BY host ORDER BY SUM(jobs) DESC, host LIMIT :limit
)
