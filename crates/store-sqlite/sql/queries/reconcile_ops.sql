-- Abandons every unfinished attempt that no live lease at its epoch covers.
-- The live leases (few) are read once into a set, and the unfinished
-- attempts are visited in ledger order, so the pass reads and writes each
-- page once and does no lookup per row.
UPDATE ops INDEXED BY ops_unfinished
SET result_code = 'ABANDONED', finished_at = :now
WHERE result_code IS NULL
  AND (job_key, epoch) NOT IN (
      SELECT job_key, epoch FROM jobs INDEXED BY jobs_lease_expiry
      WHERE lease_expires_at IS NOT NULL AND lease_expires_at > :now)
