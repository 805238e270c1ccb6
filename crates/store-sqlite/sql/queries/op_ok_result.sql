-- The recorded result of an op's one OK attempt, if any.
SELECT result
FROM ops
WHERE job_key = :job_key AND op_key = :op_key AND result_code = 'OK'
