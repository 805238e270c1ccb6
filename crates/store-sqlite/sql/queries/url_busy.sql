-- Whether a live lease holds a canonical URL.
SELECT EXISTS (
    SELECT 1 FROM jobs
    WHERE canonical_url = :canonical_url
      AND in_flight = 1
      AND lease_expires_at > :now)
