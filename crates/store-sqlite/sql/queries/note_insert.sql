-- Records a recovery action as an OK row, once per op key: nothing when the
-- op key has an OK row already, under any epoch.
INSERT OR IGNORE INTO ops (op_key, job_key, kind, epoch, started_at, finished_at, result_code, result, job_seq)
SELECT :op_key, :job_key, :kind, :epoch, :now, :now, 'OK', :result, :job_seq
WHERE NOT EXISTS (
    SELECT 1 FROM ops WHERE job_seq = :job_seq AND op_key = :op_key AND result_code = 'OK')
