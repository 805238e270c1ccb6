-- The sum of the sizes of the SUCCESS jobs (0 when there is none): their
-- range of jobs_not_in_flight.
SELECT COALESCE(SUM(size), 0)
FROM jobs INDEXED BY jobs_not_in_flight
WHERE (state = 'PLANNED' OR state = 'SUCCESS' OR state = 'FAILED' OR state = 'SKIPPED_DUPLICATE')
  AND state = 'SUCCESS'
