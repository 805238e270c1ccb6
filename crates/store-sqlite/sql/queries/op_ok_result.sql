-- The recorded result of an op's one OK attempt, if any.
SELECT result
FROM ops
WHERE job_seq = :job_seq AND op_key = :op_key AND result_code = 'OK'
