-- In-flight jobs whose lease expired or was released, whose URL no live
-- lease holds.
SELECT c.job_key, c.canonical_url, c.state
FROM jobs AS c
WHERE c.state IN ('LEASED', 'HEAD_DONE', 'RESUME_OK', 'STREAMING', 'FINALIZED', 'INDEXED', 'DEDUPED')
  AND (c.lease_expires_at IS NULL OR c.lease_expires_at <= :now)
  AND NOT EXISTS (
      SELECT 1 FROM jobs AS b
      WHERE b.canonical_url = c.canonical_url
        AND b.state IN ('LEASED', 'HEAD_DONE', 'RESUME_OK', 'STREAMING', 'FINALIZED', 'INDEXED', 'DEDUPED')
        AND b.lease_expires_at > :now)
LIMIT :limit
