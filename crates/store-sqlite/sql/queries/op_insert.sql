-- Records an attempt (running when result_code is NULL).
INSERT INTO ops (op_key, job_key, kind, epoch, started_at, finished_at, result_code, result, job_seq)
VALUES (:op_key, :job_key, :kind, :epoch, :started_at, :finished_at, :result_code, :result, :job_seq)
