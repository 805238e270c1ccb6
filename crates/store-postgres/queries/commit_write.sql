-- Second statement of a commit, with job $1 locked under the fence's epoch $2:
-- finishes op $3 (code $4, result $5), writes the job's new fields when $6,
-- and starts op $21 (kind $22) unless an OK row of it exists. Every part
-- reads the snapshot from before the statement, so the replay check does not
-- see the finish of the same statement. The caller rolls back when a part
-- did not happen (finished = 0, or begun = 0 without a replay).
--
-- Job fields: $7 state, $8 attempts, $9 last_error, $10 retryable;
-- $11 next_attempt_at (0 keep, 1 clear, 2 now() + $12 ms); $13 end the lease;
-- patch fields $14 etag … $20 duplicate_of (NULL keeps the value).
WITH finished AS (
    UPDATE ops
    SET result_code = $4, result = $5, finished_at = now()
    WHERE $3::text IS NOT NULL AND op_key = $3 AND epoch = $2 AND result_code IS NULL
    RETURNING seq
),
updated AS (
    UPDATE jobs
    SET state = $7,
        attempts = $8,
        last_error = $9,
        retryable = $10,
        next_attempt_at = CASE $11::integer
            WHEN 0 THEN next_attempt_at
            WHEN 1 THEN NULL
            ELSE now() + $12 * interval '1 millisecond'
        END,
        lease_owner = CASE WHEN $13 THEN NULL ELSE lease_owner END,
        lease_expires_at = CASE WHEN $13 THEN NULL ELSE lease_expires_at END,
        etag = coalesce($14, etag),
        last_modified = coalesce($15, last_modified),
        remote_size = coalesce($16, remote_size),
        path = coalesce($17, path),
        sha256 = coalesce($18, sha256),
        size = coalesce($19, size),
        duplicate_of = coalesce($20, duplicate_of)
    WHERE $6 AND job_key = $1
    RETURNING 1
),
replay AS (
    SELECT result FROM ops WHERE $21::text IS NOT NULL AND op_key = $21 AND result_code = 'OK'
),
begun AS (
    INSERT INTO ops (op_key, job_key, kind, epoch, started_at)
    SELECT $21, $1, $22, $2, now()
    WHERE $21::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM replay)
    ON CONFLICT (op_key, epoch) DO NOTHING
    RETURNING seq
)
SELECT (SELECT count(*) FROM finished) AS finished,
       (SELECT count(*) FROM updated) AS updated,
       EXISTS (SELECT 1 FROM replay) AS replayed,
       (SELECT result FROM replay LIMIT 1) AS replay,
       (SELECT count(*) FROM begun) AS begun
