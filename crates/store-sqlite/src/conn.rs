//! One connection, owned by one dedicated thread.
//!
//! A [`ConnThread`] opens the database on its own OS thread and runs every
//! call there, fed by a channel; the async caller awaits a oneshot reply, so
//! no SQLite call ever blocks an async executor.
//!
//! Writes are group-committed: the thread takes every write waiting in the
//! channel (up to [`MAX_GROUP`]) into one `BEGIN IMMEDIATE` transaction,
//! commits once, and only then replies to each caller. The writes run one
//! after the other with no savepoint first (a savepoint costs two statements
//! and a copy of every page a write touches); when one of them fails — a lost
//! lease, a conflict — the transaction is rolled back and the group runs
//! again with each write inside its own `SAVEPOINT`, so that the failed write
//! is rolled back alone and answers with its error. Every write stays atomic and
//! isolated, and a caller hears "done" only once its write is committed;
//! many concurrent workers pay for one commit instead of one each. A group
//! that meets `SQLITE_BUSY` or `SQLITE_LOCKED` (another connection or process
//! holds the lock past `busy_timeout`, or SQLite refused to wait) is rolled
//! back and run again from the start after a short backoff, so lock errors
//! never reach a caller.
//!
//! Checkpoints stay off the write path: each handle also runs a checkpoint
//! thread with its own connection that copies the WAL back into the database
//! every [`CHECKPOINT_EVERY`] (`PRAGMA wal_checkpoint(PASSIVE)`, which never
//! blocks a writer). A commit therefore only appends to the WAL; the
//! automatic checkpoint inside a commit is kept only as a safety net for a
//! WAL that grows past [`AUTOCHECKPOINT_PAGES`].

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use oncefetch_core::{StoreError, StoreResult};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use tokio::sync::oneshot;

use crate::error::{Invalid, OpenError, TxError, STORE};
use crate::migrate;
use crate::options::SqliteOptions;

/// Work sent to the connection thread.
enum Task {
    /// A read, or a call that runs its own transactions: run on its own.
    Alone(Box<dyn FnOnce(&mut Connection) + Send>),
    /// A write, run in the next group transaction.
    Write(Box<dyn GroupWrite>),
    /// Checkpoint, answer, and stop serving.
    Close(oneshot::Sender<StoreResult<()>>),
}

/// Most writes committed in one transaction.
const MAX_GROUP: usize = 128;

/// Statements kept prepared per connection.
const STATEMENT_CACHE: usize = 64;

/// Page cache per connection (negative: KiB).
const CACHE_SIZE_KIB: i64 = 64 * 1024;

/// How often the checkpoint thread copies the WAL back. A checkpoint copies
/// the latest version of each page written since the last one, so a page that
/// a busy run rewrites many times a second is copied once per period.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(1000);

/// How many times opening asks for WAL before it gives up.
const WAL_SWITCH_ATTEMPTS: u32 = 40;

/// WAL size (pages) past which a commit checkpoints by itself.
const AUTOCHECKPOINT_PAGES: u32 = 16_384;

/// A handle on the connection thread; the thread (and the checkpoint thread)
/// end when the handle drops.
#[derive(Debug)]
pub(crate) struct ConnThread {
    tasks: mpsc::Sender<Task>,
    /// Dropping it stops the checkpoint thread.
    _stop_checkpoints: mpsc::Sender<()>,
}

impl ConnThread {
    /// Starts the thread, opens and migrates the database there.
    pub(crate) async fn open(options: SqliteOptions) -> StoreResult<Self> {
        let (tasks, inbox) = mpsc::channel::<Task>();
        let (ready, opened) = oneshot::channel();
        let path = options.path().to_owned();
        let checkpoint_path = path.clone();
        let options_for_checkpoints = options.clone();
        std::thread::Builder::new()
            .name("oncefetch-sqlite".into())
            .spawn(move || {
                let mut conn = match open_connection(&options) {
                    Ok(conn) => {
                        let _ = ready.send(Ok(()));
                        conn
                    }
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return;
                    }
                };
                serve(&mut conn, &inbox);
            })
            .map_err(|e| StoreError::backend(STORE, OpenError { path, source: e.into() }))?;
        opened.await.map_err(|_| closed())??;
        let (stop, stopped) = mpsc::channel();
        if options_for_checkpoints.is_read_only() {
            return Ok(Self {
                tasks,
                _stop_checkpoints: stop,
            });
        }
        std::thread::Builder::new()
            .name("oncefetch-sqlite-checkpoint".into())
            .spawn(move || checkpoint_loop(&options_for_checkpoints, &stopped))
            .map_err(|e| {
                StoreError::backend(
                    STORE,
                    OpenError {
                        path: checkpoint_path,
                        source: e.into(),
                    },
                )
            })?;
        Ok(Self {
            tasks,
            _stop_checkpoints: stop,
        })
    }

    /// Checkpoints the WAL into the database file (`TRUNCATE`: the `-wal`
    /// file is left empty) after every call sent before, then closes the
    /// connection; later calls fail. A checkpoint that another process's
    /// reader holds back is logged and left to that process.
    pub(crate) async fn close(&self) -> StoreResult<()> {
        let (reply, answer) = oneshot::channel();
        self.tasks.send(Task::Close(reply)).map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }

    /// Runs the read `body` on the connection thread (again while the
    /// database is busy) and waits for its answer.
    pub(crate) async fn read<T, F>(&self, mut body: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnMut(&Connection) -> Result<T, TxError> + Send + 'static,
    {
        self.call(move |conn| retry_busy(|| body(conn)).map_err(TxError::into_store))
            .await
    }

    /// Runs `f` on the connection thread on its own, outside any group
    /// transaction (`f` runs its own, with [`write`]), and waits for its
    /// answer.
    pub(crate) async fn call<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let task = Task::Alone(Box::new(move |conn| {
            let result = catch_unwind(AssertUnwindSafe(|| f(conn))).unwrap_or_else(|_| Err(panicked()));
            let _ = reply.send(result);
        }));
        self.tasks.send(task).map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }

    /// Runs the write `body` on the connection thread, atomically, in the
    /// next group transaction, and waits until it is committed (or failed).
    /// `body` may run more than once: a group that meets a busy database is
    /// rolled back and run again.
    pub(crate) async fn write<T, F>(&self, body: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnMut(&Connection) -> Result<T, TxError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let task = Task::Write(Box::new(PendingWrite {
            body,
            output: None,
            reply,
        }));
        self.tasks.send(task).map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}

fn panicked() -> StoreError {
    StoreError::backend(STORE, Invalid("a store call panicked on the connection thread".into()))
}

/// A write waiting for its group: runs inside the group's transaction and
/// replies once the group is committed.
trait GroupWrite: Send {
    /// Runs the body in a savepoint of the open transaction and keeps its
    /// output (an error rolls back to the savepoint). Returns `Err` only
    /// when the whole group must run again (busy).
    fn run(&mut self, conn: &Connection) -> Result<(), TxError>;

    /// Runs the body in the open transaction, with no savepoint, and keeps
    /// its output when it succeeds. Returns `Ok(false)` when it failed
    /// (whatever it wrote stays in the transaction: the caller rolls the
    /// group back and runs it again with [`run`](Self::run)), and `Err` when
    /// the whole group must run again (busy).
    fn run_bare(&mut self, conn: &Connection) -> Result<bool, TxError>;

    /// Answers the caller: its output when the group committed, otherwise
    /// the group's failure.
    fn reply(self: Box<Self>, committed: Result<(), &TxError>);
}

struct PendingWrite<T, F> {
    body: F,
    output: Option<Result<T, TxError>>,
    reply: oneshot::Sender<StoreResult<T>>,
}

impl<T, F> GroupWrite for PendingWrite<T, F>
where
    T: Send,
    F: FnMut(&Connection) -> Result<T, TxError> + Send,
{
    fn run(&mut self, conn: &Connection) -> Result<(), TxError> {
        conn.prepare_cached("SAVEPOINT group_write")?.execute([])?;
        let output =
            catch_unwind(AssertUnwindSafe(|| (self.body)(conn))).unwrap_or_else(|_| Err(TxError::Store(panicked())));
        match output {
            Ok(value) => {
                conn.prepare_cached("RELEASE group_write")?.execute([])?;
                self.output = Some(Ok(value));
                Ok(())
            }
            Err(err) => {
                conn.prepare_cached("ROLLBACK TO group_write")?.execute([])?;
                conn.prepare_cached("RELEASE group_write")?.execute([])?;
                if err.is_busy() {
                    return Err(err);
                }
                self.output = Some(Err(err));
                Ok(())
            }
        }
    }

    fn run_bare(&mut self, conn: &Connection) -> Result<bool, TxError> {
        let output =
            catch_unwind(AssertUnwindSafe(|| (self.body)(conn))).unwrap_or_else(|_| Err(TxError::Store(panicked())));
        match output {
            Ok(value) => {
                self.output = Some(Ok(value));
                Ok(true)
            }
            Err(err) if err.is_busy() => Err(err),
            Err(_) => Ok(false),
        }
    }

    fn reply(self: Box<Self>, committed: Result<(), &TxError>) {
        let answer = match (committed, self.output) {
            (Ok(()), Some(output)) => output.map_err(TxError::into_store),
            (Ok(()), None) => Err(StoreError::backend(STORE, Invalid("a write did not run".into()))),
            (Err(err), _) => Err(StoreError::backend(
                STORE,
                Invalid(format!("the write transaction failed: {}", err)),
            )),
        };
        let _ = self.reply.send(answer);
    }
}

/// The connection thread's loop: reads run as they come; every write waiting
/// in the channel joins one group transaction.
fn serve(conn: &mut Connection, inbox: &mpsc::Receiver<Task>) {
    let mut group: Vec<Box<dyn GroupWrite>> = Vec::new();
    while let Ok(task) = inbox.recv() {
        let mut next = Some(task);
        let mut closing = None;
        while let Some(task) = next.take() {
            match task {
                Task::Alone(read) => read(conn),
                Task::Write(write) => group.push(write),
                Task::Close(reply) => {
                    closing = Some(reply);
                    break;
                }
            }
            if group.len() < MAX_GROUP {
                next = inbox.try_recv().ok();
            }
        }
        if !group.is_empty() {
            commit_group(conn, &mut group);
        }
        if let Some(reply) = closing {
            let _ = reply.send(checkpoint_on_close(conn));
            return;
        }
    }
}

/// `PRAGMA wal_checkpoint(TRUNCATE)` unless the connection is read-only.
/// Busy (another process reading or writing) is not an error: the ledger is
/// whole either way, and the last connection to close checkpoints.
fn checkpoint_on_close(conn: &Connection) -> StoreResult<()> {
    if conn
        .is_readonly(rusqlite::MAIN_DB)
        .map_err(|e| TxError::Sql(e).into_store())?
    {
        return Ok(());
    }
    let busy: i64 = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
        .map_err(|e| TxError::Sql(e).into_store())?;
    if busy != 0 {
        tracing::debug!("sqlite checkpoint on close held back by another connection");
    }
    Ok(())
}

/// Runs `group` in one `BEGIN IMMEDIATE` transaction (again from the start
/// while the database is busy), commits, and answers every caller: first
/// with no savepoints, and, when a write fails, rolled back and run again
/// with each write in its own savepoint.
fn commit_group(conn: &mut Connection, group: &mut Vec<Box<dyn GroupWrite>>) {
    let outcome = retry_busy(|| {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut clean = true;
        for write in group.iter_mut() {
            if !write.run_bare(&tx)? {
                clean = false;
                break;
            }
        }
        if clean {
            tx.commit()?;
            return Ok(());
        }
        tx.rollback()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for write in group.iter_mut() {
            write.run(&tx)?;
        }
        tx.commit()?;
        Ok(())
    });
    for write in group.drain(..) {
        write.reply(outcome.as_ref().copied());
    }
}

fn closed() -> StoreError {
    StoreError::backend(STORE, Invalid("the sqlite connection thread stopped".into()))
}

/// Opens the file (creating it and its folder when the options allow), sets
/// the connection up and migrates the schema.
fn open_connection(options: &SqliteOptions) -> StoreResult<Connection> {
    let path = options.path();
    let fail = |source: Box<dyn std::error::Error + Send + Sync>| {
        StoreError::backend(
            STORE,
            OpenError {
                path: path.to_owned(),
                source,
            },
        )
    };
    set_up(options).map_err(|e| match e {
        TxError::Sql(e) => fail(Box::new(e)),
        TxError::Io(e) => fail(Box::new(e)),
        TxError::Store(StoreError::Backend { source, .. }) => fail(source),
        TxError::Store(other) => other,
    })
}

pub(crate) fn set_up(options: &SqliteOptions) -> Result<Connection, TxError> {
    let path = options.path();
    let creates = options.creates_missing();
    // Only a creating open may bring a ledger into being: any other is
    // refused before SQLite (or `create_dir_all`) touches the file system.
    // An existence check that itself fails (no permission on a folder) is
    // left for the open below to report.
    if !creates && matches!(path.try_exists(), Ok(false)) {
        return Err(TxError::Store(StoreError::NoLedger {
            location: std::path::absolute(path)
                .unwrap_or_else(|_| path.to_owned())
                .display()
                .to_string(),
        }));
    }
    if options.is_read_only() {
        return set_up_read_only(options);
    }
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if creates {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let mut conn = Connection::open_with_flags(path, flags)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // Query-planner stability: a cached statement keeps its plan whatever
    // values are bound. Without it SQLite re-prepares a statement whenever a
    // bound value it consulted while planning (the clock, a LIMIT) changes,
    // which is every call of the hot queries.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    conn.busy_timeout(options.busy_timeout_duration())?;
    let synchronous = options.synchronous_mode().pragma();
    // WAL: readers never block the writer; one writer at a time. Switching
    // a new file to WAL needs it to itself for a moment: while another
    // process holds it, SQLite reports busy (retried) or leaves the mode as
    // it was (tried again a few times before giving up).
    let mut attempts = 0;
    loop {
        let mode: String = retry_busy(|| Ok(conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?))?;
        if mode.eq_ignore_ascii_case("wal") {
            break;
        }
        attempts += 1;
        if attempts == WAL_SWITCH_ATTEMPTS {
            return Err(TxError::Store(StoreError::backend(
                STORE,
                Invalid(format!(
                    "journal_mode stayed {mode:?}; this store needs WAL (a local file system)"
                )),
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    retry_busy(|| {
        conn.execute_batch(&format!(
            "PRAGMA synchronous = {synchronous};
             PRAGMA foreign_keys = ON;
             PRAGMA temp_store = MEMORY;
             PRAGMA cache_size = -{CACHE_SIZE_KIB};
             PRAGMA wal_autocheckpoint = {AUTOCHECKPOINT_PAGES};"
        ))?;
        Ok(())
    })?;
    retry_busy(|| migrate::migrate(&mut conn))?;
    Ok(conn)
}

/// Opens an existing ledger with `SQLITE_OPEN_READ_ONLY`: no file is
/// created, the journal mode is left as it is, and the schema is checked,
/// never migrated.
fn set_up_read_only(options: &SqliteOptions) -> Result<Connection, TxError> {
    let path = options.path();
    let conn = open_read_only(path)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    conn.busy_timeout(options.busy_timeout_duration())?;
    retry_busy(|| {
        conn.execute_batch(&format!(
            "PRAGMA foreign_keys = ON;
             PRAGMA temp_store = MEMORY;
             PRAGMA cache_size = -{CACHE_SIZE_KIB};"
        ))?;
        Ok(())
    })?;
    retry_busy(|| migrate::check(&conn, path))?;
    Ok(conn)
}

/// Opens `path` read-only. SQLite reads a WAL ledger through its `-shm`
/// file, which it cannot open for writing on a read-only mount; then it is
/// opened again with `readonly_shm=1` (SQLite rebuilds the index in memory,
/// reading the `-wal`), and, when there is no `-wal` holding data, with
/// `immutable=1` (the file alone is the whole ledger, and a read-only mount
/// keeps it from changing).
fn open_read_only(path: &Path) -> Result<Connection, TxError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    // SQLite opens lazily: the first read tells whether it can.
    let try_open = |target: &str, flags: OpenFlags| -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(target, flags)?;
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))?;
        Ok(conn)
    };
    let first = match path.to_str() {
        Some(text) => try_open(text, flags),
        None => return Ok(Connection::open_with_flags(path, flags)?),
    };
    let Err(error) = first else {
        return first.map_err(TxError::Sql);
    };
    if error.sqlite_error_code() != Some(rusqlite::ErrorCode::CannotOpen) {
        return Err(TxError::Sql(error));
    }
    let uri = |param: &str| format!("file:{}?mode=ro&{param}", uri_path(path));
    let flags = flags | OpenFlags::SQLITE_OPEN_URI;
    if let Ok(conn) = try_open(&uri("readonly_shm=1"), flags) {
        return Ok(conn);
    }
    let wal = std::fs::metadata(format!("{}-wal", path.display())).map_or(0, |m| m.len());
    if wal > 0 {
        return Err(invalid_tx(format!(
            "cannot read {}: its write-ahead log holds changes not yet in the database file, and the \
             log cannot be opened here; open the ledger once with write access",
            path.display()
        )));
    }
    Ok(try_open(&uri("immutable=1"), flags)?)
}

/// `path` for a `file:` URI: `%`, `?` and `#` escaped.
fn uri_path(path: &Path) -> String {
    let mut out = String::new();
    for c in path.display().to_string().chars() {
        match c {
            '%' | '?' | '#' => out.push_str(&format!("%{:02X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

fn invalid_tx(message: String) -> TxError {
    TxError::Store(StoreError::backend(STORE, Invalid(message)))
}

/// Checkpoints the WAL every [`CHECKPOINT_EVERY`] until the handle drops.
/// Failures only delay a checkpoint (the next round, or a commit past
/// [`AUTOCHECKPOINT_PAGES`], catches up), so they are logged, not returned.
fn checkpoint_loop(options: &SqliteOptions, stop: &mpsc::Receiver<()>) {
    let conn = match Connection::open_with_flags(
        options.path(),
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    ) {
        Ok(conn) => conn,
        Err(e) => {
            tracing::warn!(error = %e, "sqlite checkpoint thread could not open the database");
            return;
        }
    };
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY) {
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::debug!(error = %e, "sqlite checkpoint deferred");
        }
    }
}

/// Runs `body` in a `BEGIN IMMEDIATE` transaction of its own and commits it,
/// running it again from the start whenever SQLite reports the database busy
/// (for a [`ConnThread::call`] that manages its own transactions).
pub(crate) fn write<T>(
    conn: &mut Connection,
    mut body: impl FnMut(&Connection) -> Result<T, TxError>,
) -> StoreResult<T> {
    retry_busy(|| {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = body(&tx)?;
        tx.commit()?;
        Ok(out)
    })
    .map_err(TxError::into_store)
}

/// Longest pause between two attempts.
const MAX_BACKOFF: Duration = Duration::from_millis(50);

/// How often a long wait is reported.
const REPORT_EVERY: Duration = Duration::from_secs(30);

/// Runs `attempt` until it does not fail with busy/locked. Waiting is
/// unbounded by design: a lock is always released eventually (the holder
/// commits, rolls back or dies), and a lock error is never the caller's
/// problem; long waits are logged.
fn retry_busy<T>(mut attempt: impl FnMut() -> Result<T, TxError>) -> Result<T, TxError> {
    let started = Instant::now();
    let mut next_report = REPORT_EVERY;
    let mut backoff = Duration::from_micros(500);
    let mut tries: u64 = 0;
    loop {
        match attempt() {
            Err(e) if e.is_busy() => {
                tries += 1;
                let waited = started.elapsed();
                if waited >= next_report {
                    tracing::warn!(?waited, tries, "sqlite database busy; still waiting for the lock");
                    next_report += REPORT_EVERY;
                } else {
                    tracing::debug!(tries, "sqlite database busy; retrying");
                }
                // Jitter from the clock's low bits keeps processes from
                // retrying in lockstep.
                let jitter = Duration::from_nanos(u64::from(started.elapsed().subsec_nanos() % 1_000_000) / 2);
                std::thread::sleep(backoff + jitter);
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending<T: Send + 'static>(
        body: impl FnMut(&Connection) -> Result<T, TxError> + Send + 'static,
    ) -> (Box<dyn GroupWrite>, oneshot::Receiver<StoreResult<T>>) {
        let (reply, answer) = oneshot::channel();
        let write = PendingWrite {
            body,
            output: None,
            reply,
        };
        (Box::new(write), answer)
    }

    /// A write that fails after writing a row, between two that succeed:
    /// the group runs again with savepoints, the failed write's row is
    /// gone, its neighbours' rows are committed, each caller hears its own
    /// answer.
    #[test]
    fn a_write_failing_midway_leaves_nothing_and_its_group_commits() {
        let mut conn = Connection::open_in_memory().expect("open");
        conn.execute_batch("CREATE TABLE t (v INTEGER NOT NULL)")
            .expect("table");
        let insert = |v: i64| move |c: &Connection| Ok(c.execute("INSERT INTO t (v) VALUES (?1)", [v])?);
        let (first, first_answer) = pending(insert(1));
        let (failing, failing_answer) = pending(|c: &Connection| {
            c.execute("INSERT INTO t (v) VALUES (2)", [])?;
            Err::<usize, _>(invalid_tx("refused after a write".into()))
        });
        let (last, last_answer) = pending(insert(3));
        let mut group = vec![first, failing, last];
        commit_group(&mut conn, &mut group);
        let values: Vec<i64> = conn
            .prepare("SELECT v FROM t ORDER BY v")
            .expect("prepare")
            .query_map([], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert_eq!(values, [1, 3]);
        assert_eq!(first_answer.blocking_recv().expect("reply").expect("first"), 1);
        let refused = failing_answer.blocking_recv().expect("reply").expect_err("refused");
        assert!(refused.to_string().contains("refused after a write"), "{refused}");
        assert_eq!(last_answer.blocking_recv().expect("reply").expect("last"), 1);
    }
}
