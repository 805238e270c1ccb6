-- The in-flight states (SPEC §3; core's `JobState::is_in_flight`), defined
-- once: every query, index and function of the ledger names them through
-- in_flight(state). A LANGUAGE sql function of one expression is inlined by
-- the planner, so a query's in_flight(state) and a partial index's predicate
-- are the same expression, and the index still serves the query.
-- (tests/it/kernel.rs pins these lists to core's.)
CREATE FUNCTION in_flight(state text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT state IN ('LEASED', 'HEAD_DONE', 'RESUME_OK', 'STREAMING', 'FINALIZED', 'INDEXED', 'DEDUPED') $$;

-- The states before the body is in (core's `JobState::before_body`): a lease
-- that expires in one of them with every attempt used ends the job.
CREATE FUNCTION before_body(state text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT state IN ('LEASED', 'HEAD_DONE', 'RESUME_OK', 'STREAMING') $$;

DROP INDEX jobs_in_flight;
CREATE INDEX jobs_in_flight ON jobs (lease_expires_at) WHERE in_flight(state);
DROP INDEX jobs_live_url;
CREATE INDEX jobs_live_url ON jobs (canonical_url) WHERE in_flight(state) AND canonical_url IS NOT NULL;

CREATE OR REPLACE FUNCTION free_of_other_leases(urls text[], job_keys text[]) RETURNS SETOF text
    LANGUAGE plpgsql VOLATILE STRICT
AS $$
DECLARE
    locked_urls text[] := '{}';
    locked_keys text[] := '{}';
BEGIN
    FOR i IN 1 .. coalesce(array_length(urls, 1), 0) LOOP
        IF pg_try_advisory_xact_lock(hashtext(current_schema()), hashtext(urls[i])) THEN
            locked_urls := locked_urls || urls[i];
            locked_keys := locked_keys || job_keys[i];
        END IF;
    END LOOP;
    RETURN QUERY
    SELECT candidate.job_key
    FROM unnest(locked_urls, locked_keys) AS candidate (canonical_url, job_key)
    WHERE NOT EXISTS (
        SELECT 1 FROM jobs
        WHERE jobs.canonical_url = candidate.canonical_url
          AND jobs.job_key <> candidate.job_key
          AND in_flight(jobs.state)
          AND jobs.lease_owner IS NOT NULL
          -- coalesce: a probe of jobs_live_url, never a scan of jobs_in_flight
          AND coalesce(jobs.lease_expires_at, '-infinity') > now()
        OFFSET 0
    );
END
$$;
