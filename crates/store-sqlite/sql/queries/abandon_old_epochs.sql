-- At a grant: every unfinished attempt of the job under an older epoch.
UPDATE ops INDEXED BY ops_job_op
SET result_code = 'ABANDONED', finished_at = :now
WHERE job_seq = :job_seq AND result_code IS NULL AND epoch <> :epoch
