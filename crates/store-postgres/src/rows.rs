//! Rows as the queries return them, and their conversion to core types.

use diesel::sql_types::{BigInt, Bool, Integer, Jsonb, Nullable, Text};
use diesel::QueryableByName;
use oncefetch_core::{
    ArtifactEntry, Expectations, Fence, Job, JobState, Lease, Millis, OpKind, OpRecord, ResultCode, StoreError,
    StoreResult,
};
use serde_json::Value;

use crate::text;
use crate::STORE;

fn corrupt(what: String) -> StoreError {
    StoreError::backend(STORE, format!("unexpected value in the ledger: {what}"))
}

pub(crate) fn parse_state(s: &str) -> StoreResult<JobState> {
    s.parse().map_err(|_| corrupt(format!("state {s:?}")))
}

fn unsigned(v: i64, field: &str) -> StoreResult<u64> {
    u64::try_from(v).map_err(|_| corrupt(format!("{field} {v}")))
}

fn unsigned_opt(v: Option<i64>, field: &str) -> StoreResult<Option<u64>> {
    v.map(|v| unsigned(v, field)).transpose()
}

/// A size or count for a `bigint` column.
pub(crate) fn signed(v: u64, field: &str) -> StoreResult<i64> {
    i64::try_from(v).map_err(|_| StoreError::backend(STORE, format!("{field} {v} does not fit a bigint")))
}

/// A `jobs` row (`job_rows` view columns).
#[derive(Debug, QueryableByName)]
pub(crate) struct JobRow {
    #[diesel(sql_type = Text)]
    job_key: String,
    #[diesel(sql_type = Text)]
    work_id: String,
    #[diesel(sql_type = Text)]
    artifact_id: String,
    #[diesel(sql_type = Text)]
    url: String,
    #[diesel(sql_type = Text)]
    canonical_url: String,
    #[diesel(sql_type = Nullable<Text>)]
    expected_sha256: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    expected_size: Option<i64>,
    #[diesel(sql_type = Text)]
    state: String,
    #[diesel(sql_type = BigInt)]
    epoch: i64,
    #[diesel(sql_type = Nullable<Text>)]
    lease_owner: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    lease_expires_at: Option<Millis>,
    #[diesel(sql_type = Integer)]
    attempts: i32,
    #[diesel(sql_type = Nullable<BigInt>)]
    next_attempt_at: Option<Millis>,
    #[diesel(sql_type = Nullable<Text>)]
    last_error: Option<String>,
    #[diesel(sql_type = Bool)]
    retryable: bool,
    #[diesel(sql_type = Nullable<Text>)]
    etag: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    last_modified: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    remote_size: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    path: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    sha256: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    size: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    duplicate_of: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    expected_content_type: Option<String>,
}

impl JobRow {
    pub(crate) fn into_job(self) -> StoreResult<Job> {
        Ok(Job {
            state: parse_state(&self.state)?,
            expected_size: unsigned_opt(self.expected_size, "expected_size")?,
            attempts: u32::try_from(self.attempts).map_err(|_| corrupt(format!("attempts {}", self.attempts)))?,
            remote_size: unsigned_opt(self.remote_size, "remote_size")?,
            size: unsigned_opt(self.size, "size")?,
            job_key: self.job_key,
            work_id: text::load(self.work_id),
            artifact_id: text::load(self.artifact_id),
            url: text::load(self.url),
            canonical_url: self.canonical_url,
            expected_sha256: self.expected_sha256,
            epoch: self.epoch,
            lease_owner: self.lease_owner,
            lease_expires_at: self.lease_expires_at,
            next_attempt_at: self.next_attempt_at,
            last_error: self.last_error,
            retryable: self.retryable,
            etag: self.etag,
            last_modified: self.last_modified,
            path: self.path,
            sha256: self.sha256,
            duplicate_of: self.duplicate_of,
            expected_content_type: self.expected_content_type,
        })
    }
}

/// A granted job and the state it was in.
#[derive(Debug, QueryableByName)]
pub(crate) struct LeaseRow {
    #[diesel(embed)]
    job: JobRow,
    #[diesel(sql_type = Text)]
    previous_state: String,
}

impl LeaseRow {
    pub(crate) fn into_lease(self) -> StoreResult<Lease> {
        let previous_state = parse_state(&self.previous_state)?;
        let job = self.job.into_job()?;
        let (Some(owner), Some(expires_at)) = (job.lease_owner.clone(), job.lease_expires_at) else {
            return Err(corrupt(format!("granted job {} without a lease", job.job_key)));
        };
        Ok(Lease {
            fence: Fence {
                job_key: job.job_key.clone(),
                epoch: job.epoch,
                owner,
            },
            expires_at,
            previous_state,
            job,
        })
    }
}

/// An `ops` row (`op_rows` view columns).
#[derive(Debug, QueryableByName)]
pub(crate) struct OpRow {
    #[diesel(sql_type = BigInt)]
    seq: i64,
    #[diesel(sql_type = Text)]
    op_key: String,
    #[diesel(sql_type = Text)]
    job_key: String,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = BigInt)]
    epoch: i64,
    #[diesel(sql_type = BigInt)]
    started_at: Millis,
    #[diesel(sql_type = Nullable<BigInt>)]
    finished_at: Option<Millis>,
    #[diesel(sql_type = Nullable<Text>)]
    result_code: Option<String>,
    #[diesel(sql_type = Nullable<Jsonb>)]
    result: Option<Value>,
}

impl OpRow {
    pub(crate) fn into_record(self) -> StoreResult<OpRecord> {
        Ok(OpRecord {
            kind: OpKind::parse(&self.kind).ok_or_else(|| corrupt(format!("op kind {:?}", self.kind)))?,
            result_code: self
                .result_code
                .map(|c| ResultCode::parse(&c).ok_or_else(|| corrupt(format!("result code {c:?}"))))
                .transpose()?,
            seq: self.seq,
            op_key: self.op_key,
            job_key: self.job_key,
            epoch: self.epoch,
            started_at: self.started_at,
            finished_at: self.finished_at,
            result: self.result,
        })
    }
}

/// An `artifacts` row.
#[derive(Debug, QueryableByName)]
pub(crate) struct ArtifactRow {
    #[diesel(sql_type = Text)]
    sha256: String,
    #[diesel(sql_type = Text)]
    path: String,
    #[diesel(sql_type = BigInt)]
    size: i64,
    #[diesel(sql_type = Text)]
    job_key: String,
}

impl ArtifactRow {
    pub(crate) fn into_entry(self) -> StoreResult<ArtifactEntry> {
        Ok(ArtifactEntry {
            size: unsigned(self.size, "artifact size")?,
            sha256: self.sha256,
            path: self.path,
            job_key: self.job_key,
        })
    }
}

/// A job locked by the first statement of a commit.
#[derive(Debug, QueryableByName)]
pub(crate) struct LockedJob {
    #[diesel(sql_type = Text)]
    pub(crate) state: String,
    #[diesel(sql_type = Integer)]
    pub(crate) attempts: i32,
    #[diesel(sql_type = Nullable<Text>)]
    pub(crate) last_error: Option<String>,
    #[diesel(sql_type = Bool)]
    pub(crate) retryable: bool,
    #[diesel(sql_type = Bool)]
    pub(crate) holds: bool,
    #[diesel(sql_type = Bool)]
    pub(crate) finish_running: bool,
    #[diesel(sql_type = Bool)]
    pub(crate) finish_ok: bool,
}

/// What the second statement of a commit did.
#[derive(Debug, QueryableByName)]
pub(crate) struct CommitRow {
    #[diesel(sql_type = BigInt)]
    pub(crate) finished: i64,
    #[diesel(sql_type = BigInt)]
    pub(crate) updated: i64,
    #[diesel(sql_type = Bool)]
    pub(crate) replayed: bool,
    #[diesel(sql_type = Nullable<Jsonb>)]
    pub(crate) replay: Option<Value>,
    #[diesel(sql_type = BigInt)]
    pub(crate) begun: i64,
}

/// What a commit's INDEX op found (index_op.sql).
#[derive(Debug, QueryableByName)]
pub(crate) struct IndexState {
    #[diesel(sql_type = Nullable<Text>)]
    pub(crate) replay: Option<String>,
    #[diesel(sql_type = Bool)]
    pub(crate) attempted: bool,
}

/// A count.
#[derive(Debug, QueryableByName)]
pub(crate) struct Count {
    #[diesel(sql_type = BigInt)]
    pub(crate) n: i64,
}

/// Jobs in one state (the retryable FAILED ones of one attempts count), how
/// many of them a live lease holds, how many wait out a backoff, and the sum
/// of their sizes.
#[derive(Debug, QueryableByName)]
pub(crate) struct StateCount {
    #[diesel(sql_type = Text)]
    pub(crate) state: String,
    #[diesel(sql_type = Nullable<Integer>)]
    pub(crate) retry_attempts: Option<i32>,
    #[diesel(sql_type = BigInt)]
    pub(crate) n: i64,
    #[diesel(sql_type = BigInt)]
    pub(crate) live: i64,
    #[diesel(sql_type = BigInt)]
    pub(crate) waiting: i64,
    #[diesel(sql_type = BigInt)]
    pub(crate) bytes: i64,
}

/// What a filtered requeue requeued, by kind.
#[derive(Debug, QueryableByName)]
pub(crate) struct RequeuedRow {
    #[diesel(sql_type = BigInt)]
    pub(crate) retryable: i64,
    #[diesel(sql_type = BigInt)]
    pub(crate) permanent: i64,
    #[diesel(sql_type = BigInt)]
    pub(crate) finished: i64,
}

/// A state and an epoch.
#[derive(Debug, QueryableByName)]
pub(crate) struct StateEpoch {
    #[diesel(sql_type = Text)]
    pub(crate) state: String,
    #[diesel(sql_type = BigInt)]
    pub(crate) epoch: i64,
}

/// A line of a plan chunk whose job records other expectations
/// (plan_conflicts.sql).
#[derive(Debug, QueryableByName)]
pub(crate) struct ConflictRow {
    /// 1-based place among the chunk's declaring lines.
    #[diesel(sql_type = BigInt)]
    pub(crate) n: i64,
    #[diesel(sql_type = Nullable<Text>)]
    expected_sha256: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    expected_size: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    expected_content_type: Option<String>,
}

impl ConflictRow {
    /// The job's recorded expectations.
    pub(crate) fn recorded(&self) -> StoreResult<Expectations> {
        Ok(Expectations {
            sha256: self.expected_sha256.clone(),
            size: unsigned_opt(self.expected_size, "expected size")?,
            content_type: self.expected_content_type.clone(),
        })
    }
}

/// A job locked by `update_expected`.
#[derive(Debug, QueryableByName)]
pub(crate) struct ExpectedRow {
    #[diesel(sql_type = Text)]
    pub(crate) state: String,
    #[diesel(sql_type = BigInt)]
    pub(crate) epoch: i64,
    #[diesel(sql_type = Nullable<Text>)]
    expected_sha256: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    expected_size: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    expected_content_type: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub(crate) sha256: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    size: Option<i64>,
}

impl ExpectedRow {
    /// The job's recorded expectations.
    pub(crate) fn expectations(&self) -> StoreResult<Expectations> {
        Ok(Expectations {
            sha256: self.expected_sha256.clone(),
            size: unsigned_opt(self.expected_size, "expected size")?,
            content_type: self.expected_content_type.clone(),
        })
    }

    /// The verified content size, once known.
    pub(crate) fn content_size(&self) -> StoreResult<Option<u64>> {
        unsigned_opt(self.size, "size")
    }
}

/// A new lease expiry.
#[derive(Debug, QueryableByName)]
pub(crate) struct Expiry {
    #[diesel(sql_type = BigInt)]
    pub(crate) expires_at: Millis,
}

/// What reconcile did.
#[derive(Debug, QueryableByName)]
pub(crate) struct ReconcileRow {
    #[diesel(sql_type = BigInt)]
    pub(crate) expired_leases: i64,
    #[diesel(sql_type = BigInt)]
    pub(crate) abandoned_ops: i64,
}

/// A count as `u64` (counts are never negative).
pub(crate) fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}
