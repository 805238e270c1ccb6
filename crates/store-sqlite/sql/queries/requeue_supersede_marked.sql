-- At a filtered requeue: the OK rows of effect kinds (OpKind::is_effect) of
-- every job with a REQUEUE row after :mark (the rows this requeue wrote, under
-- the write lock) become ABANDONED, so the effects run again.
UPDATE ops
SET result_code = 'ABANDONED'
WHERE result_code = 'OK'
  AND kind IN ('HEAD', 'STREAM', 'FINALIZE', 'INDEX', 'DEDUPE')
  AND job_seq IN (SELECT job_seq FROM ops WHERE seq > :mark AND kind = 'REQUEUE')
