-- oncefetch ledger, schema version 7: counters for `status` and the status
-- pages (SPEC §11), kept by triggers as jobs are planned and change state,
-- so that reading them costs the same on ten jobs as on ten million.
--
-- A job's host is its canonical URL's authority without user info
-- (`oncefetch_core::url::host_port`); its group is its state, with the
-- in-flight states (LEASED … DEDUPED) as one group IN_FLIGHT. Planning
-- counts its new jobs once per batch (`watch_plan_count.sql`, set-wise: a
-- trigger per inserted row made planning 1.7 times slower); the trigger
-- below fires only when a job changes group (or a SUCCESS job's size
-- changes): a worker's steps between two in-flight states touch no counter.

CREATE TABLE watch_hosts (
    host  TEXT    NOT NULL,
    grp   TEXT    NOT NULL,
    jobs  INTEGER NOT NULL,
    -- The sizes of the group's SUCCESS jobs (0 for the other groups).
    bytes INTEGER NOT NULL,
    PRIMARY KEY (host, grp)
) WITHOUT ROWID;

-- Steps into SUCCESS, SKIPPED_DUPLICATE or FAILED per minute (store clock,
-- milliseconds of the minute's start) and host.
CREATE TABLE watch_minutes (
    minute    INTEGER NOT NULL,
    host      TEXT    NOT NULL,
    succeeded INTEGER NOT NULL,
    skipped   INTEGER NOT NULL,
    failed    INTEGER NOT NULL,
    bytes     INTEGER NOT NULL,
    PRIMARY KEY (minute, host)
) WITHOUT ROWID;

-- The jobs already in the ledger.
INSERT INTO watch_hosts (host, grp, jobs, bytes)
SELECT host, grp, COUNT(*), COALESCE(SUM(CASE WHEN grp = 'SUCCESS' THEN size END), 0)
FROM (
    SELECT substr(authority, instr(authority, '@') + 1) AS host, grp, size
    FROM (
        SELECT substr(rest, 1, instr(rest || '/', '/') - 1) AS authority, grp, size
        FROM (
            SELECT substr(canonical_url, instr(canonical_url, '://') + 3) AS rest,
                   CASE WHEN in_flight = 1 THEN 'IN_FLIGHT' ELSE state END AS grp,
                   size
            FROM jobs
        )
    )
)
GROUP BY host, grp;

CREATE TRIGGER watch_step AFTER UPDATE OF state, size ON jobs
WHEN (OLD.in_flight = 0 OR NEW.in_flight = 0)
     AND (OLD.state IS NOT NEW.state OR (NEW.state = 'SUCCESS' AND OLD.size IS NOT NEW.size))
BEGIN
    INSERT INTO watch_hosts (host, grp, jobs, bytes)
    VALUES (
        substr(
            substr(substr(OLD.canonical_url, instr(OLD.canonical_url, '://') + 3), 1,
                   instr(substr(OLD.canonical_url, instr(OLD.canonical_url, '://') + 3) || '/', '/') - 1),
            instr(substr(substr(OLD.canonical_url, instr(OLD.canonical_url, '://') + 3), 1,
                         instr(substr(OLD.canonical_url, instr(OLD.canonical_url, '://') + 3) || '/', '/') - 1),
                  '@') + 1),
        CASE WHEN OLD.in_flight = 1 THEN 'IN_FLIGHT' ELSE OLD.state END,
        -1,
        CASE WHEN OLD.state = 'SUCCESS' THEN -COALESCE(OLD.size, 0) ELSE 0 END)
    ON CONFLICT (host, grp) DO UPDATE SET jobs = jobs + excluded.jobs, bytes = bytes + excluded.bytes;
    INSERT INTO watch_hosts (host, grp, jobs, bytes)
    VALUES (
        substr(
            substr(substr(NEW.canonical_url, instr(NEW.canonical_url, '://') + 3), 1,
                   instr(substr(NEW.canonical_url, instr(NEW.canonical_url, '://') + 3) || '/', '/') - 1),
            instr(substr(substr(NEW.canonical_url, instr(NEW.canonical_url, '://') + 3), 1,
                         instr(substr(NEW.canonical_url, instr(NEW.canonical_url, '://') + 3) || '/', '/') - 1),
                  '@') + 1),
        CASE WHEN NEW.in_flight = 1 THEN 'IN_FLIGHT' ELSE NEW.state END,
        1,
        CASE WHEN NEW.state = 'SUCCESS' THEN COALESCE(NEW.size, 0) ELSE 0 END)
    ON CONFLICT (host, grp) DO UPDATE SET jobs = jobs + excluded.jobs, bytes = bytes + excluded.bytes;
    INSERT INTO watch_minutes (minute, host, succeeded, skipped, failed, bytes)
    SELECT CAST(round(unixepoch('subsec') * 1000) AS INTEGER) / 60000 * 60000,
        substr(
            substr(substr(NEW.canonical_url, instr(NEW.canonical_url, '://') + 3), 1,
                   instr(substr(NEW.canonical_url, instr(NEW.canonical_url, '://') + 3) || '/', '/') - 1),
            instr(substr(substr(NEW.canonical_url, instr(NEW.canonical_url, '://') + 3), 1,
                         instr(substr(NEW.canonical_url, instr(NEW.canonical_url, '://') + 3) || '/', '/') - 1),
                  '@') + 1),
        NEW.state = 'SUCCESS', NEW.state = 'SKIPPED_DUPLICATE', NEW.state = 'FAILED',
        CASE WHEN NEW.state = 'SUCCESS' THEN COALESCE(NEW.size, 0) ELSE 0 END
    WHERE OLD.state IS NOT NEW.state
      AND (NEW.state = 'SUCCESS' OR NEW.state = 'SKIPPED_DUPLICATE' OR NEW.state = 'FAILED')
    ON CONFLICT (minute, host) DO UPDATE SET succeeded = succeeded + excluded.succeeded,
        skipped = skipped + excluded.skipped, failed = failed + excluded.failed, bytes = bytes + excluded.bytes;
END;
