//! The hot queries, one SQL file each under `queries/`.

pub(crate) const ACQUIRE: &str = include_str!("../queries/acquire.sql");
pub(crate) const COMMIT_LOCK: &str = include_str!("../queries/commit_lock.sql");
pub(crate) const COMMIT_WRITE: &str = include_str!("../queries/commit_write.sql");
pub(crate) const RENEW: &str = include_str!("../queries/renew.sql");
pub(crate) const RELEASE: &str = include_str!("../queries/release.sql");
pub(crate) const RECONCILE: &str = include_str!("../queries/reconcile.sql");
pub(crate) const PLAN: &str = include_str!("../queries/plan.sql");
pub(crate) const PLAN_CONFLICTS: &str = include_str!("../queries/plan_conflicts.sql");
pub(crate) const REQUEUE: &str = include_str!("../queries/requeue.sql");
pub(crate) const REQUEUE_MATCHING: &str = include_str!("../queries/requeue_matching.sql");
pub(crate) const NOTE: &str = include_str!("../queries/note.sql");
pub(crate) const INDEX_ARTIFACT: &str = include_str!("../queries/index_artifact.sql");
pub(crate) const INDEX_OP: &str = include_str!("../queries/index_op.sql");
pub(crate) const OUTSTANDING: &str = include_str!("../queries/outstanding.sql");
pub(crate) const CLAIM_REQUEST_SLOTS: &str = include_str!("../queries/claim_request_slots.sql");

/// The store clock, in milliseconds since the Unix epoch.
pub(crate) const NOW: &str = "SELECT floor(extract(epoch FROM now()) * 1000)::bigint AS n";
pub(crate) const JOB: &str = "SELECT * FROM job_rows WHERE job_key = $1";
/// Jobs per state (retryable FAILED jobs apart, by attempts used), how many
/// of them a live lease holds, how many wait out a backoff, and the sum of
/// their sizes, in one snapshot: PLANNED and settled jobs from the counters
/// of `watch_hosts`, retryable FAILED and in-flight jobs through their
/// partial indexes (small sets), the other FAILED jobs by difference.
pub(crate) const STATUS: &str = "SELECT grp AS state, NULL::integer AS retry_attempts, sum(jobs)::bigint AS n, \
     0::bigint AS live, 0::bigint AS waiting, sum(bytes)::bigint AS bytes \
     FROM watch_hosts WHERE grp IN ('PLANNED', 'SUCCESS', 'SKIPPED_DUPLICATE') GROUP BY grp \
     UNION ALL \
     SELECT 'FAILED', NULL, (SELECT coalesce(sum(jobs), 0) FROM watch_hosts WHERE grp = 'FAILED')::bigint \
         - (SELECT count(*) FROM jobs WHERE state = 'FAILED' AND retryable), 0, 0, 0 \
     UNION ALL \
     SELECT 'FAILED', attempts, count(*), 0, count(*) FILTER (WHERE next_attempt_at > now()), 0 \
     FROM jobs WHERE state = 'FAILED' AND retryable GROUP BY attempts \
     UNION ALL \
     SELECT state, NULL, count(*), count(*) FILTER (WHERE lease_owner IS NOT NULL AND lease_expires_at > now()), 0, 0 \
     FROM jobs WHERE in_flight(state) \
     GROUP BY state";
/// The OK row of an INDEX op (job $2, epoch $3, result $4).
pub(crate) const INDEX_RECORD: &str =
    "INSERT INTO ops (op_key, job_key, kind, epoch, started_at, finished_at, result_code, result) \
     VALUES ($1, $2, 'INDEX', $3, now(), now(), 'OK', $4)";
/// A settled op's OK row (kind $3, job $2, epoch $4, result $5), unless the
/// op key has an OK row or an attempt under the epoch already.
pub(crate) const SETTLE_OP: &str =
    "INSERT INTO ops (op_key, job_key, kind, epoch, started_at, finished_at, result_code, result) \
     SELECT $1, $2, $3, $4, now(), now(), 'OK', $5 \
     WHERE NOT EXISTS (SELECT 1 FROM ops WHERE op_key = $1 AND result_code = 'OK') \
     ON CONFLICT DO NOTHING";
pub(crate) const ARTIFACT: &str = "SELECT sha256, path, size, job_key FROM artifacts WHERE sha256 = $1";
pub(crate) const JOB_FOR_REQUEUE: &str = "SELECT state, epoch FROM jobs WHERE job_key = $1 FOR UPDATE";
/// A job's state, expectations and content, locked for `update_expected`.
pub(crate) const JOB_FOR_EXPECTED: &str =
    "SELECT state, epoch, expected_sha256, expected_size, expected_content_type, sha256, size FROM jobs WHERE job_key = $1 \
     FOR UPDATE";
/// Records a job's expectations ($2 sha256, $3 size).
pub(crate) const EXPECTED_UPDATE: &str =
    "UPDATE jobs SET expected_sha256 = $2, expected_size = $3, expected_content_type = $4 WHERE job_key = $1";
pub(crate) const ANALYZE: &str = "ANALYZE jobs";
