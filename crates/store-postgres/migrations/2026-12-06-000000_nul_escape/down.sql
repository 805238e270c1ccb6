-- Back to unescaped text: refused while any value holds an escaped NUL (an
-- odd run of SUBs followed by '0'), which an unescaped text value cannot hold.
DO $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM jobs
        WHERE (work_id || E'\n' || artifact_id || E'\n' || url) ~ E'(^|[^\\x1a])(\\x1a\\x1a)*\\x1a0'
    ) THEN
        RAISE EXCEPTION 'the ledger holds ids with NUL, which the earlier schema cannot store';
    END IF;
END $$;
UPDATE jobs
SET work_id = replace(work_id, E'\x1a\x1a', E'\x1a'),
    artifact_id = replace(artifact_id, E'\x1a\x1a', E'\x1a'),
    url = replace(url, E'\x1a\x1a', E'\x1a')
WHERE strpos(work_id || artifact_id || url, E'\x1a') > 0;
