//! The reference in-memory store: the conformance kit's own proof, and the
//! example a third party copies when writing a store (see
//! `docs/writing-a-store.md`). One mutex guards everything, so every call is
//! trivially atomic; the store's clock is this process's wall clock.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde_json::{json, Value};

use crate::error::{StoreError, StoreResult};
use crate::job::{
    attempts_left, ExpectationConflict, Expectations, ExpectedUpdate, Job, JobFailure, JobPatch, JobQuery, Millis,
    NewJob, PlanCounts, StatusCounts,
};
use crate::key::OpKeys;
use crate::lease::{out_of_attempts, AcquireRequest, Fence, Lease, LeaseManager, ReconcileReport};
use crate::ledger::{
    ArtifactEntry, Commit, CommitOutcome, LedgerStore, OpBegin, OpKind, OpQuery, OpRecord, RequestSlots, RequeueCounts,
    RequeueFilter, ResultCode,
};
use crate::registry::{OpenFuture, StoreFactory};
use crate::state::JobState;
use crate::store::Store;
use crate::transition::{check_transition, Transition};
use crate::watch::{HostCounts, MinuteCounts, Watch, WatchQuery, WorkerSeen};

/// A ledger held in memory (lost when dropped).
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    jobs: BTreeMap<String, Job>,
    ops: Vec<OpRecord>,
    /// (op_key, epoch) → index in `ops`.
    attempts: HashMap<(String, i64), usize>,
    /// op_key → index of its OK row.
    ok_rows: HashMap<String, usize>,
    artifacts: HashMap<String, ArtifactEntry>,
    /// Reconcile's mark, as in the SQL stores: a lease that expired at or
    /// before it is freed, and reads show it gone; the job keeps its expiry,
    /// so a grant still tells an expired lease from a released one.
    freed_through: Millis,
    /// Each host's next free request time ([`RequestSlots::claim`]).
    host_budget: HashMap<String, Millis>,
    /// Steps into SUCCESS, SKIPPED_DUPLICATE or FAILED, for
    /// [`LedgerStore::watch`]: when, the host, the state and the size.
    finishes: Vec<(Millis, String, JobState, Option<u64>)>,
    /// Each job's place in planning order.
    planned_seq: HashMap<String, u64>,
}

fn now_millis() -> Millis {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

fn millis(d: Duration) -> Millis {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The `first_path` an INDEX op recorded.
fn first_path_of(result: &Value) -> String {
    result["first_path"].as_str().unwrap_or_default().to_owned()
}

/// Whether `fence` still holds the job's lease at `now`.
pub(crate) fn holds_lease(job: &Job, fence: &Fence, now: Millis) -> bool {
    job.epoch == fence.epoch
        && job.lease_owner.as_deref() == Some(fence.owner.as_str())
        && job.lease_expires_at.is_some_and(|t| t > now)
}

fn lease_lost(fence: &Fence) -> StoreError {
    StoreError::LeaseLost {
        job: fence.job_key.clone(),
        epoch: fence.epoch,
    }
}

/// Whether a grant may pick `job` now.
fn runnable(job: &Job, now: Millis, max_attempts: u32) -> bool {
    match job.state {
        JobState::Planned => job.next_attempt_at.is_none_or(|t| t <= now),
        JobState::Failed => {
            job.retryable && job.attempts < max_attempts && job.next_attempt_at.is_none_or(|t| t <= now)
        }
        s if s.is_in_flight() => job.lease_expires_at.is_none_or(|t| t <= now),
        _ => false,
    }
}

impl Inner {
    /// Before an attempt of `op_key` under `epoch` on a job now in `state`:
    /// the result its OK row recorded (to replay), or `None` when it must
    /// run. Only an in-flight job starts ops, and only once per epoch.
    fn prior_ok(&self, op_key: &str, epoch: i64, state: JobState) -> StoreResult<Option<Value>> {
        if !state.is_in_flight() {
            return Err(StoreError::Conflict(format!("cannot start an op on a {state} job")));
        }
        if let Some(&i) = self.ok_rows.get(op_key) {
            return Ok(Some(self.ops[i].result.clone().unwrap_or(Value::Null)));
        }
        if self.attempts.contains_key(&(op_key.to_owned(), epoch)) {
            return Err(StoreError::Conflict(format!(
                "op {op_key} already attempted under epoch {epoch}"
            )));
        }
        Ok(None)
    }

    fn push_op(&mut self, mut row: OpRecord) -> usize {
        let index = self.ops.len();
        row.seq = i64::try_from(index).unwrap_or(i64::MAX) + 1;
        self.attempts.insert((row.op_key.clone(), row.epoch), index);
        if row.result_code == Some(ResultCode::Ok) {
            self.ok_rows.insert(row.op_key.clone(), index);
        }
        self.ops.push(row);
        index
    }

    /// Marks every unfinished attempt of `job_key` under an epoch other than
    /// `live_epoch` ABANDONED; returns how many.
    fn abandon_ops(&mut self, job_key: &str, live_epoch: Option<i64>, now: Millis) -> u64 {
        let mut count = 0;
        for row in self.ops.iter_mut() {
            if row.job_key == job_key && row.result_code.is_none() && Some(row.epoch) != live_epoch {
                row.result_code = Some(ResultCode::Abandoned);
                row.finished_at = Some(now);
                count += 1;
            }
        }
        count
    }

    /// Ends a picked job that ran out of attempts (`message`, from
    /// [`out_of_attempts`]): FAILED under the next epoch, with a RELET row.
    fn fail_out_of_attempts(&mut self, key: &str, message: String, now: Millis) -> StoreResult<()> {
        let job = self.jobs.get_mut(key).expect("picked job exists");
        let previous_state = job.state;
        check_transition(Transition::Grant, previous_state, JobState::Leased)?;
        check_transition(Transition::Step, JobState::Leased, JobState::Failed)?;
        job.epoch += 1;
        let failed = Commit {
            patch: JobPatch {
                failure: Some(JobFailure {
                    message: message.clone(),
                    retryable: false,
                    retry_after: Duration::ZERO,
                    counts_attempt: false,
                }),
                ..JobPatch::default()
            },
            ..Commit::default()
        };
        apply_step(job, JobState::Failed, &failed, now);
        let epoch = job.epoch;
        self.finishes.push((
            now,
            crate::url::host_port(&job.canonical_url).to_owned(),
            JobState::Failed,
            None,
        ));
        self.abandon_ops(key, None, now);
        self.push_op(OpRecord {
            seq: 0,
            op_key: OpKeys { job_key: key }.epoch_action(OpKind::Relet, epoch),
            job_key: key.to_owned(),
            kind: OpKind::Relet,
            epoch,
            started_at: now,
            finished_at: Some(now),
            result_code: Some(ResultCode::Ok),
            result: Some(json!({
                "from": previous_state.as_str(),
                "epoch": epoch,
                "to": JobState::Failed.as_str(),
                "last_error": message,
            })),
        });
        Ok(())
    }

    /// A job as reads show it: no lease where reconcile freed it.
    fn read(&self, job: &Job) -> Job {
        let mut job = job.clone();
        if job.lease_expires_at.is_some_and(|t| t <= self.freed_through) {
            job.lease_owner = None;
            job.lease_expires_at = None;
        }
        job
    }

    fn grant(&mut self, key: &str, request: &AcquireRequest, now: Millis) -> Lease {
        let job = self.jobs.get_mut(key).expect("granted job exists");
        let previous_state = job.state;
        job.epoch += 1;
        job.state = JobState::Leased;
        job.lease_owner = Some(request.owner.clone());
        job.lease_expires_at = Some(now + millis(request.ttl));
        let job = job.clone();
        self.abandon_ops(key, Some(job.epoch), now);
        if previous_state.is_in_flight() {
            let op_key = OpKeys { job_key: key }.epoch_action(OpKind::Relet, job.epoch);
            self.push_op(OpRecord {
                seq: 0,
                op_key,
                job_key: key.to_owned(),
                kind: OpKind::Relet,
                epoch: job.epoch,
                started_at: now,
                finished_at: Some(now),
                result_code: Some(ResultCode::Ok),
                result: Some(json!({ "from": previous_state.as_str(), "epoch": job.epoch })),
            });
        }
        Lease {
            fence: Fence {
                job_key: key.to_owned(),
                epoch: job.epoch,
                owner: request.owner.clone(),
            },
            expires_at: job.lease_expires_at.unwrap_or(now),
            previous_state,
            job,
        }
    }

    /// Sends a FAILED or finished job back to PLANNED with a REQUEUE row,
    /// superseding its OK effect rows; returns the state it left and whether
    /// it was retryable, or `None` (nothing done) when it was in another state.
    fn requeue(&mut self, job_key: &str, reason: &str, now: Millis) -> Option<(JobState, bool)> {
        let job = self.jobs.get_mut(job_key)?;
        let (from, retryable) = (job.state, job.retryable);
        check_transition(Transition::Requeue, from, JobState::Planned).ok()?;
        let planned = Job::planned(&NewJob {
            job_key: job.job_key.clone(),
            work_id: job.work_id.clone(),
            artifact_id: job.artifact_id.clone(),
            url: job.url.clone(),
            canonical_url: job.canonical_url.clone(),
            expected_sha256: job.expected_sha256.clone(),
            expected_size: job.expected_size,
            expected_content_type: job.expected_content_type.clone(),
        });
        let epoch = job.epoch;
        *job = Job { epoch, ..planned };
        // The old results no longer describe the world: let the effects run again.
        let mut superseded = 0u64;
        for row in self.ops.iter_mut() {
            if row.job_key == job_key && row.result_code == Some(ResultCode::Ok) && row.kind.is_effect() {
                row.result_code = Some(ResultCode::Abandoned);
                superseded += 1;
            }
        }
        let Self { ops, ok_rows, .. } = self;
        ok_rows.retain(|_, i| ops[*i].job_key != job_key || !ops[*i].kind.is_effect());
        self.push_op(OpRecord {
            seq: 0,
            op_key: OpKeys { job_key }.epoch_action(OpKind::Requeue, epoch),
            job_key: job_key.to_owned(),
            kind: OpKind::Requeue,
            epoch,
            started_at: now,
            finished_at: Some(now),
            result_code: Some(ResultCode::Ok),
            result: Some(json!({ "from": from.as_str(), "reason": reason, "superseded_ops": superseded })),
        });
        Some((from, retryable))
    }

    /// Canonical URLs held by live leases.
    fn busy_urls(&self, now: Millis) -> HashSet<String> {
        self.jobs
            .values()
            .filter(|j| j.state.is_in_flight() && j.lease_expires_at.is_some_and(|t| t > now))
            .map(|j| j.canonical_url.clone())
            .collect()
    }
}

/// Applies one checked step (and its side fields) to a job copy.
fn apply_step(job: &mut Job, to: JobState, commit: &Commit, now: Millis) {
    job.state = to;
    if to == JobState::Streaming {
        job.attempts += 1;
    }
    if to == JobState::Failed {
        let failure = commit.patch.failure.clone();
        job.last_error = failure.as_ref().map(|f| f.message.clone());
        job.retryable = failure.as_ref().is_some_and(|f| f.retryable);
        if failure.as_ref().is_some_and(|f| f.counts_attempt) {
            job.attempts += 1;
        }
        job.next_attempt_at = Some(now + failure.map_or(0, |f| millis(f.retry_after)));
    }
    if to == JobState::Failed || to.is_terminal() {
        job.lease_owner = None;
        job.lease_expires_at = None;
    }
    if to.is_terminal() {
        job.last_error = None;
        job.next_attempt_at = None;
    }
}

fn apply_patch(job: &mut Job, commit: &Commit) {
    let p = &commit.patch;
    macro_rules! set {
        ($($field:ident),*) => { $( if p.$field.is_some() { job.$field = p.$field.clone(); } )* };
    }
    set!(etag, last_modified, remote_size, path, sha256, size, duplicate_of);
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl LedgerStore for MemoryStore {
    async fn plan(&self, jobs: &[NewJob]) -> StoreResult<PlanCounts> {
        let mut inner = self.lock();
        let mut counts = PlanCounts::default();
        for (position, new) in (0u64..).zip(jobs) {
            if let Some(job) = inner.jobs.get(&new.job_key) {
                counts.existing += 1;
                let (declared, recorded) = (new.expectations(), job.expectations());
                if declared.contradicts(&recorded) {
                    counts.conflicts.push(ExpectationConflict {
                        position,
                        job_key: new.job_key.clone(),
                        declared,
                        recorded,
                    });
                }
            } else {
                inner.jobs.insert(new.job_key.clone(), Job::planned(new));
                let seq = inner.planned_seq.len() as u64;
                inner.planned_seq.insert(new.job_key.clone(), seq);
                counts.new += 1;
            }
        }
        Ok(counts)
    }

    async fn job(&self, job_key: &str) -> StoreResult<Job> {
        let inner = self.lock();
        inner
            .jobs
            .get(job_key)
            .map(|job| inner.read(job))
            .ok_or_else(|| StoreError::NotFound(format!("job {job_key}")))
    }

    async fn jobs(&self, query: &JobQuery) -> StoreResult<Vec<Job>> {
        let inner = self.lock();
        let limit = if query.limit == 0 { usize::MAX } else { query.limit };
        Ok(inner
            .jobs
            .values()
            .filter(|j| query.after.as_ref().is_none_or(|after| j.job_key > *after))
            .filter(|j| query.state.is_none_or(|s| j.state == s))
            .filter(|j| query.canonical_url.as_ref().is_none_or(|u| j.canonical_url == *u))
            .take(limit)
            .map(|job| inner.read(job))
            .collect())
    }

    async fn status(&self) -> StoreResult<StatusCounts> {
        let now = now_millis();
        let inner = self.lock();
        let live = inner
            .jobs
            .values()
            .filter(|j| j.state.is_in_flight() && j.lease_expires_at.is_some_and(|t| t > now))
            .count();
        let bytes_done = inner
            .jobs
            .values()
            .filter(|j| j.state == JobState::Success)
            .filter_map(|j| j.size)
            .sum();
        let retryable_failed = inner
            .jobs
            .values()
            .filter(|j| j.state == JobState::Failed && j.retryable)
            .map(|j| (j.attempts, 1, u64::from(j.next_attempt_at.is_some_and(|t| t > now))));
        Ok(StatusCounts::from_pairs(inner.jobs.values().map(|j| (j.state, 1)))
            .with_live_leases(u64::try_from(live).unwrap_or(u64::MAX))
            .with_bytes_done(bytes_done)
            .with_retryable_failed(retryable_failed))
    }

    async fn watch(&self, query: &WatchQuery) -> StoreResult<Watch> {
        let now = now_millis();
        let inner = self.lock();
        let mut hosts: HashMap<&str, HostCounts> = HashMap::new();
        for job in inner.jobs.values() {
            let host = crate::url::host_port(&job.canonical_url);
            hosts
                .entry(host)
                .or_insert_with(|| HostCounts {
                    host: host.to_owned(),
                    ..HostCounts::default()
                })
                .count(job.state, job.size);
        }
        let mut minutes: BTreeMap<Millis, MinuteCounts> = BTreeMap::new();
        let window_start = MinuteCounts::minute_of(now - millis(query.window));
        let recent_start = now - millis(query.recent);
        for (at, host, state, size) in &inner.finishes {
            let minute = MinuteCounts::minute_of(*at);
            if minute >= window_start {
                let row = minutes.entry(minute).or_insert(MinuteCounts {
                    minute,
                    ..MinuteCounts::default()
                });
                match state {
                    JobState::Success => {
                        row.succeeded += 1;
                        row.bytes += size.unwrap_or(0);
                    }
                    JobState::SkippedDuplicate => row.skipped += 1,
                    _ => row.failed += 1,
                }
            }
            if minute >= MinuteCounts::minute_of(recent_start) {
                if let Some(counts) = hosts.get_mut(host.as_str()) {
                    counts.recent_finished += 1;
                }
            }
        }
        let mut hosts: Vec<HostCounts> = hosts.into_values().collect();
        Watch::rank_hosts(&mut hosts, query.hosts);
        let mut failed: Vec<(u64, Job)> = inner
            .jobs
            .values()
            .filter(|j| j.state == JobState::Failed)
            .map(|j| (inner.planned_seq.get(&j.job_key).copied().unwrap_or(0), inner.read(j)))
            .collect();
        failed.sort_by_key(|(seq, _)| *seq);
        let live = |j: &&Job| j.state.is_in_flight() && j.lease_expires_at.is_some_and(|t| t > now);
        let mut in_flight: Vec<Job> = inner.jobs.values().filter(live).map(|j| inner.read(j)).collect();
        in_flight.sort_by(|a, b| {
            a.lease_expires_at
                .cmp(&b.lease_expires_at)
                .then_with(|| a.job_key.cmp(&b.job_key))
        });
        in_flight.truncate(query.in_flight);
        let mut workers: BTreeMap<String, WorkerSeen> = BTreeMap::new();
        for job in inner
            .jobs
            .values()
            .filter(|j| j.state.is_in_flight())
            .map(|j| inner.read(j))
        {
            let (Some(owner), Some(expiry)) = (job.lease_owner, job.lease_expires_at) else {
                continue;
            };
            if expiry <= recent_start {
                continue;
            }
            let seen = workers.entry(owner.clone()).or_insert(WorkerSeen {
                owner,
                live_leases: 0,
                last_expiry: expiry,
            });
            seen.live_leases += u64::from(expiry > now);
            seen.last_expiry = seen.last_expiry.max(expiry);
        }
        Ok(Watch {
            now,
            hosts,
            minutes: minutes.into_values().collect(),
            failed: failed.into_iter().take(query.failed).map(|(_, j)| j).collect(),
            in_flight,
            workers: workers.into_values().collect(),
        })
    }

    async fn outstanding(&self, max_attempts: u32, within: Option<Duration>) -> StoreResult<u64> {
        let horizon = within.map(|w| now_millis().saturating_add(millis(w)));
        let inner = self.lock();
        let settled = |j: &Job| {
            j.state.is_terminal()
                || (j.state == JobState::Failed
                    && (!j.retryable
                        || !attempts_left(j.attempts, max_attempts)
                        || horizon.is_some_and(|h| j.next_attempt_at.is_some_and(|t| t > h))))
        };
        Ok(inner.jobs.values().filter(|j| !settled(j)).count() as u64)
    }

    async fn commit(&self, fence: &Fence, commit: &Commit) -> StoreResult<CommitOutcome> {
        let now = now_millis();
        let mut inner = self.lock();
        let current = inner
            .jobs
            .get(&fence.job_key)
            .ok_or_else(|| StoreError::NotFound(format!("job {}", fence.job_key)))?;
        if !holds_lease(current, fence, now) {
            return Err(lease_lost(fence));
        }
        // Check everything on a copy first: all or nothing.
        let mut job = current.clone();
        let state_before = current.state;
        let finish_row = match &commit.finish {
            Some(finish) => {
                let row = inner.attempts.get(&(finish.op_key.clone(), fence.epoch)).copied();
                match row {
                    Some(i) if inner.ops[i].result_code.is_none() => Some(i),
                    _ => {
                        return Err(StoreError::Conflict(format!(
                            "no running attempt of op {} under epoch {}",
                            finish.op_key, fence.epoch
                        )))
                    }
                }
            }
            None => None,
        };
        for &to in &commit.steps {
            check_transition(Transition::Step, job.state, to)?;
            apply_step(&mut job, to, commit, now);
        }
        apply_patch(&mut job, commit);
        let replayed_index = match &commit.index {
            Some(index) => inner
                .prior_ok(&index.op_key, fence.epoch, job.state)?
                .map(|result| first_path_of(&result)),
            None => None,
        };
        let begun = match &commit.begin {
            Some(start) => Some(match inner.prior_ok(&start.op_key, fence.epoch, job.state)? {
                Some(result) => OpBegin::Replay(result),
                None => OpBegin::Run,
            }),
            None => None,
        };
        // The path that stands for the content: replayed, indexed before, or
        // this entry's.
        let first_path = commit.index.as_ref().map(|index| {
            replayed_index.clone().unwrap_or_else(|| {
                inner
                    .artifacts
                    .get(&index.entry.sha256)
                    .map_or_else(|| index.entry.path.clone(), |standing| standing.path.clone())
            })
        });
        let settle = commit.settling(first_path.as_deref(), begun == Some(OpBegin::Run));
        if let Some(settle) = settle {
            for &to in &settle.steps {
                check_transition(Transition::Step, job.state, to)?;
                apply_step(&mut job, to, commit, now);
            }
        }
        let begun = if settle.is_some() { None } else { begun };
        // Apply.
        if let (Some(i), Some(finish)) = (finish_row, &commit.finish) {
            let row = &mut inner.ops[i];
            row.result_code = Some(finish.code);
            row.result = Some(finish.result.clone());
            row.finished_at = Some(now);
            if finish.code == ResultCode::Ok {
                inner.ok_rows.insert(finish.op_key.clone(), i);
            }
        }
        if job.state != state_before && (job.state == JobState::Failed || job.state.is_terminal()) {
            let host = crate::url::host_port(&job.canonical_url).to_owned();
            inner.finishes.push((now, host, job.state, job.size));
        }
        inner.jobs.insert(fence.job_key.clone(), job);
        if let (Some(index), Some(standing), None) = (&commit.index, &first_path, &replayed_index) {
            inner
                .artifacts
                .entry(index.entry.sha256.clone())
                .or_insert_with(|| index.entry.clone());
            inner.push_op(OpRecord {
                seq: 0,
                op_key: index.op_key.clone(),
                job_key: fence.job_key.clone(),
                kind: OpKind::Index,
                epoch: fence.epoch,
                started_at: now,
                finished_at: Some(now),
                result_code: Some(ResultCode::Ok),
                result: Some(serde_json::json!({ "first_path": standing })),
            });
        }
        // `begin` starts running, or (settled) starts and finishes OK.
        if let (Some(start), true) = (&commit.begin, begun == Some(OpBegin::Run) || settle.is_some()) {
            let result = settle.map(|settle| settle.result.clone());
            inner.push_op(OpRecord {
                seq: 0,
                op_key: start.op_key.clone(),
                job_key: fence.job_key.clone(),
                kind: start.kind,
                epoch: fence.epoch,
                started_at: now,
                finished_at: result.as_ref().map(|_| now),
                result_code: result.as_ref().map(|_| ResultCode::Ok),
                result,
            });
        }
        Ok(CommitOutcome {
            begun,
            first_path,
            settled: settle.is_some(),
        })
    }

    async fn ops(&self, query: &OpQuery) -> StoreResult<Vec<OpRecord>> {
        let inner = self.lock();
        let limit = if query.limit == 0 { usize::MAX } else { query.limit };
        Ok(inner
            .ops
            .iter()
            .filter(|r| query.after_seq.is_none_or(|s| r.seq > s))
            .filter(|r| query.job_key.as_ref().is_none_or(|k| r.job_key == *k))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn artifact(&self, sha256: &str) -> StoreResult<Option<ArtifactEntry>> {
        Ok(self.lock().artifacts.get(sha256).cloned())
    }

    async fn requeue(&self, job_key: &str, reason: &str) -> StoreResult<bool> {
        let now = now_millis();
        let mut inner = self.lock();
        if !inner.jobs.contains_key(job_key) {
            return Err(StoreError::NotFound(format!("job {job_key}")));
        }
        Ok(inner.requeue(job_key, reason, now).is_some())
    }

    async fn update_expected(
        &self,
        job_key: &str,
        expected: &Expectations,
        reason: &str,
    ) -> StoreResult<ExpectedUpdate> {
        let now = now_millis();
        let mut inner = self.lock();
        let job = inner
            .jobs
            .get_mut(job_key)
            .ok_or_else(|| StoreError::NotFound(format!("job {job_key}")))?;
        if job.state.is_in_flight() {
            return Ok(ExpectedUpdate::InFlight(job.state));
        }
        if !expected.contradicts(&job.expectations()) {
            return Ok(ExpectedUpdate::Unchanged);
        }
        let before = job.expectations();
        let updated = expected.over(&before);
        job.expected_sha256 = updated.sha256.clone();
        job.expected_size = updated.size;
        job.expected_content_type = updated.content_type.clone();
        let finished = matches!(job.state, JobState::Success | JobState::SkippedDuplicate);
        if finished && !updated.admit_finished(&before, job.sha256.as_deref(), job.size) {
            inner.requeue(job_key, reason, now);
            return Ok(ExpectedUpdate::Requeued);
        }
        Ok(ExpectedUpdate::Recorded)
    }

    async fn requeue_matching(&self, filter: &RequeueFilter, reason: &str) -> StoreResult<RequeueCounts> {
        check_transition(Transition::Requeue, filter.state, JobState::Planned)?;
        let now = now_millis();
        let mut inner = self.lock();
        let picked: Vec<String> = inner
            .jobs
            .values()
            .filter(|job| filter.matches(job))
            .map(|job| job.job_key.clone())
            .collect();
        let mut counts = RequeueCounts::default();
        for key in &picked {
            if let Some((from, retryable)) = inner.requeue(key, reason, now) {
                counts.count(from, retryable);
            }
        }
        Ok(counts)
    }

    async fn claim_request_slots(&self, host: &str, interval: Duration, count: u32) -> StoreResult<RequestSlots> {
        let mut inner = self.lock();
        let stored = inner.host_budget.get(host).copied();
        let slots = RequestSlots::claim(stored, now_millis(), interval, count);
        inner.host_budget.insert(host.to_owned(), slots.next_free());
        Ok(slots)
    }

    async fn note(&self, job_key: &str, op_key: &str, kind: OpKind, result: &Value) -> StoreResult<()> {
        let now = now_millis();
        let mut inner = self.lock();
        let epoch = inner
            .jobs
            .get(job_key)
            .ok_or_else(|| StoreError::NotFound(format!("job {job_key}")))?
            .epoch;
        if !inner.attempts.contains_key(&(op_key.to_owned(), epoch)) && !inner.ok_rows.contains_key(op_key) {
            inner.push_op(OpRecord {
                seq: 0,
                op_key: op_key.to_owned(),
                job_key: job_key.to_owned(),
                kind,
                epoch,
                started_at: now,
                finished_at: Some(now),
                result_code: Some(ResultCode::Ok),
                result: Some(result.clone()),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl LeaseManager for MemoryStore {
    async fn acquire(&self, request: &AcquireRequest) -> StoreResult<Vec<Lease>> {
        let now = now_millis();
        let mut inner = self.lock();
        let mut busy = inner.busy_urls(now);
        let picked: Vec<String> = inner
            .jobs
            .values()
            .filter(|j| runnable(j, now, request.max_attempts))
            .filter(|j| busy.insert(j.canonical_url.clone()))
            .take(request.limit)
            .map(|j| j.job_key.clone())
            .collect();
        let mut leases = Vec::with_capacity(picked.len());
        for key in &picked {
            match out_of_attempts(&inner.jobs[key], now, request.max_attempts) {
                Some(message) => inner.fail_out_of_attempts(key, message, now)?,
                None => leases.push(inner.grant(key, request, now)),
            }
        }
        Ok(leases)
    }

    async fn acquire_job(&self, job_key: &str, request: &AcquireRequest) -> StoreResult<Option<Lease>> {
        let now = now_millis();
        let mut inner = self.lock();
        let job = inner
            .jobs
            .get(job_key)
            .ok_or_else(|| StoreError::NotFound(format!("job {job_key}")))?;
        if !runnable(job, now, request.max_attempts) || inner.busy_urls(now).contains(&job.canonical_url) {
            return Ok(None);
        }
        match out_of_attempts(job, now, request.max_attempts) {
            Some(message) => inner.fail_out_of_attempts(job_key, message, now).map(|()| None),
            None => Ok(Some(inner.grant(job_key, request, now))),
        }
    }

    async fn renew(&self, fence: &Fence, ttl: Duration) -> StoreResult<Millis> {
        let now = now_millis();
        let mut inner = self.lock();
        match inner.jobs.get_mut(&fence.job_key) {
            Some(job) if holds_lease(job, fence, now) => {
                let expiry = now + millis(ttl);
                job.lease_expires_at = Some(expiry);
                Ok(expiry)
            }
            _ => Err(lease_lost(fence)),
        }
    }

    async fn release(&self, fence: &Fence) -> StoreResult<()> {
        let now = now_millis();
        let mut inner = self.lock();
        match inner.jobs.get_mut(&fence.job_key) {
            Some(job) if holds_lease(job, fence, now) => {
                job.lease_owner = None;
                job.lease_expires_at = None;
                if job.state.counted_attempt() {
                    job.attempts = job.attempts.saturating_sub(1);
                }
                Ok(())
            }
            _ => Err(lease_lost(fence)),
        }
    }

    async fn reconcile(&self, stale_after: Duration) -> StoreResult<ReconcileReport> {
        let now = now_millis();
        let cutoff = now - millis(stale_after);
        let mut inner = self.lock();
        let mut report = ReconcileReport::default();
        // Freeing moves the mark past the leases that expired since the last
        // reconcile; no job changes.
        let freed_through = inner.freed_through;
        report.expired_leases = inner
            .jobs
            .values()
            .filter(|j| j.state.is_in_flight())
            .filter(|j| j.lease_expires_at.is_some_and(|t| t > freed_through && t <= cutoff))
            .count() as u64;
        inner.freed_through = freed_through.max(cutoff);
        // Every unfinished attempt not under a live lease is abandoned.
        let live: HashMap<String, i64> = inner
            .jobs
            .values()
            .filter(|j| j.lease_expires_at.is_some_and(|t| t > now))
            .map(|j| (j.job_key.clone(), j.epoch))
            .collect();
        for row in inner.ops.iter_mut() {
            if row.result_code.is_none() && live.get(&row.job_key) != Some(&row.epoch) {
                row.result_code = Some(ResultCode::Abandoned);
                row.finished_at = Some(now);
                report.abandoned_ops += 1;
            }
        }
        Ok(report)
    }

    async fn now(&self) -> StoreResult<Millis> {
        Ok(now_millis())
    }
}

fn open_memory(_url: String) -> OpenFuture {
    Box::pin(async { Ok(Arc::new(MemoryStore::new()) as Arc<dyn Store>) })
}

inventory::submit! {
    StoreFactory::new("memory", &["memory"], open_memory)
}
