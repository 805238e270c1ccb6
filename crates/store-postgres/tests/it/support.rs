use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use diesel::sql_types::Text;
use diesel::QueryableByName;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use oncefetch_store_postgres::PostgresStore;

/// The test server's URL, or `None` (with a note) when the tests should skip.
pub(crate) fn base_url() -> Option<String> {
    match std::env::var("ONCEFETCH_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("ONCEFETCH_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "ONCEFETCH_REQUIRE_POSTGRES=1 but ONCEFETCH_TEST_POSTGRES_URL is not set"
            );
            eprintln!("note: ONCEFETCH_TEST_POSTGRES_URL is not set; skipping this PostgreSQL test");
            None
        }
    }
}

/// Returns from the test when there is no server to test against.
macro_rules! require_postgres {
    () => {
        match $crate::support::base_url() {
            Some(url) => url,
            None => return,
        }
    };
}
pub(crate) use require_postgres;

/// A schema name no other test (or earlier run) uses.
pub(crate) fn fresh_schema() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    // Tests may read the wall clock; the store never does.
    #[allow(clippy::disallowed_methods)]
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    format!(
        "it_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// `base` with extra query parameters.
pub(crate) fn with_params(base: &str, params: &str) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}{params}")
}

/// A URL of a fresh schema on the test server, with a small pool.
pub(crate) fn fresh_url(base: &str) -> String {
    with_params(base, &format!("schema={}&pool_size=4", fresh_schema()))
}

/// A store on a fresh schema.
pub(crate) async fn fresh_store(base: &str) -> (Arc<PostgresStore>, String) {
    let url = fresh_url(base);
    let store = PostgresStore::open(&url).await.expect("open a fresh store");
    (Arc::new(store), url)
}

/// A plain connection with `search_path` set to the URL's schema, for
/// checks and fixtures the store API does not offer.
pub(crate) async fn raw_connection(base: &str, schema: &str) -> AsyncPgConnection {
    let mut conn = AsyncPgConnection::establish(base).await.expect("connect");
    conn.batch_execute(&format!("SET search_path TO \"{schema}\""))
        .await
        .expect("search_path");
    conn
}

/// The `schema` parameter of a test URL.
pub(crate) fn schema_of(url: &str) -> String {
    url.split(['?', '&'])
        .find_map(|p| p.strip_prefix("schema="))
        .expect("URL has a schema")
        .to_owned()
}

#[derive(QueryableByName)]
struct Started {
    #[diesel(sql_type = Text)]
    at: String,
}

/// When the server at `url` started (changes with a restart).
pub(crate) async fn postmaster_start(url: &str) -> String {
    let mut conn = AsyncPgConnection::establish(url).await.expect("connect");
    let row: Started = diesel::sql_query("SELECT pg_postmaster_start_time()::text AS at")
        .get_result(&mut conn)
        .await
        .expect("query");
    row.at
}
