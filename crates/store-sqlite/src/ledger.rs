//! The [`LedgerStore`](oncefetch_core::LedgerStore) operations, as synchronous
//! functions that run on the connection thread, each atomic in its own
//! savepoint of a group transaction (reads on their own).

use oncefetch_core::kernel::{self, CommitReads, Expecting, OpFacts};
use oncefetch_core::url::host_port;
use oncefetch_core::{
    check_transition, ArtifactEntry, Commit, CommitOutcome, ExpectationConflict, Expectations, ExpectedUpdate, Fence,
    Job, JobQuery, JobState, Millis, NewJob, OpKind, OpQuery, OpRecord, PlanCounts, RequestSlots, RequeueCounts,
    RequeueFilter, ResultCode, StatusCounts, StoreError, StoreResult, Transition,
};
use std::collections::HashMap;
use std::time::{Duration, Instant};

use rusqlite::{named_params, Connection, OptionalExtension};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::clock;
use crate::error::{Invalid, TxError, STORE};
use crate::queries;
use crate::rows;
use crate::tables::{insert_row, load_job, not_found};

/// Jobs per multi-row `INSERT` (8 parameters each, far below SQLite's
/// 32766-parameter limit).
const PLAN_CHUNK: usize = 512;

/// Plans jobs with multi-row `INSERT OR IGNORE`s, binding the jobs' own
/// strings (no copies). Only an insert that left some of its rows out (their
/// keys were present, or met twice) reads anything back: the recorded
/// expectations of its jobs whose line declares some. The new jobs are then
/// counted per host in `watch_hosts` (see [`count_new`]).
pub(crate) fn plan(conn: &Connection, jobs: &[NewJob]) -> Result<PlanCounts, TxError> {
    let mut seq: i64 = conn
        .prepare_cached("SELECT COALESCE(MAX(planned_seq), 0) FROM jobs")?
        .query_row([], |row| row.get(0))?;
    let mut hosts = HashMap::new();
    let mut inserted = 0usize;
    let mut conflicts = Vec::new();
    let mut done = 0usize;
    let mut chunks = jobs.chunks_exact(PLAN_CHUNK);
    if chunks.len() > 0 {
        let mut stmt = conn.prepare_cached(&insert_sql(PLAN_CHUNK))?;
        for chunk in chunks.by_ref() {
            let new = insert_jobs(&mut stmt, chunk)?;
            count_new(conn, chunk, new, &mut seq, &mut hosts)?;
            if new < chunk.len() {
                check_expectations(conn, chunk, done, &mut conflicts)?;
            }
            inserted += new;
            done += chunk.len();
        }
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut stmt = conn.prepare_cached(&insert_sql(1))?;
        for job in rest {
            let one = std::slice::from_ref(job);
            let new = insert_jobs(&mut stmt, one)?;
            count_new(conn, one, new, &mut seq, &mut hosts)?;
            if new == 0 {
                check_expectations(conn, one, done, &mut conflicts)?;
            }
            inserted += new;
            done += 1;
        }
    }
    if !hosts.is_empty() {
        let mut stmt = conn.prepare_cached(queries::WATCH_PLAN_HOST)?;
        for (host, jobs) in hosts {
            stmt.execute(named_params! {":host": host, ":jobs": jobs})?;
        }
    }
    let new = u64::try_from(inserted).unwrap_or(u64::MAX);
    let total = u64::try_from(jobs.len()).unwrap_or(u64::MAX);
    Ok(PlanCounts {
        new,
        existing: total - new,
        conflicts,
    })
}

/// Counts the `new` jobs that one insert of `chunk` took: when it took them
/// all, by their hosts ([`host_port`]) into `hosts`, which the batch adds to
/// `watch_hosts` at its end; when it left some out, with
/// `watch_plan_count.sql` over its rows, those past `seq` (the last
/// `planned_seq` before the insert). Moves `seq` past the insert's rows.
fn count_new<'a>(
    conn: &Connection,
    chunk: &'a [NewJob],
    new: usize,
    seq: &mut i64,
    hosts: &mut HashMap<&'a str, i64>,
) -> Result<(), TxError> {
    if new == 0 {
        return Ok(());
    }
    let before = std::mem::replace(seq, conn.last_insert_rowid());
    if new == chunk.len() {
        for job in chunk {
            *hosts.entry(host_port(&job.canonical_url)).or_default() += 1;
        }
    } else {
        conn.prepare_cached(queries::WATCH_PLAN_COUNT)?
            .execute(named_params! {":before": before})?;
    }
    Ok(())
}

/// Appends the jobs of `chunk` (at `offset` in the planned input) whose line
/// declares expectations the stored job does not record.
fn check_expectations(
    conn: &Connection,
    chunk: &[NewJob],
    offset: usize,
    conflicts: &mut Vec<ExpectationConflict>,
) -> Result<(), TxError> {
    let mut stmt = conn.prepare_cached(queries::JOB_EXPECTED)?;
    for (i, job) in chunk.iter().enumerate() {
        if job.expectations().is_empty() {
            continue;
        }
        let recorded = stmt.query_row(named_params! {":job_key": job.job_key}, |row| {
            Ok(Expectations {
                sha256: row.get(0)?,
                size: rows::u64_at(row, 1)?,
                content_type: row.get(2)?,
            })
        })?;
        conflicts.extend(ExpectationConflict::between(offset + i, job, recorded));
    }
    Ok(())
}

/// Most jobs one transaction of a streamed plan takes. Job keys are hashes, so
/// each transaction rewrites leaf pages all over the key index: the fewer the
/// commits, the fewer times each page is written to the WAL.
const STREAM_TXN_JOBS: usize = 262_144;

/// Longest one transaction of a streamed plan holds the write lock (other
/// writers wait meanwhile).
const STREAM_TXN_TIME: Duration = Duration::from_millis(2000);

/// How long a transaction of a streamed plan waits for the sender's next
/// batch before it commits. The sender parses a batch in a few milliseconds;
/// on a busy machine it may lose the processor for longer, and a commit then
/// would rewrite the key index's leaves once more for a few jobs (on two
/// loaded cores, a 1M-line plan committed 7 times instead of 4).
const STREAM_BATCH_WAIT: Duration = Duration::from_millis(50);

/// How often a waiting transaction looks for the next batch.
const STREAM_BATCH_POLL: Duration = Duration::from_millis(1);

/// The WAL size (pages) past which a commit of a streamed plan checkpoints on
/// the connection thread. Each of its transactions outgrows the store's usual
/// autocheckpoint size, so every commit would copy the WAL back and fsync
/// before the next transaction could start; with this bound the store's
/// checkpoint thread does most of that meanwhile, and the WAL still gets
/// back to its start every ~256 MiB written.
const STREAM_AUTOCHECKPOINT_PAGES: i64 = 65_536;

/// Plans the batches of `batches` as they arrive (see
/// [`LedgerStore::plan_stream`](oncefetch_core::LedgerStore::plan_stream)).
/// Each transaction starts with a batch the sender has already parsed, takes
/// the batches that are waiting or arrive within [`STREAM_BATCH_WAIT`], and
/// commits when none does (so the lock is held at most that long while the
/// sender parses), when the sender is done, or at [`STREAM_TXN_JOBS`] or
/// [`STREAM_TXN_TIME`]. Batches taken into a transaction are not kept for a
/// replay: if a transaction had to run again after taking one (a busy error
/// after `BEGIN IMMEDIATE`, which WAL mode does not give), the stream fails
/// instead of planning fewer jobs than it counts.
pub(crate) fn plan_stream(conn: &mut Connection, batches: &mut mpsc::Receiver<Vec<NewJob>>) -> StoreResult<PlanCounts> {
    let sql = |e| TxError::Sql(e).into_store();
    let autocheckpoint: i64 = conn
        .query_row("PRAGMA wal_autocheckpoint", [], |row| row.get(0))
        .map_err(sql)?;
    if autocheckpoint > 0 && autocheckpoint < STREAM_AUTOCHECKPOINT_PAGES {
        conn.query_row(
            &format!("PRAGMA wal_autocheckpoint = {STREAM_AUTOCHECKPOINT_PAGES}"),
            [],
            |_| Ok(()),
        )
        .map_err(sql)?;
    }
    let planned = plan_batches(conn, batches);
    let restored = conn
        .query_row(&format!("PRAGMA wal_autocheckpoint = {autocheckpoint}"), [], |_| Ok(()))
        .map_err(sql);
    let totals = planned?;
    restored?;
    Ok(totals)
}

fn plan_batches(conn: &mut Connection, batches: &mut mpsc::Receiver<Vec<NewJob>>) -> StoreResult<PlanCounts> {
    let mut totals = PlanCounts::default();
    let mut before = 0u64;
    while let Some(first) = batches.blocking_recv() {
        let mut took_more = false;
        let (counts, jobs) = crate::conn::write(conn, |tx| {
            if took_more {
                return Err(TxError::Store(StoreError::backend(
                    STORE,
                    Invalid("a streamed plan transaction was interrupted; plan the manifest again".into()),
                )));
            }
            let started = Instant::now();
            let mut counts = plan(tx, &first)?;
            let mut jobs = first.len();
            while jobs < STREAM_TXN_JOBS {
                let left = STREAM_TXN_TIME.saturating_sub(started.elapsed());
                if left.is_zero() {
                    break;
                }
                let Some(batch) = next_batch(batches, left.min(STREAM_BATCH_WAIT)) else {
                    break;
                };
                took_more = true;
                counts.add_batch(plan(tx, &batch)?, u64::try_from(jobs).unwrap_or(u64::MAX));
                jobs += batch.len();
            }
            tracing::debug!(jobs, took = ?started.elapsed(), "streamed plan transaction");
            Ok((counts, jobs))
        })?;
        totals.add_batch(counts, before);
        before += u64::try_from(jobs).unwrap_or(u64::MAX);
    }
    Ok(totals)
}

/// The next batch of `batches` if one is waiting or arrives within `wait`;
/// `None` after that, or at once when the sender is gone.
fn next_batch(batches: &mut mpsc::Receiver<Vec<NewJob>>, wait: Duration) -> Option<Vec<NewJob>> {
    let until = Instant::now() + wait;
    loop {
        match batches.try_recv() {
            Ok(batch) => return Some(batch),
            Err(mpsc::error::TryRecvError::Disconnected) => return None,
            Err(mpsc::error::TryRecvError::Empty) if Instant::now() >= until => return None,
            Err(mpsc::error::TryRecvError::Empty) => std::thread::sleep(STREAM_BATCH_POLL),
        }
    }
}

/// Runs an insert of `jobs.len()` tuples; returns how many rows were new.
fn insert_jobs(stmt: &mut rusqlite::Statement<'_>, jobs: &[NewJob]) -> Result<usize, TxError> {
    let sizes = jobs
        .iter()
        .map(|job| rows::size(job.expected_size, "expected size"))
        .collect::<Result<Vec<_>, _>>()?;
    let mut params: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(jobs.len() * 8);
    for (job, size) in jobs.iter().zip(&sizes) {
        params.extend([
            &job.job_key as &dyn rusqlite::ToSql,
            &job.work_id,
            &job.artifact_id,
            &job.url,
            canonical_url_if_other(job),
            &job.expected_sha256,
            size,
            &job.expected_content_type,
        ]);
    }
    Ok(stmt.execute(params.as_slice())?)
}

/// The `canonical_url_if_other` column of a job: an empty BLOB when its
/// canonical URL is its URL (the generated `canonical_url` column reads the
/// URL then).
fn canonical_url_if_other(job: &NewJob) -> &dyn rusqlite::ToSql {
    const SAME_AS_URL: &[u8] = &[];
    if job.canonical_url == job.url {
        &SAME_AS_URL
    } else {
        &job.canonical_url
    }
}

/// `plan_insert.sql` with `rows` value tuples.
fn insert_sql(rows: usize) -> String {
    const TUPLE: &str = "(?, ?, ?, ?, ?, ?, ?, ?)";
    let mut sql = String::with_capacity(queries::PLAN_INSERT.len() + rows * (TUPLE.len() + 2));
    sql.push_str(queries::PLAN_INSERT.trim_end());
    for i in 0..rows {
        sql.push_str(if i == 0 { "\n" } else { ",\n" });
        sql.push_str(TUPLE);
    }
    sql
}

/// Jobs by query, in key order.
pub(crate) fn jobs(conn: &Connection, query: &JobQuery) -> Result<Vec<Job>, TxError> {
    let state = query.state.map(JobState::as_str);
    let limit = rows::limit(query.limit);
    let mut found = match (&query.canonical_url, &query.after) {
        // The duplicate check of the pipeline: indexed.
        (Some(url), after) if query.state == Some(JobState::Success) => conn
            .prepare_cached(queries::JOBS_SUCCESS_BY_URL)?
            .query_map(
                named_params! {":canonical_url": url, ":after": after, ":limit": limit},
                rows::job,
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?,
        (Some(url), after) => conn
            .prepare_cached(queries::JOBS_BY_URL)?
            .query_map(
                named_params! {":canonical_url": url, ":state": state, ":after": after, ":limit": limit},
                rows::job,
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?,
        (None, Some(after)) => conn
            .prepare_cached(queries::JOBS_AFTER)?
            .query_map(
                named_params! {":after": after, ":state": state, ":limit": limit},
                rows::job,
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?,
        (None, None) => conn
            .prepare_cached(queries::JOBS_FIRST_PAGE)?
            .query_map(named_params! {":state": state, ":limit": limit}, rows::job)?
            .collect::<rusqlite::Result<Vec<_>>>()?,
    };
    crate::tables::hide_freed_leases(conn, &mut found)?;
    Ok(found)
}

/// Counts per state, every state present, the live leases, the bytes done
/// and the retryable failures by attempts, read in one transaction.
pub(crate) fn status(conn: &Connection) -> Result<StatusCounts, TxError> {
    let tx = conn.unchecked_transaction()?;
    let counts = state_counts(&tx)?;
    let now = clock::now(&tx)?;
    let live: i64 = tx
        .prepare_cached(queries::LIVE_LEASES)?
        .query_row(named_params! {":now": now}, |row| row.get(0))?;
    let bytes_done: i64 = tx
        .prepare_cached(queries::BYTES_DONE)?
        .query_row([], |row| row.get(0))?;
    let retryable_failed = tx
        .prepare_cached(queries::RETRYABLE_FAILED)?
        .query_map(named_params! {":now": now}, |row| {
            let (attempts, jobs, waiting): (u32, i64, i64) = (row.get(0)?, row.get(1)?, row.get(2)?);
            Ok((
                attempts,
                u64::try_from(jobs).unwrap_or(0),
                u64::try_from(waiting).unwrap_or(0),
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    tx.finish()?;
    Ok(counts
        .with_live_leases(u64::try_from(live).unwrap_or(0))
        .with_bytes_done(u64::try_from(bytes_done).unwrap_or(0))
        .with_retryable_failed(retryable_failed))
}

fn state_counts(conn: &Connection) -> Result<StatusCounts, TxError> {
    let mut stmt = conn.prepare_cached(queries::STATUS)?;
    let pairs = stmt
        .query_map([], |row| {
            let name: String = row.get(0)?;
            let count: i64 = row.get(1)?;
            Ok((name, count))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut counts = Vec::with_capacity(pairs.len());
    for (name, count) in pairs {
        let state = name.parse::<JobState>().map_err(|e| {
            TxError::Sql(rusqlite::Error::FromSqlConversionFailure(
                0,
                rusqlite::types::Type::Text,
                e.into(),
            ))
        })?;
        counts.push((state, u64::try_from(count).unwrap_or(0)));
    }
    Ok(StatusCounts::from_pairs(counts))
}

/// Jobs `run` still waits for.
pub(crate) fn outstanding(conn: &Connection, max_attempts: u32, within: Option<Duration>) -> Result<u64, TxError> {
    let horizon = match within {
        Some(within) => clock::now(conn)?.saturating_add(oncefetch_core::millis(within)),
        None => Millis::MAX,
    };
    let count: i64 = conn.prepare_cached(queries::OUTSTANDING)?.query_row(
        named_params! {":max_attempts": max_attempts, ":horizon": horizon},
        |r| r.get(0),
    )?;
    Ok(u64::try_from(count).unwrap_or(0))
}

/// The one fenced, atomic write of a worker: reads what the kernel's commit
/// rule needs ([`kernel::plan_commit`]), under the write lock, and writes the
/// write set it returns.
pub(crate) fn commit(conn: &Connection, fence: &Fence, commit: &Commit) -> Result<CommitOutcome, TxError> {
    let now = clock::now(conn)?;
    let (seq, job) = load_job(conn, &fence.job_key)?.ok_or_else(|| not_found(&fence.job_key))?;
    let lease_columns = lease_columns(&job);
    let facts = |op_key: Option<&String>| match op_key {
        Some(op_key) => op_facts(conn, seq, fence, op_key),
        None => Ok((OpFacts::default(), None)),
    };
    let (finish, finish_seq) = facts(commit.finish.as_ref().map(|f| &f.op_key))?;
    let indexed = match &commit.index {
        Some(index) => artifact(conn, &index.entry.sha256)?.map(|standing| standing.path),
        None => None,
    };
    let reads = CommitReads {
        job,
        finish,
        index: facts(commit.index.as_ref().map(|i| &i.op_key))?.0,
        begin: facts(commit.begin.as_ref().map(|b| &b.op_key))?.0,
        indexed,
    };
    let writes = kernel::plan_commit(fence, commit, reads, now)?;
    if let (true, Some(seq), Some(finish)) = (writes.finish, finish_seq, &commit.finish) {
        conn.prepare_cached(queries::OP_FINISH)?.execute(named_params! {
            ":result_code": finish.code.as_str(),
            ":result": finish.result.to_string(),
            ":now": now,
            ":seq": seq,
        })?;
    }
    if writes.job_changed {
        if lease_columns == self::lease_columns(&writes.job) {
            step_job(conn, seq, &writes.job)?;
        } else {
            update_job(conn, seq, &writes.job)?;
        }
    }
    if let Some(index) = &writes.index {
        let entry = &index.entry;
        conn.prepare_cached(queries::ARTIFACT_INSERT)?.execute(named_params! {
            ":sha256": entry.sha256,
            ":path": entry.path,
            ":size": rows::size(Some(entry.size), "artifact size")?,
            ":job_key": entry.job_key,
        })?;
        insert_row(conn, seq, &index.row)?;
    }
    if let Some(row) = &writes.begin {
        insert_row(conn, seq, row)?;
    }
    Ok(writes.outcome)
}

/// What the ledger records of the fenced job's `op_key` (the job at
/// `job_seq`), and the seq of its attempt under the fence's epoch.
fn op_facts(conn: &Connection, job_seq: i64, fence: &Fence, op_key: &str) -> Result<(OpFacts, Option<i64>), TxError> {
    let mut stmt = conn.prepare_cached(queries::OP_FACTS)?;
    let mut attempts = stmt.query(named_params! {":job_seq": job_seq, ":op_key": op_key})?;
    let (mut facts, mut seq) = (OpFacts::default(), None);
    while let Some(row) = attempts.next()? {
        let code = rows::result_code_at(row, 2)?;
        if code == Some(ResultCode::Ok) {
            facts.ok = Some(rows::json_at(row, 3)?.unwrap_or(Value::Null));
        }
        if row.get::<_, i64>(1)? == fence.epoch {
            seq = Some(row.get(0)?);
            facts.attempt = Some(code);
        }
    }
    Ok((facts, seq))
}

/// The columns a step to FAILED or to a terminal state changes besides the
/// state: the lease, the backoff and the error. While they stay the same a
/// commit writes with `job_step.sql`, which touches no index.
fn lease_columns(job: &Job) -> LeaseColumns {
    (
        job.lease_owner.clone(),
        job.lease_expires_at,
        job.next_attempt_at,
        job.last_error.clone(),
        job.retryable,
    )
}

/// Owner, expiry, next attempt, last error, retryable.
type LeaseColumns = (Option<String>, Option<Millis>, Option<Millis>, Option<String>, bool);

fn step_job(conn: &Connection, seq: i64, job: &Job) -> Result<(), TxError> {
    conn.prepare_cached(queries::JOB_STEP)?.execute(named_params! {
        ":state": job.state.as_str(),
        ":attempts": job.attempts,
        ":etag": job.etag,
        ":last_modified": job.last_modified,
        ":remote_size": rows::size(job.remote_size, "remote size")?,
        ":path": job.path,
        ":sha256": job.sha256,
        ":size": rows::size(job.size, "size")?,
        ":duplicate_of": job.duplicate_of,
        ":planned_seq": seq,
    })?;
    Ok(())
}

fn update_job(conn: &Connection, seq: i64, job: &Job) -> Result<(), TxError> {
    conn.prepare_cached(queries::JOB_UPDATE)?.execute(named_params! {
        ":state": job.state.as_str(),
        ":lease_owner": job.lease_owner,
        ":lease_expires_at": job.lease_expires_at,
        ":attempts": job.attempts,
        ":next_attempt_at": job.next_attempt_at,
        ":last_error": job.last_error,
        ":retryable": job.retryable,
        ":etag": job.etag,
        ":last_modified": job.last_modified,
        ":remote_size": rows::size(job.remote_size, "remote size")?,
        ":path": job.path,
        ":sha256": job.sha256,
        ":size": rows::size(job.size, "size")?,
        ":duplicate_of": job.duplicate_of,
        ":planned_seq": seq,
    })?;
    Ok(())
}

/// Ledger rows by query, in seq order.
pub(crate) fn ops(conn: &Connection, query: &OpQuery) -> Result<Vec<OpRecord>, TxError> {
    let after_seq = query.after_seq.unwrap_or(i64::MIN);
    let limit = rows::limit(query.limit);
    let found = match &query.job_key {
        Some(job_key) => conn
            .prepare_cached(queries::OPS_BY_JOB)?
            .query_map(
                named_params! {":job_key": job_key, ":after_seq": after_seq, ":limit": limit},
                rows::op,
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?,
        None => conn
            .prepare_cached(queries::OPS_PAGE)?
            .query_map(named_params! {":after_seq": after_seq, ":limit": limit}, rows::op)?
            .collect::<rusqlite::Result<Vec<_>>>()?,
    };
    Ok(found)
}

/// The first stored copy of some content.
pub(crate) fn artifact(conn: &Connection, sha256: &str) -> rusqlite::Result<Option<ArtifactEntry>> {
    conn.prepare_cached(queries::ARTIFACT_GET)?
        .query_row(named_params! {":sha256": sha256}, rows::artifact)
        .optional()
}

/// Sends a FAILED or finished job back to PLANNED with a REQUEUE row; its OK
/// effect rows become ABANDONED so the effects run again.
pub(crate) fn requeue(conn: &Connection, job_key: &str, reason: &str) -> Result<bool, TxError> {
    let now = clock::now(conn)?;
    let (seq, job) = load_job(conn, job_key)?.ok_or_else(|| not_found(job_key))?;
    let from = job.state;
    if check_transition(Transition::Requeue, from, JobState::Planned).is_err() {
        return Ok(false);
    }
    conn.prepare_cached(queries::REQUEUE)?
        .execute(named_params! {":planned_seq": seq})?;
    let superseded = conn
        .prepare_cached(queries::SUPERSEDE_EFFECTS)?
        .execute(named_params! {":job_seq": seq})?;
    let superseded = u64::try_from(superseded).unwrap_or(u64::MAX);
    insert_row(
        conn,
        seq,
        &kernel::requeue_row(job_key, job.epoch, from, reason, superseded, now),
    )?;
    Ok(true)
}

/// Records a job's expectations unless it is in flight, and requeues a
/// finished job whose content does not meet them (as [`requeue`] does).
pub(crate) fn update_expected(
    conn: &Connection,
    job_key: &str,
    expected: &Expectations,
    reason: &str,
) -> Result<ExpectedUpdate, TxError> {
    let (seq, job) = load_job(conn, job_key)?.ok_or_else(|| not_found(job_key))?;
    let decided = kernel::expect(&job, expected);
    if let Expecting::Record { expectations, requeue } = &decided {
        conn.prepare_cached(queries::EXPECTED_UPDATE)?.execute(named_params! {
            ":planned_seq": seq,
            ":sha256": expectations.sha256,
            ":size": rows::size(expectations.size, "expected size")?,
            ":content_type": expectations.content_type,
        })?;
        if *requeue {
            self::requeue(conn, job_key, reason)?;
        }
    }
    Ok(decided.answer())
}

/// Requeues every job `filter` matches, set-wise under the write lock: one
/// select of the jobs (with their superseded counts), their REQUEUE rows
/// (the op keys are computed here, one cached insert each), then one
/// statement each to supersede their effect rows and to reset the jobs, both
/// finding the jobs by the REQUEUE rows written after `mark`.
pub(crate) fn requeue_matching(
    conn: &Connection,
    filter: &RequeueFilter,
    reason: &str,
) -> Result<RequeueCounts, TxError> {
    check_transition(Transition::Requeue, filter.state, JobState::Planned)?;
    let now = clock::now(conn)?;
    let mark: i64 = conn
        .prepare_cached(queries::OPS_LAST_SEQ)?
        .query_row([], |row| row.get(0))?;
    let picked = conn
        .prepare_cached(queries::REQUEUE_SELECT)?
        .query_map(
            named_params! {
                ":state": filter.state.as_str(),
                ":include_permanent": filter.include_permanent,
                ":job_key": filter.narrow.job_key,
                ":work_id": filter.narrow.work_id,
                ":host": filter.narrow.host,
                ":error": filter.narrow.error,
            },
            |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, bool>(2)?,
                    row.get::<_, i64>(3)?,
                    row.get::<_, i64>(4)?,
                ))
            },
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut counts = RequeueCounts::default();
    for (job_key, epoch, retryable, superseded, job_seq) in &picked {
        let superseded = u64::try_from(*superseded).unwrap_or(0);
        insert_row(
            conn,
            *job_seq,
            &kernel::requeue_row(job_key, *epoch, filter.state, reason, superseded, now),
        )?;
        counts.count(filter.state, *retryable);
    }
    if !picked.is_empty() {
        conn.prepare_cached(queries::REQUEUE_SUPERSEDE_MARKED)?
            .execute(named_params! {":mark": mark})?;
        conn.prepare_cached(queries::REQUEUE_MARKED)?
            .execute(named_params! {":mark": mark})?;
    }
    Ok(counts)
}

/// Writes an OK row of a recovery action under the job's current epoch, once
/// per op key.
pub(crate) fn note(
    conn: &Connection,
    job_key: &str,
    op_key: &str,
    kind: OpKind,
    result: &Value,
) -> Result<(), TxError> {
    let now = clock::now(conn)?;
    let (epoch, job_seq): (i64, i64) = conn
        .prepare_cached(queries::JOB_FENCE)?
        .query_row(named_params! {":job_key": job_key}, |row| {
            Ok((row.get(0)?, row.get(3)?))
        })
        .optional()?
        .ok_or_else(|| not_found(job_key))?;
    conn.prepare_cached(queries::NOTE_INSERT)?.execute(named_params! {
        ":op_key": op_key,
        ":job_key": job_key,
        ":kind": kind.as_str(),
        ":epoch": epoch,
        ":now": now,
        ":result": result.to_string(),
        ":job_seq": job_seq,
    })?;
    Ok(())
}

/// Claims a host's next request slots by the budget rule of
/// [`RequestSlots::claim`], inside the write transaction: every process on
/// the file claims from the one row.
pub(crate) fn claim_request_slots(
    conn: &Connection,
    host: &str,
    interval: Duration,
    count: u32,
) -> Result<RequestSlots, TxError> {
    let now = clock::now(conn)?;
    let stored: Option<Millis> = conn
        .prepare_cached(queries::HOST_BUDGET_GET)?
        .query_row(named_params! {":host": host}, |row| row.get(0))
        .optional()?;
    let slots = RequestSlots::claim(stored, now, interval, count);
    conn.prepare_cached(queries::HOST_BUDGET_SET)?
        .execute(named_params! {":host": host, ":next_at_ms": slots.next_free()})?;
    Ok(slots)
}
