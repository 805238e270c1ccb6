-- Plans jobs idempotently: a job key already present is left alone. The
-- binds are parallel arrays, one element per job, in manifest order (which
-- becomes planned_seq, the grant order).
INSERT INTO jobs (job_key, work_id, artifact_id, url, canonical_url, expected_sha256, expected_size,
                  expected_content_type)
SELECT job_key, work_id, artifact_id, url, canonical_url, expected_sha256, expected_size, expected_content_type
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::text[])
     WITH ORDINALITY AS new (job_key, work_id, artifact_id, url, canonical_url, expected_sha256, expected_size,
                             expected_content_type, n)
ORDER BY n
ON CONFLICT (job_key) DO NOTHING
