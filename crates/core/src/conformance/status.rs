//! The read clauses of [`LedgerStore`](crate::LedgerStore): status,
//! outstanding and watch.

use std::time::Duration;

use super::*;
use crate::job::{FailedSplit, JobFailure, JobPatch, JobQuery, NewJob, RetryableFailed};
use crate::lease::Lease;
use crate::ledger::LedgerExt;
use crate::state::JobState;
use crate::watch::{HostCounts, WatchQuery};

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
        let patch = failing(JobFailure {
            message: "503 service unavailable".into(),
            retryable,
            retry_after,
            counts_attempt,
        });
        stream_then_fail(store.as_ref(), &lease.fence, patch).await;
    }
    // The last job stays in flight, streaming.
    store
        .advance(&leases[6].fence, &TO_STREAMING, JobPatch::default())
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

/// `outstanding` with `within` leaves out a retryable FAILED job whose next
/// attempt is due later than now + `within`, and counts it otherwise.
pub async fn far_retries_are_not_waited_for(setup: Setup) {
    let store = setup.store;
    store.plan(&sample_jobs("far", 2)).await.expect("plan");
    let hour = Duration::from_secs(3600);
    let lease = lease_one(store.as_ref(), OWNER, LONG).await;
    let patch = failing(JobFailure {
        message: "429 too many requests".into(),
        retryable: true,
        retry_after: hour,
        counts_attempt: true,
    });
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
    let due_in = job.next_attempt_at.expect("next attempt") - crate::job::wall_clock();
    assert!((3_500_000..=3_600_000).contains(&due_in), "due in {due_in} ms");
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
    // The four jobs of a.example go to one owner, one of b.example to the
    // other.
    store.plan(&jobs[..4]).await.expect("plan");
    let mine = store.acquire(&request(OWNER, LONG, 4)).await.expect("acquire");
    assert_eq!(mine.len(), 4, "runnable: a planned job is granted");
    store.plan(&jobs[4..]).await.expect("plan");
    let theirs = store.acquire(&request(OTHER_OWNER, LONG, 1)).await.expect("acquire");
    assert_eq!(theirs.len(), 1, "runnable: a planned job is granted");
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
    let failure = failing(JobFailure {
        message: "server answered 503".into(),
        retryable: true,
        retry_after: LONG,
        counts_attempt: false,
    });
    stream_then_fail(store.as_ref(), &mine[1].fence, failure).await;
    store
        .advance(&mine[2].fence, &TO_STREAMING, JobPatch::default())
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
