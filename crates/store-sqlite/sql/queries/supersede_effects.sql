-- At a requeue: the job's OK rows of effect kinds (OpKind::is_effect) become
-- ABANDONED so the effects run again instead of replaying stale results.
UPDATE ops
SET result_code = 'ABANDONED'
WHERE job_seq = :job_seq
  AND result_code = 'OK'
  AND kind IN ('HEAD', 'STREAM', 'FINALIZE', 'INDEX', 'DEDUPE')
