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

/// The `expired_out_of_attempts` clause of [`LeaseManager`], for a grant
/// that picked `job` (as stored, lease fields included) at `now` under
/// `max_attempts`: the `last_error` to end it FAILED with instead of leasing
/// it, or `None` to lease it.
///
/// The message names the state the lease expired in, the attempts used and
/// the job's earlier error, if any: `lease expired in STREAMING with 3 of 3
/// attempts used (worker died or stalled); last error: 503 service
/// unavailable`.
pub fn out_of_attempts(job: &Job, now: Millis, max_attempts: u32) -> Option<String> {
    let expired = job.lease_expires_at.is_some_and(|t| t <= now);
    if !(job.state.before_body() && expired && job.attempts >= max_attempts) {
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
/// Each clause is led by the name of the conformance check that asserts it,
/// as in [`LedgerStore`](crate::LedgerStore)'s contract.
///
/// - `grant_bumps_epoch`: every grant increments the job's epoch (the first
///   is epoch 1) and leaves the job LEASED to the caller, with the state it
///   was in and an expiry of now + ttl by the store's own clock
///   ([`LeaseManager::now`]; a worker's clock is never consulted); a job
///   under a live lease is not granted again.
/// - `failed_jobs_back_off_until_max_attempts`: a grant picks PLANNED jobs,
///   FAILED jobs that are retryable with `attempts < max_attempts` once
///   `next_attempt_at` has passed, and in-flight jobs whose lease expired: a
///   retryable FAILED job keeps its `last_error`, is not granted during its
///   backoff, is granted after it, and is no longer granted (nor
///   outstanding) once its attempts reach `max_attempts`.
/// - `expired_lease_is_granted_again`: an in-flight job whose lease expired
///   by the store clock is granted again under the next epoch, its
///   `previous_state` the state it was in; before expiry it is not.
/// - `abandoned_op_reruns_under_new_epoch`: in the grant's transaction every
///   unfinished op attempt of older epochs becomes ABANDONED, and a grant of
///   an expired in-flight job writes a `RELET` row; the op then runs again
///   under the new epoch, the dead epoch cannot finish its attempt
///   ([`StoreError::LeaseLost`](crate::StoreError::LeaseLost)), and the key
///   has one OK row.
/// - `expired_out_of_attempts`: an attempt that ends by lease expiry counts
///   (it was counted at STREAMING). A grant that picks a job whose lease
///   expired before its body was in (LEASED … STREAMING; reconciled or not)
///   with `attempts >= max_attempts` hands out no lease: in the same
///   transaction the job takes the next epoch and ends FAILED, not
///   retryable, with the `last_error` of [`out_of_attempts`]; its unfinished
///   attempts become ABANDONED and its `RELET` row records
///   `{"from", "epoch", "to": "FAILED", "last_error"}`. A released lease, or
///   one that expired after STREAMING, is leased again as usual.
/// - `concurrent_grants_are_exclusive`: concurrent batch grants through any
///   handles never hand one job to two callers, and between them grant every
///   runnable job.
/// - `one_url_in_flight_at_a_time`: a grant never hands out a job whose
///   canonical URL is in flight under another job, nor two jobs of one URL
///   in one batch; the other is granted once the first is done (and
///   [`LedgerStore::jobs`](crate::LedgerStore::jobs) finds jobs by canonical
///   URL and state).
/// - `renew_keeps_the_lease`: renewing a live lease moves its expiry to now +
///   ttl: the job is not granted past the old expiry, and the renewed lease
///   still writes.
/// - `release_frees_the_job`: a released job is granted again at once, under
///   the next epoch; the releaser's fence then writes nothing
///   ([`StoreError::LeaseLost`](crate::StoreError::LeaseLost)).
/// - `release_gives_the_attempt_back`: a lease released in STREAMING …
///   DEDUPED leaves the job in its state with `attempts` one lower (the count
///   its epoch added); released earlier, `attempts` is unchanged; attempts of
///   earlier epochs stay counted.
/// - `reconcile_counts`: [`LeaseManager::reconcile`] leaves live leases
///   alone, frees in-flight jobs whose lease expired at least `stale_after`
///   ago and marks their unfinished ops ABANDONED, counting both; a second
///   reconcile finds nothing, and the freed jobs are granted again.
#[async_trait]
pub trait LeaseManager: Send + Sync + Debug + 'static {
    /// Grants up to `request.limit` runnable jobs.
    async fn acquire(&self, request: &AcquireRequest) -> StoreResult<Vec<Lease>>;

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
