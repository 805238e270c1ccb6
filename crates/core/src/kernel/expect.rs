//! `plan --update-expected` (SPEC §3): what recording new expectations on a
//! job does.

use crate::job::{Expectations, ExpectedUpdate, Job};
use crate::state::JobState;

/// What [`expect`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expecting {
    /// Leave the job as it is; answer this.
    Leave(ExpectedUpdate),
    /// Record these expectations; with `requeue`, requeue the finished job
    /// whose content does not meet them, in the same transaction.
    Record {
        /// The job's expectations after the update.
        expectations: Expectations,
        /// Whether the job goes back to PLANNED.
        requeue: bool,
    },
}

impl Expecting {
    /// What the update answers.
    pub fn answer(&self) -> ExpectedUpdate {
        match self {
            Self::Leave(answer) => *answer,
            Self::Record { requeue: true, .. } => ExpectedUpdate::Requeued,
            Self::Record { requeue: false, .. } => ExpectedUpdate::Recorded,
        }
    }
}

/// **Update expected**: on `job`, the declared `expected`: an in-flight job
/// is left alone, agreeing expectations change nothing, and a SUCCESS or
/// SKIPPED_DUPLICATE job whose content does not meet the new ones
/// ([`Expectations::admit_finished`]) is requeued.
pub fn expect(job: &Job, expected: &Expectations) -> Expecting {
    let (state, recorded) = (job.state, &job.expectations());
    if state.is_in_flight() {
        return Expecting::Leave(ExpectedUpdate::InFlight(state));
    }
    if !expected.contradicts(recorded) {
        return Expecting::Leave(ExpectedUpdate::Unchanged);
    }
    let expectations = expected.over(recorded);
    let finished = matches!(state, JobState::Success | JobState::SkippedDuplicate);
    let requeue = finished && !expectations.admit_finished(recorded, job.sha256.as_deref(), job.size);
    Expecting::Record { expectations, requeue }
}
