//! The commit clauses of [`LedgerStore`](crate::LedgerStore): fencing, the
//! state table and what steps record, the artifact index and settling.

use std::time::Duration;

use serde_json::json;

use super::*;
use crate::error::StoreError;
use crate::job::{JobFailure, JobPatch};
use crate::key::OpKeys;
use crate::lease::{Fence, Lease};
use crate::ledger::{
    ArtifactEntry, Commit, IndexOp, LedgerExt, OpBegin, OpFinish, OpKind, OpStart, ResultCode, Settle,
};
use crate::state::JobState;

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
    .head(&old.job.canonical_url);
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
    assert_lease_lost(store.renew(&impostor, LONG).await, "renew by another owner");
    assert_lease_lost(store.release(&impostor).await, "release by another owner");
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

/// A failed request that never reached STREAMING still counts an attempt
/// when the failure says so (a 503 to the GET), and only then.
pub async fn failure_before_streaming_counts_an_attempt(setup: Setup) {
    let store = setup.store;
    store.plan(&sample_jobs("attempt", 1)).await.expect("plan");
    let fail = |counts_attempt| {
        failing(JobFailure {
            message: "503 service unavailable".into(),
            retryable: true,
            retry_after: Duration::ZERO,
            counts_attempt,
        })
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
    for (path, expect, message) in [
        ("/out/second", "index", "index: first writer wins"),
        ("/out/elsewhere", "index replayed", "the OK row is replayed"),
    ] {
        let later = store
            .commit(&leases[1].fence, &index(&leases[1], path))
            .await
            .expect(expect);
        assert_eq!(later.first_path.as_deref(), Some("/out/first"), "{message}");
    }
    let rows = ops_of(store.as_ref(), &leases[1].fence.job_key).await;
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
