-- Every attempt of one op key (a few rows: one per epoch that began it), for
-- a commit to find both the key's OK result and the attempt under its
-- fence's epoch in one search of the index; the result is read only from an
-- OK row.
SELECT seq, epoch, result_code, CASE WHEN result_code = 'OK' THEN result END
FROM ops
WHERE job_seq = :job_seq AND op_key = :op_key
