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
/// backoff, a retryable FAILED job with attempts left past its backoff, or
/// an in-flight job whose lease expired (or was released).
pub fn runnable(job: &Job, now: Millis, max_attempts: u32) -> bool {
    match job.state {
        JobState::Planned => job.next_attempt_at.is_none_or(|t| t <= now),
        JobState::Failed => {
            job.retryable && job.attempts < max_attempts && job.next_attempt_at.is_none_or(|t| t <= now)
        }
        s if s.is_in_flight() => job.lease_expires_at.is_none_or(|t| t <= now),
        _ => false,
    }
}
