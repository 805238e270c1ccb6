-- After a plan chunk's insert left rows out, in its transaction: the chunk's
-- lines that declare expectations (parallel arrays, one element per such
-- line: $1 job keys, $2 sha256, $3 size, $4 content type) whose job records others (a
-- declared field the job lacks or holds another value for). Returns each
-- line's 1-based place in the arrays and the job's recorded expectations.
SELECT d.n, j.expected_sha256, j.expected_size, j.expected_content_type
FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[]) WITH ORDINALITY AS d (job_key, sha256, size, content_type, n)
JOIN jobs j ON j.job_key = d.job_key
WHERE (d.sha256 IS NOT NULL AND j.expected_sha256 IS DISTINCT FROM d.sha256)
   OR (d.size IS NOT NULL AND j.expected_size IS DISTINCT FROM d.size)
   OR (d.content_type IS NOT NULL AND j.expected_content_type IS DISTINCT FROM d.content_type)
ORDER BY d.n
