-- The attempt of an op under one epoch, if any.
SELECT seq, result_code
FROM ops
WHERE op_key = :op_key AND epoch = :epoch
