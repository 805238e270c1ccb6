//! The one transition table between job states (SPEC §3).

use crate::error::StoreError;
use crate::state::JobState;

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
