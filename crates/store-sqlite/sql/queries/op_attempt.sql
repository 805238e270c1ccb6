-- The attempt of an op under one epoch, if any.
SELECT seq, result_code
FROM ops
WHERE job_seq = :job_seq AND op_key = :op_key AND epoch = :epoch
