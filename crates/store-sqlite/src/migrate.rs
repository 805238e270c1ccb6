//! Forward-only schema migrations, applied when a handle opens.
//!
//! `sql/migrations/NNNN_name.sql` files run in order inside one `BEGIN
//! IMMEDIATE` transaction; `schema_version` records each one applied. A
//! database newer than this build is refused rather than misread.

use rusqlite::{Connection, TransactionBehavior};

use crate::error::{Invalid, TxError};

/// Every migration, in order: (version, SQL).
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../sql/migrations/0001_init.sql")),
    (2, include_str!("../sql/migrations/0002_canonical_url_if_other.sql")),
];

/// The schema version this build writes.
pub(crate) const LATEST: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// Brings the schema up to [`LATEST`]; returns the version found before.
pub(crate) fn migrate(conn: &mut Connection) -> Result<i64, TxError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_version (
             version    INTEGER PRIMARY KEY,
             applied_at INTEGER NOT NULL
         );",
    )?;
    let found: i64 = tx.query_row("SELECT COALESCE(MAX(version), 0) FROM schema_version", [], |r| r.get(0))?;
    if found > LATEST {
        return Err(TxError::Store(oncefetch_core::StoreError::backend(
            crate::error::STORE,
            Invalid(format!(
                "database schema version {found} is newer than this build supports ({LATEST}); upgrade oncefetch"
            )),
        )));
    }
    for &(version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > found) {
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_version (version, applied_at) VALUES (?1, CAST(round(unixepoch('subsec') * 1000) AS INTEGER))",
            [version],
        )?;
        tracing::debug!(version, "applied sqlite migration");
    }
    tx.commit()?;
    Ok(found)
}
