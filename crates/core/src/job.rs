//! Jobs as the ledger keeps them.

use std::time::Duration;

use crate::state::JobState;

/// Milliseconds since the Unix epoch, read from the store's clock.
pub type Millis = i64;

/// A job to plan: one manifest line, keyed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    /// `job_key(work_id, artifact_id, canonical_url)`.
    pub job_key: String,
    /// Work id, verbatim.
    pub work_id: String,
    /// Artifact id, verbatim.
    pub artifact_id: String,
    /// URL as written in the manifest.
    pub url: String,
    /// Canonical form (SPEC §2).
    pub canonical_url: String,
    /// Expected content hash (lowercase hex).
    pub expected_sha256: Option<String>,
    /// Expected size in bytes.
    pub expected_size: Option<u64>,
}

/// A job row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Job key.
    pub job_key: String,
    /// Work id.
    pub work_id: String,
    /// Artifact id.
    pub artifact_id: String,
    /// URL as planned.
    pub url: String,
    /// Canonical URL.
    pub canonical_url: String,
    /// Expected hash from the manifest.
    pub expected_sha256: Option<String>,
    /// Expected size from the manifest.
    pub expected_size: Option<u64>,
    /// Current state.
    pub state: JobState,
    /// Epoch of the latest lease (0 before the first).
    pub epoch: i64,
    /// Holder of the current lease.
    pub lease_owner: Option<String>,
    /// When the current lease expires (store clock).
    pub lease_expires_at: Option<Millis>,
    /// Attempts that transferred a body.
    pub attempts: u32,
    /// Earliest time a FAILED job may be leased again.
    pub next_attempt_at: Option<Millis>,
    /// Last failure, for FAILED jobs.
    pub last_error: Option<String>,
    /// Whether a FAILED job may be retried.
    pub retryable: bool,
    /// Strong ETag recorded at HEAD_DONE.
    pub etag: Option<String>,
    /// Last-Modified recorded at HEAD_DONE.
    pub last_modified: Option<String>,
    /// Length the server announced.
    pub remote_size: Option<u64>,
    /// Absolute final path, once placed.
    pub path: Option<String>,
    /// Content hash, once verified.
    pub sha256: Option<String>,
    /// Content size, once verified.
    pub size: Option<u64>,
    /// Job key of the original, for SKIPPED_DUPLICATE.
    pub duplicate_of: Option<String>,
}

impl Job {
    /// The job as freshly planned.
    pub fn planned(new: &NewJob) -> Self {
        Self {
            job_key: new.job_key.clone(),
            work_id: new.work_id.clone(),
            artifact_id: new.artifact_id.clone(),
            url: new.url.clone(),
            canonical_url: new.canonical_url.clone(),
            expected_sha256: new.expected_sha256.clone(),
            expected_size: new.expected_size,
            state: JobState::Planned,
            epoch: 0,
            lease_owner: None,
            lease_expires_at: None,
            attempts: 0,
            next_attempt_at: None,
            last_error: None,
            retryable: false,
            etag: None,
            last_modified: None,
            remote_size: None,
            path: None,
            sha256: None,
            size: None,
            duplicate_of: None,
        }
    }

    /// The validator for `If-Range`: strong ETag, else Last-Modified.
    pub fn validator(&self) -> Option<&str> {
        self.etag.as_deref().or(self.last_modified.as_deref())
    }
}

/// A failure to record with a move to FAILED.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobFailure {
    /// What went wrong.
    pub message: String,
    /// Whether the job may be leased again (attempts permitting).
    pub retryable: bool,
    /// Wait before the next lease (backoff, or the server's `Retry-After`).
    pub retry_after: Duration,
    /// The failed request was an attempt at the body that never reached
    /// STREAMING (e.g. a 503 to the GET): count it in `attempts` too.
    pub counts_attempt: bool,
}

/// Fields a worker records along with a state change. `None` leaves a field
/// as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobPatch {
    /// Strong ETag (HEAD_DONE).
    pub etag: Option<String>,
    /// Last-Modified (HEAD_DONE).
    pub last_modified: Option<String>,
    /// Announced length (HEAD_DONE).
    pub remote_size: Option<u64>,
    /// Absolute final path (FINALIZED, SKIPPED_DUPLICATE).
    pub path: Option<String>,
    /// Verified content hash.
    pub sha256: Option<String>,
    /// Verified size.
    pub size: Option<u64>,
    /// Original job (SKIPPED_DUPLICATE).
    pub duplicate_of: Option<String>,
    /// The failure, with a move to FAILED.
    pub failure: Option<JobFailure>,
}

/// Which jobs to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobQuery {
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Only jobs with this canonical URL.
    pub canonical_url: Option<String>,
    /// Keyset pagination: only job keys greater than this.
    pub after: Option<String>,
    /// At most this many (0 = no limit).
    pub limit: usize,
}

/// What planning did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanCounts {
    /// Jobs added.
    pub new: u64,
    /// Jobs already in the ledger (unchanged).
    pub existing: u64,
}

impl std::ops::AddAssign for PlanCounts {
    fn add_assign(&mut self, other: Self) {
        self.new += other.new;
        self.existing += other.existing;
    }
}

/// Jobs per state; every state present.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusCounts {
    /// Counts keyed by state, in [`JobState::ALL`] order.
    pub states: std::collections::BTreeMap<JobState, u64>,
    /// In-flight jobs held by a live lease (expiry after now, by the store
    /// clock), read with the counts per state.
    pub live_leases: u64,
}

impl StatusCounts {
    /// Builds counts with every state present (zeros included).
    pub fn from_pairs(pairs: impl IntoIterator<Item = (JobState, u64)>) -> Self {
        let mut states: std::collections::BTreeMap<_, _> = JobState::ALL.into_iter().map(|s| (s, 0)).collect();
        for (state, n) in pairs {
            *states.entry(state).or_default() += n;
        }
        Self { states, live_leases: 0 }
    }

    /// The counts with `live_leases` set.
    pub fn with_live_leases(self, live_leases: u64) -> Self {
        Self { live_leases, ..self }
    }

    /// Jobs in flight (LEASED … DEDUPED).
    pub fn in_flight(&self) -> u64 {
        self.states
            .iter()
            .filter(|(state, _)| state.is_in_flight())
            .map(|(_, n)| n)
            .sum()
    }

    /// In-flight jobs no live lease holds: the lease expired, or was given
    /// back or freed by reconcile. A `run` takes them over.
    pub fn expired_leases(&self) -> u64 {
        self.in_flight().saturating_sub(self.live_leases)
    }

    /// All jobs.
    pub fn total(&self) -> u64 {
        self.states.values().sum()
    }

    /// Jobs in `state`.
    pub fn get(&self, state: JobState) -> u64 {
        self.states.get(&state).copied().unwrap_or(0)
    }
}
