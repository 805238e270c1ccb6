-- The oncefetch ledger: jobs, the operations ledger, the artifact index.
--
-- Every timestamp is written from the server clock (now()); the Rust side only
-- ever sees milliseconds since the Unix epoch computed in SQL.

CREATE TABLE jobs (
    job_key          text        PRIMARY KEY,
    work_id          text        NOT NULL,
    artifact_id      text        NOT NULL,
    url              text        NOT NULL,
    canonical_url    text        NOT NULL,
    expected_sha256  text,
    expected_size    bigint      CHECK (expected_size >= 0),
    state            text        NOT NULL DEFAULT 'PLANNED' CHECK (state IN (
                         'PLANNED', 'LEASED', 'HEAD_DONE', 'RESUME_OK', 'STREAMING', 'FINALIZED',
                         'INDEXED', 'DEDUPED', 'SUCCESS', 'FAILED', 'SKIPPED_DUPLICATE')),
    epoch            bigint      NOT NULL DEFAULT 0,
    -- A lease is live while lease_expires_at > now() (the owner is set then).
    -- A lease that expired at or before reconcile_mark.freed_through has been
    -- freed by reconcile: reads (job_rows) show neither owner nor expiry.
    lease_owner      text,
    lease_expires_at timestamptz,
    attempts         integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  timestamptz,
    last_error       text,
    retryable        boolean     NOT NULL DEFAULT false,
    etag             text,
    last_modified    text,
    remote_size      bigint      CHECK (remote_size >= 0),
    path             text,
    sha256           text,
    size             bigint      CHECK (size >= 0),
    duplicate_of     text,
    -- Planning order: grants are first in, first out.
    planned_seq      bigserial   NOT NULL
);

-- Runnable jobs, one index per kind of runnable (each scanned in order by the grant):
-- planned jobs in planning order,
CREATE INDEX jobs_planned ON jobs (planned_seq) WHERE state = 'PLANNED';
-- retryable failures by the end of their backoff,
CREATE INDEX jobs_retry ON jobs (next_attempt_at) WHERE state = 'FAILED' AND retryable;
-- in-flight jobs by lease expiry (expired or released leases; reconcile).
CREATE INDEX jobs_in_flight ON jobs (lease_expires_at)
    WHERE state IN ('LEASED', 'HEAD_DONE', 'RESUME_OK', 'STREAMING', 'FINALIZED', 'INDEXED', 'DEDUPED');
-- In-flight jobs by URL: the live-lease check of every grant candidate is one
-- probe of this small index. (`canonical_url IS NOT NULL` is always true; it
-- is there so that only queries naming the URL can use the index, never a
-- scan for expired or released leases, whatever the statistics say.)
CREATE INDEX jobs_live_url ON jobs (canonical_url)
    WHERE state IN ('LEASED', 'HEAD_DONE', 'RESUME_OK', 'STREAMING', 'FINALIZED', 'INDEXED', 'DEDUPED')
      AND canonical_url IS NOT NULL;
-- Settled jobs by URL (the original of a duplicate) and by state in job-key
-- order (`jobs --state`, `recover`, `verify`). Partial, so that the steps a
-- job takes in flight (each a new row version) do not write to them.
CREATE INDEX jobs_settled_url ON jobs (canonical_url, job_key)
    WHERE state IN ('SUCCESS', 'SKIPPED_DUPLICATE', 'FAILED');
CREATE INDEX jobs_settled_state ON jobs (state, job_key)
    WHERE state IN ('SUCCESS', 'SKIPPED_DUPLICATE', 'FAILED');

CREATE TABLE ops (
    seq         bigserial   PRIMARY KEY,
    op_key      text        NOT NULL,
    job_key     text        NOT NULL REFERENCES jobs (job_key),
    kind        text        NOT NULL CHECK (kind IN (
                    'HEAD', 'STREAM', 'FINALIZE', 'INDEX', 'DEDUPE', 'RELET', 'REQUEUE', 'CLEANUP')),
    epoch       bigint      NOT NULL,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz,
    -- NULL while the attempt runs.
    result_code text        CHECK (result_code IN ('OK', 'ERROR', 'ABANDONED')),
    result      jsonb,
    UNIQUE (op_key, epoch)
);

-- At most one OK row per op key: the row a replay answers with.
CREATE UNIQUE INDEX ops_one_ok ON ops (op_key) WHERE result_code = 'OK';
-- The trail of one job.
CREATE INDEX ops_by_job ON ops (job_key, seq);
-- Running attempts (abandoned by grants and reconcile).
CREATE INDEX ops_unfinished ON ops (job_key, epoch) WHERE result_code IS NULL;

-- How far reconcile has freed expired leases: every lease that expired at or
-- before freed_through counts as freed. Freeing a million expired leases is
-- then a count over an index range and one row written, not a million rows
-- rewritten; nothing else needs the freed rows changed (fences, grants and
-- live-lease checks all go by lease_expires_at > now()).
CREATE TABLE reconcile_mark (
    singleton     boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    freed_through timestamptz NOT NULL
);
INSERT INTO reconcile_mark (freed_through) VALUES ('-infinity');

CREATE TABLE artifacts (
    sha256  text   PRIMARY KEY,
    path    text   NOT NULL,
    size    bigint NOT NULL CHECK (size >= 0),
    job_key text   NOT NULL
);

-- Of the candidate jobs `job_keys` of canonical URLs `urls` (same order), the
-- job keys a grant may take now: no other job of the URL holds a live lease,
-- also against concurrent grants.
--
-- The URL's transaction-scoped advisory lock (two-key form, keyed by schema so
-- that ledgers in other schemas never contend) serializes grants of one URL;
-- a grant that finds it taken passes the URL by. After taking the locks, the
-- function checks for live leases. Being VOLATILE, its query runs with a
-- fresh snapshot (under READ COMMITTED), so it sees every lease committed by
-- a grant that held a lock before us — which the calling statement's own
-- snapshot may predate. A grant that commits after us takes the lock after
-- our commit released it, and then sees our lease the same way.
CREATE FUNCTION free_of_other_leases(urls text[], job_keys text[]) RETURNS SETOF text
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
          AND jobs.state IN ('LEASED', 'HEAD_DONE', 'RESUME_OK', 'STREAMING', 'FINALIZED', 'INDEXED', 'DEDUPED')
          AND jobs.lease_owner IS NOT NULL
          -- coalesce: a probe of jobs_live_url, never a scan of jobs_in_flight
          AND coalesce(jobs.lease_expires_at, '-infinity') > now()
        OFFSET 0
    );
END
$$;

-- `s` as a JSON string the way the key functions of core write it (Python's
-- json.dumps with ensure_ascii: printable ASCII as is, the usual short
-- escapes, everything else as \uXXXX, UTF-16 surrogate pairs above U+FFFF),
-- so that SQL can compute op keys byte-for-byte as core does.
CREATE FUNCTION key_json_string(s text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE STRICT
AS $$
DECLARE
    quoted text := '"';
    c text;
    cp integer;
BEGIN
    IF s ~ '^[ !#-\[\]-~]*$' THEN
        RETURN '"' || s || '"';
    END IF;
    FOREACH c IN ARRAY regexp_split_to_array(s, '') LOOP
        cp := ascii(c);
        quoted := quoted || CASE
            WHEN c = '"' THEN '\"'
            WHEN c = '\' THEN '\\'
            WHEN cp = 10 THEN '\n'
            WHEN cp = 13 THEN '\r'
            WHEN cp = 9 THEN '\t'
            WHEN cp = 8 THEN '\b'
            WHEN cp = 12 THEN '\f'
            WHEN cp BETWEEN 32 AND 126 THEN c
            WHEN cp < 65536 THEN '\u' || lpad(to_hex(cp), 4, '0')
            ELSE '\u' || to_hex(55296 + ((cp - 65536) >> 10)) || '\u' || to_hex(56320 + ((cp - 65536) & 1023))
        END;
    END LOOP;
    RETURN quoted || '"';
END
$$;

-- The op key of a per-epoch action (RELET, REQUEUE): core's
-- OpKeys::epoch_action, ikey({"v":1,"kind":KIND,"job_id":JOB,"epoch":N}).
CREATE FUNCTION epoch_action_key(action text, job text, action_epoch bigint) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT
AS $$
    SELECT encode(sha256(convert_to(
        '{"epoch":' || action_epoch || ',"job_id":' || key_json_string(job)
            || ',"kind":' || key_json_string(action) || ',"v":1}',
        'UTF8')), 'hex')
$$;

-- Jobs as the store reads them: timestamps as milliseconds since the Unix
-- epoch, and no lease where reconcile freed it.
CREATE VIEW job_rows AS
SELECT job_key, work_id, artifact_id, url, canonical_url, expected_sha256, expected_size, state, epoch,
       CASE WHEN lease_expires_at > (SELECT freed_through FROM reconcile_mark)
            THEN lease_owner
       END AS lease_owner,
       CASE WHEN lease_owner IS NOT NULL AND lease_expires_at > (SELECT freed_through FROM reconcile_mark)
            THEN floor(extract(epoch FROM lease_expires_at) * 1000)::bigint
       END AS lease_expires_at,
       attempts, floor(extract(epoch FROM next_attempt_at) * 1000)::bigint AS next_attempt_at,
       last_error, retryable, etag, last_modified, remote_size, path, sha256, size, duplicate_of
FROM jobs;

-- Ledger rows as the store reads them.
CREATE VIEW op_rows AS
SELECT seq, op_key, job_key, kind, epoch,
       floor(extract(epoch FROM started_at) * 1000)::bigint AS started_at,
       floor(extract(epoch FROM finished_at) * 1000)::bigint AS finished_at,
       result_code, result
FROM ops;
