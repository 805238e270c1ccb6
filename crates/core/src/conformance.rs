//! The store conformance kit: one `pub async fn` per contract clause of
//! [`LedgerStore`] and [`LeaseManager`], and [`store_conformance!`](crate::store_conformance)
//! which expands to one `#[tokio::test]` each.
//!
//! ```ignore
//! async fn setup() -> oncefetch_core::conformance::Setup {
//!     let store = MyStore::open_fresh().await;
//!     oncefetch_core::conformance::Setup::single(Arc::new(store))
//! }
//! oncefetch_core::store_conformance!(setup);
//! ```
//!
//! Each check panics with the clause it found broken. Checks that wait for a
//! lease to expire use leases of a few hundred milliseconds.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::error::StoreError;
use crate::job::{
    ExpectationConflict, Expectations, ExpectedUpdate, FailedSplit, Job, JobFailure, JobFilter, JobPatch, JobQuery,
    NewJob, RetryableFailed,
};
use crate::key::{job_key, OpKeys};
use crate::lease::{AcquireRequest, Fence, Lease};
use crate::ledger::{
    run_effect, ArtifactEntry, Commit, EffectError, IndexOp, LedgerExt, OpBegin, OpFinish, OpKind, OpQuery, OpRecord,
    OpStart, RequestSlots, RequeueCounts, RequeueFilter, ResultCode, Settle,
};
use crate::state::JobState;
use crate::store::Store;
use crate::watch::{HostCounts, WatchQuery};

/// The stores a check runs against.
#[derive(Debug, Clone)]
pub struct Setup {
    /// A fresh, empty, isolated store.
    pub store: Arc<dyn Store>,
    /// A second handle (connection) to the same ledger, for racing checks;
    /// the same handle where the store has only one.
    pub other: Arc<dyn Store>,
}

impl Setup {
    /// One handle.
    pub fn single(store: Arc<dyn Store>) -> Self {
        Self {
            other: Arc::clone(&store),
            store,
        }
    }

    /// Two handles to one ledger.
    pub fn pair(store: Arc<dyn Store>, other: Arc<dyn Store>) -> Self {
        Self { store, other }
    }
}

/// Expands to one `#[tokio::test]` per contract clause, each calling `setup`
/// (an `async fn() -> Setup`) for a fresh store. Needs `tokio` (macros,
/// rt-multi-thread) among the caller's dev-dependencies.
#[macro_export]
macro_rules! store_conformance {
    ($setup:path) => {
        $crate::store_conformance!(@each $setup;
            plan_is_idempotent,
            streamed_plan,
            plan_reports_other_expectations,
            plan_records_the_content_type,
            grant_bumps_epoch,
            op_replay_returns_recorded_result,
            error_op_runs_again,
            abandoned_op_reruns_under_new_epoch,
            stale_epoch_writes_are_fenced,
            expired_lease_is_granted_again,
            expired_out_of_attempts,
            renew_keeps_the_lease,
            release_frees_the_job,
            release_gives_the_attempt_back,
            concurrent_grants_are_exclusive,
            state_table_is_enforced,
            terminal_steps_end_the_lease,
            reconcile_counts,
            failed_jobs_back_off_until_max_attempts,
            far_retries_are_not_waited_for,
            failure_before_streaming_counts_an_attempt,
            one_url_in_flight_at_a_time,
            status_counts_every_state,
            status_counts_live_leases,
            status_counts_bytes_and_failures,
            artifact_index_first_writer_wins,
            index_settles_the_first_copy,
            requeue_resets_finished_jobs,
            update_expected_requeues_mismatches,
            requeue_matching_narrows,
            ops_are_listed_in_order,
            request_budget_is_shared,
            watch_counts
        );
    };
    (@each $setup:path; $($clause:ident),+) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $clause() {
                let setup = $setup().await;
                $crate::conformance::$clause(setup).await;
            }
        )+
    };
}

const OWNER: &str = "conformance-a";
const OTHER_OWNER: &str = "conformance-b";
const LONG: Duration = Duration::from_secs(60);
const SHORT: Duration = Duration::from_millis(300);

/// `n` jobs with distinct URLs under `prefix`.
pub fn sample_jobs(prefix: &str, n: usize) -> Vec<NewJob> {
    (0..n)
        .map(|i| {
            sample_job(
                &format!("{prefix}-w{i}"),
                "a",
                &format!("https://example.org/{prefix}/{i}"),
            )
        })
        .collect()
}

/// One job.
pub fn sample_job(work_id: &str, artifact_id: &str, url: &str) -> NewJob {
    let canonical_url = crate::url::canonicalize(url).expect("sample URL is valid");
    NewJob {
        job_key: job_key(work_id, artifact_id, &canonical_url),
        work_id: work_id.to_owned(),
        artifact_id: artifact_id.to_owned(),
        url: url.to_owned(),
        canonical_url,
        expected_sha256: None,
        expected_size: Some(42),
        expected_content_type: None,
    }
}

fn request(owner: &str, ttl: Duration, limit: usize) -> AcquireRequest {
    AcquireRequest {
        owner: owner.to_owned(),
        ttl,
        limit,
        max_attempts: 3,
    }
}

async fn lease_one(store: &dyn Store, owner: &str, ttl: Duration) -> Lease {
    let mut leases = store.acquire(&request(owner, ttl, 1)).await.expect("acquire");
    assert_eq!(leases.len(), 1, "runnable: a planned job must be granted");
    leases.remove(0)
}

async fn ops_of(store: &dyn Store, job: &str) -> Vec<OpRecord> {
    store
        .ops(&OpQuery {
            job_key: Some(job.to_owned()),
            ..OpQuery::default()
        })
        .await
        .expect("ops")
}

fn assert_lease_lost<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(StoreError::LeaseLost { .. }) => {}
        other => panic!("fenced writes: {what} with a stale lease must fail with LeaseLost, got {other:?}"),
    }
}

async fn wait_past(ttl: Duration) {
    tokio::time::sleep(ttl + Duration::from_millis(150)).await;
}

/// Planning a job twice changes nothing; counts say new vs existing.
pub async fn plan_is_idempotent(setup: Setup) {
    let store = setup.store;
    let jobs = sample_jobs("plan", 10);
    let first = store.plan(&jobs).await.expect("plan");
    assert_eq!((first.new, first.existing), (10, 0), "idempotent plan: first planning");
    let again = store.plan(&jobs).await.expect("plan again");
    assert_eq!((again.new, again.existing), (0, 10), "idempotent plan: replanning");
    let mut mixed = jobs[5..].to_vec();
    mixed.extend(sample_jobs("plan-more", 5));
    let third = store.plan(&mixed).await.expect("plan mixed");
    assert_eq!((third.new, third.existing), (5, 5), "idempotent plan: overlap");
    let status = store.status().await.expect("status");
    assert_eq!(status.total(), 15);
    assert_eq!(status.get(JobState::Planned), 15);
    let job = store.job(&jobs[0].job_key).await.expect("job");
    assert_eq!(job.state, JobState::Planned);
    assert_eq!(job.url, jobs[0].url);
    assert_eq!(job.canonical_url, jobs[0].canonical_url);
    assert_eq!(job.expected_size, Some(42));
    assert_eq!(job.epoch, 0);
    assert!(matches!(store.job("no-such-job").await, Err(StoreError::NotFound(_))));
}

/// A streamed plan plans like batches of `plan`: keys met again, in the
/// ledger or earlier in the stream (even in the same batch), count as
/// existing.
pub async fn streamed_plan(setup: Setup) {
    let store = setup.store;
    let before = sample_jobs("stream", 3);
    store.plan(&before).await.expect("plan");
    let more = sample_jobs("stream-more", 700);
    let (batches, received) = tokio::sync::mpsc::channel(2);
    let sender = tokio::spawn(async move {
        // The planned jobs again, then new ones over several batches, a key
        // repeated inside one batch and across two.
        let mut first = before.clone();
        first.extend(more[..300].iter().cloned());
        first.push(more[0].clone());
        batches.send(first).await.expect("send");
        batches.send(more[299..600].to_vec()).await.expect("send");
        batches.send(Vec::new()).await.expect("send");
        batches.send(more[600..].to_vec()).await.expect("send");
    });
    let counts = store.plan_stream(received).await.expect("plan_stream");
    sender.await.expect("sender");
    assert_eq!((counts.new, counts.existing), (700, 5), "streamed plan: counts");
    let status = store.status().await.expect("status");
    assert_eq!(
        status.get(JobState::Planned),
        703,
        "streamed plan: every job planned once"
    );
    let (again, received) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move { again.send(sample_jobs("stream-more", 700)).await.expect("send") });
    let counts = store.plan_stream(received).await.expect("plan_stream again");
    assert_eq!(
        (counts.new, counts.existing),
        (0, 700),
        "streamed plan: replanning adds nothing"
    );
    let job = store
        .job(&sample_jobs("stream-more", 700)[650].job_key)
        .await
        .expect("job");
    assert_eq!(job.state, JobState::Planned);
    assert_eq!(job.work_id, "stream-more-w650");
}

/// `job` declaring `sha256` (and `size`, `None` for none).
fn declaring(job: &NewJob, sha256: Option<&str>, size: Option<u64>) -> NewJob {
    NewJob {
        expected_sha256: sha256.map(str::to_owned),
        expected_size: size,
        ..job.clone()
    }
}

fn expectations(sha256: Option<&str>, size: Option<u64>) -> Expectations {
    Expectations {
        sha256: sha256.map(str::to_owned),
        size,
        content_type: None,
    }
}

/// Replanning a job with a line that declares another sha256 or size leaves
/// the job as it is and reports it, with its position in the input; a line
/// declaring nothing, or what the job records, is no conflict.
pub async fn plan_reports_other_expectations(setup: Setup) {
    let store = setup.store;
    let (h1, h2) = ("a1".repeat(32), "b2".repeat(32));
    let jobs = sample_jobs("expect-plan", 3);
    // jobs[0]: size 42 and no hash; jobs[1]: hash h1 and size 42.
    let hashed = declaring(&jobs[1], Some(&h1), Some(42));
    let first = store.plan(&[jobs[0].clone(), hashed.clone()]).await.expect("plan");
    assert!(
        first.conflicts.is_empty(),
        "plan reports other expectations: new jobs are no conflict"
    );
    let input = vec![
        declaring(&jobs[0], Some(&h1), None),     // 0: a hash the job lacks
        jobs[0].clone(),                          // 1: what the job records
        declaring(&jobs[0], None, None),          // 2: nothing declared
        declaring(&jobs[1], Some(&h1), None),     // 3: part of what it records
        declaring(&jobs[1], Some(&h1), Some(43)), // 4: another size
        declaring(&jobs[2], Some(&h1), None),     // 5: new
        declaring(&jobs[2], Some(&h2), None),     // 6: another hash than line 5 planned
        declaring(&jobs[2], Some(&h1), None),     // 7: what line 5 planned
    ];
    let counts = store.plan(&input).await.expect("plan again");
    assert_eq!(
        (counts.new, counts.existing),
        (1, 7),
        "plan reports other expectations: counts"
    );
    let conflict = |position, job: &NewJob, declared, recorded| ExpectationConflict {
        position,
        job_key: job.job_key.clone(),
        declared,
        recorded,
    };
    assert_eq!(
        counts.conflicts,
        vec![
            conflict(0, &jobs[0], expectations(Some(&h1), None), expectations(None, Some(42))),
            conflict(
                4,
                &jobs[1],
                expectations(Some(&h1), Some(43)),
                expectations(Some(&h1), Some(42))
            ),
            conflict(
                6,
                &jobs[2],
                expectations(Some(&h2), None),
                expectations(Some(&h1), None)
            ),
        ],
        "plan reports other expectations: the conflicting lines, in input order"
    );
    let job = store.job(&jobs[0].job_key).await.expect("job");
    assert_eq!(
        job.expectations(),
        expectations(None, Some(42)),
        "plan reports other expectations: the job is left as it is"
    );
    // Streamed: positions count every job of the stream.
    let (batches, received) = tokio::sync::mpsc::channel(2);
    let more = sample_jobs("expect-plan-more", 2);
    let sender = tokio::spawn(async move {
        batches
            .send(vec![more[0].clone(), declaring(&more[1], Some(&h2), None)])
            .await
            .expect("send");
        // more[0] as planned; more[1] now declaring size 42, which it lacks.
        batches.send(more.clone()).await.expect("send");
        batches.send(input).await.expect("send");
    });
    let streamed = store.plan_stream(received).await.expect("plan_stream");
    sender.await.expect("sender");
    let positions: Vec<u64> = streamed.conflicts.iter().map(|c| c.position).collect();
    assert_eq!(
        (streamed.new, streamed.existing, positions),
        (2, 10, vec![3, 4, 8, 10]),
        "plan reports other expectations: streamed positions"
    );
}

/// `job` expecting `content_type`.
fn typed(job: &NewJob, content_type: &str) -> NewJob {
    NewJob {
        expected_content_type: Some(content_type.to_owned()),
        ..job.clone()
    }
}

/// Plan records a line's expected content type; `job`, `jobs` and a grant
/// return it. Replanning with another type is a conflict as another sha256
/// is; `update_expected` records a type, and requeues a finished job whose
/// expected type changes ([`Expectations::admit_finished`]).
pub async fn plan_records_the_content_type(setup: Setup) {
    let store = setup.store;
    let jobs = sample_jobs("content-type", 3);
    let pdf = "application/pdf";
    let input = vec![typed(&jobs[0], pdf), jobs[1].clone(), typed(&jobs[2], "image/*")];
    store.plan(&input).await.expect("plan");
    let job = store.job(&jobs[0].job_key).await.expect("job");
    assert_eq!(
        job.expected_content_type.as_deref(),
        Some(pdf),
        "plan records the content type: job returns it"
    );
    assert_eq!(
        job,
        Job::planned(&input[0]),
        "plan records the content type: as planned"
    );
    let listed = store.jobs(&JobQuery::default()).await.expect("jobs");
    let types: std::collections::BTreeMap<_, _> = listed
        .iter()
        .map(|j| (j.job_key.clone(), j.expected_content_type.clone()))
        .collect();
    assert_eq!(
        types[&jobs[0].job_key].as_deref(),
        Some(pdf),
        "plan records the content type: jobs lists it"
    );
    assert_eq!(
        types[&jobs[1].job_key], None,
        "plan records the content type: none declared"
    );
    assert_eq!(types[&jobs[2].job_key].as_deref(), Some("image/*"));
    // Another type is a conflict; the same one, or none, is not.
    let again = vec![
        typed(&jobs[0], "text/html"),
        typed(&jobs[0], pdf),
        jobs[0].clone(),
        typed(&jobs[1], pdf),
    ];
    let counts = store.plan(&again).await.expect("plan again");
    let conflict = |position, job: &NewJob, declared: Option<&str>, recorded: Option<&str>| ExpectationConflict {
        position,
        job_key: job.job_key.clone(),
        declared: Expectations {
            size: Some(42),
            content_type: declared.map(str::to_owned),
            ..Expectations::default()
        },
        recorded: Expectations {
            size: Some(42),
            content_type: recorded.map(str::to_owned),
            ..Expectations::default()
        },
    };
    assert_eq!(
        counts.conflicts,
        vec![
            conflict(0, &jobs[0], Some("text/html"), Some(pdf)),
            conflict(3, &jobs[1], Some(pdf), None)
        ],
        "plan records the content type: another type is a conflict"
    );
    let declare = |content_type: &str| Expectations {
        content_type: Some(content_type.to_owned()),
        ..Expectations::default()
    };
    let updated = store
        .update_expected(&jobs[1].job_key, &declare(pdf), "test")
        .await
        .expect("update");
    assert_eq!(
        updated,
        ExpectedUpdate::Recorded,
        "plan records the content type: update_expected"
    );
    let job = store.job(&jobs[1].job_key).await.expect("job");
    assert_eq!(job.expected_content_type.as_deref(), Some(pdf));
    assert_eq!(
        job.expected_size,
        Some(42),
        "plan records the content type: other fields kept"
    );
    // A grant carries it to the worker.
    let leases = store.acquire(&request(OWNER, LONG, 3)).await.expect("acquire");
    let granted: std::collections::BTreeMap<_, _> = leases
        .iter()
        .map(|l| (l.job.job_key.clone(), l.job.expected_content_type.clone()))
        .collect();
    assert_eq!(granted.len(), 3);
    assert_eq!(
        granted[&jobs[0].job_key].as_deref(),
        Some(pdf),
        "plan records the content type: grants carry it"
    );
    // A finished job whose expected type changes goes back to PLANNED.
    let lease = leases
        .iter()
        .find(|l| l.job.job_key == jobs[0].job_key)
        .expect("leased");
    let content = JobPatch {
        sha256: Some("e5".repeat(32)),
        size: Some(42),
        path: Some("/out/w/a".into()),
        ..JobPatch::default()
    };
    store
        .advance(&lease.fence, &JobState::PIPELINE[2..], content)
        .await
        .expect("success");
    let same = store
        .update_expected(&jobs[0].job_key, &declare(pdf), "test")
        .await
        .expect("update");
    assert_eq!(
        same,
        ExpectedUpdate::Unchanged,
        "plan records the content type: same type"
    );
    let other = store
        .update_expected(&jobs[0].job_key, &declare("text/html"), "test")
        .await
        .expect("update");
    assert_eq!(
        other,
        ExpectedUpdate::Requeued,
        "plan records the content type: another type requeues"
    );
    let job = store.job(&jobs[0].job_key).await.expect("job");
    assert_eq!(
        (job.state, job.expected_content_type.as_deref()),
        (JobState::Planned, Some("text/html"))
    );
}

/// A grant moves a runnable job to LEASED under a new epoch, once.
pub async fn grant_bumps_epoch(setup: Setup) {
    let store = setup.store;
    store.plan(&sample_jobs("grant", 3)).await.expect("plan");
    let now = store.now().await.expect("now");
    let leases = store.acquire(&request(OWNER, LONG, 10)).await.expect("acquire");
    assert_eq!(leases.len(), 3, "runnable: every planned job is granted");
    for lease in &leases {
        assert_eq!(lease.job.state, JobState::Leased);
        assert_eq!(lease.fence.epoch, 1, "epoch: first grant is epoch 1");
        assert_eq!(lease.previous_state, JobState::Planned);
        assert_eq!(lease.fence.owner, OWNER);
        assert!(lease.expires_at >= now + 59_000, "store clock: expiry is now + ttl");
        let job = store.job(&lease.fence.job_key).await.expect("job");
        assert_eq!((job.state, job.epoch), (JobState::Leased, 1));
        assert_eq!(job.lease_owner.as_deref(), Some(OWNER));
    }
    let more = store.acquire(&request(OTHER_OWNER, LONG, 10)).await.expect("acquire");
    assert!(more.is_empty(), "exclusive: live leases are not granted again");
}

/// A second `run_effect` with an OK op key replays without running.
pub async fn op_replay_returns_recorded_result(setup: Setup) {
    let store = setup.store;
    store.plan(&sample_jobs("replay", 1)).await.expect("plan");
    let lease = lease_one(store.as_ref(), OWNER, LONG).await;
    let key = OpKeys {
        job_key: &lease.fence.job_key,
    }
    .head("https://example.org/replay/0");
    let runs = AtomicUsize::new(0);
    let effect = || async {
        runs.fetch_add(1, Ordering::SeqCst);
        Ok::<_, String>(json!({ "status": 200, "etag": "\"x\"" }))
    };
    let first = run_effect(store.as_ref(), &lease.fence, &key, OpKind::Head, effect)
        .await
        .expect("first run");
    assert!(!first.replayed);
    let second = run_effect(store.as_ref(), &lease.fence, &key, OpKind::Head, effect)
        .await
        .expect("replay");
    assert!(second.replayed, "op replay: second run_effect must replay");
    assert_eq!(second.value, first.value, "op replay: recorded result returned");
    assert_eq!(runs.load(Ordering::SeqCst), 1, "op replay: the effect ran once");
    let rows = ops_of(store.as_ref(), &lease.fence.job_key).await;
    let ok: Vec<_> = rows.iter().filter(|r| r.op_key == key).collect();
    assert_eq!(ok.len(), 1, "op replay: one row per attempt");
    assert_eq!(ok[0].result_code, Some(ResultCode::Ok));
    assert_eq!(ok[0].kind, OpKind::Head);
    assert!(ok[0].finished_at.is_some());
}

/// An ERROR row stays for the audit and the effect runs again next epoch.
pub async fn error_op_runs_again(setup: Setup) {
    let store = setup.store;
    store.plan(&sample_jobs("error", 1)).await.expect("plan");
    let lease = lease_one(store.as_ref(), OWNER, LONG).await;
    let key = OpKeys {
        job_key: &lease.fence.job_key,
    }
    .stream("https://example.org/error/0", 0);
    let failed = run_effect(store.as_ref(), &lease.fence, &key, OpKind::Stream, || async {
        Err::<serde_json::Value, _>("connection reset")
    })
    .await;
    assert!(matches!(failed, Err(EffectError::Effect("connection reset"))));
    let failure = JobPatch {
        failure: Some(JobFailure {
            message: "connection reset".into(),
            retryable: true,
            retry_after: Duration::ZERO,
            counts_attempt: false,
        }),
        ..JobPatch::default()
    };
    store
        .advance(&lease.fence, &[JobState::Failed], failure)
        .await
        .expect("fail");
    let again = lease_one(store.as_ref(), OWNER, LONG).await;
    assert_eq!(again.previous_state, JobState::Failed);
    assert_eq!(again.fence.epoch, 2);
    let ran = run_effect(store.as_ref(), &again.fence, &key, OpKind::Stream, || async {
        Ok::<_, String>(json!({ "bytes": 42 }))
    })
    .await
    .expect("second attempt");
    assert!(!ran.replayed, "an ERROR row is not replayed");
    let codes: Vec<_> = ops_of(store.as_ref(), &lease.fence.job_key)
        .await
        .into_iter()
        .filter(|r| r.op_key == key)
        .map(|r| (r.epoch, r.result_code))
        .collect();
    assert_eq!(codes, vec![(1, Some(ResultCode::Error)), (2, Some(ResultCode::Ok))]);
}

/// An attempt whose epoch lost its lease is ABANDONED and runs again.
pub async fn abandoned_op_reruns_under_new_epoch(setup: Setup) {
    let (store, other) = (setup.store, setup.other);
    store.plan(&sample_jobs("abandon", 1)).await.expect("plan");
    let old = lease_one(store.as_ref(), OWNER, SHORT).await;
    let key = OpKeys {
        job_key: &old.fence.job_key,
    }
    .stream("https://example.org/abandon/0", 0);
    let begun = store.begin_op(&old.fence, &key, OpKind::Stream).await.expect("begin");
    assert_eq!(begun, crate::ledger::OpBegin::Run);
    wait_past(SHORT).await;
    let new = lease_one(other.as_ref(), OTHER_OWNER, LONG).await;
    assert_eq!(new.fence.epoch, 2);
    let rows = ops_of(store.as_ref(), &old.fence.job_key).await;
    let old_row = rows
        .iter()
        .find(|r| r.op_key == key && r.epoch == 1)
        .expect("epoch 1 row kept");
    assert_eq!(
        old_row.result_code,
        Some(ResultCode::Abandoned),
        "abandoned ops: the grant marks older unfinished attempts"
    );
    assert!(
        rows.iter().any(|r| r.kind == OpKind::Relet && r.epoch == 2),
        "re-lease of an expired job is recorded (RELET)"
    );
    let ran = run_effect(other.as_ref(), &new.fence, &key, OpKind::Stream, || async {
        Ok::<_, String>(json!({ "bytes": 1 }))
    })
    .await
    .expect("rerun");
    assert!(!ran.replayed, "abandoned ops run again under the new epoch");
    assert_lease_lost(
        store.finish_op(&old.fence, &key, ResultCode::Ok, json!({})).await,
        "finishing an abandoned attempt",
    );
    let ok = ops_of(store.as_ref(), &old.fence.job_key)
        .await
        .into_iter()
        .filter(|r| r.op_key == key && r.result_code == Some(ResultCode::Ok))
        .count();
    assert_eq!(ok, 1, "at most one OK row per op key");
}

/// Every write with a stale epoch, or another owner, is refused.
pub async fn stale_epoch_writes_are_fenced(setup: Setup) {
    let (store, other) = (setup.store, setup.other);
    store.plan(&sample_jobs("fence", 1)).await.expect("plan");
    let old = lease_one(store.as_ref(), OWNER, SHORT).await;
    wait_past(SHORT).await;
    let new = lease_one(other.as_ref(), OTHER_OWNER, LONG).await;
    let stale = &old.fence;
    let key = OpKeys {
        job_key: &stale.job_key,
    }
    .head("https://example.org/fence/0");
    assert_lease_lost(
        store.advance(stale, &[JobState::HeadDone], JobPatch::default()).await,
        "advance",
    );
    assert_lease_lost(store.begin_op(stale, &key, OpKind::Head).await, "begin_op");
    assert_lease_lost(store.renew(stale, LONG).await, "renew");
    assert_lease_lost(store.release(stale).await, "release");
    let entry = ArtifactEntry {
        sha256: "ab".repeat(32),
        path: "/x".into(),
        size: 1,
        job_key: stale.job_key.clone(),
    };
    let index = Commit {
        index: Some(IndexOp {
            op_key: OpKeys {
                job_key: &stale.job_key,
            }
            .content(OpKind::Index, &entry.sha256),
            entry: entry.clone(),
        }),
        ..Commit::default()
    };
    assert_lease_lost(store.commit(stale, &index).await, "commit with an INDEX op");
    let impostor = Fence {
        owner: "someone-else".into(),
        ..new.fence.clone()
    };
    assert_lease_lost(
        store
            .advance(&impostor, &[JobState::HeadDone], JobPatch::default())
            .await,
        "advance by another owner",
    );
    let job = store.job(&stale.job_key).await.expect("job");
    assert_eq!(
        (job.state, job.epoch),
        (JobState::Leased, 2),
        "fenced writes change nothing"
    );
    assert!(store.artifact(&entry.sha256).await.expect("artifact").is_none());
    assert!(ops_of(store.as_ref(), &stale.job_key)
        .await
        .iter()
        .all(|r| r.kind == OpKind::Relet));
    store
        .advance(&new.fence, &[JobState::HeadDone], JobPatch::default())
        .await
        .expect("the live lease still writes");
}

/// An in-flight job whose lease expired (store clock) is granted again.
pub async fn expired_lease_is_granted_again(setup: Setup) {
    let (store, other) = (setup.store, setup.other);
    store.plan(&sample_jobs("expire", 1)).await.expect("plan");
    let old = lease_one(store.as_ref(), OWNER, SHORT).await;
    store
        .advance(&old.fence, &[JobState::HeadDone], JobPatch::default())
        .await
        .expect("advance");
    assert!(other
        .acquire(&request(OTHER_OWNER, LONG, 5))
        .await
        .expect("acquire")
        .is_empty());
    wait_past(SHORT).await;
    let new = lease_one(other.as_ref(), OTHER_OWNER, LONG).await;
    assert_eq!(
        new.previous_state,
        JobState::HeadDone,
        "re-lease from the state it was in"
    );
    assert_eq!(new.fence.epoch, 2);
    assert_eq!(new.job.state, JobState::Leased);
}

/// An attempt that ends by lease expiry counts: a grant that finds a job
/// whose lease expired before its body was in (LEASED … STREAMING) with
/// `attempts >= max_attempts` does not lease it but ends it FAILED, not
/// retryable, under the next epoch with a RELET row; reconciled or not. Jobs
/// with attempts left, past STREAMING, or whose lease was released are
/// leased again.
pub async fn expired_out_of_attempts(setup: Setup) {
    let (store, other) = (setup.store, setup.other);
    // a: fails once, then its lease expires mid-stream; g: expires mid-stream
    // twice; c: expires once its file is placed; d: released mid-stream; e:
    // expires before streaming.
    let jobs = sample_jobs("attempts", 5);
    let [a, c, d, e, g] = [0, 1, 2, 3, 4].map(|i| jobs[i].job_key.clone());
    store.plan(&jobs).await.expect("plan");
    let two = |owner: &str, ttl| AcquireRequest {
        max_attempts: 2,
        ..request(owner, ttl, 10)
    };
    let to_streaming = [JobState::HeadDone, JobState::ResumeOk, JobState::Streaming];
    let fence_of = |leases: &[Lease], key: &str| {
        leases
            .iter()
            .find(|l| l.fence.job_key == key)
            .unwrap_or_else(|| panic!("expired out of attempts: job {key} must be granted"))
            .fence
            .clone()
    };
    let first = store.acquire(&two(OWNER, SHORT)).await.expect("acquire");
    assert_eq!(first.len(), 5);
    for key in [&a, &c, &d, &g] {
        let fence = fence_of(&first, key);
        store
            .advance(&fence, &to_streaming, JobPatch::default())
            .await
            .expect("stream");
    }
    let fail = JobPatch {
        failure: Some(JobFailure {
            message: "503 service unavailable".into(),
            retryable: true,
            retry_after: Duration::ZERO,
            counts_attempt: false,
        }),
        ..JobPatch::default()
    };
    store
        .advance(&fence_of(&first, &a), &[JobState::Failed], fail)
        .await
        .expect("fail");
    wait_past(SHORT).await;
    // One attempt used of two: all granted again.
    let second = other.acquire(&two(OTHER_OWNER, SHORT)).await.expect("acquire");
    assert_eq!(
        second.len(),
        5,
        "expired out of attempts: attempts left, so granted again"
    );
    for key in [&a, &c, &d, &g] {
        let fence = fence_of(&second, key);
        store
            .advance(&fence, &to_streaming, JobPatch::default())
            .await
            .expect("stream again");
    }
    let stream_key = OpKeys { job_key: &a }.stream(&jobs[0].canonical_url, 0);
    let dead = fence_of(&second, &a);
    assert_eq!(
        store.begin_op(&dead, &stream_key, OpKind::Stream).await.expect("begin"),
        OpBegin::Run
    );
    store
        .advance(&fence_of(&second, &c), &[JobState::Finalized], JobPatch::default())
        .await
        .expect("finalize");
    store.release(&fence_of(&second, &d)).await.expect("release");
    wait_past(SHORT).await;
    let expected = |state: JobState, last: Option<&str>| {
        let mut message = format!("lease expired in {state} with 2 of 2 attempts used (worker died or stalled)");
        if let Some(last) = last {
            message.push_str("; last error: ");
            message.push_str(last);
        }
        message
    };
    // g, named, not reconciled yet.
    assert!(
        store
            .acquire_job(&g, &two(OWNER, LONG))
            .await
            .expect("acquire_job")
            .is_none(),
        "expired out of attempts: a job with no attempts left is not leased again"
    );
    let report = store.reconcile(Duration::ZERO).await.expect("reconcile");
    assert_eq!(
        report.expired_leases, 3,
        "reconcile frees a, c and e (g failed, d released)"
    );
    // a, in a batch, after reconcile.
    let third = store.acquire(&two(OWNER, LONG)).await.expect("acquire");
    let mut granted: Vec<_> = third
        .iter()
        .map(|l| (l.fence.job_key.clone(), l.previous_state))
        .collect();
    granted.sort();
    let mut want = vec![
        (c.clone(), JobState::Finalized),
        (d.clone(), JobState::Streaming),
        (e.clone(), JobState::Leased),
    ];
    want.sort();
    assert_eq!(
        granted, want,
        "expired out of attempts: past STREAMING, released, or with attempts left: leased again"
    );
    for (key, last) in [(&a, Some("503 service unavailable")), (&g, None)] {
        let job = store.job(key).await.expect("job");
        assert_eq!(
            (job.state, job.retryable, job.attempts, job.epoch),
            (JobState::Failed, false, 2, 3),
            "expired out of attempts: FAILED, not retryable, under the next epoch"
        );
        assert_eq!(
            job.last_error.as_deref(),
            Some(expected(JobState::Streaming, last).as_str()),
            "expired out of attempts: last_error says how the attempts ended"
        );
        assert!(job.lease_owner.is_none() && job.lease_expires_at.is_none());
        let rows = ops_of(store.as_ref(), key).await;
        let relet = rows
            .iter()
            .find(|r| r.kind == OpKind::Relet && r.epoch == 3)
            .expect("expired out of attempts: the step is recorded as a RELET row");
        let result = relet.result.clone().unwrap_or_default();
        assert_eq!(
            (&result["from"], &result["to"], &result["epoch"]),
            (&json!("STREAMING"), &json!("FAILED"), &json!(3))
        );
        assert_eq!(result["last_error"], json!(job.last_error));
        assert!(
            rows.iter().all(|r| r.result_code.is_some()),
            "expired out of attempts: no attempt is left running"
        );
    }
    assert_lease_lost(
        store.finish_op(&dead, &stream_key, ResultCode::Ok, json!({})).await,
        "finishing an attempt of a job failed out of attempts",
    );
    assert_eq!(
        store.outstanding(2, None).await.expect("outstanding"),
        3,
        "expired out of attempts: the failed jobs are settled"
    );
    assert!(
        other
            .acquire(&two(OTHER_OWNER, LONG))
            .await
            .expect("acquire")
            .is_empty(),
        "expired out of attempts: a failed job is never granted again"
    );
}

/// Renewing extends the lease past its original expiry.
pub async fn renew_keeps_the_lease(setup: Setup) {
    let (store, other) = (setup.store, setup.other);
    store.plan(&sample_jobs("renew", 1)).await.expect("plan");
    let lease = lease_one(store.as_ref(), OWNER, Duration::from_millis(600)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let expiry = store.renew(&lease.fence, LONG).await.expect("renew");
    assert!(expiry > lease.expires_at, "renew moves the expiry forward");
    wait_past(Duration::from_millis(600)).await;
    assert!(
        other
            .acquire(&request(OTHER_OWNER, LONG, 5))
            .await
            .expect("acquire")
            .is_empty(),
        "a renewed lease is not granted again"
    );
    store
        .advance(&lease.fence, &[JobState::HeadDone], JobPatch::default())
        .await
        .expect("the renewed lease writes");
}

/// A released job is granted again at once; the releaser is fenced off.
pub async fn release_frees_the_job(setup: Setup) {
    let (store, other) = (setup.store, setup.other);
    store.plan(&sample_jobs("release", 1)).await.expect("plan");
    let lease = lease_one(store.as_ref(), OWNER, LONG).await;
    store.release(&lease.fence).await.expect("release");
    let next = lease_one(other.as_ref(), OTHER_OWNER, LONG).await;
    assert_eq!(next.fence.epoch, lease.fence.epoch + 1);
    assert_lease_lost(
        store
            .advance(&lease.fence, &[JobState::HeadDone], JobPatch::default())
            .await,
        "advance after release",
    );
}

/// A lease given back after STREAMING does not count the attempt that
/// epoch began (the run stopped, the job did not fail); one given back
/// before STREAMING counted none. The job keeps its state either way.
pub async fn release_gives_the_attempt_back(setup: Setup) {
    let store = setup.store;
    store.plan(&sample_jobs("release-attempt", 1)).await.expect("plan");
    let lease = lease_one(store.as_ref(), OWNER, LONG).await;
    let to_streaming = [JobState::HeadDone, JobState::ResumeOk, JobState::Streaming];
    store
        .advance(&lease.fence, &to_streaming, JobPatch::default())
        .await
        .expect("streaming");
    let key = &lease.fence.job_key;
    assert_eq!(
        store.job(key).await.expect("job").attempts,
        1,
        "STREAMING counts an attempt"
    );
    store.release(&lease.fence).await.expect("release");
    let job = store.job(key).await.expect("job");
    assert_eq!(
        (job.state, job.attempts),
        (JobState::Streaming, 0),
        "release gives the attempt back: the state stays, the attempt is not counted"
    );
    let again = lease_one(store.as_ref(), OWNER, LONG).await;
    store.release(&again.fence).await.expect("release before streaming");
    assert_eq!(
        store.job(key).await.expect("job").attempts,
        0,
        "release gives the attempt back: none counted before STREAMING, none taken"
    );
    let third = lease_one(store.as_ref(), OWNER, LONG).await;
    store
        .advance(&third.fence, &to_streaming, JobPatch::default())
        .await
        .expect("streaming");
    let retry = JobPatch {
        failure: Some(JobFailure {
            message: "503".into(),
            retryable: true,
            retry_after: Duration::ZERO,
            // Counted at STREAMING already, as the worker does.
            counts_attempt: false,
        }),
        ..JobPatch::default()
    };
    store
        .advance(&third.fence, &[JobState::Failed], retry)
        .await
        .expect("fail");
    let fourth = lease_one(store.as_ref(), OWNER, LONG).await;
    store
        .advance(&fourth.fence, &to_streaming, JobPatch::default())
        .await
        .expect("streaming");
    store.release(&fourth.fence).await.expect("release");
    assert_eq!(
        store.job(key).await.expect("job").attempts,
        1,
        "release gives the attempt back: only this epoch's, earlier attempts stay counted"
    );
}

/// Concurrent batch grants from two handles never share a job.
pub async fn concurrent_grants_are_exclusive(setup: Setup) {
    const JOBS: usize = 300;
    setup.store.plan(&sample_jobs("race", JOBS)).await.expect("plan");
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let store = if worker % 2 == 0 {
            Arc::clone(&setup.store)
        } else {
            Arc::clone(&setup.other)
        };
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let leases = store
                    .acquire(&request(&format!("racer-{worker}"), LONG, 7))
                    .await
                    .expect("acquire under contention");
                if leases.is_empty() {
                    break got;
                }
                got.extend(leases.into_iter().map(|l| l.fence.job_key));
            }
        }));
    }
    let mut seen = HashSet::new();
    for task in tasks {
        for key in task.await.expect("racer") {
            assert!(seen.insert(key.clone()), "exclusive: job {key} granted twice");
        }
    }
    assert_eq!(seen.len(), JOBS, "every job granted once");
}

/// Steps outside the table are refused and change nothing.
pub async fn state_table_is_enforced(setup: Setup) {
    let store = setup.store;
    store.plan(&sample_jobs("table", 1)).await.expect("plan");
    let lease = lease_one(store.as_ref(), OWNER, LONG).await;
    let skip = store
        .advance(&lease.fence, &[JobState::Finalized], JobPatch::default())
        .await;
    assert!(
        matches!(
            skip,
            Err(StoreError::InvalidTransition {
                from: JobState::Leased,
                to: JobState::Finalized
            })
        ),
        "state table: LEASED → FINALIZED must be refused, got {skip:?}"
    );
    let partly = store
        .advance(
            &lease.fence,
            &[JobState::HeadDone, JobState::Streaming],
            JobPatch::default(),
        )
        .await;
    assert!(matches!(partly, Err(StoreError::InvalidTransition { .. })));
    assert_eq!(
        store.job(&lease.fence.job_key).await.expect("job").state,
        JobState::Leased,
        "state table: a refused commit writes nothing"
    );
    let path = JobState::PIPELINE[2..].to_vec();
    let patch = JobPatch {
        sha256: Some("cd".repeat(32)),
        size: Some(42),
        path: Some("/out/w/a".into()),
        ..JobPatch::default()
    };
    store
        .advance(&lease.fence, &path, patch)
        .await
        .expect("the whole pipeline");
    let job = store.job(&lease.fence.job_key).await.expect("job");
    assert_eq!(job.state, JobState::Success);
    assert_eq!(job.attempts, 1, "STREAMING counts an attempt");
    assert_eq!(job.sha256.as_deref(), Some("cd".repeat(32).as_str()));
    assert_eq!(job.path.as_deref(), Some("/out/w/a"));
}

/// A terminal step ends the lease: no more writes, nothing to grant.
pub async fn terminal_steps_end_the_lease(setup: Setup) {
    let store = setup.store;
    store.plan(&sample_jobs("terminal", 1)).await.expect("plan");
    let lease = lease_one(store.as_ref(), OWNER, LONG).await;
    store
        .advance(
            &lease.fence,
            &[JobState::SkippedDuplicate],
            JobPatch {
                duplicate_of: Some("original".into()),
                ..JobPatch::default()
            },
        )
        .await
        .expect("skip");
    let job = store.job(&lease.fence.job_key).await.expect("job");
    assert_eq!(job.state, JobState::SkippedDuplicate);
    assert_eq!(job.duplicate_of.as_deref(), Some("original"));
    assert!(job.lease_owner.is_none(), "terminal ends the lease");
    assert_lease_lost(store.renew(&lease.fence, LONG).await, "renew after terminal");
    assert!(store
        .acquire(&request(OWNER, LONG, 5))
        .await
        .expect("acquire")
        .is_empty());
    assert_eq!(store.outstanding(3, None).await.expect("outstanding"), 0);
}

/// Reconcile frees expired leases and abandons their ops, and counts both.
pub async fn reconcile_counts(setup: Setup) {
    let store = setup.store;
    store.plan(&sample_jobs("reconcile", 5)).await.expect("plan");
    let leases = store.acquire(&request(OWNER, SHORT, 5)).await.expect("acquire");
    assert_eq!(leases.len(), 5);
    for lease in &leases[..3] {
        let key = OpKeys {
            job_key: &lease.fence.job_key,
        }
        .head(&lease.job.canonical_url);
        store.begin_op(&lease.fence, &key, OpKind::Head).await.expect("begin");
    }
    let live = store.reconcile(Duration::ZERO).await.expect("reconcile");
    assert_eq!(
        (live.expired_leases, live.abandoned_ops),
        (0, 0),
        "live leases are left alone"
    );
    wait_past(SHORT).await;
    let report = store.reconcile(Duration::ZERO).await.expect("reconcile");
    assert_eq!(report.expired_leases, 5, "reconcile counts expired leases");
    assert_eq!(report.abandoned_ops, 3, "reconcile counts abandoned ops");
    let again = store.reconcile(Duration::ZERO).await.expect("reconcile");
    assert_eq!(
        (again.expired_leases, again.abandoned_ops),
        (0, 0),
        "reconcile is idempotent"
    );
    for lease in &leases[..3] {
        let rows = ops_of(store.as_ref(), &lease.fence.job_key).await;
        assert!(rows.iter().all(|r| r.result_code == Some(ResultCode::Abandoned)));
    }
    assert_eq!(
        store.acquire(&request(OWNER, LONG, 10)).await.expect("acquire").len(),
        5
    );
}

/// A retryable FAILED job waits out its backoff and stops at max attempts.
pub async fn failed_jobs_back_off_until_max_attempts(setup: Setup) {
    let store = setup.store;
    store.plan(&sample_jobs("backoff", 1)).await.expect("plan");
    let to_streaming = [JobState::HeadDone, JobState::ResumeOk, JobState::Streaming];
    let fail = |retryable| JobPatch {
        failure: Some(JobFailure {
            message: "503 service unavailable".into(),
            retryable,
            retry_after: SHORT,
            counts_attempt: false,
        }),
        ..JobPatch::default()
    };
    let two = |owner: &str| AcquireRequest {
        max_attempts: 2,
        ..request(owner, LONG, 5)
    };
    let mut leases = store.acquire(&two(OWNER)).await.expect("acquire");
    let lease = leases.remove(0);
    store
        .advance(&lease.fence, &to_streaming, JobPatch::default())
        .await
        .expect("stream");
    store
        .advance(&lease.fence, &[JobState::Failed], fail(true))
        .await
        .expect("fail");
    let job = store.job(&lease.fence.job_key).await.expect("job");
    assert_eq!((job.state, job.attempts, job.retryable), (JobState::Failed, 1, true));
    assert_eq!(job.last_error.as_deref(), Some("503 service unavailable"));
    assert!(
        store.acquire(&two(OWNER)).await.expect("acquire").is_empty(),
        "backoff is waited out"
    );
    assert_eq!(store.outstanding(2, None).await.expect("outstanding"), 1);
    wait_past(SHORT).await;
    let mut leases = store.acquire(&two(OWNER)).await.expect("acquire");
    assert_eq!(leases.len(), 1, "a retryable FAILED job is granted after its backoff");
    let lease = leases.remove(0);
    assert_eq!(lease.previous_state, JobState::Failed);
    store
        .advance(&lease.fence, &to_streaming, JobPatch::default())
        .await
        .expect("stream");
    store
        .advance(&lease.fence, &[JobState::Failed], fail(true))
        .await
        .expect("fail");
    wait_past(SHORT).await;
    assert!(
        store.acquire(&two(OWNER)).await.expect("acquire").is_empty(),
        "no grant once attempts reach max_attempts"
    );
    assert_eq!(store.outstanding(2, None).await.expect("outstanding"), 0);
    assert_eq!(store.outstanding(3, None).await.expect("outstanding"), 1);
}

/// `outstanding` with `within` leaves out a retryable FAILED job whose next
/// attempt is due later than now + `within`, and counts it otherwise.
pub async fn far_retries_are_not_waited_for(setup: Setup) {
    let store = setup.store;
    store.plan(&sample_jobs("far", 2)).await.expect("plan");
    let hour = Duration::from_secs(3600);
    let lease = lease_one(store.as_ref(), OWNER, LONG).await;
    let patch = JobPatch {
        failure: Some(JobFailure {
            message: "429 too many requests".into(),
            retryable: true,
            retry_after: hour,
            counts_attempt: true,
        }),
        ..JobPatch::default()
    };
    store
        .advance(&lease.fence, &[JobState::Failed], patch)
        .await
        .expect("fail");
    let minute = Duration::from_secs(60);
    // The other job is PLANNED: waited for whatever `within` says.
    assert_eq!(store.outstanding(3, None).await.expect("outstanding"), 2);
    assert_eq!(store.outstanding(3, Some(minute)).await.expect("outstanding"), 1);
    assert_eq!(store.outstanding(3, Some(2 * hour)).await.expect("outstanding"), 2);
    let job = store.job(&lease.fence.job_key).await.expect("job");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis();
    let due_in = i128::from(job.next_attempt_at.expect("next attempt")) - i128::try_from(now).expect("ms");
    assert!((3_500_000..=3_600_000).contains(&due_in), "due in {due_in} ms");
}

/// Jobs sharing a canonical URL are never in flight at once.
pub async fn one_url_in_flight_at_a_time(setup: Setup) {
    let (store, other) = (setup.store, setup.other);
    let url = "https://example.org/shared.pdf";
    let jobs = vec![
        sample_job("w1", "a", url),
        sample_job("w2", "a", "HTTPS://EXAMPLE.org:443/shared.pdf#frag"),
        sample_job("w3", "a", "https://example.org/other.pdf"),
    ];
    store.plan(&jobs).await.expect("plan");
    let first = store.acquire(&request(OWNER, LONG, 10)).await.expect("acquire");
    assert_eq!(first.len(), 2, "one of the two same-URL jobs, and the other job");
    let again = other.acquire(&request(OTHER_OWNER, LONG, 10)).await.expect("acquire");
    assert!(again.is_empty(), "the URL is in flight under another job");
    let shared = first
        .iter()
        .find(|l| l.job.canonical_url == url)
        .expect("shared URL leased");
    let rest = JobState::PIPELINE[2..].to_vec();
    store
        .advance(&shared.fence, &rest, JobPatch::default())
        .await
        .expect("finish");
    let next = other.acquire(&request(OTHER_OWNER, LONG, 10)).await.expect("acquire");
    assert_eq!(next.len(), 1, "the twin is granted once the first is done");
    assert_eq!(next[0].job.canonical_url, url);
    assert_ne!(next[0].fence.job_key, shared.fence.job_key);
    let done = store
        .jobs(&JobQuery {
            state: Some(JobState::Success),
            canonical_url: Some(url.to_owned()),
            ..JobQuery::default()
        })
        .await
        .expect("jobs");
    assert_eq!(done.len(), 1, "jobs can be found by canonical URL and state");
}

/// Status has every state, zeros included, and counts moves.
pub async fn status_counts_every_state(setup: Setup) {
    let store = setup.store;
    let empty = store.status().await.expect("status");
    assert_eq!(empty.states.len(), JobState::ALL.len(), "every state present");
    assert_eq!(empty.total(), 0);
    store.plan(&sample_jobs("status", 4)).await.expect("plan");
    let leases = store.acquire(&request(OWNER, LONG, 2)).await.expect("acquire");
    store
        .advance(&leases[0].fence, &[JobState::HeadDone], JobPatch::default())
        .await
        .expect("advance");
    let status = store.status().await.expect("status");
    assert_eq!(status.get(JobState::Planned), 2);
    assert_eq!(status.get(JobState::Leased), 1);
    assert_eq!(status.get(JobState::HeadDone), 1);
    assert_eq!(status.total(), 4);
    let leased = store
        .jobs(&JobQuery {
            state: Some(JobState::Leased),
            ..JobQuery::default()
        })
        .await
        .expect("jobs");
    assert_eq!(leased.len(), 1);
    let page = store
        .jobs(&JobQuery {
            limit: 3,
            ..JobQuery::default()
        })
        .await
        .expect("jobs");
    let rest = store
        .jobs(&JobQuery {
            after: page.last().map(|j| j.job_key.clone()),
            ..JobQuery::default()
        })
        .await
        .expect("jobs");
    assert_eq!((page.len(), rest.len()), (3, 1), "keyset pagination by job key");
    assert!(
        page.windows(2).all(|w| w[0].job_key < w[1].job_key),
        "ordered by job key"
    );
}

/// Status counts the in-flight jobs a live lease holds apart from those
/// whose lease expired or was given back.
pub async fn status_counts_live_leases(setup: Setup) {
    let store = setup.store;
    store.plan(&sample_jobs("live", 3)).await.expect("plan");
    let long = lease_one(store.as_ref(), OWNER, LONG).await;
    let short = lease_one(store.as_ref(), OTHER_OWNER, SHORT).await;
    let status = store.status().await.expect("status");
    assert_eq!(
        (status.live_leases, status.expired_leases()),
        (2, 0),
        "live leases: both leases are live"
    );
    wait_past(SHORT).await;
    let status = store.status().await.expect("status");
    assert_eq!(
        (
            status.live_leases,
            status.expired_leases(),
            status.get(JobState::Leased)
        ),
        (1, 1, 2),
        "live leases: the short lease expired, by the store clock"
    );
    store.release(&long.fence).await.expect("release");
    let status = store.status().await.expect("status");
    assert_eq!(
        (status.live_leases, status.expired_leases()),
        (0, 2),
        "live leases: a released lease is not live"
    );
    assert_ne!(long.fence.job_key, short.fence.job_key);
}

/// Status sums the sizes of SUCCESS jobs, and counts the retryable FAILED
/// jobs by attempts used and those of them waiting out a backoff (by the
/// store clock); non-retryable failures and jobs of other states are in
/// neither.
pub async fn status_counts_bytes_and_failures(setup: Setup) {
    let store = setup.store;
    let empty = store.status().await.expect("status");
    assert_eq!(
        (empty.bytes_done, empty.retryable_failed.len()),
        (0, 0),
        "status bytes and failures: an empty ledger"
    );
    store.plan(&sample_jobs("bytes", 7)).await.expect("plan");
    let leases = store.acquire(&request(OWNER, LONG, 7)).await.expect("acquire");
    assert_eq!(leases.len(), 7, "runnable: every planned job is granted");
    let to_streaming = [JobState::HeadDone, JobState::ResumeOk, JobState::Streaming];
    for (lease, size) in leases[..2].iter().zip([100u64, 23]) {
        let patch = JobPatch {
            sha256: Some("ab".repeat(32)),
            size: Some(size),
            ..JobPatch::default()
        };
        store
            .advance(&lease.fence, &JobState::PIPELINE[2..], patch)
            .await
            .expect("succeed");
    }
    // (retryable, wait, counts an extra attempt): attempts 1, 1, 2, and one
    // permanent failure.
    let failures = [
        (true, LONG, false),
        (true, Duration::ZERO, false),
        (true, LONG, true),
        (false, LONG, false),
    ];
    for (lease, (retryable, retry_after, counts_attempt)) in leases[2..6].iter().zip(failures) {
        store
            .advance(&lease.fence, &to_streaming, JobPatch::default())
            .await
            .expect("stream");
        let patch = JobPatch {
            failure: Some(JobFailure {
                message: "503 service unavailable".into(),
                retryable,
                retry_after,
                counts_attempt,
            }),
            ..JobPatch::default()
        };
        store
            .advance(&lease.fence, &[JobState::Failed], patch)
            .await
            .expect("fail");
    }
    // The last job stays in flight, streaming.
    store
        .advance(&leases[6].fence, &to_streaming, JobPatch::default())
        .await
        .expect("stream");
    let status = store.status().await.expect("status");
    assert_eq!(
        status.bytes_done, 123,
        "status bytes and failures: the sizes of SUCCESS jobs are summed"
    );
    let group = |jobs, backoff_waiting| RetryableFailed { jobs, backoff_waiting };
    assert_eq!(
        status
            .retryable_failed
            .iter()
            .map(|(&attempts, &group)| (attempts, group))
            .collect::<Vec<_>>(),
        vec![(1, group(2, 1)), (2, group(1, 1))],
        "status bytes and failures: retryable FAILED jobs by attempts used, and those waiting out a backoff"
    );
    let split = |retryable, final_| FailedSplit { retryable, final_ };
    assert_eq!(
        (status.failed(3), status.failed(2), status.failed(1)),
        (split(3, 1), split(2, 2), split(0, 4)),
        "FAILED split by attempts left"
    );
    assert_eq!(
        (
            status.backoff_waiting(3),
            status.backoff_waiting(2),
            status.backoff_waiting(1)
        ),
        (2, 1, 0),
        "backoff waiting: only jobs with attempts left"
    );
}

/// The artifact index keeps the first copy of each hash; a commit's INDEX op
/// writes one OK row and is replayed, not run again.
pub async fn artifact_index_first_writer_wins(setup: Setup) {
    let store = setup.store;
    store.plan(&sample_jobs("index", 2)).await.expect("plan");
    let leases = store.acquire(&request(OWNER, LONG, 2)).await.expect("acquire");
    let sha = "ef".repeat(32);
    let index = |lease: &Lease, path: &str| Commit {
        index: Some(IndexOp {
            op_key: OpKeys {
                job_key: &lease.fence.job_key,
            }
            .content(OpKind::Index, &sha),
            entry: ArtifactEntry {
                sha256: sha.clone(),
                path: path.to_owned(),
                size: 7,
                job_key: lease.fence.job_key.clone(),
            },
        }),
        ..Commit::default()
    };
    let first = store
        .commit(&leases[0].fence, &index(&leases[0], "/out/first"))
        .await
        .expect("index");
    assert_eq!(first.first_path.as_deref(), Some("/out/first"));
    let second = store
        .commit(&leases[1].fence, &index(&leases[1], "/out/second"))
        .await
        .expect("index");
    assert_eq!(
        second.first_path.as_deref(),
        Some("/out/first"),
        "index: first writer wins"
    );
    let again = store
        .commit(&leases[1].fence, &index(&leases[1], "/out/elsewhere"))
        .await
        .expect("index replayed");
    assert_eq!(
        again.first_path.as_deref(),
        Some("/out/first"),
        "the OK row is replayed"
    );
    let rows = store
        .ops(&OpQuery {
            job_key: Some(leases[1].fence.job_key.clone()),
            ..OpQuery::default()
        })
        .await
        .expect("ops");
    assert_eq!(rows.len(), 1, "one INDEX row for two commits of the op: {rows:?}");
    assert_eq!(
        (rows[0].kind, rows[0].result_code, rows[0].epoch),
        (OpKind::Index, Some(ResultCode::Ok), leases[1].fence.epoch)
    );
    assert_eq!(rows[0].result, Some(json!({ "first_path": "/out/first" })));
    let standing = store.artifact(&sha).await.expect("artifact").expect("indexed");
    assert_eq!(
        (standing.path.as_str(), standing.job_key.as_str()),
        ("/out/first", leases[0].fence.job_key.as_str())
    );
    assert_eq!(store.artifact(&"00".repeat(32)).await.expect("artifact"), None);
}

/// `Commit::settle`: when the INDEX op finds the job's own copy is the first,
/// the begin op is recorded OK and the job steps on, in the same commit;
/// otherwise the op starts as usual, and an OK row of it is replayed.
pub async fn index_settles_the_first_copy(setup: Setup) {
    let store = setup.store;
    store.plan(&sample_jobs("settle", 3)).await.expect("plan");
    let leases = store.acquire(&request(OWNER, LONG, 3)).await.expect("acquire");
    let (shared, own) = ("cd".repeat(32), "0e".repeat(32));
    let keys = |lease: &Lease, sha: &str| {
        let keys = OpKeys {
            job_key: &lease.fence.job_key,
        };
        (keys.content(OpKind::Index, sha), keys.content(OpKind::Dedupe, sha))
    };
    let commit = |lease: &Lease, sha: &str, path: &str, steps: &[JobState]| {
        let (index_key, dedupe_key) = keys(lease, sha);
        Commit {
            steps: steps.to_vec(),
            index: Some(IndexOp {
                op_key: index_key,
                entry: ArtifactEntry {
                    sha256: sha.to_owned(),
                    path: path.to_owned(),
                    size: 3,
                    job_key: lease.fence.job_key.clone(),
                },
            }),
            begin: Some(OpStart {
                op_key: dedupe_key,
                kind: OpKind::Dedupe,
            }),
            settle: Some(Settle {
                result: json!({ "original": path }),
                steps: JobState::PIPELINE[7..].to_vec(),
            }),
            ..Commit::default()
        }
    };
    let to_indexed = &JobState::PIPELINE[2..7];
    let first = store
        .commit(&leases[0].fence, &commit(&leases[0], &shared, "/out/a", to_indexed))
        .await
        .expect("settle");
    assert_eq!(
        (first.settled, first.begun, first.first_path.as_deref()),
        (true, None, Some("/out/a")),
        "the first copy settles"
    );
    let job = store.job(&leases[0].fence.job_key).await.expect("job");
    assert_eq!((job.state, job.lease_owner), (JobState::Success, None));
    let rows = ops_of(&*store, &leases[0].fence.job_key).await;
    let settled: Vec<_> = rows.iter().map(|r| (r.kind, r.result_code, r.result.clone())).collect();
    assert_eq!(
        settled,
        vec![
            (
                OpKind::Index,
                Some(ResultCode::Ok),
                Some(json!({ "first_path": "/out/a" }))
            ),
            (
                OpKind::Dedupe,
                Some(ResultCode::Ok),
                Some(json!({ "original": "/out/a" }))
            ),
        ]
    );
    let second = store
        .commit(&leases[1].fence, &commit(&leases[1], &shared, "/out/b", to_indexed))
        .await
        .expect("index a second copy");
    assert_eq!(
        (second.settled, second.begun, second.first_path.as_deref()),
        (false, Some(OpBegin::Run), Some("/out/a")),
        "a second copy starts its op"
    );
    let job = store.job(&leases[1].fence.job_key).await.expect("job");
    assert_eq!(job.state, JobState::Indexed);
    // An op with an OK row is replayed, even when the copy is the first.
    let third = &leases[2];
    let mut unsettled = commit(third, &own, "/out/c", to_indexed);
    unsettled.settle = None;
    let begun = store.commit(&third.fence, &unsettled).await.expect("begin");
    assert_eq!(begun.begun, Some(OpBegin::Run));
    let finish = Commit {
        finish: Some(OpFinish {
            op_key: keys(third, &own).1,
            code: ResultCode::Ok,
            result: json!({ "recorded": true }),
        }),
        ..Commit::default()
    };
    store.commit(&third.fence, &finish).await.expect("finish");
    let replayed = store
        .commit(&third.fence, &commit(third, &own, "/out/c", &[]))
        .await
        .expect("replay");
    assert_eq!(
        (replayed.settled, replayed.begun, replayed.first_path.as_deref()),
        (
            false,
            Some(OpBegin::Replay(json!({ "recorded": true }))),
            Some("/out/c")
        )
    );
    assert_eq!(
        ops_of(&*store, &third.fence.job_key).await.len(),
        2,
        "INDEX and DEDUPE, once each"
    );
}

/// `requeue` sends FAILED and finished jobs back to PLANNED with a REQUEUE row.
pub async fn requeue_resets_finished_jobs(setup: Setup) {
    let store = setup.store;
    store.plan(&sample_jobs("requeue", 2)).await.expect("plan");
    let leases = store.acquire(&request(OWNER, LONG, 2)).await.expect("acquire");
    let fail = JobPatch {
        failure: Some(JobFailure {
            message: "404 not found".into(),
            retryable: false,
            retry_after: Duration::ZERO,
            counts_attempt: false,
        }),
        ..JobPatch::default()
    };
    let head = OpKeys {
        job_key: &leases[0].fence.job_key,
    }
    .head(&leases[0].job.canonical_url);
    let effect = || async { Ok::<_, String>(json!({ "status": 200 })) };
    run_effect(store.as_ref(), &leases[0].fence, &head, OpKind::Head, effect)
        .await
        .expect("effect");
    store
        .advance(&leases[0].fence, &[JobState::Failed], fail)
        .await
        .expect("fail");
    assert!(
        !store.requeue(&leases[1].fence.job_key, "retry").await.expect("requeue"),
        "LEASED is not requeued"
    );
    assert!(store.requeue(&leases[0].fence.job_key, "retry").await.expect("requeue"));
    let job = store.job(&leases[0].fence.job_key).await.expect("job");
    assert_eq!(
        (job.state, job.attempts, job.last_error.as_deref()),
        (JobState::Planned, 0, None)
    );
    let rows = ops_of(store.as_ref(), &job.job_key).await;
    assert!(rows
        .iter()
        .any(|r| r.kind == OpKind::Requeue && r.result_code == Some(ResultCode::Ok)));
    let superseded = rows
        .iter()
        .find(|r| r.op_key == head)
        .expect("the HEAD row stays for the audit");
    assert_eq!(
        superseded.result_code,
        Some(ResultCode::Abandoned),
        "requeue supersedes OK effect rows"
    );
    let again = store.acquire(&request(OWNER, LONG, 5)).await.expect("acquire");
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].fence.epoch, 2, "the epoch never goes back");
    let rerun = run_effect(store.as_ref(), &again[0].fence, &head, OpKind::Head, effect)
        .await
        .expect("effect after requeue");
    assert!(!rerun.replayed, "after a requeue the effect runs again");
}

/// `update_expected` records the declared fields on a job that is not in
/// flight, and requeues a finished job whose content does not meet them.
pub async fn update_expected_requeues_mismatches(setup: Setup) {
    let store = setup.store;
    let (held, other) = ("c3".repeat(32), "d4".repeat(32));
    store.plan(&sample_jobs("expect-update", 5)).await.expect("plan");
    let leases = store.acquire(&request(OWNER, LONG, 4)).await.expect("acquire");
    assert_eq!(leases.len(), 4);
    let content = JobPatch {
        sha256: Some(held.clone()),
        size: Some(42),
        path: Some("/out/w/a".into()),
        ..JobPatch::default()
    };
    // leases[0] and [1] end SUCCESS, [2] SKIPPED_DUPLICATE, [3] stays LEASED.
    let head = OpKeys {
        job_key: &leases[0].fence.job_key,
    }
    .head(&leases[0].job.canonical_url);
    run_effect(store.as_ref(), &leases[0].fence, &head, OpKind::Head, || async {
        Ok::<_, String>(json!({ "status": 200 }))
    })
    .await
    .expect("effect");
    for lease in &leases[..2] {
        store
            .advance(&lease.fence, &JobState::PIPELINE[2..], content.clone())
            .await
            .expect("success");
    }
    store
        .advance(&leases[2].fence, &[JobState::SkippedDuplicate], content.clone())
        .await
        .expect("skip");
    let planned = store
        .jobs(&JobQuery {
            state: Some(JobState::Planned),
            ..JobQuery::default()
        })
        .await
        .expect("jobs")
        .remove(0)
        .job_key;
    let update = |key: &str, sha256: Option<&str>, size: Option<u64>| {
        let (store, key, expected) = (Arc::clone(&store), key.to_owned(), expectations(sha256, size));
        async move { store.update_expected(&key, &expected, "new expectation").await }
    };
    let key = |i: usize| leases[i].fence.job_key.clone();

    let requeued = update(&key(0), Some(&other), None).await.expect("update");
    assert_eq!(
        requeued,
        ExpectedUpdate::Requeued,
        "update expected requeues mismatches: SUCCESS"
    );
    let job = store.job(&key(0)).await.expect("job");
    assert_eq!(
        (job.state, job.expectations(), job.sha256, job.attempts),
        (JobState::Planned, expectations(Some(&other), Some(42)), None, 0),
        "update expected requeues mismatches: recorded over the job's, requeued as `requeue` does"
    );
    let rows = ops_of(store.as_ref(), &key(0)).await;
    let requeue = rows
        .iter()
        .find(|r| r.kind == OpKind::Requeue)
        .expect("update expected requeues mismatches: a REQUEUE row");
    assert_eq!(requeue.result.as_ref().expect("result")["reason"], "new expectation");
    assert_eq!(
        rows.iter().find(|r| r.op_key == head).and_then(|r| r.result_code),
        Some(ResultCode::Abandoned),
        "update expected requeues mismatches: effect rows superseded"
    );

    assert_eq!(
        update(&key(1), Some(&held), None).await.expect("update"),
        ExpectedUpdate::Recorded,
        "update expected requeues mismatches: content that meets them stays"
    );
    assert_eq!(
        update(&key(1), Some(&held), Some(42)).await.expect("update"),
        ExpectedUpdate::Unchanged
    );
    let job = store.job(&key(1)).await.expect("job");
    assert_eq!(
        (job.state, job.expectations()),
        (JobState::Success, expectations(Some(&held), Some(42)))
    );
    assert_eq!(
        update(&key(1), None, Some(7)).await.expect("update"),
        ExpectedUpdate::Requeued,
        "update expected requeues mismatches: a size the content lacks"
    );
    assert_eq!(
        update(&key(2), Some(&other), None).await.expect("update"),
        ExpectedUpdate::Requeued,
        "update expected requeues mismatches: SKIPPED_DUPLICATE"
    );
    assert_eq!(
        update(&key(3), Some(&other), None).await.expect("update"),
        ExpectedUpdate::InFlight(JobState::Leased),
        "update expected requeues mismatches: in flight"
    );
    assert_eq!(
        store.job(&key(3)).await.expect("job").expectations(),
        expectations(None, Some(42)),
        "update expected requeues mismatches: an in-flight job is left as it is"
    );
    assert_eq!(
        update(&planned, Some(&other), Some(5)).await.expect("update"),
        ExpectedUpdate::Recorded
    );
    let job = store.job(&planned).await.expect("job");
    assert_eq!(
        (job.state, job.expectations()),
        (JobState::Planned, expectations(Some(&other), Some(5)))
    );
    assert!(matches!(
        update("no-such-job", Some(&other), None).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        store.acquire(&request(OWNER, LONG, 10)).await.expect("acquire").len(),
        4,
        "the requeued jobs and the planned one are runnable again"
    );
}

/// `requeue_matching` requeues exactly the jobs its filter matches, each with
/// a REQUEUE row, and counts them by kind.
pub async fn requeue_matching_narrows(setup: Setup) {
    let store = setup.store;
    let jobs = vec![
        sample_job("rm-a", "a", "https://example.org/rm/a"),
        sample_job("rm-b", "a", "https://example.org/rm/b"),
        sample_job("rm-c", "a", "https://user@other.example:8080/rm/c"),
        sample_job("rm-d", "a", "https://example.org/rm/d"),
        sample_job("rm-e", "a", "https://example.org/rm/e"),
    ];
    store.plan(&jobs).await.expect("plan");
    let leases = store.acquire(&request(OWNER, LONG, 10)).await.expect("acquire");
    assert_eq!(leases.len(), 5);
    let lease_of = |work: &str| {
        leases
            .iter()
            .find(|l| l.job.work_id == work)
            .unwrap_or_else(|| panic!("{work} leased"))
    };
    let fail = |message: &str, retryable| JobPatch {
        failure: Some(JobFailure {
            message: message.into(),
            retryable,
            retry_after: Duration::ZERO,
            counts_attempt: true,
        }),
        ..JobPatch::default()
    };
    let a = lease_of("rm-a");
    let head = OpKeys {
        job_key: &a.fence.job_key,
    }
    .head(&a.job.canonical_url);
    let effect = || async { Ok::<_, String>(json!({ "status": 200 })) };
    run_effect(store.as_ref(), &a.fence, &head, OpKind::Head, effect)
        .await
        .expect("effect");
    for (work, message, retryable) in [
        ("rm-a", "503 service unavailable", true),
        ("rm-b", "404 not found", false),
        ("rm-c", "read timed out", true),
    ] {
        store
            .advance(&lease_of(work).fence, &[JobState::Failed], fail(message, retryable))
            .await
            .expect("fail");
    }
    store
        .advance(&lease_of("rm-d").fence, &JobState::PIPELINE[2..], JobPatch::default())
        .await
        .expect("succeed");
    let state_of = |work: &'static str| {
        let store = Arc::clone(&store);
        let key = lease_of(work).fence.job_key.clone();
        async move { store.job(&key).await.expect("job").state }
    };
    let requeue = |filter: RequeueFilter| {
        let store = Arc::clone(&store);
        async move {
            store
                .requeue_matching(&filter, "retry")
                .await
                .expect("requeue_matching")
        }
    };
    let failed = RequeueFilter::new(JobState::Failed);
    assert!(
        matches!(
            store
                .requeue_matching(&RequeueFilter::new(JobState::Leased), "retry")
                .await,
            Err(StoreError::InvalidTransition { .. })
        ),
        "filtered requeue: a state requeue cannot leave is refused"
    );
    let none = requeue(RequeueFilter {
        narrow: JobFilter {
            host: Some("other.example".into()),
            error: Some("503".into()),
            ..JobFilter::default()
        },
        ..failed.clone()
    })
    .await;
    assert_eq!(none, RequeueCounts::default(), "filtered requeue: filters combine");
    let by_error = requeue(RequeueFilter {
        narrow: JobFilter {
            error: Some("503".into()),
            ..JobFilter::default()
        },
        ..failed.clone()
    })
    .await;
    assert_eq!(
        (by_error, state_of("rm-a").await, state_of("rm-c").await),
        (
            RequeueCounts {
                retryable: 1,
                ..RequeueCounts::default()
            },
            JobState::Planned,
            JobState::Failed
        ),
        "filtered requeue: by last_error substring"
    );
    let rows = ops_of(store.as_ref(), &a.fence.job_key).await;
    let requeue_row = rows
        .iter()
        .find(|r| r.kind == OpKind::Requeue)
        .expect("filtered requeue: a REQUEUE row");
    assert_eq!(
        (
            requeue_row.result_code,
            requeue_row.result.as_ref().map(|r| r["superseded_ops"].clone())
        ),
        (Some(ResultCode::Ok), Some(json!(1))),
        "filtered requeue: the REQUEUE row counts the superseded effect rows"
    );
    assert_eq!(
        requeue_row.op_key,
        OpKeys {
            job_key: &a.fence.job_key
        }
        .epoch_action(OpKind::Requeue, a.fence.epoch)
    );
    assert_eq!(
        rows.iter().find(|r| r.op_key == head).and_then(|r| r.result_code),
        Some(ResultCode::Abandoned),
        "filtered requeue: OK effect rows are superseded"
    );
    let by_host = requeue(RequeueFilter {
        narrow: JobFilter {
            host: Some("other.example".into()),
            ..JobFilter::default()
        },
        ..failed.clone()
    })
    .await;
    assert_eq!(
        (by_host.retryable, state_of("rm-c").await),
        (1, JobState::Planned),
        "by host"
    );
    let permanent_left = requeue(failed.clone()).await;
    assert_eq!(
        (permanent_left, state_of("rm-b").await),
        (RequeueCounts::default(), JobState::Failed),
        "filtered requeue: non-retryable failures only with include_permanent"
    );
    let wrong_work = requeue(RequeueFilter {
        narrow: JobFilter {
            work_id: Some("rm-a".into()),
            ..JobFilter::default()
        },
        include_permanent: true,
        ..failed.clone()
    })
    .await;
    assert_eq!(wrong_work.total(), 0, "by work id");
    let permanent = requeue(RequeueFilter {
        narrow: JobFilter {
            work_id: Some("rm-b".into()),
            ..JobFilter::default()
        },
        include_permanent: true,
        ..failed
    })
    .await;
    assert_eq!((permanent.permanent, permanent.total()), (1, 1));
    let finished = requeue(RequeueFilter {
        narrow: JobFilter {
            job_key: Some(lease_of("rm-d").fence.job_key.clone()),
            ..JobFilter::default()
        },
        ..RequeueFilter::new(JobState::Success)
    })
    .await;
    assert_eq!(
        (finished.finished, finished.total(), state_of("rm-d").await),
        (1, 1, JobState::Planned),
        "by job key"
    );
    assert_eq!(
        state_of("rm-e").await,
        JobState::Leased,
        "jobs in flight are never requeued"
    );
    assert_eq!(store.status().await.expect("status").get(JobState::Planned), 4);
}

/// The ledger lists attempts in order, by job and by page.
pub async fn ops_are_listed_in_order(setup: Setup) {
    let store = setup.store;
    store.plan(&sample_jobs("list", 2)).await.expect("plan");
    let leases = store.acquire(&request(OWNER, LONG, 2)).await.expect("acquire");
    for lease in &leases {
        let keys = OpKeys {
            job_key: &lease.fence.job_key,
        };
        for (key, kind) in [
            (keys.head(&lease.job.canonical_url), OpKind::Head),
            (keys.stream(&lease.job.canonical_url, 0), OpKind::Stream),
        ] {
            run_effect(store.as_ref(), &lease.fence, &key, kind, || async {
                Ok::<_, String>(json!(1))
            })
            .await
            .expect("effect");
        }
    }
    store
        .note(
            &leases[0].fence.job_key,
            "cleanup-key",
            OpKind::Cleanup,
            &json!({"removed": "x"}),
        )
        .await
        .expect("note");
    store
        .note(
            &leases[0].fence.job_key,
            "cleanup-key",
            OpKind::Cleanup,
            &json!({"removed": "x"}),
        )
        .await
        .expect("note again");
    let all = store.ops(&OpQuery::default()).await.expect("ops");
    assert_eq!(
        all.len(),
        5,
        "two ops per job and one note (a repeated note is one row)"
    );
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq), "ordered by seq");
    let page = store
        .ops(&OpQuery {
            after_seq: Some(all[1].seq),
            limit: 2,
            ..OpQuery::default()
        })
        .await
        .expect("ops");
    assert_eq!(page, all[2..4].to_vec(), "pagination by seq");
    assert_eq!(ops_of(store.as_ref(), &leases[1].fence.job_key).await.len(), 2);
}

/// A failed request that never reached STREAMING still counts an attempt
/// when the failure says so (a 503 to the GET), and only then.
pub async fn failure_before_streaming_counts_an_attempt(setup: Setup) {
    let store = setup.store;
    store.plan(&sample_jobs("attempt", 1)).await.expect("plan");
    let fail = |counts_attempt| JobPatch {
        failure: Some(JobFailure {
            message: "503 service unavailable".into(),
            retryable: true,
            retry_after: Duration::ZERO,
            counts_attempt,
        }),
        ..JobPatch::default()
    };
    let lease = lease_one(store.as_ref(), OWNER, LONG).await;
    store
        .advance(&lease.fence, &[JobState::Failed], fail(true))
        .await
        .expect("fail");
    assert_eq!(
        store.job(&lease.fence.job_key).await.expect("job").attempts,
        1,
        "counts_attempt counts"
    );
    let lease = lease_one(store.as_ref(), OWNER, LONG).await;
    store
        .advance(&lease.fence, &[JobState::Failed], fail(false))
        .await
        .expect("fail");
    assert_eq!(
        store.job(&lease.fence.job_key).await.expect("job").attempts,
        1,
        "no request, no attempt"
    );
}

/// **request budget**: two handles claiming one host's request slots at
/// once never get overlapping slots, nor slots closer than the interval;
/// no slot is earlier than now by the store clock; another host has a
/// budget of its own.
pub async fn request_budget_is_shared(setup: Setup) {
    const INTERVAL: Duration = Duration::from_millis(250);
    let before = setup.store.now().await.expect("now");
    let claims = |store: Arc<dyn Store>| {
        tokio::spawn(async move {
            let mut got = Vec::new();
            for round in 0..10u32 {
                let slots: RequestSlots = store
                    .claim_request_slots("budget.example:443", INTERVAL, 1 + round % 3)
                    .await
                    .expect("claim");
                assert_eq!(slots.count, 1 + round % 3, "the slots asked for");
                assert_eq!(slots.interval_ms, 250, "at the interval asked for");
                got.extend(slots.times());
            }
            got
        })
    };
    let (a, b) = (claims(Arc::clone(&setup.store)), claims(Arc::clone(&setup.other)));
    let mut slots = a.await.expect("claims a");
    slots.extend(b.await.expect("claims b"));
    slots.sort_unstable();
    let asked: usize = (0..10).map(|round| 1 + round % 3).sum();
    assert_eq!(slots.len(), 2 * asked, "every slot claimed");
    assert!(slots[0] >= before, "a slot before now: {} < {before}", slots[0]);
    for pair in slots.windows(2) {
        assert!(
            pair[1] - pair[0] >= 250,
            "slots {} and {} closer than the interval (or the same)",
            pair[0],
            pair[1]
        );
    }
    let other = setup
        .store
        .claim_request_slots("other.example:443", INTERVAL, 0)
        .await
        .expect("claim another host");
    let now = setup.store.now().await.expect("now");
    assert_eq!(other.count, 1, "a claim takes at least one slot");
    assert!(
        other.first <= now && other.first >= before,
        "another host's budget is its own: its slot is now, not after the first host's"
    );
    assert!(other.first < slots[slots.len() - 1], "another host waits for no one");
}

/// **watch counts**: jobs per host and state group, finishes per minute,
/// FAILED jobs, live leases by expiry and the workers seen, kept as jobs
/// are planned, step, finish and are requeued.
pub async fn watch_counts(setup: Setup) {
    let store = setup.store;
    let empty = store.watch(&WatchQuery::default()).await.expect("watch");
    assert!(
        empty.hosts.is_empty() && empty.minutes.is_empty() && empty.workers.is_empty(),
        "watch counts: an empty ledger shows nothing: {empty:?}"
    );
    let mut jobs: Vec<NewJob> = (0..4)
        .map(|i| sample_job(&format!("watch-a{i}"), "a", &format!("https://a.example/x/{i}")))
        .collect();
    jobs.extend((0..2).map(|i| {
        sample_job(
            &format!("watch-b{i}"),
            "a",
            &format!("https://u:p@b.example:8443/y/{i}"),
        )
    }));
    store.plan(&jobs).await.expect("plan");
    let mut mine = Vec::new();
    for job in &jobs[..4] {
        let lease = store
            .acquire_job(&job.job_key, &request(OWNER, LONG, 1))
            .await
            .expect("acquire");
        mine.push(lease.expect("runnable: a planned job is granted"));
    }
    let theirs = store
        .acquire_job(&jobs[4].job_key, &request(OTHER_OWNER, LONG, 1))
        .await
        .expect("acquire");
    let theirs = [theirs.expect("runnable: a planned job is granted")];
    let key = |lease: &Lease| lease.fence.job_key.clone();
    let done = JobPatch {
        sha256: Some("cd".repeat(32)),
        size: Some(100),
        ..JobPatch::default()
    };
    store
        .advance(&mine[0].fence, &JobState::PIPELINE[2..], done)
        .await
        .expect("succeed");
    let to_streaming = [JobState::HeadDone, JobState::ResumeOk, JobState::Streaming];
    store
        .advance(&mine[1].fence, &to_streaming, JobPatch::default())
        .await
        .expect("stream");
    let failure = JobPatch {
        failure: Some(JobFailure {
            message: "server answered 503".into(),
            retryable: true,
            retry_after: LONG,
            counts_attempt: false,
        }),
        ..JobPatch::default()
    };
    store
        .advance(&mine[1].fence, &[JobState::Failed], failure)
        .await
        .expect("fail");
    store
        .advance(&mine[2].fence, &to_streaming, JobPatch::default())
        .await
        .expect("stream");
    store
        .advance(&mine[3].fence, &[JobState::SkippedDuplicate], JobPatch::default())
        .await
        .expect("skip");

    let watch = store.watch(&WatchQuery::default()).await.expect("watch");
    let a = HostCounts {
        host: "a.example".into(),
        planned: 0,
        in_flight: 1,
        succeeded: 1,
        skipped: 1,
        failed: 1,
        bytes: 100,
        recent_finished: 3,
    };
    let b = HostCounts {
        host: "b.example:8443".into(),
        planned: 1,
        in_flight: 1,
        ..HostCounts::default()
    };
    assert_eq!(
        watch.hosts,
        vec![a.clone(), b],
        "watch counts: jobs per host (HOST:PORT, no user info) and state group, the most jobs first"
    );
    let sum = |f: fn(&crate::watch::MinuteCounts) -> u64| watch.minutes.iter().map(f).sum::<u64>();
    assert_eq!(
        (
            sum(|m| m.succeeded),
            sum(|m| m.skipped),
            sum(|m| m.failed),
            sum(|m| m.bytes)
        ),
        (1, 1, 1, 100),
        "watch counts: each finish counted once in its minute: {:?}",
        watch.minutes
    );
    assert!(
        watch
            .minutes
            .iter()
            .all(|m| m.minute % 60_000 == 0 && m.minute <= watch.now)
            && watch.minutes.windows(2).all(|w| w[0].minute < w[1].minute),
        "watch counts: minutes are minute starts, oldest first: {:?}",
        watch.minutes
    );
    assert_eq!(
        watch.failed.iter().map(|j| j.job_key.clone()).collect::<Vec<_>>(),
        vec![key(&mine[1])],
        "watch counts: the FAILED jobs"
    );
    let mut in_flight: Vec<String> = watch.in_flight.iter().map(|j| j.job_key.clone()).collect();
    assert!(
        watch
            .in_flight
            .windows(2)
            .all(|w| w[0].lease_expires_at <= w[1].lease_expires_at),
        "watch counts: live leases, the earliest expiry first"
    );
    in_flight.sort();
    let mut expected = vec![key(&mine[2]), key(&theirs[0])];
    expected.sort();
    assert_eq!(in_flight, expected, "watch counts: the jobs a live lease holds");
    assert!(
        watch.in_flight.iter().all(|j| j.lease_owner.is_some()),
        "watch counts: in-flight jobs show their lease owner"
    );
    let workers: Vec<(String, u64)> = watch.workers.iter().map(|w| (w.owner.clone(), w.live_leases)).collect();
    assert_eq!(
        workers,
        vec![(OWNER.to_owned(), 1), (OTHER_OWNER.to_owned(), 1)],
        "watch counts: the lease owners seen, by owner"
    );
    let small = WatchQuery {
        hosts: 1,
        failed: 0,
        in_flight: 1,
        ..WatchQuery::default()
    };
    let cut = store.watch(&small).await.expect("watch");
    assert_eq!(
        (cut.hosts.len(), cut.failed.len(), cut.in_flight.len()),
        (1, 0, 1),
        "watch counts: limits hold"
    );

    // Requeued, the SUCCESS job counts as PLANNED again; its finish stays.
    assert!(store.requeue(&key(&mine[0]), "watch").await.expect("requeue"));
    let after = store.watch(&WatchQuery::default()).await.expect("watch");
    let requeued = HostCounts {
        planned: 1,
        succeeded: 0,
        bytes: 0,
        ..a
    };
    assert_eq!(
        after.hosts.first(),
        Some(&requeued),
        "watch counts: a requeued job leaves its group for PLANNED"
    );
    let status = store.status().await.expect("status");
    assert_eq!(
        (
            status.get(JobState::Planned),
            status.get(JobState::Success),
            status.get(JobState::Failed),
            status.get(JobState::SkippedDuplicate),
            status.bytes_done,
            status.total()
        ),
        (2, 0, 1, 1, 0, 6),
        "watch counts: status agrees with the counters"
    );
}
