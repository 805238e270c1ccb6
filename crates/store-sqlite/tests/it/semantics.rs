//! Behaviour of this store beyond the conformance kit.

use std::time::{Duration, Instant};

use oncefetch_core::conformance::{sample_job, sample_jobs};
use oncefetch_core::{
    AcquireRequest, ArtifactEntry, Commit, Fence, IndexOp, JobPatch, JobQuery, JobState, LeaseManager, LedgerExt,
    LedgerStore, OpBegin, OpKeys, OpKind, OpQuery, OpStart, ResultCode, StoreError,
};
use oncefetch_store_sqlite::{SqliteOptions, SqliteStore};
use serde_json::json;

fn request(owner: &str, limit: usize) -> AcquireRequest {
    AcquireRequest {
        owner: owner.to_owned(),
        ttl: Duration::from_secs(60),
        limit,
        max_attempts: 3,
    }
}

#[tokio::test]
async fn planned_jobs_are_granted_in_planning_order() {
    let store = crate::fresh_store().await;
    let jobs = sample_jobs("fifo", 20);
    store.plan(&jobs).await.expect("plan");
    let mut granted = Vec::new();
    for _ in 0..4 {
        let leases = store.acquire(&request("w", 5)).await.expect("acquire");
        granted.extend(leases.into_iter().map(|l| l.fence.job_key));
    }
    let planned: Vec<_> = jobs.iter().map(|j| j.job_key.clone()).collect();
    assert_eq!(granted, planned, "FIFO: planning order, not key order");
}

#[tokio::test]
async fn a_busy_url_at_the_head_does_not_block_the_queue() {
    let store = crate::fresh_store().await;
    let jobs = vec![
        sample_job("w1", "a", "https://example.org/same"),
        sample_job("w2", "a", "https://example.org/same"),
        sample_job("w3", "a", "https://example.org/same"),
        sample_job("w4", "a", "https://example.org/other"),
    ];
    store.plan(&jobs).await.expect("plan");
    let first = store.acquire(&request("w", 1)).await.expect("acquire");
    assert_eq!(first[0].fence.job_key, jobs[0].job_key);
    let second = store.acquire(&request("w", 10)).await.expect("acquire");
    let keys: Vec<_> = second.iter().map(|l| l.fence.job_key.clone()).collect();
    assert_eq!(keys, vec![jobs[3].job_key.clone()], "the same-URL twins wait");
    // One batch never holds two jobs of one URL, even from a fresh queue.
    store.release(&first[0].fence).await.expect("release");
    let third = store.acquire(&request("w", 10)).await.expect("acquire");
    assert_eq!(third.len(), 1, "the released job (or a twin), once");
    assert_eq!(third[0].job.canonical_url, "https://example.org/same");
    assert_eq!(
        third[0].fence.job_key, jobs[0].job_key,
        "the released in-flight job goes first"
    );
    assert_eq!(third[0].previous_state, JobState::Leased);
}

#[tokio::test]
async fn planning_in_chunks_counts_new_and_existing() {
    let store = crate::fresh_store().await;
    let jobs = sample_jobs("chunks", 1500);
    let first = store.plan(&jobs[..1100]).await.expect("plan");
    assert_eq!((first.new, first.existing), (1100, 0));
    // Overlap, plus a job repeated within one call.
    let mut again = jobs[1000..].to_vec();
    again.push(jobs[1499].clone());
    let second = store.plan(&again).await.expect("plan");
    assert_eq!((second.new, second.existing), (400, 101));
    assert_eq!(store.status().await.expect("status").get(JobState::Planned), 1500);
    let job = store.job(&jobs[1234].job_key).await.expect("job");
    assert_eq!(job.work_id, jobs[1234].work_id);
    assert_eq!(job.expected_size, Some(42));
}

#[tokio::test]
async fn planning_in_chunks_reports_other_expectations_by_position() {
    let store = crate::fresh_store().await;
    let jobs = sample_jobs("chunk-expect", 1101);
    store.plan(&jobs[..1100]).await.expect("plan");
    let hash = "e5".repeat(32);
    // Conflicts in both 512-job chunks, in the one-row remainder, and a new
    // key met again with another hash in the same call.
    let mut again = jobs[..1100].to_vec();
    again[3].expected_size = Some(43);
    again[700].expected_sha256 = Some(hash.clone());
    again[1030].expected_sha256 = Some(hash.clone());
    again.push(jobs[1100].clone());
    let mut twin = jobs[1100].clone();
    twin.expected_sha256 = Some(hash);
    again.push(twin);
    let counts = store.plan(&again).await.expect("plan again");
    assert_eq!((counts.new, counts.existing), (1, 1101));
    let positions: Vec<u64> = counts.conflicts.iter().map(|c| c.position).collect();
    assert_eq!(positions, vec![3, 700, 1030, 1101]);
    assert_eq!(counts.conflicts[0].recorded.size, Some(42));
    assert_eq!(counts.conflicts[3].job_key, jobs[1100].job_key);
}

#[tokio::test]
async fn sizes_beyond_i64_are_refused_not_wrapped() {
    let store = crate::fresh_store().await;
    let mut job = sample_job("big", "a", "https://example.org/big");
    job.expected_size = Some(u64::MAX);
    let err = store.plan(&[job]).await.expect_err("u64::MAX does not fit");
    assert!(err.to_string().contains("does not fit"), "{err}");
    assert_eq!(store.status().await.expect("status").total(), 0, "nothing planned");
}

#[tokio::test]
async fn the_ledger_survives_reopening_and_migrates_once() {
    let path = crate::fresh_db_path();
    let url = path.to_str().expect("utf-8").to_owned();
    {
        let store = SqliteStore::open(&url).await.expect("open");
        store.plan(&sample_jobs("reopen", 3)).await.expect("plan");
    }
    let store = SqliteStore::open(&url).await.expect("reopen");
    assert_eq!(store.status().await.expect("status").total(), 3);
    drop(store);
    let conn = rusqlite::Connection::open(&path).expect("raw open");
    let versions: Vec<i64> = conn
        .prepare("SELECT version FROM schema_version")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(versions, vec![1, 2, 3, 4, 5, 6, 7, 8]);
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).expect("pragma");
    assert_eq!(mode, "wal");
    conn.execute("INSERT INTO schema_version (version, applied_at) VALUES (99, 0)", [])
        .expect("insert");
    drop(conn);
    let err = SqliteStore::open(&url).await.expect_err("newer schema");
    assert!(err.to_string().contains("newer than this build"), "{err}");
}

/// A ledger of schema version 1 keeps its jobs through migration 3, which
/// stores a canonical URL only when it differs from the URL; planning keeps
/// both kinds apart, and the jobs read and filter by canonical URL as before.
#[tokio::test]
async fn migration_3_keeps_canonical_urls() {
    let path = crate::fresh_db_path();
    let url = path.to_str().expect("utf-8").to_owned();
    let same = sample_job("w1", "a", "https://example.org/same.pdf");
    let other = sample_job("w2", "a", "HTTPS://Example.org:443/other.pdf");
    assert_eq!(same.canonical_url, same.url);
    assert_ne!(other.canonical_url, other.url);
    {
        let conn = rusqlite::Connection::open(&path).expect("raw open");
        conn.execute_batch(include_str!("../../sql/migrations/0001_init.sql"))
            .expect("schema 1");
        conn.execute_batch(
            "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL);
             INSERT INTO schema_version VALUES (1, 0);",
        )
        .expect("version 1");
        for job in [&same, &other] {
            conn.execute(
                "INSERT INTO jobs (job_key, work_id, artifact_id, url, canonical_url) VALUES (?1, ?2, ?3, ?4, ?5)",
                [
                    &job.job_key,
                    &job.work_id,
                    &job.artifact_id,
                    &job.url,
                    &job.canonical_url,
                ],
            )
            .expect("v1 row");
        }
    }
    let store = SqliteStore::open(&url).await.expect("migrate");
    // Planned after the migration: an empty canonical URL stays empty.
    let mut empty = sample_job("w3", "a", "https://example.org/empty.pdf");
    empty.canonical_url = String::new();
    store
        .plan(&[same.clone(), other.clone(), empty.clone()])
        .await
        .expect("plan");
    let jobs = store.jobs(&JobQuery::default()).await.expect("jobs");
    assert_eq!(jobs.len(), 3, "the two v1 jobs stay planned once");
    for job in [&same, &other, &empty] {
        let found = jobs.iter().find(|j| j.job_key == job.job_key).expect("job");
        assert_eq!((&found.url, &found.canonical_url), (&job.url, &job.canonical_url));
        let query = JobQuery {
            canonical_url: Some(job.canonical_url.clone()),
            ..JobQuery::default()
        };
        let by_url = store.jobs(&query).await.expect("by url");
        assert_eq!(by_url.len(), 1, "{}", job.canonical_url);
    }
    drop(store);
    let conn = rusqlite::Connection::open(&path).expect("raw open");
    let kinds: Vec<String> = conn
        .prepare("SELECT typeof(canonical_url_if_other) FROM jobs ORDER BY planned_seq")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(
        kinds,
        ["blob", "text", "text"],
        "only differing canonical URLs are stored"
    );
}

#[tokio::test]
async fn commit_conflicts_write_nothing() {
    let store = crate::fresh_store().await;
    store.plan(&sample_jobs("conflict", 1)).await.expect("plan");
    let lease = store.acquire(&request("w", 1)).await.expect("acquire").remove(0);
    let fence = &lease.fence;
    let key = OpKeys {
        job_key: &fence.job_key,
    }
    .head(&lease.job.canonical_url);
    // Finishing an op that never started.
    let err = store.finish_op(fence, &key, ResultCode::Ok, json!(1)).await;
    assert!(
        matches!(&err, Err(StoreError::OpNotRunning { op_key, epoch: 1 }) if *op_key == key),
        "{err:?}"
    );
    // Starting the same op twice under one epoch.
    assert_eq!(
        store.begin_op(fence, &key, OpKind::Head).await.expect("begin"),
        OpBegin::Run
    );
    let err = store.begin_op(fence, &key, OpKind::Head).await;
    assert!(
        matches!(&err, Err(StoreError::OpAlreadyAttempted { op_key, epoch: 1 }) if *op_key == key),
        "{err:?}"
    );
    // Steps plus an op start on a job the steps end: refused as a whole.
    let commit = Commit {
        steps: JobState::PIPELINE[2..].to_vec(),
        begin: Some(OpStart {
            op_key: "late".into(),
            kind: OpKind::Index,
        }),
        ..Commit::default()
    };
    let err = store.commit(fence, &commit).await;
    assert!(
        matches!(
            err,
            Err(StoreError::OpOutsideFlight {
                state: JobState::Success
            })
        ),
        "{err:?}"
    );
    let job = store.job(&fence.job_key).await.expect("job");
    assert_eq!(job.state, JobState::Leased, "all or nothing");
    // Finish, steps and the next begin in one commit; the next begin of an
    // OK op replays its result.
    let stream = OpKeys {
        job_key: &fence.job_key,
    }
    .stream(&lease.job.canonical_url, 0);
    let commit = Commit {
        finish: Some(oncefetch_core::OpFinish {
            op_key: key.clone(),
            code: ResultCode::Ok,
            result: json!({"status": 200, "nested": {"b": [1, 2], "a": null}}),
        }),
        steps: vec![JobState::HeadDone, JobState::ResumeOk],
        patch: JobPatch {
            etag: Some("\"v1\"".into()),
            remote_size: Some(42),
            ..JobPatch::default()
        },
        index: None,
        begin: Some(OpStart {
            op_key: stream.clone(),
            kind: OpKind::Stream,
        }),
        settle: None,
    };
    let outcome = store.commit(fence, &commit).await.expect("commit");
    assert_eq!(outcome.begun, Some(OpBegin::Run));
    let job = store.job(&fence.job_key).await.expect("job");
    assert_eq!(
        (job.state, job.etag.as_deref(), job.remote_size),
        (JobState::ResumeOk, Some("\"v1\""), Some(42))
    );
    assert_eq!(
        store.begin_op(fence, &key, OpKind::Head).await.expect("replay"),
        OpBegin::Replay(json!({"status": 200, "nested": {"b": [1, 2], "a": null}}))
    );
}

#[tokio::test]
async fn a_note_is_written_once_per_op_key() {
    let store = crate::fresh_store().await;
    store.plan(&sample_jobs("note", 1)).await.expect("plan");
    let job_key = sample_jobs("note", 1)[0].job_key.clone();
    store
        .note(&job_key, "cleanup-1", OpKind::Cleanup, &json!({"kept": "f"}))
        .await
        .expect("note");
    let lease = store.acquire(&request("w", 1)).await.expect("acquire").remove(0);
    store.release(&lease.fence).await.expect("release");
    // Under a later epoch the same op key is still one OK row (SPEC §5).
    store
        .note(&job_key, "cleanup-1", OpKind::Cleanup, &json!({"kept": "f"}))
        .await
        .expect("note");
    let rows = store
        .ops(&OpQuery {
            job_key: Some(job_key.clone()),
            ..OpQuery::default()
        })
        .await
        .expect("ops");
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].kind, rows[0].epoch, rows[0].result_code),
        (OpKind::Cleanup, 0, Some(ResultCode::Ok))
    );
    assert!(matches!(
        store.note("missing", "k", OpKind::Cleanup, &json!(null)).await,
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn renewing_a_missing_job_is_lease_lost() {
    let store = crate::fresh_store().await;
    let gone = Fence {
        job_key: "missing".into(),
        epoch: 1,
        owner: "w".into(),
    };
    assert!(matches!(
        store.renew(&gone, Duration::from_secs(1)).await,
        Err(StoreError::LeaseLost { .. })
    ));
}

#[tokio::test]
async fn reconcile_respects_stale_after() {
    let store = crate::fresh_store().await;
    store.plan(&sample_jobs("stale", 2)).await.expect("plan");
    let short = AcquireRequest {
        ttl: Duration::from_millis(100),
        ..request("w", 2)
    };
    let leases = store.acquire(&short).await.expect("acquire");
    assert_eq!(leases.len(), 2);
    tokio::time::sleep(Duration::from_millis(250)).await;
    let report = store.reconcile(Duration::from_secs(3600)).await.expect("reconcile");
    assert_eq!(report.expired_leases, 0, "expired, but not for an hour");
    let report = store.reconcile(Duration::from_millis(50)).await.expect("reconcile");
    assert_eq!(report.expired_leases, 2);
    let job = store.job(&leases[0].fence.job_key).await.expect("job");
    assert_eq!(
        (job.state, job.lease_owner, job.lease_expires_at),
        (JobState::Leased, None, None)
    );
}

/// Reconcile frees a lease by moving its mark: the job row keeps its lease
/// columns, reads show the lease gone, and the job is granted again.
#[tokio::test]
async fn reconcile_rewrites_no_job_row() {
    let path = crate::fresh_db_path();
    let store = SqliteStore::open(path.to_str().expect("utf-8 path"))
        .await
        .expect("open");
    store.plan(&sample_jobs("mark", 3)).await.expect("plan");
    let short = AcquireRequest {
        ttl: Duration::from_millis(50),
        ..request("gone", 2)
    };
    let expired = store.acquire(&short).await.expect("acquire");
    let live = store.acquire(&request("w", 1)).await.expect("acquire");
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!((expired.len(), live.len()), (2, 1));
    let report = store.reconcile(Duration::ZERO).await.expect("reconcile");
    assert_eq!(report.expired_leases, 2, "only the expired leases");
    let raw = rusqlite::Connection::open(&path).expect("raw open");
    let owners: i64 = raw
        .query_row(
            "SELECT COUNT(*) FROM jobs WHERE lease_owner = 'gone' AND lease_expires_at IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(owners, 2, "the freed rows are not rewritten");
    let freed = store.job(&expired[0].fence.job_key).await.expect("job");
    assert_eq!((freed.lease_owner, freed.lease_expires_at), (None, None));
    let listed = store.jobs(&JobQuery::default()).await.expect("jobs");
    let shown: Vec<Option<&str>> = listed.iter().map(|j| j.lease_owner.as_deref()).collect();
    assert_eq!(
        (
            shown.iter().filter(|o| o.is_none()).count(),
            shown.iter().filter(|o| *o == &Some("w")).count()
        ),
        (2, 1),
        "the live lease stays shown"
    );
    let regranted = store.acquire(&request("again", 5)).await.expect("acquire");
    assert_eq!(regranted.len(), 2, "the freed jobs, not the live one");
    let report = store.reconcile(Duration::ZERO).await.expect("reconcile");
    assert_eq!(report.expired_leases, 0, "each expiry is counted once");
}

#[tokio::test]
async fn artifacts_round_trip() {
    let store = crate::fresh_store().await;
    store.plan(&sample_jobs("art", 1)).await.expect("plan");
    let lease = store.acquire(&request("w", 1)).await.expect("acquire").remove(0);
    let entry = ArtifactEntry {
        sha256: "12".repeat(32),
        path: "/out/w/ä b".into(),
        size: 1 << 40,
        job_key: lease.fence.job_key.clone(),
    };
    let index = Commit {
        index: Some(IndexOp {
            op_key: OpKeys {
                job_key: &lease.fence.job_key,
            }
            .content(OpKind::Index, &entry.sha256),
            entry: entry.clone(),
        }),
        ..Commit::default()
    };
    let outcome = store.commit(&lease.fence, &index).await.expect("index");
    assert_eq!(outcome.first_path.as_deref(), Some(entry.path.as_str()));
    assert_eq!(store.artifact(&entry.sha256).await.expect("get"), Some(entry));
}

/// Another connection holds the write lock for longer than the store's
/// busy timeout: the store waits and succeeds, never returning a lock error.
#[tokio::test]
async fn a_held_lock_is_waited_out() {
    let path = crate::fresh_db_path();
    let options = SqliteOptions::new(&path).busy_timeout(Duration::from_millis(50));
    let store = SqliteStore::open_with(options).await.expect("open");
    let (locked, lock_taken) = std::sync::mpsc::channel();
    let holder_path = path.clone();
    let holder = std::thread::spawn(move || {
        let mut conn = rusqlite::Connection::open(holder_path).expect("raw open");
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)
            .expect("lock");
        locked.send(()).expect("signal");
        std::thread::sleep(Duration::from_millis(800));
        tx.commit().expect("unlock");
    });
    lock_taken.recv().expect("lock taken");
    let started = Instant::now();
    let counts = store
        .plan(&sample_jobs("locked", 10))
        .await
        .expect("plan waits out the lock");
    assert_eq!(counts.new, 10);
    assert!(started.elapsed() >= Duration::from_millis(500), "it did wait");
    holder.join().expect("holder");
}

#[tokio::test]
async fn requeue_of_unknown_job_is_not_found() {
    let store = crate::fresh_store().await;
    assert!(matches!(store.requeue("nope", "r").await, Err(StoreError::NotFound(_))));
}

/// Status and outstanding read one partial index per group of states; every
/// job is counted once whether its lease is held, released or gone.
#[tokio::test]
async fn status_counts_leased_released_and_settled_jobs_once() {
    let store = crate::fresh_store().await;
    store.plan(&sample_jobs("count", 5)).await.expect("plan");
    let leases = store.acquire(&request("w", 4)).await.expect("acquire");
    store.release(&leases[0].fence).await.expect("release");
    store
        .advance(&leases[1].fence, &[JobState::HeadDone], JobPatch::default())
        .await
        .expect("advance");
    store
        .advance(&leases[2].fence, &JobState::PIPELINE[2..], JobPatch::default())
        .await
        .expect("finish");
    let failure = oncefetch_core::JobFailure {
        message: "503".into(),
        retryable: true,
        retry_after: Duration::from_secs(3600),
        counts_attempt: true,
    };
    store
        .advance(
            &leases[3].fence,
            &[JobState::Failed],
            JobPatch {
                failure: Some(failure),
                ..JobPatch::default()
            },
        )
        .await
        .expect("fail");
    let status = store.status().await.expect("status");
    assert_eq!(status.total(), 5, "{status:?}");
    for (state, n) in [
        (JobState::Planned, 1),
        (JobState::Leased, 1),
        (JobState::HeadDone, 1),
        (JobState::Success, 1),
        (JobState::Failed, 1),
    ] {
        assert_eq!(status.get(state), n, "{state}: {status:?}");
    }
    assert_eq!(store.outstanding(3, None).await.expect("outstanding"), 4);
    assert_eq!(
        store.outstanding(1, None).await.expect("outstanding"),
        3,
        "the failure used its one attempt"
    );
}

/// Only SUCCESS jobs are indexed by URL; the other URL queries still answer.
#[tokio::test]
async fn jobs_by_url_in_any_state() {
    let store = crate::fresh_store().await;
    let jobs = vec![
        sample_job("w1", "a", "https://example.org/twin"),
        sample_job("w2", "a", "https://example.org/twin"),
        sample_job("w3", "a", "https://example.org/other"),
    ];
    store.plan(&jobs).await.expect("plan");
    let by_url = |state: Option<JobState>| oncefetch_core::JobQuery {
        state,
        canonical_url: Some("https://example.org/twin".into()),
        ..oncefetch_core::JobQuery::default()
    };
    let all = store.jobs(&by_url(None)).await.expect("jobs");
    let mut expected = vec![jobs[0].job_key.clone(), jobs[1].job_key.clone()];
    expected.sort();
    assert_eq!(all.iter().map(|j| j.job_key.clone()).collect::<Vec<_>>(), expected);
    assert_eq!(
        store.jobs(&by_url(Some(JobState::Planned))).await.expect("jobs").len(),
        2
    );
    assert!(store
        .jobs(&by_url(Some(JobState::Success)))
        .await
        .expect("jobs")
        .is_empty());
}

/// Handles racing to create and migrate one new file all open it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_opens_of_a_new_file() {
    let path = crate::fresh_db_path();
    let url = format!("sqlite:{}", path.display());
    let opens: Vec<_> = (0..8)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { SqliteStore::open(&url).await })
        })
        .collect();
    let mut stores = Vec::new();
    for open in opens {
        stores.push(open.await.expect("task").expect("open"));
    }
    stores[0].plan(&sample_jobs("race-open", 3)).await.expect("plan");
    for store in &stores {
        assert_eq!(store.status().await.expect("status").total(), 3);
    }
}

/// Group commit: many concurrent writes share transactions, yet each one is
/// atomic on its own — a fenced-out write in the same group is rolled back
/// alone and answers `LeaseLost`, its neighbours commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_write_in_a_group_is_rolled_back_alone() {
    let store = std::sync::Arc::new(crate::fresh_store().await);
    let jobs = sample_jobs("group", 64);
    store.plan(&jobs).await.expect("plan");
    let leases = store.acquire(&request("w", 64)).await.expect("acquire");
    assert_eq!(leases.len(), 64);
    let mut tasks = tokio::task::JoinSet::new();
    for (i, lease) in leases.into_iter().enumerate() {
        let store = std::sync::Arc::clone(&store);
        tasks.spawn(async move {
            let mut fence = lease.fence.clone();
            let stale = i % 2 == 1;
            if stale {
                fence.epoch += 1;
            }
            // A write of several rows: the op row, then the steps.
            let commit = Commit {
                steps: vec![JobState::HeadDone],
                begin: Some(OpStart {
                    op_key: format!("op-{i}"),
                    kind: OpKind::Head,
                }),
                ..Commit::default()
            };
            (lease.fence.job_key, stale, store.commit(&fence, &commit).await)
        });
    }
    while let Some(done) = tasks.join_next().await {
        let (job_key, stale, outcome) = done.expect("task");
        let job = store.job(&job_key).await.expect("job");
        let ops = store
            .ops(&OpQuery {
                job_key: Some(job_key.clone()),
                ..OpQuery::default()
            })
            .await
            .expect("ops");
        if stale {
            assert!(matches!(outcome, Err(StoreError::LeaseLost { .. })), "{outcome:?}");
            assert_eq!(job.state, JobState::Leased, "the fenced-out write changed nothing");
            assert!(ops.is_empty(), "the fenced-out write left no op row");
        } else {
            assert_eq!(outcome.expect("commit").begun, Some(OpBegin::Run));
            assert_eq!(job.state, JobState::HeadDone);
            assert_eq!(ops.len(), 1);
        }
    }
}
