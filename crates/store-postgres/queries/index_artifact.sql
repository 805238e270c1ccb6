-- Records content $1 at path $2 (size $3, job $4) unless the hash is indexed;
-- returns the row when it was inserted.
INSERT INTO artifacts (sha256, path, size, job_key)
VALUES ($1, $2, $3, $4)
ON CONFLICT (sha256) DO NOTHING
RETURNING sha256, path, size, job_key
