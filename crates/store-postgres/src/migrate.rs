//! The schema: embedded diesel migrations (`migrations/`), applied when a
//! store opens.
//!
//! Several hosts may open one ledger at once, so the migration runs under a
//! session-level advisory lock keyed by the schema name; whoever comes second
//! finds the migrations applied. diesel's migration harness is synchronous, so
//! it runs through `AsyncConnectionWrapper` on a blocking thread.

use diesel::connection::SimpleConnection;
use diesel::sql_types::Text;
use diesel::{Connection, RunQueryDsl};
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::AsyncPgConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use oncefetch_core::{StoreError, StoreResult};

use crate::options::{quote_ident, PostgresOptions};
use crate::STORE;

/// The migrations of this crate, compiled in.
pub(crate) const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// The advisory lock (one-`bigint` form, a key space apart from the two-key
/// locks of grants) that serializes migrations of one schema.
const LOCK: &str = "SELECT pg_advisory_lock(hashtextextended('oncefetch-store-postgres migrate ' || $1, 0))";
const UNLOCK: &str = "SELECT pg_advisory_unlock(hashtextextended('oncefetch-store-postgres migrate ' || $1, 0))";

/// Creates the schema if needed and applies pending migrations.
pub(crate) async fn migrate(options: &PostgresOptions) -> StoreResult<()> {
    let url = options.connection_url().to_owned();
    let schema = options.schema_name().map(str::to_owned);
    tokio::task::spawn_blocking(move || migrate_blocking(&url, schema.as_deref()))
        .await
        .map_err(|e| StoreError::backend(STORE, e))?
}

fn migrate_blocking(url: &str, schema: Option<&str>) -> StoreResult<()> {
    let backend = |e: diesel::result::Error| StoreError::backend(STORE, e);
    let mut conn = AsyncConnectionWrapper::<AsyncPgConnection>::establish(url)
        .map_err(|e| StoreError::backend(STORE, format!("{}: {e}", crate::options::redact(url))))?;
    let key = schema.unwrap_or("");
    diesel::sql_query(LOCK)
        .bind::<Text, _>(key)
        .execute(&mut conn)
        .map_err(backend)?;
    let applied = (|| {
        if let Some(schema) = schema {
            let schema = quote_ident(schema);
            conn.batch_execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS {schema}; SET search_path TO {schema}"
            ))
            .map_err(backend)?;
        }
        conn.run_pending_migrations(MIGRATIONS)
            .map(|versions| {
                if !versions.is_empty() {
                    tracing::info!(?schema, count = versions.len(), "postgres: applied migrations");
                }
            })
            .map_err(|e| StoreError::backend(STORE, e))
    })();
    // Closing the connection releases the lock too; unlock anyway so a
    // pooled server-side session (pgbouncer) does not keep it.
    let unlocked = diesel::sql_query(UNLOCK).bind::<Text, _>(key).execute(&mut conn);
    applied?;
    unlocked.map(drop).map_err(backend)
}
