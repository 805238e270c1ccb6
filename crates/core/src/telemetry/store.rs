//! [`MeteredStore`]: a [`Store`] that counts leases, refused fenced writes,
//! recovery actions and the time of each commit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::error::StoreResult;
use crate::job::{Expectations, ExpectedUpdate, Job, JobQuery, Millis, NewJob, PlanCounts, StatusCounts};
use crate::lease::{AcquireRequest, Fence, Lease, LeaseManager, ReconcileReport};
use crate::ledger::{
    ArtifactEntry, Commit, CommitOutcome, LedgerStore, OpKind, OpQuery, OpRecord, RequestSlots, RequeueCounts,
    RequeueFilter,
};
use crate::store::Store;
use crate::watch::{Watch, WatchQuery};

use super::names;

/// Wraps a store; every call goes through to it unchanged.
#[derive(Debug)]
pub struct MeteredStore {
    inner: Arc<dyn Store>,
}

impl MeteredStore {
    /// Counts the calls made to `inner`.
    pub fn new(inner: Arc<dyn Store>) -> Self {
        Self { inner }
    }
}

/// Counts a refused fenced write.
fn fenced<T>(result: StoreResult<T>) -> StoreResult<T> {
    if let Err(err) = &result {
        if err.is_lease_lost() {
            metrics::counter!(names::FENCED_WRITES_REFUSED).increment(1);
        }
    }
    result
}

/// Counts recovery actions of `kind`.
pub(super) fn recovery(kind: &'static str, n: u64) {
    if n > 0 {
        metrics::counter!(names::RECOVERY_ACTIONS, "kind" => kind).increment(n);
    }
}

#[async_trait]
impl LedgerStore for MeteredStore {
    async fn plan(&self, jobs: &[NewJob]) -> StoreResult<PlanCounts> {
        self.inner.plan(jobs).await
    }

    async fn plan_stream(&self, batches: mpsc::Receiver<Vec<NewJob>>) -> StoreResult<PlanCounts> {
        self.inner.plan_stream(batches).await
    }

    async fn job(&self, job_key: &str) -> StoreResult<Job> {
        self.inner.job(job_key).await
    }

    async fn jobs(&self, query: &JobQuery) -> StoreResult<Vec<Job>> {
        self.inner.jobs(query).await
    }

    async fn status(&self) -> StoreResult<StatusCounts> {
        self.inner.status().await
    }

    async fn watch(&self, query: &WatchQuery) -> StoreResult<Watch> {
        self.inner.watch(query).await
    }

    async fn outstanding(&self, max_attempts: u32, within: Option<Duration>) -> StoreResult<u64> {
        self.inner.outstanding(max_attempts, within).await
    }

    async fn commit(&self, fence: &Fence, commit: &Commit) -> StoreResult<CommitOutcome> {
        let started = Instant::now();
        let result = self.inner.commit(fence, commit).await;
        metrics::histogram!(names::LEDGER_COMMIT_DURATION).record(started.elapsed().as_secs_f64());
        fenced(result)
    }

    async fn ops(&self, query: &OpQuery) -> StoreResult<Vec<OpRecord>> {
        self.inner.ops(query).await
    }

    async fn artifact(&self, sha256: &str) -> StoreResult<Option<ArtifactEntry>> {
        self.inner.artifact(sha256).await
    }

    async fn requeue(&self, job_key: &str, reason: &str) -> StoreResult<bool> {
        self.inner.requeue(job_key, reason).await
    }

    async fn requeue_matching(&self, filter: &RequeueFilter, reason: &str) -> StoreResult<RequeueCounts> {
        self.inner.requeue_matching(filter, reason).await
    }

    async fn update_expected(
        &self,
        job_key: &str,
        expected: &Expectations,
        reason: &str,
    ) -> StoreResult<ExpectedUpdate> {
        self.inner.update_expected(job_key, expected, reason).await
    }

    async fn claim_request_slots(&self, host: &str, interval: Duration, count: u32) -> StoreResult<RequestSlots> {
        self.inner.claim_request_slots(host, interval, count).await
    }

    async fn close(&self) -> StoreResult<()> {
        self.inner.close().await
    }

    async fn note(&self, job_key: &str, op_key: &str, kind: OpKind, result: &Value) -> StoreResult<()> {
        let noted = self.inner.note(job_key, op_key, kind, result).await;
        if noted.is_ok() && kind == OpKind::Cleanup {
            recovery("cleanup", 1);
        }
        noted
    }
}

#[async_trait]
impl LeaseManager for MeteredStore {
    async fn acquire(&self, request: &AcquireRequest) -> StoreResult<Vec<Lease>> {
        let leases = self.inner.acquire(request).await?;
        metrics::counter!(names::LEASES_GRANTED).increment(leases.len() as u64);
        Ok(leases)
    }

    async fn renew(&self, fence: &Fence, ttl: Duration) -> StoreResult<Millis> {
        let renewed = fenced(self.inner.renew(fence, ttl).await)?;
        metrics::counter!(names::LEASES_RENEWED).increment(1);
        Ok(renewed)
    }

    async fn release(&self, fence: &Fence) -> StoreResult<()> {
        fenced(self.inner.release(fence).await)
    }

    async fn reconcile(&self, stale_after: Duration) -> StoreResult<ReconcileReport> {
        let report = self.inner.reconcile(stale_after).await?;
        recovery("lease_freed", report.expired_leases);
        recovery("op_abandoned", report.abandoned_ops);
        Ok(report)
    }

    async fn now(&self) -> StoreResult<Millis> {
        self.inner.now().await
    }
}
