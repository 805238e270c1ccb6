//! The operations-ledger clauses of [`LedgerStore`](crate::LedgerStore):
//! replay, re-runs after an ERROR, listing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;

use super::*;
use crate::job::JobFailure;
use crate::key::OpKeys;
use crate::ledger::{run_effect, EffectError, LedgerExt, OpKind, OpQuery, ResultCode};
use crate::state::JobState;

/// A second `run_effect` with an OK op key replays without running.
pub async fn op_replay_returns_recorded_result(setup: Setup) {
    let store = setup.store;
    store.plan(&sample_jobs("replay", 1)).await.expect("plan");
    let lease = lease_one(store.as_ref(), OWNER, LONG).await;
    let key = OpKeys {
        job_key: &lease.fence.job_key,
    }
    .head(&lease.job.canonical_url);
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
    .stream(&lease.job.canonical_url, 0);
    let failed = run_effect(store.as_ref(), &lease.fence, &key, OpKind::Stream, || async {
        Err::<serde_json::Value, _>("connection reset")
    })
    .await;
    assert!(matches!(failed, Err(EffectError::Effect("connection reset"))));
    let restarted = store.begin_op(&lease.fence, &key, OpKind::Stream).await;
    assert!(
        matches!(&restarted, Err(StoreError::OpAlreadyAttempted { op_key, epoch: 1 }) if *op_key == key),
        "error op runs again: not under the epoch of its ERROR row (one row per op key and epoch), got {restarted:?}"
    );
    let refinished = store.finish_op(&lease.fence, &key, ResultCode::Ok, json!({})).await;
    assert!(
        matches!(&refinished, Err(StoreError::OpNotRunning { op_key, epoch: 1 }) if *op_key == key),
        "error op runs again: a finished attempt does not finish again, got {refinished:?}"
    );
    let failure = failing(JobFailure {
        message: "connection reset".into(),
        retryable: true,
        retry_after: Duration::ZERO,
        counts_attempt: false,
    });
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
    for message in ["note", "note again"] {
        store
            .note(
                &leases[0].fence.job_key,
                "cleanup-key",
                OpKind::Cleanup,
                &json!({"removed": "x"}),
            )
            .await
            .expect(message);
    }
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
