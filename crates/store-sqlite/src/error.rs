//! Errors inside a transaction, and how they reach callers.

use std::fmt;
use std::path::PathBuf;

use oncefetch_core::StoreError;
use rusqlite::ErrorCode;

/// The backend name in [`StoreError::Backend`].
pub(crate) const STORE: &str = "sqlite";

/// Why a transaction body stopped: a contract answer for the caller, or a
/// driver error (retried when it is `SQLITE_BUSY`/`SQLITE_LOCKED`).
#[derive(Debug)]
pub(crate) enum TxError {
    /// A contract answer (lease lost, conflict, not found, …).
    Store(StoreError),
    /// The driver failed.
    Sql(rusqlite::Error),
    /// The file system failed (creating the database's folder).
    Io(std::io::Error),
}

impl TxError {
    /// Whether another process holds the lock: wait and run the whole
    /// transaction again.
    pub(crate) fn is_busy(&self) -> bool {
        matches!(
            self,
            Self::Sql(rusqlite::Error::SqliteFailure(e, _))
                if matches!(e.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
        )
    }

    /// The error a caller sees.
    pub(crate) fn into_store(self) -> StoreError {
        match self {
            Self::Store(e) => e,
            Self::Sql(e) => StoreError::backend(STORE, e),
            Self::Io(e) => StoreError::backend(STORE, e),
        }
    }
}

impl fmt::Display for TxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Store(e) => e.fmt(f),
            Self::Sql(e) => e.fmt(f),
            Self::Io(e) => e.fmt(f),
        }
    }
}

impl From<StoreError> for TxError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl From<std::io::Error> for TxError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

impl From<rusqlite::Error> for TxError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Sql(e)
    }
}

/// Whether a write hit a UNIQUE constraint (an op row recorded already).
pub(crate) fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == ErrorCode::ConstraintViolation
                && matches!(
                    f.extended_code,
                    rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                )
    )
}

/// The database file could not be opened or set up.
#[derive(Debug)]
pub(crate) struct OpenError {
    pub(crate) path: PathBuf,
    pub(crate) source: Box<dyn std::error::Error + Send + Sync>,
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot open sqlite database {}: {}",
            self.path.display(),
            self.source
        )
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.source.as_ref())
    }
}

/// A plain message: a `--db` URL or option this store does not understand,
/// or a value that does not fit its column.
#[derive(Debug)]
pub(crate) struct Invalid(pub(crate) String);

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Invalid {}

/// A value that does not fit the column (a size above `i64::MAX`).
pub(crate) fn out_of_range(what: &str) -> TxError {
    TxError::Store(StoreError::backend(
        STORE,
        Invalid(format!("{what} does not fit in a signed 64-bit column")),
    ))
}
