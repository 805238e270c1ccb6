-- Records an OK row of recovery action $2 (kind $3, result $4) for job $1
-- under its current epoch, once per op key. Returns how many jobs matched.
WITH job AS (
    SELECT job_key, epoch FROM jobs WHERE job_key = $1
),
noted AS (
    INSERT INTO ops (op_key, job_key, kind, epoch, started_at, finished_at, result_code, result)
    SELECT $2, job_key, $3, epoch, now(), now(), 'OK', $4 FROM job
    ON CONFLICT DO NOTHING
)
SELECT count(*) AS n FROM job
