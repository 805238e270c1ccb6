//! The connection pool, transactions, and carrying on after the server went
//! away.
//!
//! Every call borrows one pooled connection. Pooled connections are checked
//! for a closed socket or a half-finished transaction when they are handed
//! out (deadpool's fast recycling), so after a server restart the dead ones
//! are dropped and new ones opened. A call that fails because the connection
//! failed is run again, with backoff, for up to the retry window — but only
//! when running it again cannot apply a write twice:
//!
//! - no connection could be had: nothing was sent;
//! - the connection failed before `COMMIT` was sent: the server rolls the
//!   transaction back;
//! - reads, and writes that are idempotent by construction
//!   ([`Replay::Safe`]).
//!
//! A write whose `COMMIT`, or whose single autocommitted statement, got no
//! answer ([`Replay::Once`]) is reported as a backend error saying that its
//! outcome is unknown.

use std::fmt;
use std::time::{Duration, Instant};

use deadpool::managed::{PoolError, TimeoutType};
use deadpool::Runtime;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::ConnectionError;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, PoolError as ManagerError, RecyclingMethod,
};
use diesel_async::scoped_futures::ScopedBoxFuture;
use diesel_async::{
    AnsiTransactionManager, AsyncConnection, AsyncPgConnection, SimpleAsyncConnection, TransactionManager,
};
use futures::FutureExt;
use oncefetch_core::{StoreError, StoreResult};

use crate::options::{quote_ident, redact, PostgresOptions};
use crate::STORE;

/// A connection of the pool.
pub(crate) type Conn = AsyncPgConnection;

/// How long a call waits for a free pooled connection.
const WAIT_TIMEOUT: Duration = Duration::from_secs(60);
/// First pause before a retry; doubled up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(25);
const MAX_PAUSE: Duration = Duration::from_secs(1);

/// Why the body of a call failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// A contract answer (lease lost, conflict, not found, …): the
    /// transaction is rolled back and the error returned as it is.
    Store(StoreError),
    /// The database failed.
    Db(DieselError),
}

impl From<DieselError> for Failure {
    fn from(e: DieselError) -> Self {
        Self::Db(e)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// Whether a call may run again when its outcome is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replay {
    /// Reads, and writes whose second run changes nothing more.
    Safe,
    /// Writes that must not run twice.
    Once,
}

/// A write whose `COMMIT` (or whose single statement) got no answer: it may
/// or may not have been applied.
#[derive(Debug)]
struct OutcomeUnknown(DieselError);

impl fmt::Display for OutcomeUnknown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "connection lost before the server confirmed the write, which may or may not have been applied: {}",
            self.0
        )
    }
}

impl std::error::Error for OutcomeUnknown {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// How a call talks to the server.
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// Statements outside a transaction.
    Statement(Replay),
    /// One transaction.
    Transaction(Replay),
}

/// What one try of a call came to.
enum Attempt<T> {
    Done(T),
    /// Failed in a way that running the call again may fix.
    Retry(StoreError),
    Fail(StoreError),
}

/// The pool and the retry policy.
pub(crate) struct Db {
    pool: Pool<Conn>,
    retry_window: Duration,
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.pool.status();
        f.debug_struct("Db")
            .field("max_size", &status.max_size)
            .field("size", &status.size)
            .field("available", &status.available)
            .field("retry_window", &self.retry_window)
            .finish()
    }
}

/// Session settings of every pooled connection.
fn session_setup(options: &PostgresOptions) -> String {
    // Grants rely on READ COMMITTED (see free_of_other_leases in the migration),
    // whatever the server's default. Every query of the store is prepared
    // once per connection and written for one plan shape (only the filters
    // it uses, partial indexes that match), so it keeps its generic plan:
    // re-planning the grant query on each call costs more than running it.
    let mut sql = String::from(
        "SET default_transaction_isolation TO 'read committed'; SET plan_cache_mode TO force_generic_plan",
    );
    if let Some(schema) = options.schema_name() {
        sql.push_str("; SET search_path TO ");
        sql.push_str(&quote_ident(schema));
    }
    sql
}

impl Db {
    /// Builds the pool; connections open on first use.
    pub(crate) fn new(options: &PostgresOptions) -> StoreResult<Self> {
        let setup = session_setup(options);
        let mut config = ManagerConfig::<Conn>::default();
        // Only checks that the socket is open and no transaction was left
        // behind: no round trip when a connection is handed out.
        config.recycling_method = RecyclingMethod::Fast;
        config.custom_setup = Box::new(move |url| {
            let setup = setup.clone();
            async move {
                let mut conn = Conn::establish(url).await?;
                conn.batch_execute(&setup)
                    .await
                    .map_err(ConnectionError::CouldntSetupConfiguration)?;
                Ok(conn)
            }
            .boxed()
        });
        let manager = AsyncDieselConnectionManager::new_with_config(options.connection_url(), config);
        let pool = Pool::builder(manager)
            .max_size(options.max_connections())
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(WAIT_TIMEOUT))
            .create_timeout(Some(options.connect_timeout_duration()))
            .recycle_timeout(Some(options.connect_timeout_duration()))
            .build()
            .map_err(|e| StoreError::backend(STORE, format!("{}: {e}", redact(options.connection_url()))))?;
        Ok(Self {
            pool,
            retry_window: options.retry_window_duration(),
        })
    }

    /// Runs `body` on a pooled connection outside a transaction: reads, or
    /// one statement (atomic by itself). When the connection fails under a
    /// statement its outcome is unknown, so only [`Replay::Safe`] bodies run
    /// again then.
    pub(crate) async fn run<'a, T, F>(&self, replay: Replay, body: F) -> StoreResult<T>
    where
        F: for<'r> Fn(&'r mut Conn) -> ScopedBoxFuture<'a, 'r, Result<T, Failure>> + Send + Sync + 'a,
        T: Send + 'a,
    {
        self.retrying(Mode::Statement(replay), &body).await
    }

    /// Runs `body` in one transaction: committed when it returns `Ok`, rolled
    /// back when it returns `Err`.
    pub(crate) async fn transaction<'a, T, F>(&self, replay: Replay, body: F) -> StoreResult<T>
    where
        F: for<'r> Fn(&'r mut Conn) -> ScopedBoxFuture<'a, 'r, Result<T, Failure>> + Send + Sync + 'a,
        T: Send + 'a,
    {
        self.retrying(Mode::Transaction(replay), &body).await
    }

    async fn retrying<'a, T, F>(&self, mode: Mode, body: &F) -> StoreResult<T>
    where
        F: for<'r> Fn(&'r mut Conn) -> ScopedBoxFuture<'a, 'r, Result<T, Failure>> + Send + Sync + 'a,
        T: Send + 'a,
    {
        let started = Instant::now();
        let mut pause = FIRST_PAUSE;
        loop {
            match self.attempt(mode, body).await {
                Attempt::Done(value) => return Ok(value),
                Attempt::Fail(e) => return Err(e),
                Attempt::Retry(e) => {
                    if started.elapsed() + pause > self.retry_window {
                        return Err(e);
                    }
                    tracing::warn!(error = %e, ?pause, "postgres: connection failed, trying again");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_PAUSE);
                }
            }
        }
    }

    async fn attempt<'a, T, F>(&self, mode: Mode, body: &F) -> Attempt<T>
    where
        F: for<'r> Fn(&'r mut Conn) -> ScopedBoxFuture<'a, 'r, Result<T, Failure>> + Send + Sync + 'a,
        T: Send + 'a,
    {
        let mut checkout = match self.pool.get().await {
            Ok(conn) => Checkout {
                conn: Some(conn),
                in_transaction: false,
            },
            Err(e) => return pool_failure(e),
        };
        // Whether the write may have been applied if the connection fails.
        let mut committing = false;
        let (result, replay) = match mode {
            Mode::Statement(replay) => {
                committing = true;
                (body(checkout.conn()).await, replay)
            }
            Mode::Transaction(replay) => (in_transaction(&mut checkout, body, &mut committing).await, replay),
        };
        match result {
            Ok(value) => Attempt::Done(value),
            Err(Failure::Store(e)) => Attempt::Fail(e),
            Err(Failure::Db(e)) => {
                if !connection_lost(checkout.conn(), &e).await {
                    return Attempt::Fail(StoreError::backend(STORE, e));
                }
                checkout.discard();
                if committing && replay == Replay::Once {
                    Attempt::Fail(StoreError::backend(STORE, OutcomeUnknown(e)))
                } else {
                    Attempt::Retry(StoreError::backend(STORE, e))
                }
            }
        }
    }
}

/// A pooled connection for one try of a call. Dropped halfway through a
/// transaction (the caller gave up on the call), it closes the connection
/// instead of returning it to the pool: the server rolls back and releases
/// the transaction's row locks at once, not when the pool next hands the
/// connection out.
struct Checkout {
    conn: Option<Object<Conn>>,
    in_transaction: bool,
}

impl Checkout {
    fn conn(&mut self) -> &mut Conn {
        self.conn.as_mut().expect("a checked-out connection")
    }

    /// Closes the connection rather than returning it to the pool.
    fn discard(&mut self) {
        if let Some(conn) = self.conn.take() {
            drop(Object::take(conn));
        }
    }
}

impl Drop for Checkout {
    fn drop(&mut self) {
        if self.in_transaction {
            self.discard();
        }
    }
}

/// BEGIN, `body`, then COMMIT or ROLLBACK. Sets `committing` once COMMIT is
/// about to be sent. The checkout counts as in a transaction until COMMIT or
/// ROLLBACK succeeded.
async fn in_transaction<'a, T, F>(checkout: &mut Checkout, body: &F, committing: &mut bool) -> Result<T, Failure>
where
    F: for<'r> Fn(&'r mut Conn) -> ScopedBoxFuture<'a, 'r, Result<T, Failure>> + Send + Sync + 'a,
    T: Send + 'a,
{
    checkout.in_transaction = true;
    AnsiTransactionManager::begin_transaction(checkout.conn()).await?;
    match body(checkout.conn()).await {
        Ok(value) => {
            *committing = true;
            AnsiTransactionManager::commit_transaction(checkout.conn()).await?;
            checkout.in_transaction = false;
            Ok(value)
        }
        Err(e) => {
            // A failed rollback leaves the connection to be discarded; the
            // error that matters is the body's.
            match AnsiTransactionManager::rollback_transaction(checkout.conn()).await {
                Ok(()) => checkout.in_transaction = false,
                Err(rollback) => tracing::debug!(error = %rollback, "postgres: rollback failed"),
            }
            Err(e)
        }
    }
}

fn pool_failure<T>(e: PoolError<ManagerError>) -> Attempt<T> {
    let retry = matches!(
        e,
        PoolError::Backend(_) | PoolError::Timeout(TimeoutType::Create | TimeoutType::Recycle)
    );
    let e = StoreError::backend(STORE, e);
    if retry {
        Attempt::Retry(e)
    } else {
        Attempt::Fail(e)
    }
}

/// Whether `e` came from the connection rather than the statement: the
/// driver says so, or the server sent an error (such as "terminating
/// connection due to administrator command") and the connection no longer
/// answers.
async fn connection_lost(conn: &mut Conn, e: &DieselError) -> bool {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::UnableToSendCommand | DatabaseErrorKind::ClosedConnection, _)
        | DieselError::BrokenTransactionManager => true,
        DieselError::DatabaseError(DatabaseErrorKind::Unknown, _) | DieselError::RollbackErrorOnCommit { .. } => {
            conn.batch_execute("SELECT 1").await.is_err()
        }
        _ => false,
    }
}
