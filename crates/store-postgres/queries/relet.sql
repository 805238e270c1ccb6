-- Records the grants of jobs whose lease had expired in flight (the one
-- backward step): one OK RELET row each. Binds are parallel arrays: op key,
-- job key, new epoch, state the job was in.
INSERT INTO ops (op_key, job_key, kind, epoch, started_at, finished_at, result_code, result)
SELECT op_key, job_key, 'RELET', epoch, now(), now(), 'OK',
       jsonb_build_object('from', from_state, 'epoch', epoch)
FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[]) AS relet (op_key, job_key, epoch, from_state)
