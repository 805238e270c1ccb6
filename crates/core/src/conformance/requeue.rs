//! The requeue clauses of [`LedgerStore`](crate::LedgerStore): requeue,
//! expectation updates and filtered requeue.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::*;
use crate::error::StoreError;
use crate::job::{ExpectedUpdate, JobFailure, JobFilter, JobPatch, JobQuery};
use crate::key::OpKeys;
use crate::ledger::{run_effect, LedgerExt, OpKind, RequeueCounts, RequeueFilter, ResultCode};
use crate::state::JobState;

/// `requeue` sends FAILED and finished jobs back to PLANNED with a REQUEUE row.
pub async fn requeue_resets_finished_jobs(setup: Setup) {
    let store = setup.store;
    store.plan(&sample_jobs("requeue", 2)).await.expect("plan");
    let leases = store.acquire(&request(OWNER, LONG, 2)).await.expect("acquire");
    let fail = failing(JobFailure {
        message: "404 not found".into(),
        retryable: false,
        retry_after: Duration::ZERO,
        counts_attempt: false,
    });
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
    let fail = |message: &str, retryable| {
        failing(JobFailure {
            message: message.into(),
            retryable,
            retry_after: Duration::ZERO,
            counts_attempt: true,
        })
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
