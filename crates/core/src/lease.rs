//! The [`LeaseManager`] trait: leases with epoch fencing.

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::StoreResult;
use crate::job::{Job, Millis};
use crate::state::JobState;

/// The fencing token of a lease: every write of a worker names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fence {
    /// Job key.
    pub job_key: String,
    /// Epoch of the grant.
    pub epoch: i64,
    /// Holder (a worker id unique per process).
    pub owner: String,
}

/// A granted lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The job as it stands after the grant (state LEASED).
    pub job: Job,
    /// The state the job was in before the grant (PLANNED, FAILED, or an
    /// in-flight state whose lease expired).
    pub previous_state: JobState,
    /// The token to fence writes with.
    pub fence: Fence,
    /// Expiry, by the store's clock.
    pub expires_at: Millis,
}

/// Parameters of a grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcquireRequest {
    /// Who asks.
    pub owner: String,
    /// How long the lease lasts unless renewed.
    pub ttl: Duration,
    /// Most jobs to grant at once.
    pub limit: usize,
    /// A FAILED job with this many attempts is not granted again.
    pub max_attempts: u32,
}

/// The **expired out of attempts** rule (see [`LeaseManager`]), for a grant
/// that picked `job` (as stored, lease fields included) at `now` under
/// `max_attempts`: the `last_error` to end it FAILED with instead of leasing
/// it, or `None` to lease it.
///
/// The message names the state the lease expired in, the attempts used and
/// the job's earlier error, if any: `lease expired in STREAMING with 3 of 3
/// attempts used (worker died or stalled); last error: 503 service
/// unavailable`.
pub fn out_of_attempts(job: &Job, now: Millis, max_attempts: u32) -> Option<String> {
    let body_not_in = matches!(
        job.state,
        JobState::Leased | JobState::HeadDone | JobState::ResumeOk | JobState::Streaming
    );
    let expired = job.lease_expires_at.is_some_and(|t| t <= now);
    if !(body_not_in && expired && job.attempts >= max_attempts) {
        return None;
    }
    let mut message = format!(
        "lease expired in {} with {} of {max_attempts} attempts used (worker died or stalled)",
        job.state, job.attempts
    );
    if let Some(last) = &job.last_error {
        message.push_str("; last error: ");
        message.push_str(last);
    }
    Some(message)
}

/// What [`LeaseManager::reconcile`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// In-flight jobs whose lease had expired, now free to be granted.
    pub expired_leases: u64,
    /// Unfinished op attempts of dead epochs marked ABANDONED.
    pub abandoned_ops: u64,
}

/// Grants, renews and releases leases.
///
/// # Contract
///
/// - **store clock**: expiry is judged by the store's own clock
///   ([`LeaseManager::now`]); a worker's clock is never consulted.
/// - **runnable**: a grant picks PLANNED jobs, FAILED jobs that are retryable
///   with `attempts < max_attempts` once `next_attempt_at` has passed, and
///   in-flight jobs whose lease expired.
/// - **epoch**: every grant increments the job's epoch; in the same
///   transaction every unfinished op attempt of older epochs becomes
///   ABANDONED, and a grant of an expired in-flight job writes a `RELET` row.
/// - **expired out of attempts**: an attempt that ends by lease expiry
///   counts (it was counted at STREAMING). A grant that picks a job whose
///   lease expired before its body was in (LEASED … STREAMING; reconciled or
///   not) with `attempts >= max_attempts` hands out no lease: in the same
///   transaction the job takes the next epoch and ends FAILED, not
///   retryable, with the `last_error` of [`out_of_attempts`]; its unfinished
///   attempts become ABANDONED and its `RELET` row records
///   `{"from", "epoch", "to": "FAILED", "last_error"}`. A released lease, or
///   one that expired after STREAMING, is leased again as usual.
/// - **exclusive**: concurrent grants never hand one job to two callers, and
///   never hand out a job whose canonical URL is in flight under another job
///   (nor two jobs of one URL in one batch).
/// - **release gives the attempt back**: a lease released in STREAMING …
///   DEDUPED leaves the job's `attempts` one lower (the count its epoch
///   added); released earlier, `attempts` is unchanged.
/// - **fenced renew/release**: renew and release with a stale epoch, another
///   owner or an expired lease fail with
///   [`StoreError::LeaseLost`](crate::StoreError::LeaseLost).
/// - **reconcile**: frees in-flight jobs whose lease expired at least
///   `stale_after` ago and marks their unfinished ops ABANDONED, counting both.
#[async_trait]
pub trait LeaseManager: Send + Sync + Debug + 'static {
    /// Grants up to `request.limit` runnable jobs.
    async fn acquire(&self, request: &AcquireRequest) -> StoreResult<Vec<Lease>>;

    /// Grants one given job, if it is runnable.
    async fn acquire_job(&self, job_key: &str, request: &AcquireRequest) -> StoreResult<Option<Lease>>;

    /// Extends a live lease to `now + ttl`; returns the new expiry.
    async fn renew(&self, fence: &Fence, ttl: Duration) -> StoreResult<Millis>;

    /// Gives a live lease back; the job stays in its state and is runnable at
    /// once. The attempt the epoch counted, if it reached STREAMING (see
    /// [`JobState::counted_attempt`](crate::JobState::counted_attempt)), is
    /// given back too: a release ends a run that stopped (a signal, a full
    /// disk), not an attempt that failed.
    async fn release(&self, fence: &Fence) -> StoreResult<()>;

    /// Frees expired leases and abandons their unfinished ops.
    async fn reconcile(&self, stale_after: Duration) -> StoreResult<ReconcileReport>;

    /// The store's clock.
    async fn now(&self) -> StoreResult<Millis>;
}
