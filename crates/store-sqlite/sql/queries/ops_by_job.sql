-- One job's ledger rows in order, after a seq.
SELECT seq, op_key, job_key, kind, epoch, started_at, finished_at, result_code, result
FROM ops
WHERE job_seq = (SELECT planned_seq FROM jobs WHERE job_key = :job_key) AND seq > :after_seq
ORDER BY seq
LIMIT :limit
