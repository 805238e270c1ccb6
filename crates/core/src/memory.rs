//! The reference in-memory store: the conformance kit's own proof, and the
//! smallest executor of the [ledger kernel](crate::kernel): it reads what a
//! rule needs, calls the rule and writes what comes back. One mutex guards
//! everything, so every call is trivially atomic; the store's clock is this
//! process's wall clock.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::kernel::{self, CommitReads, Expecting, Finish, OpFacts, Picked};
use crate::paging::Keyset;
use crate::registry::OpenFuture;
use crate::watch::{Watch, WatchQuery};
use crate::{
    check_transition, millis, wall_clock, AcquireRequest, ArtifactEntry, Commit, CommitOutcome, Expectations,
    ExpectedUpdate, Fence, Job, JobQuery, JobState, Lease, LeaseManager, LedgerStore, Millis, NewJob, OpKind, OpQuery,
    OpRecord, PlanCounts, ReconcileReport, RequestSlots, RequeueCounts, RequeueFilter, StatusCounts, Store, StoreError,
    StoreFactory, StoreResult, Transition,
};

/// A ledger held in memory (lost when dropped).
#[derive(Debug, Default)]
pub struct MemoryStore(Mutex<Inner>);

#[derive(Debug, Default)]
struct Inner {
    jobs: BTreeMap<String, Job>,
    /// The op rows by (op_key, epoch), unique as the contract says.
    ops: BTreeMap<(String, i64), OpRecord>,
    artifacts: HashMap<String, ArtifactEntry>,
    /// Reconcile's mark, as in the SQL stores ([`kernel::as_read`]).
    freed_through: Millis,
    /// Each host's next free request time ([`RequestSlots::claim`]).
    host_budget: HashMap<String, Millis>,
    /// Steps into SUCCESS, SKIPPED_DUPLICATE or FAILED, for `watch`.
    finishes: Vec<Finish>,
    /// The job keys in planning order.
    planned: Vec<String>,
}

impl Inner {
    fn job(&self, job_key: &str) -> StoreResult<&Job> {
        self.jobs.get(job_key).ok_or_else(|| StoreError::job_not_found(job_key))
    }

    /// What the ledger records of `op_key` (its attempt under `epoch`).
    fn facts(&self, op_key: &str, epoch: i64) -> OpFacts {
        let key = |epoch| (op_key.to_owned(), epoch);
        OpFacts::of(self.ops.range(key(i64::MIN)..=key(i64::MAX)).map(|(_, row)| row), epoch)
    }

    /// Appends `rows`, numbering them in order.
    fn push_ops(&mut self, rows: impl IntoIterator<Item = OpRecord>) {
        for mut row in rows {
            row.seq = i64::try_from(self.ops.len()).unwrap_or(i64::MAX) + 1;
            self.ops.insert((row.op_key.clone(), row.epoch), row);
        }
    }

    /// Grants the picked job `key`, or ends it FAILED when out of attempts.
    fn grant(&mut self, key: &str, request: &AcquireRequest, now: Millis) -> StoreResult<Option<Lease>> {
        let picked = kernel::grant_picked(&self.jobs[key], request, now)?;
        let epoch = picked.job().epoch;
        let stale = |r: &&mut OpRecord| r.job_key == key && kernel::abandoned_on_grant(r, epoch);
        kernel::abandon_all(self.ops.values_mut().filter(stale), now);
        let (job, relet, lease) = match picked {
            Picked::Leased { lease, relet } => (lease.job.clone(), relet, Some(lease)),
            Picked::Failed { job, relet } => {
                self.finishes.push(Finish::of(&job, now));
                (job, Some(relet), None)
            }
        };
        self.push_ops(relet);
        self.jobs.insert(key.to_owned(), job);
        Ok(lease)
    }

    /// Requeues `job_key` with `reason`; the state it left and whether it
    /// was retryable, or `None` (nothing done) from another state.
    fn requeue(&mut self, job_key: &str, reason: &str, now: Millis) -> Option<(JobState, bool)> {
        let planned = kernel::requeue(self.jobs.get(job_key)?)?;
        let was = self.jobs.insert(job_key.to_owned(), planned)?;
        let superseded = |r: &&mut OpRecord| r.job_key == job_key && kernel::superseded_by_requeue(r);
        let superseded = kernel::abandon_all(self.ops.values_mut().filter(superseded), now);
        let row = kernel::requeue_row(job_key, was.epoch, was.state, reason, superseded, now);
        self.push_ops([row]);
        Some((was.state, was.retryable))
    }

    /// The job `fence` holds at `now`, or the lease-lost error.
    fn leased(&mut self, fence: &Fence, now: Millis) -> StoreResult<&mut Job> {
        let job = self.jobs.get_mut(&fence.job_key);
        job.filter(|j| kernel::holds_lease(j, fence, now))
            .ok_or_else(|| kernel::lease_lost(fence))
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl LedgerStore for MemoryStore {
    async fn plan(&self, jobs: &[NewJob]) -> StoreResult<PlanCounts> {
        let mut inner = self.lock();
        let mut counts = PlanCounts::default();
        for (position, new) in jobs.iter().enumerate() {
            if counts.record(position, new, inner.jobs.get(&new.job_key).map(Job::expectations)) {
                inner.planned.push(new.job_key.clone());
                inner.jobs.insert(new.job_key.clone(), Job::planned(new));
            }
        }
        Ok(counts)
    }

    async fn job(&self, job_key: &str) -> StoreResult<Job> {
        let inner = self.lock();
        inner
            .job(job_key)
            .map(|job| kernel::as_read(job.clone(), inner.freed_through))
    }

    async fn jobs(&self, query: &JobQuery) -> StoreResult<Vec<Job>> {
        let inner = self.lock();
        let jobs = inner.jobs.values().filter(|j| query.matches(j)).take(query.max_rows());
        Ok(jobs
            .map(|job| kernel::as_read(job.clone(), inner.freed_through))
            .collect())
    }

    async fn status(&self) -> StoreResult<StatusCounts> {
        Ok(kernel::status(self.lock().jobs.values(), wall_clock()))
    }

    async fn watch(&self, query: &WatchQuery) -> StoreResult<Watch> {
        let inner = self.lock();
        let read = |(seq, key)| {
            (
                seq as u64,
                kernel::as_read(inner.jobs[key].clone(), inner.freed_through),
            )
        };
        let jobs: Vec<(u64, Job)> = inner.planned.iter().enumerate().map(read).collect();
        Ok(kernel::watch(&jobs, &inner.finishes, wall_clock(), query))
    }

    async fn outstanding(&self, max_attempts: u32, within: Option<Duration>) -> StoreResult<u64> {
        let horizon = within.map(|w| wall_clock().saturating_add(millis(w)));
        Ok(kernel::outstanding(self.lock().jobs.values(), max_attempts, horizon))
    }

    async fn commit(&self, fence: &Fence, commit: &Commit) -> StoreResult<CommitOutcome> {
        let now = wall_clock();
        let mut inner = self.lock();
        let facts = |op_key: Option<&String>| op_key.map(|k| inner.facts(k, fence.epoch)).unwrap_or_default();
        let index = commit.index.as_ref();
        let standing = index.and_then(|i| inner.artifacts.get(&i.entry.sha256));
        let reads = CommitReads {
            job: inner.job(&fence.job_key)?.clone(),
            finish: facts(commit.finish.as_ref().map(|f| &f.op_key)),
            index: facts(index.map(|i| &i.op_key)),
            begin: facts(commit.begin.as_ref().map(|b| &b.op_key)),
            indexed: standing.map(|a| a.path.clone()),
        };
        let writes = kernel::plan_commit(fence, commit, reads, now)?;
        let finish = commit.finish.as_ref().filter(|_| writes.finish);
        if let Some((f, row)) = finish.and_then(|f| Some((f, inner.ops.get_mut(&(f.op_key.clone(), fence.epoch))?))) {
            kernel::finish_row(row, f.code, &f.result, now);
        }
        if writes.finished.is_some() {
            inner.finishes.push(Finish::of(&writes.job, now));
        }
        inner.jobs.insert(fence.job_key.clone(), writes.job);
        if let Some(index) = writes.index {
            inner.artifacts.entry(index.entry.sha256.clone()).or_insert(index.entry);
            inner.push_ops([index.row]);
        }
        inner.push_ops(writes.begin);
        Ok(writes.outcome)
    }

    async fn ops(&self, query: &OpQuery) -> StoreResult<Vec<OpRecord>> {
        let inner = self.lock();
        let mut rows: Vec<&OpRecord> = inner.ops.values().filter(|r| query.matches(r)).collect();
        rows.sort_unstable_by_key(|r| r.seq);
        Ok(rows.into_iter().take(query.max_rows()).cloned().collect())
    }

    async fn artifact(&self, sha256: &str) -> StoreResult<Option<ArtifactEntry>> {
        Ok(self.lock().artifacts.get(sha256).cloned())
    }

    async fn requeue(&self, job_key: &str, reason: &str) -> StoreResult<bool> {
        let mut inner = self.lock();
        inner.job(job_key)?;
        Ok(inner.requeue(job_key, reason, wall_clock()).is_some())
    }

    async fn update_expected(
        &self,
        job_key: &str,
        expected: &Expectations,
        reason: &str,
    ) -> StoreResult<ExpectedUpdate> {
        let mut inner = self.lock();
        let decided = kernel::expect(inner.job(job_key)?, expected);
        if let Expecting::Record { expectations, requeue } = &decided {
            if let Some(job) = inner.jobs.get_mut(job_key) {
                job.set_expectations(expectations);
            }
            if *requeue {
                inner.requeue(job_key, reason, wall_clock());
            }
        }
        Ok(decided.answer())
    }

    async fn requeue_matching(&self, filter: &RequeueFilter, reason: &str) -> StoreResult<RequeueCounts> {
        check_transition(Transition::Requeue, filter.state, JobState::Planned)?;
        let now = wall_clock();
        let mut inner = self.lock();
        let picked = inner.jobs.values().filter(|j| filter.matches(j));
        let picked: Vec<String> = picked.map(|j| j.job_key.clone()).collect();
        let requeued = picked.iter().filter_map(|key| inner.requeue(key, reason, now));
        Ok(requeued.collect())
    }

    async fn claim_request_slots(&self, host: &str, interval: Duration, count: u32) -> StoreResult<RequestSlots> {
        let mut inner = self.lock();
        let slots = RequestSlots::claim(inner.host_budget.get(host).copied(), wall_clock(), interval, count);
        inner.host_budget.insert(host.to_owned(), slots.next_free());
        Ok(slots)
    }

    async fn note(&self, job_key: &str, op_key: &str, kind: OpKind, result: &Value) -> StoreResult<()> {
        let mut inner = self.lock();
        let epoch = inner.job(job_key)?.epoch;
        if inner.facts(op_key, epoch) == OpFacts::default() {
            let now = wall_clock();
            inner.push_ops([kernel::ok_row(op_key.into(), job_key, kind, epoch, now, result.clone())]);
        }
        Ok(())
    }
}

#[async_trait]
impl LeaseManager for MemoryStore {
    async fn acquire(&self, request: &AcquireRequest) -> StoreResult<Vec<Lease>> {
        let now = wall_clock();
        let mut inner = self.lock();
        let picked = kernel::pick(inner.jobs.values(), request, now);
        let granted = picked.iter().map(|key| inner.grant(key, request, now));
        granted.filter_map(Result::transpose).collect()
    }

    async fn renew(&self, fence: &Fence, ttl: Duration) -> StoreResult<Millis> {
        let now = wall_clock();
        Ok(kernel::renew(self.lock().leased(fence, now)?, ttl, now))
    }

    async fn release(&self, fence: &Fence) -> StoreResult<()> {
        kernel::release(self.lock().leased(fence, wall_clock())?);
        Ok(())
    }

    async fn reconcile(&self, stale_after: Duration) -> StoreResult<ReconcileReport> {
        let now = wall_clock();
        let cutoff = now - millis(stale_after);
        let mut inner = self.lock();
        // Freeing moves the mark past leases expired since the last reconcile; no job changes.
        let freed = inner.freed_through;
        let jobs = inner.jobs.values();
        let expired_leases = jobs.filter(|j| kernel::freed_by_reconcile(j, freed, cutoff)).count() as u64;
        inner.freed_through = freed.max(cutoff);
        let Inner { jobs, ops, .. } = &mut *inner;
        let live = |key: &str| jobs.get(key).filter(|j| kernel::lease_live(j, now)).map(|j| j.epoch);
        let stale = |r: &&mut OpRecord| kernel::abandoned_by_reconcile(r, live(&r.job_key));
        let abandoned_ops = kernel::abandon_all(ops.values_mut().filter(stale), now);
        Ok(ReconcileReport {
            expired_leases,
            abandoned_ops,
        })
    }

    async fn now(&self) -> StoreResult<Millis> {
        Ok(wall_clock())
    }
}

inventory::submit! {
    StoreFactory::new("memory", &["memory"], |_url| -> OpenFuture {
        Box::pin(async { Ok(Arc::new(MemoryStore::new()) as Arc<dyn Store>) })
    })
}
