-- Counters for `status` and the status pages (SPEC §11), kept by
-- statement-level triggers as jobs are planned and change state, so that
-- reading them costs the same on ten jobs as on ten million.
--
-- A job's host is its canonical URL's authority without user info
-- (`oncefetch_core::url::host_port`); its group is its state, with the
-- in-flight states (LEASED … DEDUPED) as one group IN_FLIGHT. Each row is
-- split into shards by the writing connection (`pg_backend_pid() % 8`), so
-- that workers on many hosts finishing jobs of one host do not queue on one
-- counter row; a statement writes its rows sorted by key, so two statements
-- never take two counter rows in opposite orders. Readers sum the shards.

CREATE FUNCTION watch_host(url text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT regexp_replace(split_part(split_part(url, '://', 2), '/', 1), '^[^@]*@', '') $$;

CREATE FUNCTION watch_group(state text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT CASE WHEN state IN ('PLANNED', 'SUCCESS', 'SKIPPED_DUPLICATE', 'FAILED') THEN state ELSE 'IN_FLIGHT' END $$;

CREATE TABLE watch_hosts (
    host  text     NOT NULL,
    grp   text     NOT NULL,
    shard smallint NOT NULL,
    jobs  bigint   NOT NULL,
    -- The sizes of the group's SUCCESS jobs (0 for the other groups).
    bytes bigint   NOT NULL,
    PRIMARY KEY (host, grp, shard)
);

-- Steps into SUCCESS, SKIPPED_DUPLICATE or FAILED per minute (milliseconds
-- of the minute's start, store clock) and host.
CREATE TABLE watch_minutes (
    minute    bigint   NOT NULL,
    host      text     NOT NULL,
    shard     smallint NOT NULL,
    succeeded bigint   NOT NULL,
    skipped   bigint   NOT NULL,
    failed    bigint   NOT NULL,
    bytes     bigint   NOT NULL,
    PRIMARY KEY (minute, host, shard)
);

-- FAILED jobs in planning order (the status page's failures).
CREATE INDEX jobs_failed_order ON jobs (planned_seq) WHERE state = 'FAILED';

INSERT INTO watch_hosts (host, grp, shard, jobs, bytes)
SELECT watch_host(canonical_url), watch_group(state), 0, count(*),
       coalesce(sum(size) FILTER (WHERE state = 'SUCCESS'), 0)
FROM jobs
GROUP BY 1, 2;

CREATE FUNCTION watch_count_insert() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    INSERT INTO watch_hosts AS w (host, grp, shard, jobs, bytes)
    SELECT watch_host(canonical_url), watch_group(state), pg_backend_pid() % 8, count(*),
           coalesce(sum(size) FILTER (WHERE state = 'SUCCESS'), 0)
    FROM new_rows
    GROUP BY 1, 2
    ORDER BY 1, 2
    ON CONFLICT (host, grp, shard) DO UPDATE SET jobs = w.jobs + excluded.jobs, bytes = w.bytes + excluded.bytes;
    RETURN NULL;
END
$$;

CREATE FUNCTION watch_count_update() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    WITH changed AS (
        SELECT watch_host(n.canonical_url) AS host, o.state AS old_state, o.size AS old_size,
               n.state AS new_state, n.size AS new_size
        FROM old_rows o JOIN new_rows n USING (job_key)
        WHERE watch_group(o.state) <> watch_group(n.state)
           OR (n.state = 'SUCCESS' AND o.state = 'SUCCESS' AND o.size IS DISTINCT FROM n.size)
    ), deltas AS (
        SELECT host, watch_group(old_state) AS grp, -1 AS jobs,
               CASE WHEN old_state = 'SUCCESS' THEN -coalesce(old_size, 0) ELSE 0 END AS bytes
        FROM changed
        UNION ALL
        SELECT host, watch_group(new_state), 1, CASE WHEN new_state = 'SUCCESS' THEN coalesce(new_size, 0) ELSE 0 END
        FROM changed
    )
    INSERT INTO watch_hosts AS w (host, grp, shard, jobs, bytes)
    SELECT host, grp, pg_backend_pid() % 8, sum(jobs), sum(bytes)
    FROM deltas
    GROUP BY host, grp
    ORDER BY host, grp
    ON CONFLICT (host, grp, shard) DO UPDATE SET jobs = w.jobs + excluded.jobs, bytes = w.bytes + excluded.bytes;
    INSERT INTO watch_minutes AS m (minute, host, shard, succeeded, skipped, failed, bytes)
    SELECT floor(extract(epoch FROM now()) * 1000 / 60000)::bigint * 60000, watch_host(n.canonical_url),
           pg_backend_pid() % 8,
           count(*) FILTER (WHERE n.state = 'SUCCESS'),
           count(*) FILTER (WHERE n.state = 'SKIPPED_DUPLICATE'),
           count(*) FILTER (WHERE n.state = 'FAILED'),
           coalesce(sum(n.size) FILTER (WHERE n.state = 'SUCCESS'), 0)
    FROM old_rows o JOIN new_rows n USING (job_key)
    WHERE n.state IN ('SUCCESS', 'SKIPPED_DUPLICATE', 'FAILED') AND o.state <> n.state
    GROUP BY 2
    ORDER BY 2
    ON CONFLICT (minute, host, shard) DO UPDATE SET succeeded = m.succeeded + excluded.succeeded,
        skipped = m.skipped + excluded.skipped, failed = m.failed + excluded.failed, bytes = m.bytes + excluded.bytes;
    RETURN NULL;
END
$$;

CREATE TRIGGER watch_plan AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION watch_count_insert();

CREATE TRIGGER watch_step AFTER UPDATE ON jobs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION watch_count_update();
