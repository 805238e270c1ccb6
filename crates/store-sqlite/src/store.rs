//! [`SqliteStore`]: the trait implementations, each one call on the
//! connection thread.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use oncefetch_core::watch::{Watch, WatchQuery};
use oncefetch_core::{
    AcquireRequest, ArtifactEntry, Commit, CommitOutcome, Expectations, ExpectedUpdate, Fence, Job, JobQuery, Lease,
    LeaseManager, LedgerStore, Millis, NewJob, OpKind, OpQuery, OpRecord, PlanCounts, ReconcileReport, RequestSlots,
    RequeueCounts, RequeueFilter, StatusCounts, StoreResult,
};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::clock;
use crate::conn::ConnThread;
use crate::lease;
use crate::ledger;
use crate::options::SqliteOptions;
use crate::tables;

/// A ledger in one SQLite file, shared by every process on the host that
/// opens it.
///
/// Each handle owns one connection on a dedicated thread; open several
/// handles (or processes) on one file for concurrency. Every write is
/// atomic on its own, inside a `BEGIN IMMEDIATE` transaction that the writes
/// waiting at the same moment share (group commit); lock contention is waited
/// out, never returned. Expiry is judged by SQLite's reading of this host's wall clock
/// (see the crate docs).
#[derive(Debug)]
pub struct SqliteStore {
    conn: ConnThread,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens (creating if missing) the ledger a `--db` URL names:
    /// `sqlite:PATH`, `sqlite://PATH` or a bare path, with options after `?`
    /// (see [`SqliteOptions`]).
    pub async fn open(url: &str) -> StoreResult<Self> {
        Self::open_with(SqliteOptions::from_url(url)?).await
    }

    /// Opens the ledger with these options: creating it when missing, unless
    /// they say not to ([`SqliteOptions::create`],
    /// [`SqliteOptions::read_only`]); then a missing file is
    /// [`StoreError::NoLedger`](oncefetch_core::StoreError::NoLedger).
    pub async fn open_with(options: SqliteOptions) -> StoreResult<Self> {
        let path = options.path().to_owned();
        let conn = ConnThread::open(options).await?;
        Ok(Self { conn, path })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[async_trait]
impl LedgerStore for SqliteStore {
    async fn plan(&self, jobs: &[NewJob]) -> StoreResult<PlanCounts> {
        let jobs = jobs.to_vec();
        self.conn.write(move |tx| ledger::plan(tx, &jobs)).await
    }

    async fn plan_stream(&self, mut batches: mpsc::Receiver<Vec<NewJob>>) -> StoreResult<PlanCounts> {
        self.conn.call(move |c| ledger::plan_stream(c, &mut batches)).await
    }

    async fn job(&self, job_key: &str) -> StoreResult<Job> {
        let job_key = job_key.to_owned();
        self.conn
            .read(move |c| {
                let (_, mut job) = tables::load_job(c, &job_key)?.ok_or_else(|| tables::not_found(&job_key))?;
                tables::hide_freed_leases(c, std::slice::from_mut(&mut job))?;
                Ok(job)
            })
            .await
    }

    async fn jobs(&self, query: &JobQuery) -> StoreResult<Vec<Job>> {
        let query = query.clone();
        self.conn.read(move |c| ledger::jobs(c, &query)).await
    }

    async fn status(&self) -> StoreResult<StatusCounts> {
        self.conn.read(ledger::status).await
    }

    async fn watch(&self, query: &WatchQuery) -> StoreResult<Watch> {
        let query = query.clone();
        self.conn.read(move |c| crate::watch::watch(c, &query)).await
    }

    async fn outstanding(&self, max_attempts: u32, within: Option<Duration>) -> StoreResult<u64> {
        self.conn
            .read(move |c| ledger::outstanding(c, max_attempts, within))
            .await
    }

    async fn commit(&self, fence: &Fence, commit: &Commit) -> StoreResult<CommitOutcome> {
        let (fence, commit) = (fence.clone(), commit.clone());
        self.conn.write(move |tx| ledger::commit(tx, &fence, &commit)).await
    }

    async fn ops(&self, query: &OpQuery) -> StoreResult<Vec<OpRecord>> {
        let query = query.clone();
        self.conn.read(move |c| ledger::ops(c, &query)).await
    }

    async fn artifact(&self, sha256: &str) -> StoreResult<Option<ArtifactEntry>> {
        let sha256 = sha256.to_owned();
        self.conn.read(move |c| Ok(ledger::artifact(c, &sha256)?)).await
    }

    async fn requeue(&self, job_key: &str, reason: &str) -> StoreResult<bool> {
        let (job_key, reason) = (job_key.to_owned(), reason.to_owned());
        self.conn.write(move |tx| ledger::requeue(tx, &job_key, &reason)).await
    }

    async fn requeue_matching(&self, filter: &RequeueFilter, reason: &str) -> StoreResult<RequeueCounts> {
        let (filter, reason) = (filter.clone(), reason.to_owned());
        self.conn
            .write(move |tx| ledger::requeue_matching(tx, &filter, &reason))
            .await
    }

    async fn update_expected(
        &self,
        job_key: &str,
        expected: &Expectations,
        reason: &str,
    ) -> StoreResult<ExpectedUpdate> {
        let (job_key, expected, reason) = (job_key.to_owned(), expected.clone(), reason.to_owned());
        self.conn
            .write(move |tx| ledger::update_expected(tx, &job_key, &expected, &reason))
            .await
    }

    /// Checkpoints the write-ahead log into the database file
    /// (`PRAGMA wal_checkpoint(TRUNCATE)`) and closes the connection, so a
    /// copy of the `.db` file alone holds the whole ledger.
    async fn close(&self) -> StoreResult<()> {
        self.conn.close().await
    }

    async fn claim_request_slots(&self, host: &str, interval: Duration, count: u32) -> StoreResult<RequestSlots> {
        let host = host.to_owned();
        self.conn
            .write(move |tx| ledger::claim_request_slots(tx, &host, interval, count))
            .await
    }

    async fn note(&self, job_key: &str, op_key: &str, kind: OpKind, result: &Value) -> StoreResult<()> {
        let (job_key, op_key, result) = (job_key.to_owned(), op_key.to_owned(), result.clone());
        self.conn
            .write(move |tx| ledger::note(tx, &job_key, &op_key, kind, &result))
            .await
    }
}

#[async_trait]
impl LeaseManager for SqliteStore {
    async fn acquire(&self, request: &AcquireRequest) -> StoreResult<Vec<Lease>> {
        let request = request.clone();
        self.conn.write(move |tx| lease::acquire(tx, &request)).await
    }

    async fn renew(&self, fence: &Fence, ttl: Duration) -> StoreResult<Millis> {
        let fence = fence.clone();
        self.conn.write(move |tx| lease::renew(tx, &fence, ttl)).await
    }

    async fn release(&self, fence: &Fence) -> StoreResult<()> {
        let fence = fence.clone();
        self.conn.write(move |tx| lease::release(tx, &fence)).await
    }

    async fn reconcile(&self, stale_after: Duration) -> StoreResult<ReconcileReport> {
        self.conn.write(move |tx| lease::reconcile(tx, stale_after)).await
    }

    async fn now(&self) -> StoreResult<Millis> {
        self.conn.read(|c| Ok(clock::now(c)?)).await
    }
}
