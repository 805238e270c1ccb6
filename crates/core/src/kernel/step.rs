//! What one step of the state table does to a job, and the patch (SPEC §3).

use crate::error::StoreResult;
use crate::job::{millis, Job, JobFailure, JobPatch, Millis};
use crate::state::JobState;
use crate::transition::{check_transition, Transition};

/// **A step**: checks `job.state → to` against the table, then applies it. A
/// step to STREAMING counts an attempt; a step to FAILED records `failure`
/// (its message, whether it is retryable, its backoff from `now`, and an
/// attempt when [`JobFailure::counts_attempt`]) and ends the lease; a step
/// to a terminal state ends the lease and clears the error and the backoff.
pub fn step(job: &mut Job, to: JobState, failure: Option<&JobFailure>, now: Millis) -> StoreResult<()> {
    check_transition(Transition::Step, job.state, to)?;
    job.state = to;
    if to == JobState::Streaming {
        job.attempts = job.attempts.saturating_add(1);
    }
    if to == JobState::Failed {
        job.last_error = failure.map(|f| f.message.clone());
        job.retryable = failure.is_some_and(|f| f.retryable);
        if failure.is_some_and(|f| f.counts_attempt) {
            job.attempts = job.attempts.saturating_add(1);
        }
        job.next_attempt_at = Some(now.saturating_add(failure.map_or(0, |f| millis(f.retry_after))));
    }
    if to == JobState::Failed || to.is_terminal() {
        job.lease_owner = None;
        job.lease_expires_at = None;
    }
    if to.is_terminal() {
        job.last_error = None;
        job.next_attempt_at = None;
    }
    Ok(())
}

/// [`step`] through each of `to`, in order.
pub fn steps(job: &mut Job, to: &[JobState], failure: Option<&JobFailure>, now: Millis) -> StoreResult<()> {
    to.iter().try_for_each(|&to| step(job, to, failure, now))
}

/// **The patch**: records each field the patch sets (`None` leaves a field
/// as it is; `failure` is only read by a step to FAILED). Returns whether it
/// set any.
pub fn patch(job: &mut Job, patch: &JobPatch) -> bool {
    macro_rules! set {
        ($($field:ident),*) => { $( if patch.$field.is_some() { job.$field = patch.$field.clone(); } )* };
    }
    set!(etag, last_modified, remote_size, path, sha256, size, duplicate_of);
    patch.sets_fields()
}
