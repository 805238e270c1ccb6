//! Job states (SPEC §3); the transition table between them is in
//! [`transition`](crate::transition).

use std::fmt;
use std::str::FromStr;

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
    /// an explicit requeue, see
    /// [`Transition::Requeue`](crate::transition::Transition::Requeue),
    /// reopens it).
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

    /// A state before the job's body is in (LEASED … STREAMING): a lease
    /// that expires here with every attempt used ends the job
    /// ([`out_of_attempts`](crate::out_of_attempts)).
    pub const fn before_body(self) -> bool {
        matches!(self, Self::Leased | Self::HeadDone | Self::ResumeOk | Self::Streaming)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for state in JobState::ALL {
            assert_eq!(state.as_str().parse::<JobState>().unwrap(), state);
            assert_eq!(serde_json::to_string(&state).unwrap(), format!("\"{state}\""));
        }
        assert!("DONE".parse::<JobState>().is_err());
    }
}
