//! The clauses of [`LeaseManager`](crate::LeaseManager): grants and their
//! epochs, the runnable rule, expiry and attempts, exclusivity, renew,
//! release and reconcile.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::*;
use crate::job::{JobFailure, JobPatch, JobQuery};
use crate::key::OpKeys;
use crate::lease::{AcquireRequest, Lease};
use crate::ledger::{run_effect, LedgerExt, OpBegin, OpKind, ResultCode};
use crate::state::JobState;

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
            .advance(&fence, &TO_STREAMING, JobPatch::default())
            .await
            .expect("stream");
    }
    let fail = failing(JobFailure {
        message: "503 service unavailable".into(),
        retryable: true,
        retry_after: Duration::ZERO,
        counts_attempt: false,
    });
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
            .advance(&fence, &TO_STREAMING, JobPatch::default())
            .await
            .expect("stream again");
    }
    let stream_key = OpKeys { job_key: &a }.stream(&jobs[0].canonical_url, 0);
    let dead = fence_of(&second, &a);
    assert_eq!(
        store.begin_op(&dead, &stream_key, OpKind::Stream).await.expect("begin"),
        OpBegin::Run
    );
    // a's lease outlives the others', so that a grant meets g's expired
    // lease before reconcile and a's only after it.
    let a_ttl = SHORT * 4;
    store.renew(&dead, a_ttl).await.expect("renew a");
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
    // g, not reconciled yet; a's lease still live.
    let third = store.acquire(&two(OWNER, LONG)).await.expect("acquire");
    assert!(
        third.iter().all(|l| l.fence.job_key != g),
        "expired out of attempts: a job with no attempts left is not leased again"
    );
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
    // a, after reconcile.
    wait_past(a_ttl).await;
    let report = store.reconcile(Duration::ZERO).await.expect("reconcile");
    assert_eq!(
        report.expired_leases, 1,
        "reconcile frees a (g failed; c, d and e leased again)"
    );
    assert!(
        store.acquire(&two(OWNER, LONG)).await.expect("acquire").is_empty(),
        "expired out of attempts: a reconciled job with no attempts left is not leased again"
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
    store
        .advance(&lease.fence, &TO_STREAMING, JobPatch::default())
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
        .advance(&third.fence, &TO_STREAMING, JobPatch::default())
        .await
        .expect("streaming");
    let retry = failing(JobFailure {
        message: "503".into(),
        retryable: true,
        retry_after: Duration::ZERO,
        // Counted at STREAMING already, as the worker does.
        counts_attempt: false,
    });
    store
        .advance(&third.fence, &[JobState::Failed], retry)
        .await
        .expect("fail");
    let fourth = lease_one(store.as_ref(), OWNER, LONG).await;
    store
        .advance(&fourth.fence, &TO_STREAMING, JobPatch::default())
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

/// A retryable FAILED job waits out its backoff and stops at max attempts.
pub async fn failed_jobs_back_off_until_max_attempts(setup: Setup) {
    let store = setup.store;
    store.plan(&sample_jobs("backoff", 1)).await.expect("plan");
    let fail = || {
        failing(JobFailure {
            message: "503 service unavailable".into(),
            retryable: true,
            retry_after: SHORT,
            counts_attempt: false,
        })
    };
    let two = |owner: &str| AcquireRequest {
        max_attempts: 2,
        ..request(owner, LONG, 5)
    };
    let mut leases = store.acquire(&two(OWNER)).await.expect("acquire");
    let lease = leases.remove(0);
    stream_then_fail(store.as_ref(), &lease.fence, fail()).await;
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
    stream_then_fail(store.as_ref(), &lease.fence, fail()).await;
    wait_past(SHORT).await;
    assert!(
        store.acquire(&two(OWNER)).await.expect("acquire").is_empty(),
        "no grant once attempts reach max_attempts"
    );
    assert_eq!(store.outstanding(2, None).await.expect("outstanding"), 0);
    assert_eq!(store.outstanding(3, None).await.expect("outstanding"), 1);
}

/// An attempt whose epoch lost its lease is ABANDONED and runs again.
pub async fn abandoned_op_reruns_under_new_epoch(setup: Setup) {
    let (store, other) = (setup.store, setup.other);
    store.plan(&sample_jobs("abandon", 1)).await.expect("plan");
    let old = lease_one(store.as_ref(), OWNER, SHORT).await;
    let key = OpKeys {
        job_key: &old.fence.job_key,
    }
    .stream(&old.job.canonical_url, 0);
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
