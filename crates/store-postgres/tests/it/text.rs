//! A line's ids and URL are kept verbatim, NUL included, though a PostgreSQL
//! `text` value cannot hold NUL (the store escapes them; found by the torture
//! driver, whose hostile ids made a whole `plan` fail).

use diesel::sql_types::Text;
use diesel::QueryableByName;
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use oncefetch_core::conformance::sample_job;
use oncefetch_core::{AcquireRequest, LeaseManager, LedgerStore};
use oncefetch_store_postgres::PostgresStore;

use crate::support::{fresh_store, raw_connection, require_postgres, schema_of};

#[derive(QueryableByName, Debug, PartialEq)]
struct Stored {
    #[diesel(sql_type = Text)]
    work_id: String,
    #[diesel(sql_type = Text)]
    artifact_id: String,
    #[diesel(sql_type = Text)]
    url: String,
}

const SELECT: &str = "SELECT work_id, artifact_id, url FROM jobs ORDER BY work_id";

#[tokio::test]
async fn ids_and_urls_holding_nul_are_planned_granted_and_read_back_verbatim() {
    let base = require_postgres!();
    let (store, url) = fresh_store(&base).await;
    let hostile = sample_job("w\0x\u{1a}", "\u{1a}0a\0", "https://example.org/a\0b");
    let plain = sample_job("w-plain", "a", "https://example.org/plain");
    let counts = store.plan(&[hostile.clone(), plain.clone()]).await.expect("plan");
    assert_eq!(counts.new, 2);
    let job = store.job(&hostile.job_key).await.expect("read back");
    assert_eq!(
        (job.work_id.as_str(), job.artifact_id.as_str(), job.url.as_str()),
        (
            hostile.work_id.as_str(),
            hostile.artifact_id.as_str(),
            hostile.url.as_str()
        )
    );
    let request = AcquireRequest {
        owner: "w1".into(),
        ttl: std::time::Duration::from_secs(30),
        limit: 2,
        max_attempts: 3,
    };
    let granted = store.acquire(&request).await.expect("grant");
    let leased = granted
        .iter()
        .find(|l| l.job.job_key == hostile.job_key)
        .expect("granted");
    assert_eq!(leased.job.work_id, hostile.work_id);
    assert_eq!(leased.job.url, hostile.url);
    // Plain text is stored as it is: other readers of the table see it.
    let mut conn = raw_connection(&base, &schema_of(&url)).await;
    let rows: Vec<Stored> = diesel::sql_query(SELECT).load(&mut conn).await.expect("select");
    assert_eq!(
        rows[1],
        Stored {
            work_id: plain.work_id,
            artifact_id: plain.artifact_id,
            url: plain.url
        }
    );
    assert!(!rows[0].work_id.contains('\0'));
}

#[tokio::test]
async fn the_migration_escapes_the_escape_character_already_stored() {
    let base = require_postgres!();
    let (store, url) = fresh_store(&base).await;
    drop(store);
    // A ledger of the schema before the escape: its rows hold SUB verbatim.
    let mut conn = raw_connection(&base, &schema_of(&url)).await;
    let before = sample_job("w\u{1a}0", "a", "https://example.org/s\u{1a}");
    conn.batch_execute(&format!(
        "DELETE FROM __diesel_schema_migrations WHERE version = '20261206000000';
         INSERT INTO jobs (job_key, work_id, artifact_id, url, canonical_url)
         VALUES ('{}', E'w\\x1a0', 'a', E'https://example.org/s\\x1a', '{}')",
        before.job_key, before.canonical_url
    ))
    .await
    .expect("an old ledger");
    let store = PostgresStore::open(&url).await.expect("migrate");
    let job = store.job(&before.job_key).await.expect("read back");
    assert_eq!((job.work_id, job.url), (before.work_id, before.url));
}
