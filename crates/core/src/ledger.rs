//! The [`LedgerStore`] trait: jobs, the operations ledger and the artifact
//! index, with every worker write fenced by epoch.

use std::fmt::{self, Debug};
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::error::{StoreError, StoreResult};
use crate::job::{
    Expectations, ExpectedUpdate, Job, JobFilter, JobPatch, JobQuery, Millis, NewJob, PlanCounts, StatusCounts,
};
use crate::lease::Fence;
use crate::state::JobState;
use crate::watch::{Watch, WatchQuery};

/// The kind of a side effect (or recovery action) in the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// Learn the resource's metadata.
    Head,
    /// Stream bytes into the partial file.
    Stream,
    /// Verify and place the final file.
    Finalize,
    /// Record the content hash in the artifact index.
    Index,
    /// Link identical content to its first copy.
    Dedupe,
    /// Grant of a job whose lease expired (the backward step); for a job out
    /// of attempts, its end in FAILED instead (`"to": "FAILED"`).
    Relet,
    /// Job sent back to PLANNED (`retry`, or a finished file gone missing).
    Requeue,
    /// Recovery removed or kept a partial file.
    Cleanup,
}

impl OpKind {
    /// The ledger name (`FINALIZE`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Head => "HEAD",
            Self::Stream => "STREAM",
            Self::Finalize => "FINALIZE",
            Self::Index => "INDEX",
            Self::Dedupe => "DEDUPE",
            Self::Relet => "RELET",
            Self::Requeue => "REQUEUE",
            Self::Cleanup => "CLEANUP",
        }
    }

    /// A side effect of the pipeline (HEAD … DEDUPE), as opposed to a
    /// ledger-only recovery record (RELET, REQUEUE, CLEANUP).
    pub const fn is_effect(self) -> bool {
        matches!(
            self,
            Self::Head | Self::Stream | Self::Finalize | Self::Index | Self::Dedupe
        )
    }

    /// Parses a ledger name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Head,
            Self::Stream,
            Self::Finalize,
            Self::Index,
            Self::Dedupe,
            Self::Relet,
            Self::Requeue,
            Self::Cleanup,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an op attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResultCode {
    /// Done; its result is replayed to later callers.
    Ok,
    /// Failed; kept for the audit, the effect runs again next attempt.
    Error,
    /// Its epoch lost the lease before it finished.
    Abandoned,
}

impl ResultCode {
    /// The ledger name (`OK`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Error => "ERROR",
            Self::Abandoned => "ABANDONED",
        }
    }

    /// Parses a ledger name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Ok, Self::Error, Self::Abandoned]
            .into_iter()
            .find(|c| c.as_str() == s)
    }
}

/// One attempt in the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpRecord {
    /// Insertion order, for pagination.
    pub seq: i64,
    /// Op key.
    pub op_key: String,
    /// Job key.
    pub job_key: String,
    /// Kind name.
    pub kind: OpKind,
    /// Epoch the attempt ran under.
    pub epoch: i64,
    /// Start (store clock).
    pub started_at: Millis,
    /// End, once finished.
    pub finished_at: Option<Millis>,
    /// Outcome; `None` while running.
    pub result_code: Option<ResultCode>,
    /// Recorded result (or error) as JSON.
    pub result: Option<Value>,
}

/// Which ledger rows to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpQuery {
    /// Only this job's rows.
    pub job_key: Option<String>,
    /// Only rows with `seq` greater than this.
    pub after_seq: Option<i64>,
    /// At most this many (0 = no limit).
    pub limit: usize,
}

impl OpQuery {
    /// Whether `row` is one the query lists (its limit aside).
    pub fn matches(&self, row: &OpRecord) -> bool {
        self.after_seq.is_none_or(|s| row.seq > s) && self.job_key.as_ref().is_none_or(|k| row.job_key == *k)
    }
}

/// An op attempt to finish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpFinish {
    /// Op key of the running attempt (under the fence's epoch).
    pub op_key: String,
    /// OK or ERROR.
    pub code: ResultCode,
    /// Result to record (replayed when OK).
    pub result: Value,
}

/// An op attempt to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpStart {
    /// Op key.
    pub op_key: String,
    /// Kind.
    pub kind: OpKind,
}

/// The INDEX op run inside a [`Commit`]: its effect is a ledger write, so it
/// starts, takes effect and finishes in the commit's transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexOp {
    /// Op key (kind [`OpKind::Index`]).
    pub op_key: String,
    /// The copy to index when the hash is not indexed yet.
    pub entry: ArtifactEntry,
}

/// One atomic, fenced write of a worker: finish an op, step through states,
/// run the INDEX op, start the next op — any part optional, applied in that
/// order, all or nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Commit {
    /// Finish the running attempt of this op.
    pub finish: Option<OpFinish>,
    /// States to pass through, in order, each checked against the table.
    pub steps: Vec<JobState>,
    /// Fields recorded with the steps.
    pub patch: JobPatch,
    /// Index the content (first writer wins) as an op of its own: an OK row
    /// of `op_key` already present is replayed, otherwise the entry is
    /// recorded unless the hash is indexed already, and an OK row with
    /// result `{"first_path": …}` is written under the fence's epoch.
    pub index: Option<IndexOp>,
    /// Start an attempt of this op (or learn its recorded result).
    pub begin: Option<OpStart>,
    /// With `index` and `begin`: when the first copy of the content is
    /// `index.entry` itself, `begin`'s op has nothing left to do. Unless it
    /// has an OK row already (replayed as usual), it is then recorded OK
    /// with [`Settle::result`] instead of started, and the job steps through
    /// [`Settle::steps`]; [`CommitOutcome::settled`] says so.
    pub settle: Option<Settle>,
}

/// How a [`Commit`] settles at once when its INDEX op finds the content's
/// first copy is the job's own (see [`Commit::settle`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settle {
    /// The OK result recorded for `Commit::begin`'s op.
    pub result: Value,
    /// States to pass through after it, each checked against the table.
    pub steps: Vec<JobState>,
}

impl Commit {
    /// [`Commit::settle`] when it applies, once the store knows the path that
    /// stands for the indexed content (`first_path`, `None` without an INDEX
    /// op) and whether `begin`'s op must run (it has no OK row to replay):
    /// the first copy is the INDEX op's own entry.
    pub fn settling(&self, first_path: Option<&str>, begin_runs: bool) -> Option<&Settle> {
        let own_copy = self
            .index
            .as_ref()
            .is_some_and(|index| first_path == Some(index.entry.path.as_str()));
        self.settle
            .as_ref()
            .filter(|_| own_copy && begin_runs && self.begin.is_some())
    }
}

/// What starting an op found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpBegin {
    /// No OK attempt yet: a running attempt was recorded; run the effect.
    Run,
    /// An attempt already finished OK: here is its result; do not run again.
    Replay(Value),
}

/// What a [`Commit`] returned.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CommitOutcome {
    /// The answer to `Commit::begin`, when asked.
    pub begun: Option<OpBegin>,
    /// The answer to `Commit::index`, when asked: the path of the first
    /// stored copy of the content (recorded now, earlier, or replayed).
    pub first_path: Option<String>,
    /// Whether `Commit::settle` applied: `begin`'s op was recorded OK and the
    /// job stepped through the settle steps (`begun` is then `None`).
    pub settled: bool,
}

/// A row of the artifact index: the first stored copy of some content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactEntry {
    /// Content hash.
    pub sha256: String,
    /// Absolute path of the first copy.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Job that stored it.
    pub job_key: String,
}

/// Which jobs [`LedgerStore::requeue_matching`] sends back to PLANNED: the
/// jobs in `state` that every filter given admits ([`RequeueFilter::matches`]
/// is the rule each store follows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequeueFilter {
    /// FAILED, SUCCESS or SKIPPED_DUPLICATE (any other is
    /// [`StoreError::InvalidTransition`]).
    pub state: JobState,
    /// With FAILED: take non-retryable failures too. Without it only
    /// retryable FAILED jobs are taken (jobs of other states either way).
    pub include_permanent: bool,
    /// The filters that narrow the jobs taken (job key, work id, host,
    /// last error).
    pub narrow: JobFilter,
}

impl RequeueFilter {
    /// Every job of `state` (retryable ones only, for FAILED).
    pub fn new(state: JobState) -> Self {
        Self {
            state,
            include_permanent: false,
            narrow: JobFilter::default(),
        }
    }

    /// Whether the filter takes `job`.
    pub fn matches(&self, job: &Job) -> bool {
        job.state == self.state
            && (self.include_permanent || job.retryable || job.state != JobState::Failed)
            && self.narrow.matches(job)
    }
}

/// What [`LedgerStore::requeue_matching`] requeued, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequeueCounts {
    /// FAILED jobs that were retryable (out of attempts, or waiting out a
    /// backoff).
    pub retryable: u64,
    /// FAILED jobs that were not retryable.
    pub permanent: u64,
    /// SUCCESS and SKIPPED_DUPLICATE jobs.
    pub finished: u64,
}

impl FromIterator<(JobState, bool)> for RequeueCounts {
    /// Counts each requeued job by the state it left and whether it was
    /// retryable ([`RequeueCounts::count`]).
    fn from_iter<I: IntoIterator<Item = (JobState, bool)>>(requeued: I) -> Self {
        let mut counts = Self::default();
        for (from, retryable) in requeued {
            counts.count(from, retryable);
        }
        counts
    }
}

impl RequeueCounts {
    /// All jobs requeued.
    pub fn total(&self) -> u64 {
        self.retryable + self.permanent + self.finished
    }

    /// Counts one requeued job that was in `from` (retryable or not).
    pub fn count(&mut self, from: JobState, retryable: bool) {
        match (from, retryable) {
            (JobState::Failed, true) => self.retryable += 1,
            (JobState::Failed, false) => self.permanent += 1,
            _ => self.finished += 1,
        }
    }
}

/// Request slots a store reserved for one host with
/// [`LedgerStore::claim_request_slots`]: `count` request times by the store
/// clock, `interval_ms` apart from `first` on. The pipeline sends one
/// request at each (SPEC §8, rates).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestSlots {
    /// The first slot, in milliseconds by the store clock.
    pub first: Millis,
    /// Milliseconds between two slots (at least 1).
    pub interval_ms: Millis,
    /// How many slots (at least 1).
    pub count: u32,
}

impl RequestSlots {
    /// The spacing of slots at `interval`, in whole milliseconds, at least 1.
    pub fn interval_millis(interval: Duration) -> Millis {
        crate::job::millis(interval).max(1)
    }

    /// **The budget rule** every store follows: a claim of `count` slots (at
    /// least 1) at `interval` for a host whose next free time is
    /// `stored_next` (`None` for a host never claimed) starts at
    /// `max(stored_next, now)`; the host's next free time is then
    /// [`RequestSlots::next_free`]. An idle host banks no burst: slots never
    /// start before now.
    pub fn claim(stored_next: Option<Millis>, now: Millis, interval: Duration, count: u32) -> Self {
        Self {
            first: stored_next.map_or(now, |next| next.max(now)),
            interval_ms: Self::interval_millis(interval),
            count: count.max(1),
        }
    }

    /// The slots of a claim whose next free time came back as `next_free`
    /// (for a store that applies [`RequestSlots::claim`]'s rule in one SQL
    /// statement and returns the stored value).
    pub fn ending_at(next_free: Millis, interval: Duration, count: u32) -> Self {
        let interval_ms = Self::interval_millis(interval);
        let count = count.max(1);
        Self {
            first: next_free.saturating_sub(interval_ms.saturating_mul(Millis::from(count))),
            interval_ms,
            count,
        }
    }

    /// The host's next free time after these slots: what the store records.
    pub fn next_free(&self) -> Millis {
        self.first
            .saturating_add(self.interval_ms.saturating_mul(Millis::from(self.count)))
    }

    /// Each slot, in order.
    pub fn times(&self) -> impl Iterator<Item = Millis> + '_ {
        (0..Millis::from(self.count)).map(move |i| self.first.saturating_add(i.saturating_mul(self.interval_ms)))
    }
}

/// Jobs, the operations ledger and the artifact index.
///
/// # Contract
///
/// Each clause is led by the name of the conformance check that asserts it
/// (`oncefetch_core::conformance`, feature `conformance`, one
/// `#[tokio::test]` each through `store_conformance!`); the kit's own test
/// holds these names, then [`LeaseManager`](crate::LeaseManager)'s, equal to
/// `conformance::CHECKS`.
///
/// - `plan_is_idempotent`: planning a job key already present changes
///   nothing and counts it as existing (a batch counts its new and existing
///   keys apart); a new job is PLANNED at epoch 0 with its URL, canonical URL
///   and expectations as given, and [`LedgerStore::job`] of an absent key is
///   [`StoreError::NotFound`].
/// - `streamed_plan`: [`LedgerStore::plan_stream`] plans like
///   [`LedgerStore::plan`] batch after batch (an empty batch included); a
///   key met again, in the ledger or earlier in the stream (in the same batch
///   or another), is planned once and counted as existing.
/// - `plan_reports_other_expectations`: planning a job key already present
///   (in the ledger, or earlier in the input) with a line that declares a
///   sha256, size or content type the job does not record
///   ([`Expectations::contradicts`]) leaves the job as it is, counts it as
///   existing and reports it in [`PlanCounts::conflicts`] with its position
///   in the input (in a stream, counting every job of the stream), the
///   declared and the recorded expectations; a line that declares nothing,
///   or what the job records, is no conflict.
/// - `plan_records_the_content_type`: a line's expected content type
///   (`NewJob::expected_content_type`) is recorded with its job and returned
///   by [`LedgerStore::job`], [`LedgerStore::jobs`] and every grant; another
///   type on a later line is a conflict as another sha256 is, and
///   [`LedgerStore::update_expected`] records a type (keeping the other
///   fields) and judges a finished job by [`Expectations::admit_finished`]:
///   the same type leaves it, another requeues it.
/// - `stale_epoch_writes_are_fenced`: [`LedgerStore::commit`] succeeds only
///   while the fence's owner holds the job's lease at that epoch and the
///   lease has not expired by the store clock; otherwise — steps, op starts
///   and INDEX ops alike, with a stale epoch or another owner —
///   [`StoreError::LeaseLost`] and nothing is written (no step, no op row, no
///   index entry). [`LeaseManager::renew`](crate::LeaseManager::renew) and
///   [`LeaseManager::release`](crate::LeaseManager::release) with a stale
///   epoch or another owner fail alike and change nothing; the live lease
///   still writes.
/// - `state_table_is_enforced`: every step is checked with
///   [`check_transition`](crate::check_transition); an invalid one, even
///   after valid steps of the same commit, is
///   [`StoreError::InvalidTransition`] and nothing is written. A step to
///   STREAMING counts an attempt, and the patch's fields (sha256, size,
///   path) are recorded with the steps.
/// - `terminal_steps_end_the_lease`: a step to a terminal state records its
///   patch (`duplicate_of`) and ends the lease: the job has no owner, a renew
///   fails with [`StoreError::LeaseLost`], no grant picks it and it is not
///   [outstanding](LedgerStore::outstanding).
/// - `failure_before_streaming_counts_an_attempt`: a step to FAILED records
///   the failure and ends the lease (a retryable failure without backoff is
///   granted again at once); before STREAMING it counts an attempt only when
///   `JobFailure::counts_attempt` says so (a request was sent).
/// - `op_replay_returns_recorded_result`: starting an op whose key has an OK
///   row returns [`OpBegin::Replay`] with the recorded result, so
///   [`run_effect`] runs the effect once; the attempt is one row, OK, of its
///   kind, finished.
/// - `error_op_runs_again`: an attempt finished ERROR stays for the audit and
///   is not replayed. Rows are unique on (op_key, epoch): under its epoch the
///   op cannot start again ([`StoreError::OpAlreadyAttempted`]) nor finish
///   again ([`StoreError::OpNotRunning`]); the next epoch runs it again, with
///   a row of its own.
/// - `ops_are_listed_in_order`: [`LedgerStore::ops`] lists rows in `seq`
///   order, by job, and pages by `after_seq` and `limit`;
///   [`LedgerStore::note`] writes one OK row per op key however often it is
///   called.
/// - `artifact_index_first_writer_wins`: a commit's [`IndexOp`] answers with
///   the path of the first job that indexed the hash, which
///   [`LedgerStore::artifact`] returns, and writes one OK row
///   `{"first_path": …}` under the fence's epoch; a second commit of the op
///   replays its OK row.
/// - `index_settles_the_first_copy`: with [`Commit::settle`], when the INDEX
///   op finds the job's own entry is the first copy, `begin`'s op is
///   recorded OK with the settle result and the job steps through the settle
///   steps in the same commit (SUCCESS ends the lease); for a second copy the
///   op starts as usual; an op with an OK row is replayed, even when the copy
///   is the first.
/// - `requeue_resets_finished_jobs`: [`LedgerStore::requeue`] sends a FAILED
///   job back to PLANNED with attempts reset and the error cleared, writes an
///   OK REQUEUE row and supersedes its OK effect rows (ABANDONED), so the
///   next grant (a higher epoch) runs the effects again; a job in another
///   state is left, and `requeue` returns false.
/// - `update_expected_requeues_mismatches`: [`LedgerStore::update_expected`]
///   records the declared fields on a job that is not in flight; a SUCCESS
///   or SKIPPED_DUPLICATE job whose content does not meet them goes back to
///   PLANNED as [`LedgerStore::requeue`] sends it, in the same transaction
///   (REQUEUE row with the reason, effect rows superseded); an in-flight job
///   is left as it is ([`ExpectedUpdate::InFlight`]); an absent one is
///   [`StoreError::NotFound`].
/// - `requeue_matching_narrows`: [`LedgerStore::requeue_matching`] requeues
///   exactly the jobs its [`RequeueFilter`] matches (filters combine;
///   non-retryable failures only with `include_permanent`; jobs in flight
///   never), each as [`LedgerStore::requeue`] does (REQUEUE row counting its
///   `superseded_ops`, effect rows superseded), and counts them by kind; a
///   state requeue cannot leave is [`StoreError::InvalidTransition`].
/// - `status_counts_every_state`: [`LedgerStore::status`] counts every state,
///   zeros included, as jobs move; [`LedgerStore::jobs`] filters by state and
///   pages by job key (`after`, `limit`), in job-key order.
/// - `status_counts_live_leases`: [`LedgerStore::status`] counts the
///   in-flight jobs whose lease is live by the store clock in
///   [`StatusCounts::live_leases`]; an expired or released lease is not live.
/// - `status_counts_bytes_and_failures`: [`LedgerStore::status`] sums the
///   sizes of SUCCESS jobs in [`StatusCounts::bytes_done`], and counts the
///   retryable FAILED jobs by attempts used, and those of them whose next
///   attempt is after now by the store clock, in
///   [`StatusCounts::retryable_failed`], all read with the counts per state.
/// - `far_retries_are_not_waited_for`: a failure's backoff puts the job's
///   next attempt at now + `retry_after` by the store clock;
///   [`LedgerStore::outstanding`] with `within` leaves out a retryable
///   FAILED job whose next attempt is due later than now + `within`, and
///   counts it otherwise (PLANNED jobs always).
/// - `watch_counts`: [`LedgerStore::watch`] counts every job under its host
///   ([`crate::url::host_port`]) by state group as
///   [`HostCounts::count`](crate::watch::HostCounts::count) does, and each
///   step into SUCCESS, SKIPPED_DUPLICATE or FAILED once, in the minute of
///   the store clock it happened (a requeued job leaves its group, its finish
///   stays); it lists FAILED jobs in planning order, live leases by expiry
///   and the owners of leases that expire after now − `recent`, within the
///   query's limits.
/// - `request_budget_is_shared`: [`LedgerStore::claim_request_slots`]
///   reserves a host's next request times atomically by the store clock,
///   following [`RequestSlots::claim`]: concurrent claims through any handles
///   on one ledger never get overlapping slots nor slots closer than the
///   interval, no slot is earlier than now, a claim takes at least one slot,
///   and another host's budget is its own.
#[async_trait]
pub trait LedgerStore: Send + Sync + Debug + 'static {
    /// Plans jobs idempotently, reporting the existing jobs whose line
    /// declares other expectations ([`PlanCounts::conflicts`], positions
    /// indexing `jobs`). Only lines that declare expectations and meet an
    /// existing job need the job read back.
    async fn plan(&self, jobs: &[NewJob]) -> StoreResult<PlanCounts>;

    /// Plans every batch received until the sender is dropped, idempotently
    /// as [`LedgerStore::plan`] does (a job key met again, in the ledger or
    /// earlier in the stream, counts as existing), and returns the summed
    /// counts (conflict positions count every job of the stream). Batches are planned in order and each is durable once
    /// planned: a store may group several batches into one transaction, but
    /// a failure (or a crash) loses at most the batches not yet committed,
    /// never jobs planned before. This is how `oncefetch plan` streams a
    /// manifest: the sender parses while the store writes.
    ///
    /// The default plans one batch at a time with [`LedgerStore::plan`].
    async fn plan_stream(&self, mut batches: mpsc::Receiver<Vec<NewJob>>) -> StoreResult<PlanCounts> {
        let mut totals = PlanCounts::default();
        let mut before = 0u64;
        while let Some(batch) = batches.recv().await {
            totals.add_batch(self.plan(&batch).await?, before);
            before += u64::try_from(batch.len()).unwrap_or(u64::MAX);
        }
        Ok(totals)
    }

    /// One job; [`StoreError::NotFound`] if absent.
    async fn job(&self, job_key: &str) -> StoreResult<Job>;

    /// Jobs by query, ordered by job key.
    async fn jobs(&self, query: &JobQuery) -> StoreResult<Vec<Job>>;

    /// Counts per state, the live leases among them, the bytes done and the
    /// retryable failures by attempts used.
    async fn status(&self) -> StoreResult<StatusCounts>;

    /// What the status pages show ([`Watch`]), read in one transaction: the
    /// per-host counts and the finishes per minute from counters the store
    /// keeps as it writes, the rest through indexes over small sets (FAILED
    /// in planning order, live leases by expiry), so the cost does not grow
    /// with the ledger. Read-only.
    async fn watch(&self, query: &WatchQuery) -> StoreResult<Watch>;

    /// Jobs not yet settled for `run`: neither terminal nor FAILED without
    /// retries left (not retryable, or `attempts >= max_attempts`). With
    /// `within`, a retryable FAILED job whose next attempt is due later
    /// than now + `within` (a server asked for more than `run`'s
    /// `--max-retry-after`) is not counted either: the run does not wait
    /// for it.
    async fn outstanding(&self, max_attempts: u32, within: Option<Duration>) -> StoreResult<u64>;

    /// The one fenced, atomic write of a worker.
    async fn commit(&self, fence: &Fence, commit: &Commit) -> StoreResult<CommitOutcome>;

    /// Ledger rows by query, ordered by `seq`.
    async fn ops(&self, query: &OpQuery) -> StoreResult<Vec<OpRecord>>;

    /// The first stored copy of some content.
    async fn artifact(&self, sha256: &str) -> StoreResult<Option<ArtifactEntry>>;

    /// Sends a FAILED, SUCCESS or SKIPPED_DUPLICATE job back to PLANNED
    /// (attempts reset, result fields cleared) and writes a REQUEUE row with
    /// `reason` (and `superseded_ops`, the count below); returns false when
    /// the job is in another state. In the same transaction the job's OK rows
    /// of effect kinds ([`OpKind::is_effect`]) become ABANDONED: their
    /// results no longer describe the world (the file went missing, or the
    /// job failed after them), so the effects must run again rather than be
    /// replayed. The rows stay for the audit.
    async fn requeue(&self, job_key: &str, reason: &str) -> StoreResult<bool>;

    /// Requeues every job `filter` matches as [`LedgerStore::requeue`] does
    /// (each gets its REQUEUE row with `reason` and `superseded_ops`), all in
    /// one transaction, and counts them by kind. A store selects and writes
    /// the jobs set-wise (a few statements for any number of jobs, not a
    /// round trip per job): `retry` may requeue millions.
    async fn requeue_matching(&self, filter: &RequeueFilter, reason: &str) -> StoreResult<RequeueCounts>;

    /// Records `expected`'s declared fields on a job (fields it leaves out
    /// stay as they are): the admin write of `plan --update-expected`. A job
    /// in flight is left as it is ([`ExpectedUpdate::InFlight`]): its worker
    /// checks the expectations it was leased with. A SUCCESS or
    /// SKIPPED_DUPLICATE job whose recorded `sha256`/`size` do not meet the
    /// new expectations is requeued in the same transaction, exactly as
    /// [`LedgerStore::requeue`] does with `reason` (REQUEUE row, effect rows
    /// superseded). [`StoreError::NotFound`] when the job is absent.
    async fn update_expected(
        &self,
        job_key: &str,
        expected: &Expectations,
        reason: &str,
    ) -> StoreResult<ExpectedUpdate>;

    /// Reserves the next `count` (at least 1) request times of `host`
    /// (`HOST:PORT`) at `interval`, atomically by the store clock: the
    /// **budget rule** of [`RequestSlots::claim`], applied to one row per
    /// host, so every worker and process sharing the ledger keeps one rate
    /// per host between them. The pipeline claims a small batch at a time,
    /// not a round trip per request.
    async fn claim_request_slots(&self, host: &str, interval: Duration, count: u32) -> StoreResult<RequestSlots>;

    /// Ends the handle's work cleanly, before a process exits: whatever it
    /// keeps outside the ledger's main storage is folded back in (SQLite
    /// checkpoints its write-ahead log into the database file, so the file
    /// alone holds the whole ledger). Calls after it may fail. Not calling
    /// it loses nothing: a crash is always safe.
    ///
    /// The default does nothing.
    async fn close(&self) -> StoreResult<()> {
        Ok(())
    }

    /// Writes an OK row of a recovery action (`kind` CLEANUP, …) under the
    /// job's current epoch, once per `op_key`.
    async fn note(&self, job_key: &str, op_key: &str, kind: OpKind, result: &Value) -> StoreResult<()>;
}

/// Conveniences over [`LedgerStore::commit`], for callers of a store (the
/// pattern of object_store's `ObjectStoreExt`): a store does not implement
/// them — the blanket impl below gives them to every [`LedgerStore`], and
/// no other impl can exist — so what they do is the same on every store.
///
/// The defaults [`LedgerStore`] itself keeps ([`LedgerStore::plan_stream`],
/// [`LedgerStore::close`]) are there to be overridden: the SQLite store
/// groups streamed batches into larger transactions and checkpoints its
/// write-ahead log on close.
#[async_trait]
pub trait LedgerExt: LedgerStore {
    /// Steps through `steps` with `patch`.
    async fn advance(&self, fence: &Fence, steps: &[JobState], patch: JobPatch) -> StoreResult<()> {
        let commit = Commit {
            steps: steps.to_vec(),
            patch,
            ..Commit::default()
        };
        self.commit(fence, &commit).await.map(drop)
    }

    /// Starts an op attempt, or learns its recorded result.
    async fn begin_op(&self, fence: &Fence, op_key: &str, kind: OpKind) -> StoreResult<OpBegin> {
        let commit = Commit {
            begin: Some(OpStart {
                op_key: op_key.to_owned(),
                kind,
            }),
            ..Commit::default()
        };
        let outcome = self.commit(fence, &commit).await?;
        outcome.begun.ok_or_else(|| StoreError::OpStartUnanswered {
            op_key: op_key.to_owned(),
        })
    }

    /// Finishes the running attempt of an op.
    async fn finish_op(&self, fence: &Fence, op_key: &str, code: ResultCode, result: Value) -> StoreResult<()> {
        let commit = Commit {
            finish: Some(OpFinish {
                op_key: op_key.to_owned(),
                code,
                result,
            }),
            ..Commit::default()
        };
        self.commit(fence, &commit).await.map(drop)
    }
}

impl<T: LedgerStore + ?Sized> LedgerExt for T {}

/// The outcome of [`run_effect`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effect {
    /// The effect's result (recorded or fresh).
    pub value: Value,
    /// True when an earlier OK row answered and the effect did not run.
    pub replayed: bool,
}

/// Why [`run_effect`] failed.
#[derive(Debug, thiserror::Error)]
pub enum EffectError<E> {
    /// The ledger refused or failed (lease lost included).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The effect itself failed; an ERROR row was recorded.
    #[error("{0}")]
    Effect(E),
}

/// Runs a side effect at most once per op key (SPEC §5): replays an OK row,
/// otherwise records a running attempt, runs `effect`, and records OK with
/// its result or ERROR with its message.
///
/// For a simple one-off effect under a lease: it spends one fenced
/// [`LedgerStore::commit`] on the begin and one on the finish (the pipeline
/// records a destination's part-log entries with it). The pipeline's worker
/// does not call it for a job's own ops (HEAD, STREAM, FINALIZE, INDEX,
/// DEDUPE): it folds each op's begin and finish into the commits that step
/// the job — one [`Commit`] finishes the running op ([`Commit::finish`]),
/// passes through states and begins the next op ([`Commit::begin`]) — one
/// commit per transition rather than three. The replay and fencing
/// guarantees are the same, because the store applies those parts of a
/// commit by the same rules as this function's two commits: an OK row is
/// replayed, not run again, and a stale epoch writes nothing.
pub async fn run_effect<S, F, Fut, E>(
    store: &S,
    fence: &Fence,
    op_key: &str,
    kind: OpKind,
    effect: F,
) -> Result<Effect, EffectError<E>>
where
    S: LedgerStore + ?Sized,
    F: FnOnce() -> Fut + Send,
    Fut: Future<Output = Result<Value, E>> + Send,
    E: fmt::Display + Send,
{
    if let OpBegin::Replay(value) = store.begin_op(fence, op_key, kind).await? {
        return Ok(Effect { value, replayed: true });
    }
    match effect().await {
        Ok(value) => {
            store.finish_op(fence, op_key, ResultCode::Ok, value.clone()).await?;
            Ok(Effect { value, replayed: false })
        }
        Err(err) => {
            let result = serde_json::json!({ "error": err.to_string() });
            store.finish_op(fence, op_key, ResultCode::Error, result).await?;
            Err(EffectError::Effect(err))
        }
    }
}
