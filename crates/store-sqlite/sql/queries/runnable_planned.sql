-- PLANNED jobs in planning order, whose URL no live lease holds.
SELECT c.job_key, c.canonical_url, c.state
FROM jobs AS c INDEXED BY jobs_state
WHERE c.state = 'PLANNED'
  AND (c.next_attempt_at IS NULL OR c.next_attempt_at <= :now)
  AND NOT EXISTS (
      SELECT 1 FROM jobs AS b
      WHERE b.canonical_url = c.canonical_url
        AND b.state IN ('LEASED', 'HEAD_DONE', 'RESUME_OK', 'STREAMING', 'FINALIZED', 'INDEXED', 'DEDUPED')
        AND b.lease_expires_at > :now)
ORDER BY c.planned_seq
LIMIT :limit
