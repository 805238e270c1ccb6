//! Job states and the one transition table (SPEC §3).

use std::fmt;
use std::str::FromStr;

use crate::error::StoreError;

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobState {
    /// In the ledger, never leased.
    Planned,
    /// Leased to a worker under an epoch.
    Leased,
    /// Remote metadata recorded.
    HeadDone,
    /// Start offset decided.
    ResumeOk,
    /// Bytes streaming into the partial file.
    Streaming,
    /// File verified and placed at its final path.
    Finalized,
    /// Content hash recorded in the artifact index.
    Indexed,
    /// Identical content linked to its first copy.
    Deduped,
    /// Done (terminal).
    Success,
    /// Failed; may be retried (see `retryable` and `attempts`).
    Failed,
    /// Same canonical URL already done under another job (terminal).
    SkippedDuplicate,
}

impl JobState {
    /// Every state, in pipeline order then FAILED and SKIPPED_DUPLICATE.
    pub const ALL: [JobState; 11] = [
        Self::Planned,
        Self::Leased,
        Self::HeadDone,
        Self::ResumeOk,
        Self::Streaming,
        Self::Finalized,
        Self::Indexed,
        Self::Deduped,
        Self::Success,
        Self::Failed,
        Self::SkippedDuplicate,
    ];

    /// The happy path, PLANNED to SUCCESS.
    pub const PIPELINE: [JobState; 9] = [
        Self::Planned,
        Self::Leased,
        Self::HeadDone,
        Self::ResumeOk,
        Self::Streaming,
        Self::Finalized,
        Self::Indexed,
        Self::Deduped,
        Self::Success,
    ];

    /// The SPEC name (`HEAD_DONE`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Planned => "PLANNED",
            Self::Leased => "LEASED",
            Self::HeadDone => "HEAD_DONE",
            Self::ResumeOk => "RESUME_OK",
            Self::Streaming => "STREAMING",
            Self::Finalized => "FINALIZED",
            Self::Indexed => "INDEXED",
            Self::Deduped => "DEDUPED",
            Self::Success => "SUCCESS",
            Self::Failed => "FAILED",
            Self::SkippedDuplicate => "SKIPPED_DUPLICATE",
        }
    }

    /// SUCCESS or SKIPPED_DUPLICATE: nothing more happens to the job (only
    /// an explicit requeue, see [`Transition::Requeue`], reopens it).
    pub const fn is_terminal(self) -> bool {
        matches!(self, Self::Success | Self::SkippedDuplicate)
    }

    /// STREAMING … DEDUPED: an in-flight state the lease's epoch reached by
    /// committing STREAMING, which counted its attempt (a grant always
    /// starts an epoch at LEASED). A lease given back in one of these states
    /// gives that attempt back (see
    /// [`LeaseManager::release`](crate::LeaseManager::release)).
    pub const fn counted_attempt(self) -> bool {
        matches!(self, Self::Streaming | Self::Finalized | Self::Indexed | Self::Deduped)
    }

    /// A state a worker holds a lease in (LEASED … DEDUPED).
    pub const fn is_in_flight(self) -> bool {
        matches!(
            self,
            Self::Leased
                | Self::HeadDone
                | Self::ResumeOk
                | Self::Streaming
                | Self::Finalized
                | Self::Indexed
                | Self::Deduped
        )
    }

    /// The next state on the happy path.
    pub const fn next(self) -> Option<JobState> {
        Some(match self {
            Self::Planned => Self::Leased,
            Self::Leased => Self::HeadDone,
            Self::HeadDone => Self::ResumeOk,
            Self::ResumeOk => Self::Streaming,
            Self::Streaming => Self::Finalized,
            Self::Finalized => Self::Indexed,
            Self::Indexed => Self::Deduped,
            Self::Deduped => Self::Success,
            _ => return None,
        })
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A state name that is not in SPEC §3.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown state {0:?} (expected one of PLANNED, LEASED, HEAD_DONE, RESUME_OK, STREAMING, FINALIZED, INDEXED, DEDUPED, SUCCESS, FAILED, SKIPPED_DUPLICATE)")]
pub struct UnknownState(pub String);

impl FromStr for JobState {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownState(s.to_owned()))
    }
}

/// Why a state change happens; the table allows each kind from different
/// states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// A worker's step along the pipeline (or to FAILED / SKIPPED_DUPLICATE).
    Step,
    /// A lease grant: PLANNED, a retryable FAILED past its backoff, or any
    /// in-flight state whose lease expired (the one backward step) → LEASED.
    Grant,
    /// An operator or recovery sending a job back to PLANNED: FAILED via
    /// `retry`, or SUCCESS / SKIPPED_DUPLICATE whose file went missing.
    Requeue,
}

/// Checks `from → to` against the transition table.
pub fn check_transition(kind: Transition, from: JobState, to: JobState) -> Result<(), StoreError> {
    use JobState::*;
    let allowed = match kind {
        Transition::Step => {
            from.next() == Some(to) && from != Planned
                || to == Failed && from.is_in_flight()
                || from == Leased && to == SkippedDuplicate
        }
        Transition::Grant => to == Leased && (from == Planned || from == Failed || from.is_in_flight()),
        Transition::Requeue => to == Planned && (from == Failed || from.is_terminal()),
    };
    if allowed {
        Ok(())
    } else {
        Err(StoreError::InvalidTransition { from, to })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_round_trip() {
        for state in JobState::ALL {
            assert_eq!(state.as_str().parse::<JobState>().unwrap(), state);
            assert_eq!(serde_json::to_string(&state).unwrap(), format!("\"{state}\""));
        }
        assert!("DONE".parse::<JobState>().is_err());
    }

    #[test]
    fn happy_path_is_allowed_in_order_only() {
        for pair in JobState::PIPELINE.windows(2) {
            let kind = if pair[0] == JobState::Planned {
                Transition::Grant
            } else {
                Transition::Step
            };
            check_transition(kind, pair[0], pair[1]).unwrap();
        }
        assert!(check_transition(Transition::Step, JobState::Leased, JobState::Finalized).is_err());
        assert!(check_transition(Transition::Step, JobState::Planned, JobState::HeadDone).is_err());
        assert!(check_transition(Transition::Step, JobState::Success, JobState::Failed).is_err());
        assert!(check_transition(Transition::Step, JobState::Streaming, JobState::SkippedDuplicate).is_err());
        assert!(check_transition(Transition::Grant, JobState::Success, JobState::Leased).is_err());
    }

    fn any_state() -> impl Strategy<Value = JobState> {
        proptest::sample::select(JobState::ALL.to_vec())
    }

    fn any_kind() -> impl Strategy<Value = Transition> {
        proptest::sample::select(vec![Transition::Step, Transition::Grant, Transition::Requeue])
    }

    proptest! {
        /// Random walks through the table: every accepted step is a table
        /// entry, and no walk reaches a second terminal state without an
        /// explicit requeue in between.
        #[test]
        fn random_walks_stay_in_the_table(steps in proptest::collection::vec((any_kind(), any_state()), 1..200)) {
            let mut state = JobState::Planned;
            let mut terminal_reached: Option<JobState> = None;
            for (kind, to) in steps {
                match check_transition(kind, state, to) {
                    Ok(()) => {
                        // Accepted: must be one of the table's shapes.
                        let forward = state.next() == Some(to);
                        let to_failed = to == JobState::Failed && state.is_in_flight();
                        let skip = state == JobState::Leased && to == JobState::SkippedDuplicate;
                        let grant = kind == Transition::Grant && to == JobState::Leased;
                        let requeue = kind == Transition::Requeue && to == JobState::Planned;
                        prop_assert!(forward || to_failed || skip || grant || requeue, "{state} -> {to} by {kind:?}");
                        prop_assert!(!state.is_terminal() || requeue, "left terminal {state} to {to} by {kind:?}");
                        if requeue {
                            terminal_reached = None;
                        }
                        if to.is_terminal() {
                            prop_assert!(terminal_reached.is_none(), "second terminal {to} after {terminal_reached:?}");
                            terminal_reached = Some(to);
                        }
                        state = to;
                    }
                    Err(StoreError::InvalidTransition { from, to: t }) => {
                        prop_assert_eq!(from, state);
                        prop_assert_eq!(t, to);
                    }
                    Err(other) => prop_assert!(false, "unexpected error {other}"),
                }
            }
        }
    }
}
