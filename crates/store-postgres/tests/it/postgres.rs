use std::time::Duration;

use diesel::sql_types::{BigInt, Text};
use diesel::QueryableByName;
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use oncefetch_core::conformance::sample_jobs;
use oncefetch_core::registry::store_factory_for;
use oncefetch_core::{
    AcquireRequest, Commit, JobPatch, JobState, LeaseManager, LedgerExt, LedgerStore, OpFinish, OpKeys, OpKind,
    OpQuery, ResultCode, StoreError,
};
use oncefetch_store_postgres::{PostgresOptions, PostgresStore, SCHEMES, STORE};
use serde_json::json;

use crate::support::{fresh_store, fresh_url, raw_connection, require_postgres, schema_of, with_params};

fn request(owner: &str, limit: usize) -> AcquireRequest {
    AcquireRequest {
        owner: owner.to_owned(),
        ttl: Duration::from_secs(60),
        limit,
        max_attempts: 3,
    }
}

#[test]
fn schemes_are_registered() {
    // Naming a crate item keeps the registration in the test binary.
    assert_eq!(STORE, "postgres");
    for url in ["postgres://x/y", "postgresql://x/y", "POSTGRES://x/y"] {
        let factory = store_factory_for(url).expect("a factory for postgres URLs");
        assert_eq!(factory.name, "postgres");
        assert_eq!(factory.schemes, SCHEMES);
        assert!(!factory.bare_paths);
    }
}

#[tokio::test]
async fn opens_through_the_registry() {
    let base = require_postgres!();
    let store = oncefetch_core::open_store(&fresh_url(&base))
        .await
        .expect("open by URL");
    assert_eq!(store.status().await.expect("status").total(), 0);
}

#[tokio::test]
async fn unreachable_server_is_a_backend_error() {
    let _ = require_postgres!();
    let options = PostgresOptions::from_url("postgres://nobody@127.0.0.1:1/none")
        .expect("url")
        .connect_timeout(Duration::from_secs(2));
    match PostgresStore::connect(options).await {
        Err(err @ StoreError::Backend { .. }) => assert!(err.is_retryable()),
        other => panic!("expected a backend error, got {other:?}"),
    }
}

#[tokio::test]
async fn schemas_are_isolated_and_reopening_migrates_nothing() {
    let base = require_postgres!();
    let (first, url) = fresh_store(&base).await;
    first.plan(&sample_jobs("iso", 3)).await.expect("plan");
    let (second, _) = fresh_store(&base).await;
    assert_eq!(
        second.status().await.expect("status").total(),
        0,
        "another schema is empty"
    );
    let reopened = PostgresStore::open(&url).await.expect("reopen");
    assert_eq!(
        reopened.status().await.expect("status").total(),
        3,
        "same schema, same ledger"
    );
    assert_eq!(reopened.options().schema_name(), Some(schema_of(&url).as_str()));
}

#[tokio::test]
async fn concurrent_opens_of_a_new_schema_migrate_once() {
    let base = require_postgres!();
    let url = fresh_url(&base);
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { PostgresStore::open(&url).await })
        })
        .collect();
    for open in opens {
        open.await.expect("task").expect("open");
    }
}

#[derive(QueryableByName)]
struct Diff {
    #[diesel(sql_type = BigInt)]
    diff: i64,
}

#[tokio::test]
async fn lease_expiry_is_the_server_clock_plus_ttl() {
    let base = require_postgres!();
    let (store, url) = fresh_store(&base).await;
    store.plan(&sample_jobs("clock", 1)).await.expect("plan");
    let before = store.now().await.expect("now");
    let lease = store.acquire(&request("w", 1)).await.expect("acquire").remove(0);
    let after = store.now().await.expect("now");
    assert!(lease.expires_at >= before + 60_000 && lease.expires_at <= after + 60_000);
    // The stored expiry is the server's timestamp, not a number we sent.
    let mut conn = raw_connection(&base, &schema_of(&url)).await;
    let row: Diff = diesel::sql_query(
        "SELECT floor(extract(epoch FROM lease_expires_at - now()) * 1000)::bigint AS diff FROM jobs WHERE job_key = $1",
    )
    .bind::<Text, _>(&lease.fence.job_key)
    .get_result(&mut conn)
    .await
    .expect("query");
    assert!((55_000..=60_000).contains(&row.diff), "{}", row.diff);
}

#[tokio::test]
async fn a_refused_commit_writes_nothing() {
    let base = require_postgres!();
    let (store, _) = fresh_store(&base).await;
    store.plan(&sample_jobs("atomic", 1)).await.expect("plan");
    let lease = store.acquire(&request("w", 1)).await.expect("acquire").remove(0);
    let key = "head-op";
    store.begin_op(&lease.fence, key, OpKind::Head).await.expect("begin");
    // Finishing a running op and a step fine by the table, then starting the
    // same op again under this epoch: a conflict, so neither the finish nor
    // the step may stay.
    let commit = Commit {
        finish: Some(OpFinish {
            op_key: key.into(),
            code: ResultCode::Ok,
            result: json!({"status": 200}),
        }),
        steps: vec![JobState::HeadDone],
        patch: JobPatch {
            etag: Some("\"v1\"".into()),
            ..JobPatch::default()
        },
        index: None,
        begin: Some(oncefetch_core::OpStart {
            op_key: key.into(),
            kind: OpKind::Head,
        }),
        settle: None,
    };
    let refused = store.commit(&lease.fence, &commit).await;
    assert!(
        matches!(&refused, Err(StoreError::OpAlreadyAttempted { op_key, epoch: 1 }) if op_key == key),
        "{refused:?}"
    );
    let job = store.job(&lease.fence.job_key).await.expect("job");
    assert_eq!((job.state, job.etag), (JobState::Leased, None));
    let rows = store
        .ops(&OpQuery {
            job_key: Some(lease.fence.job_key.clone()),
            ..OpQuery::default()
        })
        .await
        .expect("ops");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].result_code, None, "the op is still running");
    // Without the conflicting start the same commit goes through.
    let commit = Commit { begin: None, ..commit };
    store.commit(&lease.fence, &commit).await.expect("commit");
    let job = store.job(&lease.fence.job_key).await.expect("job");
    assert_eq!((job.state, job.etag.as_deref()), (JobState::HeadDone, Some("\"v1\"")));
}

#[tokio::test]
async fn pool_size_and_schema_come_from_the_url() {
    let base = require_postgres!();
    let url = with_params(&base, "schema=it_params_check&pool_size=3");
    let options = PostgresOptions::from_url(&url).expect("options");
    assert_eq!(
        (options.schema_name(), options.max_connections()),
        (Some("it_params_check"), 3)
    );
    assert!(!options.connection_url().contains("schema="));
}

#[tokio::test]
async fn relet_rows_carry_the_op_keys_of_core() {
    let base = require_postgres!();
    let (store, _) = fresh_store(&base).await;
    // Job keys are hex in practice; the SQL-side key must match core's for
    // any string, escapes and characters outside the BMP included.
    let odd = "w\"e\\ird\n\tkey é ☃ 😀 \u{7f}";
    let mut jobs = sample_jobs("relet", 2);
    jobs[1].job_key = odd.to_owned();
    store.plan(&jobs).await.expect("plan");
    let short = AcquireRequest {
        ttl: Duration::from_millis(100),
        ..request("w", 2)
    };
    let leases = store.acquire(&short).await.expect("acquire");
    assert_eq!(leases.len(), 2);
    tokio::time::sleep(Duration::from_millis(250)).await;
    let again = store.acquire(&request("w2", 2)).await.expect("acquire again");
    assert_eq!(again.len(), 2, "expired leases are granted again");
    for lease in &again {
        let rows = store
            .ops(&OpQuery {
                job_key: Some(lease.fence.job_key.clone()),
                ..OpQuery::default()
            })
            .await
            .expect("ops");
        let relet = rows.iter().find(|r| r.kind == OpKind::Relet).expect("a RELET row");
        let expected = OpKeys {
            job_key: &lease.fence.job_key,
        }
        .epoch_action(OpKind::Relet, 2);
        assert_eq!(
            (relet.op_key.as_str(), relet.epoch),
            (expected.as_str(), 2),
            "{:?}",
            lease.fence.job_key
        );
        assert_eq!(relet.result, Some(json!({"from": "LEASED", "epoch": 2})));
    }
}

#[tokio::test]
async fn killed_connections_are_replaced() {
    let base = require_postgres!();
    let schema = crate::support::fresh_schema();
    let url = with_params(&base, &format!("schema={schema}&pool_size=2&application_name={schema}"));
    let store = PostgresStore::open(&url).await.expect("open");
    store.plan(&sample_jobs("killed", 2)).await.expect("plan");
    let lease = store.acquire(&request("w", 1)).await.expect("acquire").remove(0);
    // The server ends every connection of this store (as a restart or an
    // administrator would); the pool notices and opens new ones.
    let mut admin = raw_connection(&base, &schema).await;
    let killed: Killed = diesel::sql_query(
        "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity WHERE application_name = $1",
    )
    .bind::<Text, _>(&schema)
    .get_result(&mut admin)
    .await
    .expect("terminate");
    assert!(killed.n >= 1, "the store had connections to end");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(store.job(&lease.fence.job_key).await.expect("read after kill").epoch, 1);
    store
        .advance(&lease.fence, &[JobState::HeadDone], JobPatch::default())
        .await
        .expect("commit after kill");
    assert_eq!(
        store.acquire(&request("w", 1)).await.expect("acquire after kill").len(),
        1
    );
}

#[derive(QueryableByName)]
struct Killed {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// A caller that gives up on a call halfway through its transaction (a
/// timeout, a dropped task) must not leave a pooled connection idle in
/// transaction, holding the job's row lock.
#[tokio::test]
async fn a_dropped_call_leaves_no_transaction_open() {
    let base = require_postgres!();
    let schema = crate::support::fresh_schema();
    let url = with_params(&base, &format!("schema={schema}&pool_size=2&application_name={schema}"));
    let store = PostgresStore::open(&url).await.expect("open");
    store.plan(&sample_jobs("dropped", 1)).await.expect("plan");
    let lease = store.acquire(&request("w", 1)).await.expect("acquire").remove(0);

    // Someone else holds the job's row lock, so the commit waits inside its
    // transaction, and the caller gives up.
    let mut blocker = raw_connection(&base, &schema).await;
    blocker.batch_execute("BEGIN").await.expect("begin");
    diesel::sql_query("SELECT 1 FROM jobs WHERE job_key = $1 FOR UPDATE")
        .bind::<Text, _>(&lease.fence.job_key)
        .execute(&mut blocker)
        .await
        .expect("lock");
    let step = store.advance(&lease.fence, &[JobState::HeadDone], JobPatch::default());
    assert!(
        tokio::time::timeout(Duration::from_millis(300), step).await.is_err(),
        "the commit waits"
    );
    blocker.batch_execute("COMMIT").await.expect("commit");

    let mut admin = raw_connection(&base, &schema).await;
    let mut open = i64::MAX;
    for _ in 0..50 {
        let row: Killed = diesel::sql_query(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1 AND state LIKE 'idle in transaction%'",
        )
        .bind::<Text, _>(&schema)
        .get_result(&mut admin)
        .await
        .expect("activity");
        open = row.n;
        if open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(open, 0, "a connection was left idle in transaction");
    tokio::time::timeout(
        Duration::from_secs(5),
        store.advance(&lease.fence, &[JobState::HeadDone], JobPatch::default()),
    )
    .await
    .expect("the job is not locked")
    .expect("commit");
}

#[tokio::test]
async fn planning_in_chunks_reports_other_expectations_by_position() {
    let base = require_postgres!();
    let (store, _) = fresh_store(&base).await;
    // Two 5000-job chunks; conflicts in each, and a new key met again with
    // another hash in the second.
    let jobs = sample_jobs("chunk-expect", 6001);
    store.plan(&jobs[..6000]).await.expect("plan");
    let hash = "e5".repeat(32);
    let mut again = jobs[..6000].to_vec();
    again[3].expected_size = Some(43);
    again[5500].expected_sha256 = Some(hash.clone());
    again.push(jobs[6000].clone());
    let mut twin = jobs[6000].clone();
    twin.expected_sha256 = Some(hash);
    again.push(twin);
    let counts = store.plan(&again).await.expect("plan again");
    assert_eq!((counts.new, counts.existing), (1, 6001));
    let positions: Vec<u64> = counts.conflicts.iter().map(|c| c.position).collect();
    assert_eq!(positions, vec![3, 5500, 6001]);
    assert_eq!(counts.conflicts[0].recorded.size, Some(42));
    assert_eq!(counts.conflicts[0].declared.size, Some(43));
    assert_eq!(counts.conflicts[2].job_key, jobs[6000].job_key);
}
