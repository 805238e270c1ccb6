use std::sync::Arc;
use std::time::Duration;

use oncefetch_core::conformance::{self, Setup};
use oncefetch_core::memory::MemoryStore;
use oncefetch_core::{
    async_trait, AcquireRequest, ArtifactEntry, Commit, CommitOutcome, Expectations, ExpectedUpdate, Fence, Job,
    JobQuery, Lease, LeaseManager, LedgerExt, LedgerStore, Millis, NewJob, OpBegin, OpKind, OpQuery, OpRecord,
    PlanCounts, ReconcileReport, RequestSlots, RequeueCounts, RequeueFilter, StatusCounts, StoreError, StoreResult,
};
use serde_json::Value;

async fn setup() -> Setup {
    Setup::single(Arc::new(MemoryStore::new()))
}

mod memory {
    oncefetch_core::store_conformance!(super::setup);
}

#[tokio::test]
async fn memory_scheme_is_registered() {
    let store = oncefetch_core::open_store("memory:")
        .await
        .expect("memory store opens by URL");
    assert_eq!(store.status().await.unwrap().total(), 0);
}

/// How a broken store misbehaves.
#[derive(Debug, Clone, Copy)]
enum Defect {
    /// Writes with whatever epoch the job has now: no fencing.
    IgnoresEpoch,
    /// Never replays a recorded op result.
    NoReplay,
    /// A filtered requeue looks at the state alone.
    RequeueIgnoresFilters,
    /// A commit that starts an op does not say whether to run or replay it.
    ForgetsBegin,
}

/// The in-memory store with one defect.
#[derive(Debug)]
struct Broken {
    inner: MemoryStore,
    defect: Defect,
}

impl Broken {
    async fn unfence(&self, fence: &Fence) -> Fence {
        match self.defect {
            Defect::IgnoresEpoch => {
                let job = self.inner.job(&fence.job_key).await.expect("job");
                Fence {
                    job_key: fence.job_key.clone(),
                    epoch: job.epoch,
                    owner: job.lease_owner.unwrap_or_else(|| fence.owner.clone()),
                }
            }
            Defect::NoReplay | Defect::RequeueIgnoresFilters | Defect::ForgetsBegin => fence.clone(),
        }
    }
}

#[async_trait]
impl LedgerStore for Broken {
    async fn plan(&self, jobs: &[NewJob]) -> StoreResult<PlanCounts> {
        self.inner.plan(jobs).await
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
    async fn watch(&self, query: &oncefetch_core::watch::WatchQuery) -> StoreResult<oncefetch_core::watch::Watch> {
        self.inner.watch(query).await
    }
    async fn outstanding(&self, max_attempts: u32, within: Option<Duration>) -> StoreResult<u64> {
        self.inner.outstanding(max_attempts, within).await
    }
    async fn commit(&self, fence: &Fence, commit: &Commit) -> StoreResult<CommitOutcome> {
        let fence = self.unfence(fence).await;
        let mut outcome = self.inner.commit(&fence, commit).await?;
        match (self.defect, &outcome.begun) {
            (Defect::NoReplay, Some(OpBegin::Replay(_))) => outcome.begun = Some(OpBegin::Run),
            (Defect::ForgetsBegin, _) => outcome.begun = None,
            _ => {}
        }
        Ok(outcome)
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
    async fn update_expected(
        &self,
        job_key: &str,
        expected: &Expectations,
        reason: &str,
    ) -> StoreResult<ExpectedUpdate> {
        self.inner.update_expected(job_key, expected, reason).await
    }

    async fn requeue_matching(&self, filter: &RequeueFilter, reason: &str) -> StoreResult<RequeueCounts> {
        match self.defect {
            Defect::RequeueIgnoresFilters => {
                let state_only = RequeueFilter {
                    include_permanent: filter.include_permanent,
                    ..RequeueFilter::new(filter.state)
                };
                self.inner.requeue_matching(&state_only, reason).await
            }
            Defect::IgnoresEpoch | Defect::NoReplay | Defect::ForgetsBegin => {
                self.inner.requeue_matching(filter, reason).await
            }
        }
    }
    async fn claim_request_slots(&self, host: &str, interval: Duration, count: u32) -> StoreResult<RequestSlots> {
        self.inner.claim_request_slots(host, interval, count).await
    }
    async fn note(&self, job_key: &str, op_key: &str, kind: OpKind, result: &Value) -> StoreResult<()> {
        self.inner.note(job_key, op_key, kind, result).await
    }
}

#[async_trait]
impl LeaseManager for Broken {
    async fn acquire(&self, request: &AcquireRequest) -> StoreResult<Vec<Lease>> {
        self.inner.acquire(request).await
    }
    async fn renew(&self, fence: &Fence, ttl: Duration) -> StoreResult<Millis> {
        let fence = self.unfence(fence).await;
        self.inner.renew(&fence, ttl).await
    }
    async fn release(&self, fence: &Fence) -> StoreResult<()> {
        let fence = self.unfence(fence).await;
        self.inner.release(&fence).await
    }
    async fn reconcile(&self, stale_after: Duration) -> StoreResult<ReconcileReport> {
        self.inner.reconcile(stale_after).await
    }
    async fn now(&self) -> StoreResult<Millis> {
        self.inner.now().await
    }
}

fn broken(defect: Defect) -> Setup {
    Setup::single(Arc::new(Broken {
        inner: MemoryStore::new(),
        defect,
    }))
}

/// Runs a kit check and returns its panic message, if it panicked.
async fn failure_of<F>(check: F) -> Option<String>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    match tokio::spawn(check).await {
        Ok(()) => None,
        Err(err) => {
            let payload = err.into_panic();
            Some(
                payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default(),
            )
        }
    }
}

#[tokio::test]
async fn kit_catches_a_store_that_ignores_the_epoch() {
    let message = failure_of(conformance::stale_epoch_writes_are_fenced(broken(Defect::IgnoresEpoch)))
        .await
        .expect("the fencing check must fail against a store that ignores the epoch");
    assert!(message.contains("fenced writes"), "{message}");
    // The same store passes a check that does not involve fencing.
    assert_eq!(
        failure_of(conformance::plan_is_idempotent(broken(Defect::IgnoresEpoch))).await,
        None
    );
}

#[tokio::test]
async fn kit_catches_a_store_that_never_replays() {
    let message = failure_of(conformance::op_replay_returns_recorded_result(broken(Defect::NoReplay)))
        .await
        .expect("the replay check must fail against a store that never replays");
    assert!(message.contains("replay"), "{message}");
}

#[tokio::test]
async fn kit_catches_abandoned_attempts_finished_by_a_dead_epoch() {
    assert!(
        failure_of(conformance::abandoned_op_reruns_under_new_epoch(broken(
            Defect::IgnoresEpoch
        )))
        .await
        .is_some(),
        "a dead epoch must not finish its abandoned attempt"
    );
}

#[tokio::test]
async fn kit_catches_a_requeue_that_ignores_its_filters() {
    let message = failure_of(conformance::requeue_matching_narrows(broken(
        Defect::RequeueIgnoresFilters,
    )))
    .await
    .expect("the filtered requeue check must fail against a store that ignores the filters");
    assert!(message.contains("filtered requeue"), "{message}");
}

#[tokio::test]
async fn an_unanswered_op_start_is_op_start_unanswered() {
    let store = broken(Defect::ForgetsBegin).store;
    store
        .plan(&conformance::sample_jobs("unanswered", 1))
        .await
        .expect("plan");
    let request = AcquireRequest {
        owner: "w".into(),
        ttl: Duration::from_secs(60),
        limit: 1,
        max_attempts: 3,
    };
    let lease = store.acquire(&request).await.expect("acquire").remove(0);
    let err = store.begin_op(&lease.fence, "head", OpKind::Head).await;
    assert!(
        matches!(&err, Err(StoreError::OpStartUnanswered { op_key }) if op_key == "head"),
        "{err:?}"
    );
    assert_eq!(
        err.map(drop).unwrap_err().to_string(),
        "store did not answer the start of op head"
    );
}
