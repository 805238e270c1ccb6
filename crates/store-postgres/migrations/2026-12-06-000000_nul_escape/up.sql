-- A line's work_id, artifact_id and url are stored with a reversible escape,
-- since a text value cannot hold NUL (src/text.rs): U+001A (SUB) is the
-- escape, SUB '0' stands for NUL and SUB SUB for a SUB. Values stored before
-- this migration hold no NUL; their SUBs, if any, are doubled here.
UPDATE jobs
SET work_id = replace(work_id, E'\x1a', E'\x1a\x1a'),
    artifact_id = replace(artifact_id, E'\x1a', E'\x1a\x1a'),
    url = replace(url, E'\x1a', E'\x1a\x1a')
WHERE strpos(work_id || artifact_id || url, E'\x1a') > 0;
