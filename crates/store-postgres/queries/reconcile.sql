-- Frees in-flight jobs whose lease expired at least $1 ms ago, and marks
-- ABANDONED every unfinished op attempt that is not under a live lease of its
-- epoch; returns both counts. One statement.
--
-- Freeing moves reconcile_mark.freed_through up to now - $1 (see the
-- migration): the leases counted are those that expired since the last
-- reconcile, read from jobs_in_flight; no job row is written. The mark row
-- is locked, so concurrent reconciles count each lease once.
WITH mark AS (
    SELECT freed_through FROM reconcile_mark FOR UPDATE
),
cutoff AS (
    SELECT greatest(now() - $1 * interval '1 millisecond', freed_through) AS freed_through FROM mark
),
expired AS (
    SELECT count(*) AS n
    FROM jobs
    WHERE in_flight(state)
      AND lease_expires_at > (SELECT freed_through FROM mark)
      AND lease_expires_at <= (SELECT freed_through FROM cutoff)
      AND lease_owner IS NOT NULL
),
moved AS (
    UPDATE reconcile_mark SET freed_through = (SELECT freed_through FROM cutoff)
),
abandoned AS (
    UPDATE ops AS o
    SET result_code = 'ABANDONED', finished_at = now()
    FROM jobs AS j
    WHERE o.result_code IS NULL
      AND j.job_key = o.job_key
      AND NOT (j.epoch = o.epoch AND coalesce(j.lease_expires_at > now(), false))
    RETURNING 1
)
SELECT (SELECT n FROM expired) AS expired_leases,
       (SELECT count(*) FROM abandoned) AS abandoned_ops
