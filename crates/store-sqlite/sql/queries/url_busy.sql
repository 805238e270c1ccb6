-- Whether a live lease holds a canonical URL.
SELECT EXISTS (
    SELECT 1 FROM jobs
    WHERE canonical_url = :canonical_url
      AND state IN ('LEASED', 'HEAD_DONE', 'RESUME_OK', 'STREAMING', 'FINALIZED', 'INDEXED', 'DEDUPED')
      AND lease_expires_at > :now)
