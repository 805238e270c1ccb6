-- Records a recovery action as an OK row, once per op key.
INSERT OR IGNORE INTO ops (op_key, job_key, kind, epoch, started_at, finished_at, result_code, result)
VALUES (:op_key, :job_key, :kind, :epoch, :now, :now, 'OK', :result)
