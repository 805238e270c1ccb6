//! Typed errors of the store and lease contracts.

use crate::state::JobState;

/// A boxed error from a backend (database driver, I/O).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What can go wrong when talking to a [`LedgerStore`](crate::LedgerStore) or
/// [`LeaseManager`](crate::LeaseManager).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The write named an epoch whose lease has moved on (or expired): the
    /// caller must stop working on the job and write nothing more.
    #[error("lease lost on job {job} at epoch {epoch}")]
    LeaseLost {
        /// Job key.
        job: String,
        /// The stale epoch the caller held.
        epoch: i64,
    },
    /// An op attempt was started (or a row written) under an epoch that has
    /// a row of the op key already: one attempt per (op key, epoch).
    #[error("conflict: op {op_key} already attempted under epoch {epoch}")]
    OpAlreadyAttempted {
        /// Op key.
        op_key: String,
        /// The epoch that has a row of it.
        epoch: i64,
    },
    /// An op was started on a job in a state that starts no ops (only an
    /// in-flight job does).
    #[error("conflict: cannot start an op on a {state} job")]
    OpOutsideFlight {
        /// The job's state at the start.
        state: JobState,
    },
    /// An op attempt was finished that is not running under the epoch (never
    /// started, or finished already).
    #[error("conflict: no running attempt of op {op_key} under epoch {epoch}")]
    OpNotRunning {
        /// Op key.
        op_key: String,
        /// The fence's epoch.
        epoch: i64,
    },
    /// An op attempt was finished OK while the op key has an OK row already:
    /// at most one OK row per op key.
    #[error("conflict: op {op_key} already has an OK row")]
    OpAlreadyOk {
        /// Op key.
        op_key: String,
    },
    /// A commit that started an op came back without saying whether to run
    /// or replay it: the store broke its contract.
    #[error("store did not answer the start of op {op_key}")]
    OpStartUnanswered {
        /// Op key.
        op_key: String,
    },
    /// No such job (or other keyed item).
    #[error("not found: {0}")]
    NotFound(String),
    /// The state change is not in the transition table.
    #[error("invalid transition from {from} to {to}")]
    InvalidTransition {
        /// Current state.
        from: JobState,
        /// Requested state.
        to: JobState,
    },
    /// A `--db` URL whose scheme no compiled-in store registered.
    #[error("no store for {url:?}: known schemes are {known}")]
    UnknownScheme {
        /// The URL given.
        url: String,
        /// Comma-separated registered schemes.
        known: String,
    },
    /// The ledger opened with [`OpenMode::Existing`] or
    /// [`OpenMode::ReadOnly`] does not exist (a SQLite file not there), and
    /// nothing was created; only commands that plan create a ledger.
    ///
    /// [`OpenMode::Existing`]: crate::registry::OpenMode::Existing
    /// [`OpenMode::ReadOnly`]: crate::registry::OpenMode::ReadOnly
    #[error("no ledger at {location}")]
    NoLedger {
        /// Where the ledger was looked for, as the store names it (a SQLite
        /// store: the file's absolute path).
        location: String,
    },
    /// The backend failed (I/O, driver, connection).
    #[error("{store} backend error: {source}")]
    Backend {
        /// Store name (`sqlite`, `postgres`, `memory`).
        store: &'static str,
        /// The underlying error.
        #[source]
        source: BoxError,
    },
}

impl StoreError {
    /// No job with key `job_key`.
    pub fn job_not_found(job_key: &str) -> Self {
        Self::NotFound(format!("job {job_key}"))
    }

    /// Wraps a backend error.
    pub fn backend(store: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Backend {
            store,
            source: source.into(),
        }
    }

    /// Whether trying the same call again later may succeed (backend
    /// hiccups); fencing, op conflicts and contract violations are not.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Backend { .. })
    }

    /// Whether this is [`StoreError::LeaseLost`].
    pub fn is_lease_lost(&self) -> bool {
        matches!(self, Self::LeaseLost { .. })
    }
}

/// Result alias for store calls.
pub type StoreResult<T> = Result<T, StoreError>;
