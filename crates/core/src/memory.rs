//! The reference in-memory store: the conformance kit's own proof, and the
//! smallest executor of the [ledger kernel](crate::kernel): it reads what a
//! rule needs, calls the rule and writes what comes back. One mutex guards
//! everything, so every call is trivially atomic; the store's clock is this
//! process's wall clock.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde_json::Value;

use crate::error::{StoreError, StoreResult};
use crate::job::{
    ExpectationConflict, Expectations, ExpectedUpdate, Job, JobQuery, Millis, NewJob, PlanCounts, StatusCounts,
};
use crate::kernel::{self, CommitReads, Expecting, Finish, OpFacts};
use crate::lease::{out_of_attempts, AcquireRequest, Fence, Lease, LeaseManager, ReconcileReport};
use crate::ledger::{
    ArtifactEntry, Commit, CommitOutcome, LedgerStore, OpKind, OpQuery, OpRecord, RequestSlots, RequeueCounts,
    RequeueFilter, ResultCode,
};
use crate::registry::{OpenFuture, StoreFactory};
use crate::state::JobState;
use crate::store::Store;
use crate::transition::{check_transition, Transition};
use crate::watch::{Watch, WatchQuery};

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
    /// [`LedgerStore::watch`].
    finishes: Vec<Finish>,
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

fn not_found(job_key: &str) -> StoreError {
    StoreError::NotFound(format!("job {job_key}"))
}

impl Inner {
    fn job(&self, job_key: &str) -> StoreResult<&Job> {
        self.jobs.get(job_key).ok_or_else(|| not_found(job_key))
    }

    /// What the ledger records of `op_key` (its attempt under `epoch`).
    fn facts(&self, op_key: &str, epoch: i64) -> OpFacts {
        OpFacts {
            ok: self
                .ok_rows
                .get(op_key)
                .map(|&i| self.ops[i].result.clone().unwrap_or(Value::Null)),
            attempt: self
                .attempts
                .get(&(op_key.to_owned(), epoch))
                .map(|&i| self.ops[i].result_code),
        }
    }

    fn push_op(&mut self, mut row: OpRecord) {
        let index = self.ops.len();
        row.seq = i64::try_from(index).unwrap_or(i64::MAX) + 1;
        self.attempts.insert((row.op_key.clone(), row.epoch), index);
        if row.result_code == Some(ResultCode::Ok) {
            self.ok_rows.insert(row.op_key.clone(), index);
        }
        self.ops.push(row);
    }

    /// Marks the rows of `job_key` that `abandon` picks ABANDONED at `now`.
    fn abandon(&mut self, job_key: &str, now: Millis, abandon: impl Fn(&OpRecord) -> bool) -> u64 {
        let mut count = 0;
        for row in self.ops.iter_mut().filter(|r| r.job_key == job_key && abandon(r)) {
            row.result_code = Some(ResultCode::Abandoned);
            row.finished_at = row.finished_at.or(Some(now));
            count += 1;
        }
        let Self { ops, ok_rows, .. } = self;
        ok_rows.retain(|_, i| ops[*i].result_code == Some(ResultCode::Ok));
        count
    }

    fn finished(&mut self, job: &Job, now: Millis) {
        self.finishes.push(Finish::of(job, now));
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

    /// Grants the picked job `key`, or ends it FAILED when out of attempts.
    fn grant(&mut self, key: &str, request: &AcquireRequest, now: Millis) -> StoreResult<Option<Lease>> {
        let job = &self.jobs[key];
        if let Some(message) = out_of_attempts(job, now, request.max_attempts) {
            let (job, row) = kernel::fail_out_of_attempts(job, message, now)?;
            self.abandon(key, now, |r| kernel::abandoned_on_grant(r, job.epoch));
            self.finished(&job, now);
            self.push_op(row);
            self.jobs.insert(key.to_owned(), job);
            return Ok(None);
        }
        let granted = kernel::grant(job, &request.owner, now + millis(request.ttl), now)?;
        self.abandon(key, now, |r| kernel::abandoned_on_grant(r, granted.lease.fence.epoch));
        self.push_op_opt(granted.relet);
        self.jobs.insert(key.to_owned(), granted.lease.job.clone());
        Ok(Some(granted.lease))
    }

    fn push_op_opt(&mut self, row: Option<OpRecord>) {
        if let Some(row) = row {
            self.push_op(row);
        }
    }

    /// Requeues `job_key` with `reason`; the state it left and whether it
    /// was retryable, or `None` (nothing done) from another state.
    fn requeue(&mut self, job_key: &str, reason: &str, now: Millis) -> Option<(JobState, bool)> {
        let job = self.jobs.get(job_key)?;
        let (from, retryable, epoch) = (job.state, job.retryable, job.epoch);
        let planned = kernel::requeue(job)?;
        self.jobs.insert(job_key.to_owned(), planned);
        let superseded = self.abandon(job_key, now, kernel::superseded_by_requeue);
        self.push_op(kernel::requeue_row(job_key, epoch, from, reason, superseded, now));
        Some((from, retryable))
    }

    fn live(&self, now: Millis) -> impl Iterator<Item = &Job> {
        self.jobs.values().filter(move |j| kernel::lease_live(j, now))
    }
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
                    let job_key = new.job_key.clone();
                    counts.conflicts.push(ExpectationConflict {
                        position,
                        job_key,
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
        inner.job(job_key).map(|job| inner.read(job))
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
        Ok(kernel::status(self.lock().jobs.values(), now_millis()))
    }

    async fn watch(&self, query: &WatchQuery) -> StoreResult<Watch> {
        let inner = self.lock();
        let seq = |key: &str| inner.planned_seq.get(key).copied().unwrap_or(0);
        let jobs: Vec<(u64, Job)> = inner.jobs.values().map(|j| (seq(&j.job_key), inner.read(j))).collect();
        Ok(kernel::watch(&jobs, &inner.finishes, now_millis(), query))
    }

    async fn outstanding(&self, max_attempts: u32, within: Option<Duration>) -> StoreResult<u64> {
        let horizon = within.map(|w| now_millis().saturating_add(millis(w)));
        let inner = self.lock();
        Ok(inner
            .jobs
            .values()
            .filter(|j| !kernel::settled(j, max_attempts, horizon))
            .count() as u64)
    }

    async fn commit(&self, fence: &Fence, commit: &Commit) -> StoreResult<CommitOutcome> {
        let now = now_millis();
        let mut inner = self.lock();
        let facts = |op_key: Option<&String>| op_key.map(|k| inner.facts(k, fence.epoch)).unwrap_or_default();
        let reads = CommitReads {
            job: inner.job(&fence.job_key)?.clone(),
            finish: facts(commit.finish.as_ref().map(|f| &f.op_key)),
            index: facts(commit.index.as_ref().map(|i| &i.op_key)),
            begin: facts(commit.begin.as_ref().map(|b| &b.op_key)),
            indexed: commit
                .index
                .as_ref()
                .and_then(|i| inner.artifacts.get(&i.entry.sha256))
                .map(|a| a.path.clone()),
        };
        let writes = kernel::plan_commit(fence, commit, reads, now)?;
        if let (true, Some(finish)) = (writes.finish, &commit.finish) {
            let i = inner.attempts[&(finish.op_key.clone(), fence.epoch)];
            let row = &mut inner.ops[i];
            (row.result_code, row.result, row.finished_at) =
                (Some(finish.code), Some(finish.result.clone()), Some(now));
            if finish.code == ResultCode::Ok {
                inner.ok_rows.insert(finish.op_key.clone(), i);
            }
        }
        if writes.finished.is_some() {
            inner.finished(&writes.job, now);
        }
        inner.jobs.insert(fence.job_key.clone(), writes.job);
        if let Some(index) = writes.index {
            inner.artifacts.entry(index.entry.sha256.clone()).or_insert(index.entry);
            inner.push_op(index.row);
        }
        inner.push_op_opt(writes.begin);
        Ok(writes.outcome)
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
        let mut inner = self.lock();
        inner.job(job_key)?;
        Ok(inner.requeue(job_key, reason, now_millis()).is_some())
    }

    async fn update_expected(
        &self,
        job_key: &str,
        expected: &Expectations,
        reason: &str,
    ) -> StoreResult<ExpectedUpdate> {
        let mut inner = self.lock();
        let job = inner.jobs.get_mut(job_key).ok_or_else(|| not_found(job_key))?;
        let decided = kernel::expect(job, expected);
        if let Expecting::Record { expectations, requeue } = &decided {
            job.expected_sha256.clone_from(&expectations.sha256);
            job.expected_size = expectations.size;
            job.expected_content_type.clone_from(&expectations.content_type);
            if *requeue {
                inner.requeue(job_key, reason, now_millis());
            }
        }
        Ok(decided.answer())
    }

    async fn requeue_matching(&self, filter: &RequeueFilter, reason: &str) -> StoreResult<RequeueCounts> {
        check_transition(Transition::Requeue, filter.state, JobState::Planned)?;
        let now = now_millis();
        let mut inner = self.lock();
        let picked: Vec<String> = inner
            .jobs
            .values()
            .filter(|j| filter.matches(j))
            .map(|j| j.job_key.clone())
            .collect();
        let mut counts = RequeueCounts::default();
        for (from, retryable) in picked.iter().filter_map(|key| inner.requeue(key, reason, now)) {
            counts.count(from, retryable);
        }
        Ok(counts)
    }

    async fn claim_request_slots(&self, host: &str, interval: Duration, count: u32) -> StoreResult<RequestSlots> {
        let mut inner = self.lock();
        let slots = RequestSlots::claim(inner.host_budget.get(host).copied(), now_millis(), interval, count);
        inner.host_budget.insert(host.to_owned(), slots.next_free());
        Ok(slots)
    }

    async fn note(&self, job_key: &str, op_key: &str, kind: OpKind, result: &Value) -> StoreResult<()> {
        let mut inner = self.lock();
        let epoch = inner.job(job_key)?.epoch;
        if inner.facts(op_key, epoch) == OpFacts::default() {
            inner.push_op(kernel::ok_row(
                op_key.to_owned(),
                job_key,
                kind,
                epoch,
                now_millis(),
                result.clone(),
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl LeaseManager for MemoryStore {
    async fn acquire(&self, request: &AcquireRequest) -> StoreResult<Vec<Lease>> {
        let now = now_millis();
        let mut inner = self.lock();
        let mut busy: HashSet<String> = inner.live(now).map(|j| j.canonical_url.clone()).collect();
        let picked: Vec<String> = inner
            .jobs
            .values()
            .filter(|j| kernel::runnable(j, now, request.max_attempts))
            .filter(|j| busy.insert(j.canonical_url.clone()))
            .take(request.limit)
            .map(|j| j.job_key.clone())
            .collect();
        let mut leases = Vec::with_capacity(picked.len());
        for key in &picked {
            leases.extend(inner.grant(key, request, now)?);
        }
        Ok(leases)
    }

    async fn acquire_job(&self, job_key: &str, request: &AcquireRequest) -> StoreResult<Option<Lease>> {
        let now = now_millis();
        let mut inner = self.lock();
        let job = inner.job(job_key)?;
        let busy = inner.live(now).any(|j| j.canonical_url == job.canonical_url);
        if busy || !kernel::runnable(job, now, request.max_attempts) {
            return Ok(None);
        }
        inner.grant(job_key, request, now)
    }

    async fn renew(&self, fence: &Fence, ttl: Duration) -> StoreResult<Millis> {
        let now = now_millis();
        let mut inner = self.lock();
        let job = inner
            .jobs
            .get_mut(&fence.job_key)
            .filter(|j| kernel::holds_lease(j, fence, now));
        let job = job.ok_or_else(|| kernel::lease_lost(fence))?;
        job.lease_expires_at = Some(now + millis(ttl));
        Ok(now + millis(ttl))
    }

    async fn release(&self, fence: &Fence) -> StoreResult<()> {
        let now = now_millis();
        let mut inner = self.lock();
        let job = inner
            .jobs
            .get_mut(&fence.job_key)
            .filter(|j| kernel::holds_lease(j, fence, now));
        kernel::release(job.ok_or_else(|| kernel::lease_lost(fence))?);
        Ok(())
    }

    async fn reconcile(&self, stale_after: Duration) -> StoreResult<ReconcileReport> {
        let now = now_millis();
        let cutoff = now - millis(stale_after);
        let mut inner = self.lock();
        // Freeing moves the mark past the leases that expired since the last
        // reconcile; no job changes.
        let freed = inner.freed_through;
        let expired_leases = inner
            .jobs
            .values()
            .filter(|j| kernel::freed_by_reconcile(j, freed, cutoff))
            .count();
        inner.freed_through = freed.max(cutoff);
        let live: HashMap<String, i64> = inner
            .jobs
            .values()
            .filter(|j| j.lease_expires_at.is_some_and(|t| t > now))
            .map(|j| (j.job_key.clone(), j.epoch))
            .collect();
        let mut abandoned_ops = 0;
        for row in inner.ops.iter_mut() {
            if kernel::abandoned_by_reconcile(row, live.get(&row.job_key).copied()) {
                (row.result_code, row.finished_at) = (Some(ResultCode::Abandoned), Some(now));
                abandoned_ops += 1;
            }
        }
        let expired_leases = expired_leases as u64;
        Ok(ReconcileReport {
            expired_leases,
            abandoned_ops,
        })
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
