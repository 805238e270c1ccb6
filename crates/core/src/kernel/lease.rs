//! Fencing and the runnable rule (SPEC §4).

use crate::error::StoreError;
use crate::job::{Job, Millis};
use crate::lease::Fence;
use crate::state::JobState;

/// **Fencing**: whether `fence` still holds `job`'s lease at `now` (same
/// epoch, same owner, expiry after now by the store clock).
pub fn holds_lease(job: &Job, fence: &Fence, now: Millis) -> bool {
    job.epoch == fence.epoch
        && job.lease_owner.as_deref() == Some(fence.owner.as_str())
        && job.lease_expires_at.is_some_and(|t| t > now)
}

/// Whether `job` is in flight under a lease that is live at `now`.
pub fn lease_live(job: &Job, now: Millis) -> bool {
    job.state.is_in_flight() && job.lease_expires_at.is_some_and(|t| t > now)
}

/// The error of a write whose fence no longer holds.
pub fn lease_lost(fence: &Fence) -> StoreError {
    StoreError::LeaseLost {
        job: fence.job_key.clone(),
        epoch: fence.epoch,
    }
}

/// **Runnable**: whether a grant may pick `job` at `now`: PLANNED past its
/// backoff (if it has one), a retryable FAILED job with attempts left past
/// its backoff (a step to FAILED always records one: a FAILED row without
/// it is not picked), or an in-flight job whose lease expired (or was
/// released).
pub fn runnable(job: &Job, now: Millis, max_attempts: u32) -> bool {
    match job.state {
        JobState::Planned => job.next_attempt_at.is_none_or(|t| t <= now),
        JobState::Failed => {
            job.retryable && job.attempts < max_attempts && job.next_attempt_at.is_some_and(|t| t <= now)
        }
        s if s.is_in_flight() => job.lease_expires_at.is_none_or(|t| t <= now),
        _ => false,
    }
}

/// **The expiry** of a lease granted or renewed at `now` for `ttl`.
pub fn expiry(now: Millis, ttl: std::time::Duration) -> Millis {
    now.saturating_add(crate::job::millis(ttl))
}

/// **Renew**: the held lease of `job` now expires `ttl` after `now`
/// ([`expiry`]); that expiry.
pub fn renew(job: &mut Job, ttl: std::time::Duration, now: Millis) -> Millis {
    let expires = expiry(now, ttl);
    job.lease_expires_at = Some(expires);
    expires
}

/// **Release**: the lease given back (the job keeps its state for the next
/// grant); an attempt counted by its state is given back too.
pub fn release(job: &mut Job) {
    job.lease_owner = None;
    job.lease_expires_at = None;
    if job.state.counted_attempt() {
        job.attempts = job.attempts.saturating_sub(1);
    }
}

/// **A read** of `job`: a lease that expired at or before reconcile's mark
/// `freed_through` was freed, and reads show it gone. (The row keeps its
/// expiry, so that a grant still tells an expired lease from a released
/// one.)
pub fn as_read(mut job: Job, freed_through: Millis) -> Job {
    if job.lease_expires_at.is_some_and(|t| t <= freed_through) {
        (job.lease_owner, job.lease_expires_at) = (None, None);
    }
    job
}

/// **Reconcile frees** an in-flight job's lease that expired after the
/// previous mark `freed_through` and at or before `cutoff`.
pub fn freed_by_reconcile(job: &Job, freed_through: Millis, cutoff: Millis) -> bool {
    job.state.is_in_flight() && job.lease_expires_at.is_some_and(|t| t > freed_through && t <= cutoff)
}

/// **Reconcile abandons** an unfinished attempt not under its job's live
/// lease (`live_epoch`, the epoch of a lease live now, if any).
pub fn abandoned_by_reconcile(row: &crate::ledger::OpRecord, live_epoch: Option<i64>) -> bool {
    row.result_code.is_none() && live_epoch != Some(row.epoch)
}
