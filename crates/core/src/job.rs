//! Jobs as the ledger keeps them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::fetch::FetchError;
use crate::state::JobState;

/// Milliseconds since the Unix epoch, read from the store's clock.
pub type Millis = i64;

/// `d` in milliseconds, saturating at [`Millis::MAX`].
pub fn millis(d: Duration) -> Millis {
    Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX)
}

/// This process's wall clock in milliseconds since the Unix epoch (the
/// memory store's clock; the SQL stores read their server's).
pub fn wall_clock() -> Millis {
    millis(SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default())
}

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
    /// Expected media type (`type/subtype` or `type/*`, normalized by
    /// [`content::parse_expected`](crate::content::parse_expected)).
    pub expected_content_type: Option<String>,
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
    /// Expected media type from the manifest (`--accept` applies to jobs
    /// without one at run time).
    pub expected_content_type: Option<String>,
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

impl NewJob {
    /// What the line expects of its content.
    pub fn expectations(&self) -> Expectations {
        Expectations {
            sha256: self.expected_sha256.clone(),
            size: self.expected_size,
            content_type: self.expected_content_type.clone(),
        }
    }
}

impl Job {
    /// What the job expects of its content.
    pub fn expectations(&self) -> Expectations {
        Expectations {
            sha256: self.expected_sha256.clone(),
            size: self.expected_size,
            content_type: self.expected_content_type.clone(),
        }
    }

    /// Records `expected` as what the job expects of its content.
    pub fn set_expectations(&mut self, expected: &Expectations) {
        self.expected_sha256.clone_from(&expected.sha256);
        self.expected_size = expected.size;
        self.expected_content_type.clone_from(&expected.content_type);
    }

    /// `work_id/artifact_id`: how progress and log lines name the job.
    pub fn name(&self) -> String {
        format!("{}/{}", self.work_id, self.artifact_id)
    }

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
            expected_content_type: new.expected_content_type.clone(),
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

/// The pipeline's failures, by what they mean. An attempt a failure counts
/// is counted once: an epoch that reached STREAMING counted it there.
impl JobFailure {
    /// A failure no retry mends (a 404, a hash or size mismatch, a file in
    /// the way): the job settles FAILED.
    pub(crate) fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: false,
            retry_after: Duration::ZERO,
            counts_attempt: false,
        }
    }

    /// A failure a later lease may mend (a body cut short, an unreadable
    /// `robots.txt`, a local file error): retried after the backoff,
    /// attempts permitting, and an attempt counted, so that a job failing
    /// again and again ends FAILED instead of being leased forever.
    pub(crate) fn retryable(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: true,
            retry_after: Duration::ZERO,
            counts_attempt: true,
        }
    }

    /// A request that failed: retryable as the fetcher judged it, no sooner
    /// than the server's `Retry-After` when it sent one; an attempt counted.
    pub(crate) fn fetch(err: FetchError) -> Self {
        Self {
            retryable: err.is_retryable(),
            retry_after: err.retry_after.unwrap_or_default(),
            ..Self::retryable(err.message)
        }
    }

    /// Its host's failure, not the job's (the host is paused): retried
    /// after `wait`, with no attempt counted.
    pub(crate) fn host_paused(message: impl Into<String>, wait: Duration) -> Self {
        Self {
            retry_after: wait,
            counts_attempt: false,
            ..Self::retryable(message)
        }
    }
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

impl JobPatch {
    /// Whether the patch sets a stored field (`failure` is only read by a
    /// step to FAILED).
    pub fn sets_fields(&self) -> bool {
        self.etag.is_some()
            || self.last_modified.is_some()
            || self.remote_size.is_some()
            || self.path.is_some()
            || self.sha256.is_some()
            || self.size.is_some()
            || self.duplicate_of.is_some()
    }
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

impl JobQuery {
    /// Whether `job` is one the query lists (its limit aside).
    pub fn matches(&self, job: &Job) -> bool {
        self.after.as_ref().is_none_or(|after| job.job_key > *after)
            && self.state.is_none_or(|s| job.state == s)
            && self.canonical_url.as_ref().is_none_or(|u| job.canonical_url == *u)
    }
}

/// Narrows a set of jobs: every filter given must admit a job
/// ([`JobFilter::matches`] is the rule). `retry` narrows what it requeues
/// with it ([`RequeueFilter::narrow`](crate::RequeueFilter::narrow)), and
/// `jobs` what it lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    /// Only the job with this key.
    pub job_key: Option<String>,
    /// Only jobs of this work id.
    pub work_id: Option<String>,
    /// Only jobs whose canonical URL's host is this (see
    /// [`host_matches`](crate::url::host_matches); hosts are lowercase).
    pub host: Option<String>,
    /// Only jobs whose `last_error` contains this text (case-sensitive).
    pub error: Option<String>,
}

impl JobFilter {
    /// Whether every filter given admits `job`.
    pub fn matches(&self, job: &Job) -> bool {
        self.job_key.as_ref().is_none_or(|k| job.job_key == *k)
            && self.work_id.as_ref().is_none_or(|w| job.work_id == *w)
            && self
                .host
                .as_ref()
                .is_none_or(|h| crate::url::host_matches(&job.canonical_url, h))
            && self
                .error
                .as_ref()
                .is_none_or(|e| job.last_error.as_ref().is_some_and(|last| last.contains(e.as_str())))
    }
}

/// What planning did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanCounts {
    /// Jobs added.
    pub new: u64,
    /// Jobs already in the ledger (unchanged), conflicts included.
    pub existing: u64,
    /// The jobs among `existing` whose line declares expectations the job
    /// does not record, in input order (see [`Expectations::contradicts`]).
    pub conflicts: Vec<ExpectationConflict>,
}

impl PlanCounts {
    /// Counts planning `new` (at `position` in the input) over the job of
    /// its key, whose recorded expectations are `existing` if there is one:
    /// whether `new` is a new job to insert.
    pub fn record(&mut self, position: usize, new: &NewJob, existing: Option<Expectations>) -> bool {
        let Some(recorded) = existing else {
            self.new += 1;
            return true;
        };
        self.existing += 1;
        self.conflicts
            .extend(ExpectationConflict::between(position, new, recorded));
        false
    }

    /// Adds the counts of a later batch that followed `before` jobs of the
    /// same input, shifting its conflicts' positions past them.
    pub fn add_batch(&mut self, later: Self, before: u64) {
        self.new += later.new;
        self.existing += later.existing;
        self.conflicts.extend(later.conflicts.into_iter().map(|mut conflict| {
            conflict.position += before;
            conflict
        }));
    }
}

/// What a manifest line expects of its content (SPEC §1): each field that is
/// `Some` must hold, a `None` field expects nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expectations {
    /// Expected content hash (lowercase hex).
    pub sha256: Option<String>,
    /// Expected size in bytes.
    pub size: Option<u64>,
    /// Expected media type (see [`content`](crate::content)).
    pub content_type: Option<String>,
}

impl Expectations {
    /// Whether no field is declared.
    pub fn is_empty(&self) -> bool {
        self.sha256.is_none() && self.size.is_none() && self.content_type.is_none()
    }

    /// Whether `recorded` (a job's expectations) lacks a field these
    /// declare, or holds another value for it. Fields these leave out are not
    /// compared: a line that declares nothing never contradicts its job.
    pub fn contradicts(&self, recorded: &Self) -> bool {
        let sha256 = self.sha256.is_some() && self.sha256 != recorded.sha256;
        let size = self.size.is_some() && self.size != recorded.size;
        let content_type = self.content_type.is_some() && self.content_type != recorded.content_type;
        sha256 || size || content_type
    }

    /// `recorded` with every field these declare set to the declared value.
    pub fn over(&self, recorded: &Self) -> Self {
        Self {
            sha256: self.sha256.clone().or_else(|| recorded.sha256.clone()),
            size: self.size.or(recorded.size),
            content_type: self.content_type.clone().or_else(|| recorded.content_type.clone()),
        }
    }

    /// Whether content with this hash and size meets every declared field
    /// (a declared field whose content value is unknown does not).
    pub fn admit(&self, sha256: Option<&str>, size: Option<u64>) -> bool {
        let sha256_holds = self.sha256.as_deref().is_none_or(|e| sha256 == Some(e));
        let size_holds = self.size.is_none_or(|e| size == Some(e));
        sha256_holds && size_holds
    }

    /// Whether finished content, which this job downloaded (or linked) under
    /// the expectations `before`, meets these: [`Self::admit`] for its hash
    /// and size, and a declared content type must be the one it was checked
    /// against (`before`'s). Nothing records the type content was served
    /// with, so a finished job whose expected type changes is requeued and
    /// checked again by its download ([`LedgerStore::update_expected`]).
    ///
    /// [`LedgerStore::update_expected`]: crate::LedgerStore::update_expected
    pub fn admit_finished(&self, before: &Self, sha256: Option<&str>, size: Option<u64>) -> bool {
        let content_type_holds = self.content_type.is_none() || self.content_type == before.content_type;
        self.admit(sha256, size) && content_type_holds
    }
}

impl std::fmt::Display for Expectations {
    /// The declared fields: `sha256 HEX and size N`, `sha256 HEX`, `size N`,
    /// or `no sha256 or size`; a declared content type follows as
    /// ` and content_type T` (`content_type T` alone).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.sha256, self.size, &self.content_type) {
            (None, None, Some(content_type)) => return write!(f, "content_type {content_type}"),
            (Some(sha256), Some(size), _) => write!(f, "sha256 {sha256} and size {size}")?,
            (Some(sha256), None, _) => write!(f, "sha256 {sha256}")?,
            (None, Some(size), _) => write!(f, "size {size}")?,
            (None, None, None) => f.write_str("no sha256 or size")?,
        }
        match &self.content_type {
            Some(content_type) => write!(f, " and content_type {content_type}"),
            None => Ok(()),
        }
    }
}

/// A planned job whose line declares expectations the existing job does not
/// record: the job was left as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectationConflict {
    /// The job's index in the planned input (0-based; across every batch of a
    /// streamed plan).
    pub position: u64,
    /// Job key.
    pub job_key: String,
    /// What the line declares.
    pub declared: Expectations,
    /// What the job records.
    pub recorded: Expectations,
}

impl ExpectationConflict {
    /// The conflict of planning `new` (at `position` in the input) over an
    /// existing job that records `recorded`, if its line declares otherwise.
    pub fn between(position: usize, new: &NewJob, recorded: Expectations) -> Option<Self> {
        let declared = new.expectations();
        declared.contradicts(&recorded).then(|| Self {
            position: u64::try_from(position).unwrap_or(u64::MAX),
            job_key: new.job_key.clone(),
            declared,
            recorded,
        })
    }
}

/// What [`LedgerStore::update_expected`](crate::LedgerStore::update_expected) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedUpdate {
    /// The job records the expectations already: nothing changed.
    Unchanged,
    /// Recorded; the job's state is as it was.
    Recorded,
    /// Recorded, and the finished job, whose content does not meet them, went
    /// back to PLANNED with a REQUEUE row.
    Requeued,
    /// The job is in flight: nothing changed (its worker checks the
    /// expectations it was leased with).
    InFlight(JobState),
}

/// Jobs per state; every state present.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusCounts {
    /// Counts keyed by state, in [`JobState::ALL`] order.
    pub states: std::collections::BTreeMap<JobState, u64>,
    /// In-flight jobs held by a live lease (expiry after now, by the store
    /// clock), read with the counts per state.
    pub live_leases: u64,
    /// The sum of the sizes of the SUCCESS jobs (bytes downloaded and kept).
    pub bytes_done: u64,
    /// The retryable FAILED jobs by the attempts they used, each with how
    /// many of them wait out a backoff (next attempt after now, by the store
    /// clock); read with the counts per state. Whether a job has attempts
    /// left depends on `--max-attempts`, which the caller knows:
    /// [`StatusCounts::failed`] and [`StatusCounts::backoff_waiting`] judge.
    pub retryable_failed: std::collections::BTreeMap<u32, RetryableFailed>,
}

/// The retryable FAILED jobs that used one number of attempts (see
/// [`StatusCounts::retryable_failed`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryableFailed {
    /// Jobs.
    pub jobs: u64,
    /// Those among them whose next attempt is after now (store clock).
    pub backoff_waiting: u64,
}

/// The FAILED jobs split by whether `run` leases them again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FailedSplit {
    /// Retryable with attempts left: leased again once their backoff ends.
    pub retryable: u64,
    /// Not retryable, or out of attempts: FAILED until `oncefetch retry`.
    pub final_: u64,
}

/// Whether a job that used `attempts` may be leased again under
/// `max_attempts` (the runnable rule, clause `failed_jobs_back_off_until_max_attempts` of
/// [`LeaseManager`](crate::LeaseManager) for a retryable FAILED job).
pub fn attempts_left(attempts: u32, max_attempts: u32) -> bool {
    attempts < max_attempts
}

impl StatusCounts {
    /// Builds counts with every state present (zeros included).
    pub fn from_pairs(pairs: impl IntoIterator<Item = (JobState, u64)>) -> Self {
        let mut states: std::collections::BTreeMap<_, _> = JobState::ALL.into_iter().map(|s| (s, 0)).collect();
        for (state, n) in pairs {
            *states.entry(state).or_default() += n;
        }
        Self {
            states,
            ..Self::default()
        }
    }

    /// The counts with `live_leases` set.
    pub fn with_live_leases(self, live_leases: u64) -> Self {
        Self { live_leases, ..self }
    }

    /// The counts with `bytes_done` set.
    pub fn with_bytes_done(self, bytes_done: u64) -> Self {
        Self { bytes_done, ..self }
    }

    /// The counts with `retryable_failed` summed from (attempts, jobs,
    /// backoff waiting) triples; an attempts value may come more than once.
    pub fn with_retryable_failed(mut self, groups: impl IntoIterator<Item = (u32, u64, u64)>) -> Self {
        for (attempts, jobs, backoff_waiting) in groups {
            let group = self.retryable_failed.entry(attempts).or_default();
            group.jobs += jobs;
            group.backoff_waiting += backoff_waiting;
        }
        self
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

    /// The FAILED jobs split into those a `run` with `max_attempts` leases
    /// again ([`attempts_left`]) and the final ones.
    pub fn failed(&self, max_attempts: u32) -> FailedSplit {
        let retryable = self
            .retryable_failed
            .iter()
            .filter(|(&attempts, _)| attempts_left(attempts, max_attempts))
            .map(|(_, group)| group.jobs)
            .sum();
        FailedSplit {
            retryable,
            final_: self.get(JobState::Failed).saturating_sub(retryable),
        }
    }

    /// The retryable FAILED jobs with attempts left under `max_attempts`
    /// that wait out a backoff: a `run` leases them once it ends.
    pub fn backoff_waiting(&self, max_attempts: u32) -> u64 {
        self.retryable_failed
            .iter()
            .filter(|(&attempts, _)| attempts_left(attempts, max_attempts))
            .map(|(_, group)| group.backoff_waiting)
            .sum()
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
