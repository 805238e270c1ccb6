//! [`PostgresStore`]: opening a ledger.

use std::fmt;
use std::time::Duration;

use oncefetch_core::StoreResult;

use crate::conn::Db;
use crate::migrate::migrate;
use crate::options::{redact, PostgresOptions};

/// A ledger in PostgreSQL, shared by any number of processes and hosts;
/// implements [`LedgerStore`](oncefetch_core::LedgerStore) and
/// [`LeaseManager`](oncefetch_core::LeaseManager).
///
/// Cheap to share behind an `Arc`: it holds a pool of connections.
pub struct PostgresStore {
    pub(crate) db: Db,
    options: PostgresOptions,
}

impl PostgresStore {
    /// Opens the ledger a `postgres://` / `postgresql://` URL names (see
    /// [`PostgresOptions`] for the parameters), creating its schema and
    /// applying migrations when needed.
    pub async fn open(url: &str) -> StoreResult<Self> {
        Self::connect(PostgresOptions::from_url(url)?).await
    }

    /// Opens the ledger with explicit options.
    pub async fn connect(options: PostgresOptions) -> StoreResult<Self> {
        migrate(&options).await?;
        let db = Db::new(&options)?;
        Ok(Self { db, options })
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &PostgresOptions {
        &self.options
    }
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("url", &redact(self.options.connection_url()))
            .field("schema", &self.options.schema_name())
            .field("pool", &self.db)
            .finish()
    }
}

/// The longest duration sent to the server (a century), in milliseconds.
const MAX_MILLIS: i64 = 100 * 366 * 24 * 3600 * 1000;

/// `d` in milliseconds for an interval bind.
pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).map_or(MAX_MILLIS, |ms| ms.min(MAX_MILLIS))
}
