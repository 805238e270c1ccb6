-- The INDEX op $1 of a commit: the first path its OK row recorded (NULL
-- when it has none), and whether it was attempted under epoch $2.
SELECT (SELECT result ->> 'first_path' FROM ops WHERE op_key = $1 AND result_code = 'OK') AS replay,
       EXISTS (SELECT 1 FROM ops WHERE op_key = $1 AND epoch = $2) AS attempted
