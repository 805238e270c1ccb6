-- Abandons every unfinished attempt that no live lease at its epoch covers.
UPDATE ops
SET result_code = 'ABANDONED', finished_at = :now
WHERE result_code IS NULL
  AND NOT EXISTS (
      SELECT 1 FROM jobs AS j
      WHERE j.job_key = ops.job_key AND j.epoch = ops.epoch AND j.lease_expires_at > :now)
