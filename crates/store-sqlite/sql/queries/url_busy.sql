-- Whether a live lease holds a canonical URL.
SELECT EXISTS (
    SELECT 1 FROM jobs INDEXED BY jobs_leased_url
    WHERE canonical_url = :canonical_url
      AND lease_expires_at IS NOT NULL
      AND lease_expires_at > :now
      AND in_flight = 1)
