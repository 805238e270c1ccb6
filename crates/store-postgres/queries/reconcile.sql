-- Frees in-flight jobs whose lease expired at least $1 ms ago, and marks
-- ABANDONED every unfinished op attempt that is not under a live lease of its
-- epoch; returns both counts. Set-based, one statement.
--
-- Freeing clears only lease_owner: the expiry is past already, and no index
-- covers lease_owner, so the rows are updated in place (HOT, see the
-- fillfactor of jobs) without index writes.
WITH expired AS (
    UPDATE jobs
    SET lease_owner = NULL
    WHERE state IN ('LEASED', 'HEAD_DONE', 'RESUME_OK', 'STREAMING', 'FINALIZED', 'INDEXED', 'DEDUPED')
      AND lease_owner IS NOT NULL
      AND lease_expires_at <= now() - $1 * interval '1 millisecond'
    RETURNING 1
),
abandoned AS (
    UPDATE ops AS o
    SET result_code = 'ABANDONED', finished_at = now()
    FROM jobs AS j
    WHERE o.result_code IS NULL
      AND j.job_key = o.job_key
      AND NOT (j.epoch = o.epoch AND j.lease_owner IS NOT NULL AND coalesce(j.lease_expires_at > now(), false))
    RETURNING 1
)
SELECT (SELECT count(*) FROM expired) AS expired_leases,
       (SELECT count(*) FROM abandoned) AS abandoned_ops
