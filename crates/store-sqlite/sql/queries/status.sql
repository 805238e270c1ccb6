-- Jobs per state (states with no job are absent).
SELECT state, COUNT(*)
FROM jobs
GROUP BY state
