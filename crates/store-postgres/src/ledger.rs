//! [`LedgerStore`] for [`PostgresStore`].

use std::time::Duration;

use async_trait::async_trait;
use diesel_async::scoped_futures::ScopedFutureExt;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use oncefetch_core::kernel::{self, OpFacts};
use oncefetch_core::watch::{Watch, WatchQuery};
use oncefetch_core::{
    check_transition, ArtifactEntry, Commit, CommitOutcome, ExpectationConflict, Expectations, ExpectedUpdate, Fence,
    IndexOp, Job, JobQuery, JobState, LedgerStore, Millis, NewJob, OpBegin, OpKeys, OpKind, OpQuery, OpRecord,
    PlanCounts, RequestSlots, RequeueCounts, RequeueFilter, StatusCounts, StoreError, StoreResult, Transition,
};
use serde_json::{json, Value};

use crate::conn::{Failure, Replay};
use crate::queries;
use crate::rows::{
    count, parse_state, signed, ArtifactRow, CommitRow, ConflictRow, Count, ExpectedRow, IndexState, JobRow, LockedJob,
    OpRow, RequeuedRow, StateCount, StateEpoch,
};
use crate::sql::{Bind, Sql};
use crate::store::{millis, PostgresStore};
use crate::text;

/// Jobs per `INSERT` when planning.
const PLAN_CHUNK: usize = 5_000;

/// Planning this many new jobs refreshes the table statistics at once, so the
/// grant query is planned with the new row counts (an index scan in planning
/// order, not a sort of every planned job) without waiting for autovacuum.
const ANALYZE_AFTER: u64 = 1_000;

/// How a commit leaves `next_attempt_at` (bind `$11` of commit_write.sql).
#[derive(Debug, Clone, Copy)]
enum NextAttempt {
    Keep,
    Clear,
    /// `now() + ms`.
    After(i64),
}

/// The backoff of a locked job, unknown to the commit (it is kept unless a
/// step sets or clears it).
const KEEP: Millis = Millis::MIN;

/// The locked job as the kernel's step rule takes it. Times are relative to
/// the transaction's `now()`: the rule runs with now = 0, so a backoff comes
/// back as milliseconds from now ([`NextAttempt::After`]); the lease is the
/// fence's (the lock found it holds).
fn locked_job(locked: &LockedJob, fence: &Fence) -> StoreResult<Job> {
    let mut job = Job::planned(&NewJob {
        job_key: fence.job_key.clone(),
        work_id: String::new(),
        artifact_id: String::new(),
        url: String::new(),
        canonical_url: String::new(),
        expected_sha256: None,
        expected_size: None,
        expected_content_type: None,
    });
    job.state = parse_state(&locked.state)?;
    job.epoch = fence.epoch;
    job.attempts = u32::try_from(locked.attempts).unwrap_or(0);
    job.last_error.clone_from(&locked.last_error);
    job.retryable = locked.retryable;
    job.next_attempt_at = Some(KEEP);
    job.lease_owner = Some(fence.owner.clone());
    job.lease_expires_at = Some(Millis::MAX);
    Ok(job)
}

/// How the stepped `job` leaves the backoff column.
fn next_attempt(job: &Job) -> NextAttempt {
    match job.next_attempt_at {
        Some(KEEP) => NextAttempt::Keep,
        None => NextAttempt::Clear,
        Some(ms) => NextAttempt::After(ms.min(millis(Duration::MAX))),
    }
}

/// The INDEX op of a commit, in its transaction (job locked): replays an OK
/// row, or records the content unless its hash is indexed (first writer
/// wins) and writes the OK row naming the path that stands.
async fn index_in_commit(conn: &mut AsyncPgConnection, fence: &Fence, index: &IndexOp) -> Result<String, Failure> {
    let found: IndexState = Sql::new(queries::INDEX_OP)
        .bind(index.op_key.as_str())
        .bind(fence.epoch)
        .get_result(conn)
        .await?;
    let facts = OpFacts {
        ok: found.replay.map(|first_path| json!({ "first_path": first_path })),
        attempt: found.attempted.then_some(None),
    };
    if let Some(replayed) = kernel::start_op(&index.op_key, fence.epoch, JobState::Indexed, &facts)? {
        return Ok(replayed["first_path"].as_str().unwrap_or_default().to_owned());
    }
    let entry = &index.entry;
    let inserted: Vec<ArtifactRow> = Sql::new(queries::INDEX_ARTIFACT)
        .bind(entry.sha256.as_str())
        .bind(entry.path.as_str())
        .bind(signed(entry.size, "artifact size")?)
        .bind(entry.job_key.as_str())
        .load(conn)
        .await?;
    let standing = match inserted.into_iter().next() {
        Some(row) => row,
        // Indexed before (perhaps by a transaction that committed after that
        // statement's snapshot): read it fresh.
        None => {
            Sql::new(queries::ARTIFACT)
                .bind(entry.sha256.as_str())
                .get_result(conn)
                .await?
        }
    }
    .into_entry()?;
    Sql::new(queries::INDEX_RECORD)
        .bind(index.op_key.as_str())
        .bind(fence.job_key.as_str())
        .bind(fence.epoch)
        .bind(json!({ "first_path": standing.path }))
        .execute(conn)
        .await?;
    Ok(standing.path)
}

/// One chunk of a plan: its insert, and the check of its lines that declare
/// expectations (run only when the insert left rows out).
#[derive(Debug, Clone)]
struct PlanChunk {
    insert: Sql,
    rows: usize,
    /// The check, and each declaring line's index in the chunk.
    check: Option<(Sql, Vec<usize>)>,
}

fn plan_chunk(jobs: &[NewJob]) -> StoreResult<PlanChunk> {
    let text = |f: fn(&NewJob) -> &str| -> Vec<Option<String>> { jobs.iter().map(|j| Some(f(j).to_owned())).collect() };
    // A line's own text, which may hold NUL.
    let stored = |f: fn(&NewJob) -> &str| -> Vec<Option<String>> {
        jobs.iter().map(|j| Some(text::store(f(j)).into_owned())).collect()
    };
    let size = |j: &NewJob| j.expected_size.map(|s| signed(s, "expected size")).transpose();
    let sizes = jobs.iter().map(size).collect::<StoreResult<Vec<_>>>()?;
    let insert = Sql::new(queries::PLAN)
        .bind(text(|j| &j.job_key))
        .bind(stored(|j| &j.work_id))
        .bind(stored(|j| &j.artifact_id))
        .bind(stored(|j| &j.url))
        .bind(text(|j| &j.canonical_url))
        .bind(jobs.iter().map(|j| j.expected_sha256.clone()).collect::<Vec<_>>())
        .bind(sizes)
        .bind(jobs.iter().map(|j| j.expected_content_type.clone()).collect::<Vec<_>>());
    let declaring: Vec<usize> = (0..jobs.len())
        .filter(|&i| !jobs[i].expectations().is_empty())
        .collect();
    let check = if declaring.is_empty() {
        None
    } else {
        let keys = declaring
            .iter()
            .map(|&i| Some(jobs[i].job_key.clone()))
            .collect::<Vec<_>>();
        let hashes = declaring
            .iter()
            .map(|&i| jobs[i].expected_sha256.clone())
            .collect::<Vec<_>>();
        let sizes = declaring
            .iter()
            .map(|&i| size(&jobs[i]))
            .collect::<StoreResult<Vec<_>>>()?;
        let types = declaring
            .iter()
            .map(|&i| jobs[i].expected_content_type.clone())
            .collect::<Vec<_>>();
        let sql = Sql::new(queries::PLAN_CONFLICTS)
            .bind(keys)
            .bind(hashes)
            .bind(sizes)
            .bind(types);
        Some((sql, declaring))
    };
    Ok(PlanChunk {
        insert,
        rows: jobs.len(),
        check,
    })
}

/// Sends the locked job back to PLANNED with a REQUEUE row (requeue.sql),
/// when the state table allows it from `from`.
async fn requeue_locked(
    conn: &mut AsyncPgConnection,
    job_key: &str,
    from: JobState,
    epoch: i64,
    reason: &str,
) -> Result<bool, Failure> {
    if check_transition(Transition::Requeue, from, JobState::Planned).is_err() {
        return Ok(false);
    }
    Sql::new(queries::REQUEUE)
        .bind(job_key)
        .bind(OpKeys { job_key }.epoch_action(OpKind::Requeue, epoch))
        .bind(epoch)
        .bind(json!({ "from": from.as_str(), "reason": reason }))
        .execute(conn)
        .await?;
    Ok(true)
}

#[async_trait]
impl LedgerStore for PostgresStore {
    async fn plan(&self, jobs: &[NewJob]) -> StoreResult<PlanCounts> {
        if jobs.is_empty() {
            return Ok(PlanCounts::default());
        }
        let chunks = jobs
            .chunks(PLAN_CHUNK)
            .map(plan_chunk)
            .collect::<StoreResult<Vec<_>>>()?;
        let chunks = &chunks;
        let (new, found) = self
            .db
            .transaction(Replay::Once, |conn| {
                async move {
                    let mut new = 0_usize;
                    // (index of the chunk, its lines whose job records other expectations)
                    let mut found: Vec<(usize, Vec<ConflictRow>)> = Vec::new();
                    for (c, chunk) in chunks.iter().enumerate() {
                        let inserted = chunk.insert.clone().execute(conn).await?;
                        if let (true, Some((check, _))) = (inserted < chunk.rows, &chunk.check) {
                            let rows: Vec<ConflictRow> = check.clone().load(conn).await?;
                            if !rows.is_empty() {
                                found.push((c, rows));
                            }
                        }
                        new += inserted;
                    }
                    Ok((new, found))
                }
                .scope_boxed()
            })
            .await?;
        let mut conflicts = Vec::new();
        for (c, rows) in found {
            let declaring = chunks[c]
                .check
                .as_ref()
                .map(|(_, lines)| lines.as_slice())
                .unwrap_or_default();
            for row in rows {
                let line = usize::try_from(row.n - 1)
                    .ok()
                    .and_then(|n| declaring.get(n))
                    .ok_or_else(|| StoreError::backend(crate::STORE, format!("plan check returned line {}", row.n)))?;
                let index = c * PLAN_CHUNK + line;
                conflicts.push(ExpectationConflict {
                    position: u64::try_from(index).unwrap_or(u64::MAX),
                    job_key: jobs[index].job_key.clone(),
                    declared: jobs[index].expectations(),
                    recorded: row.recorded()?,
                });
            }
        }
        let new = u64::try_from(new).unwrap_or(u64::MAX);
        if new >= ANALYZE_AFTER {
            // Only statistics: a failure costs plan quality, not data.
            let analyzed = self
                .db
                .run(Replay::Safe, |conn| {
                    async move { Ok(Sql::new(queries::ANALYZE).execute(conn).await?) }.scope_boxed()
                })
                .await;
            if let Err(e) = analyzed {
                tracing::warn!(error = %e, "postgres: ANALYZE after planning failed");
            }
        }
        let total = u64::try_from(jobs.len()).unwrap_or(u64::MAX);
        Ok(PlanCounts {
            new,
            existing: total.saturating_sub(new),
            conflicts,
        })
    }

    async fn job(&self, job_key: &str) -> StoreResult<Job> {
        let rows: Vec<JobRow> = self
            .db
            .run(Replay::Safe, |conn| {
                async move { Ok(Sql::new(queries::JOB).bind(job_key).load(conn).await?) }.scope_boxed()
            })
            .await?;
        rows.into_iter()
            .next()
            .ok_or_else(|| StoreError::job_not_found(job_key))?
            .into_job()
    }

    async fn jobs(&self, query: &JobQuery) -> StoreResult<Vec<Job>> {
        // Only the filters asked for, so each combination gets a plan that
        // uses its index. The state is a literal (a fixed SPEC name), not a
        // bind: a generic plan with a bound state could not use the partial
        // indexes on settled states.
        let mut text = String::from("SELECT * FROM job_rows WHERE true");
        let mut binds: Vec<Bind> = Vec::new();
        if let Some(state) = query.state {
            text.push_str(&format!(" AND state = '{}'", state.as_str()));
        }
        let mut filter = |column: &str, op: &str, value: Bind| {
            binds.push(value);
            text.push_str(&format!(" AND {column} {op} ${}", binds.len()));
        };
        if let Some(after) = &query.after {
            filter("job_key", ">", after.as_str().into());
        }
        if let Some(url) = &query.canonical_url {
            filter("canonical_url", "=", url.as_str().into());
        }
        text.push_str(" ORDER BY job_key");
        if query.limit > 0 {
            binds.push(i64::try_from(query.limit).unwrap_or(i64::MAX).into());
            text.push_str(&format!(" LIMIT ${}", binds.len()));
        }
        let sql = binds.into_iter().fold(Sql::new(text), Sql::bind);
        let sql = &sql;
        let rows: Vec<JobRow> = self
            .db
            .run(Replay::Safe, |conn| {
                async move { Ok(sql.clone().load(conn).await?) }.scope_boxed()
            })
            .await?;
        rows.into_iter().map(JobRow::into_job).collect()
    }

    async fn status(&self) -> StoreResult<StatusCounts> {
        let rows: Vec<StateCount> = self
            .db
            .run(Replay::Safe, |conn| {
                async move { Ok(Sql::new(queries::STATUS).load(conn).await?) }.scope_boxed()
            })
            .await?;
        let live = rows.iter().map(|r| count(r.live)).sum();
        let pairs = rows
            .iter()
            .map(|r| Ok((parse_state(&r.state)?, count(r.n))))
            .collect::<StoreResult<Vec<_>>>()?;
        let bytes_done = rows
            .iter()
            .filter(|r| r.state == JobState::Success.as_str())
            .map(|r| count(r.bytes))
            .sum();
        let retryable_failed = rows.iter().filter_map(|r| {
            let attempts = u32::try_from(r.retry_attempts?).unwrap_or(0);
            Some((attempts, count(r.n), count(r.waiting)))
        });
        Ok(StatusCounts::from_pairs(pairs)
            .with_live_leases(live)
            .with_bytes_done(bytes_done)
            .with_retryable_failed(retryable_failed))
    }

    async fn watch(&self, query: &WatchQuery) -> StoreResult<Watch> {
        self.read_watch(query).await
    }

    async fn outstanding(&self, max_attempts: u32, within: Option<Duration>) -> StoreResult<u64> {
        let max = i32::try_from(max_attempts).unwrap_or(i32::MAX);
        let within = within.map(millis);
        let row: Count = self
            .db
            .run(Replay::Safe, |conn| {
                async move {
                    Ok(Sql::new(queries::OUTSTANDING)
                        .bind(max)
                        .bind(within)
                        .get_result(conn)
                        .await?)
                }
                .scope_boxed()
            })
            .await?;
        Ok(count(row.n))
    }

    async fn commit(&self, fence: &Fence, commit: &Commit) -> StoreResult<CommitOutcome> {
        self.db
            .transaction(Replay::Once, |conn| {
                async move {
                    let locked: Vec<LockedJob> = Sql::new(queries::COMMIT_LOCK)
                        .bind(fence.job_key.as_str())
                        .bind(fence.epoch)
                        .bind(fence.owner.as_str())
                        .bind(commit.finish.as_ref().map(|f| f.op_key.as_str()))
                        .load(conn)
                        .await?;
                    let locked = locked
                        .into_iter()
                        .next()
                        .ok_or_else(|| StoreError::job_not_found(&fence.job_key))?;
                    if !locked.holds {
                        return Err(kernel::lease_lost(fence).into());
                    }
                    // The kernel's checks in its order: op to finish, steps,
                    // op to start.
                    if let Some(finish) = &commit.finish {
                        let facts = OpFacts {
                            ok: locked.finish_ok.then_some(Value::Null),
                            attempt: locked.finish_running.then_some(None),
                        };
                        kernel::finish_op(&finish.op_key, fence.epoch, finish.code, &facts)?;
                    }
                    let failure = commit.patch.failure.as_ref();
                    let mut job = locked_job(&locked, fence)?;
                    kernel::steps(&mut job, &commit.steps, failure, 0)?;
                    if commit.index.is_some() || commit.begin.is_some() {
                        kernel::may_start_ops(job.state)?;
                    }
                    // Commit::settle: the INDEX op runs first, and settles
                    // the begin op when the first copy is the job's own.
                    let (mut first_path, mut settled) = (None, false);
                    if let (Some(settle), Some(index), Some(start)) = (&commit.settle, &commit.index, &commit.begin) {
                        let first = index_in_commit(conn, fence, index).await?;
                        // Whether the op must run (no OK row) is SETTLE_OP's own check.
                        if commit.settling(Some(&first), true).is_some() {
                            let mut after = job.clone();
                            kernel::steps(&mut after, &settle.steps, failure, 0)?;
                            let recorded = Sql::new(queries::SETTLE_OP)
                                .bind(start.op_key.as_str())
                                .bind(fence.job_key.as_str())
                                .bind(start.kind.as_str())
                                .bind(fence.epoch)
                                .bind(settle.result.clone())
                                .execute(conn)
                                .await?;
                            if recorded == 1 {
                                (job, settled) = (after, true);
                            }
                        }
                        first_path = Some(first);
                    }
                    let begin = commit.begin.as_ref().filter(|_| !settled);
                    let update_job = !commit.steps.is_empty() || settled || commit.patch.sets_fields();
                    if commit.finish.is_none() && commit.begin.is_none() && commit.index.is_none() && !update_job {
                        return Ok(CommitOutcome::default());
                    }
                    let (next_mode, next_delay) = match next_attempt(&job) {
                        NextAttempt::Keep => (0, 0),
                        NextAttempt::Clear => (1, 0),
                        NextAttempt::After(ms) => (2, ms),
                    };
                    let p = &commit.patch;
                    let written: CommitRow = Sql::new(queries::COMMIT_WRITE)
                        .bind(fence.job_key.as_str())
                        .bind(fence.epoch)
                        .bind(commit.finish.as_ref().map(|f| f.op_key.as_str()))
                        .bind(commit.finish.as_ref().map(|f| f.code.as_str()))
                        .bind(commit.finish.as_ref().map(|f| f.result.clone()))
                        .bind(update_job)
                        .bind(job.state.as_str())
                        .bind(i32::try_from(job.attempts).unwrap_or(i32::MAX))
                        .bind(job.last_error)
                        .bind(job.retryable)
                        .bind(next_mode)
                        .bind(next_delay)
                        .bind(job.lease_owner.is_none())
                        .bind(p.etag.clone())
                        .bind(p.last_modified.clone())
                        .bind(p.remote_size.map(|s| signed(s, "remote size")).transpose()?)
                        .bind(p.path.clone())
                        .bind(p.sha256.clone())
                        .bind(p.size.map(|s| signed(s, "size")).transpose()?)
                        .bind(p.duplicate_of.clone())
                        .bind(begin.map(|b| b.op_key.as_str()))
                        .bind(begin.map(|b| b.kind.as_str()))
                        .get_result(conn)
                        .await?;
                    if let Some(finish) = &commit.finish {
                        // The lock saw it running, and the job is locked.
                        debug_assert_eq!(written.finished, 1, "op {} finished", finish.op_key);
                    }
                    // What the begin found, as the kernel's facts: an OK row
                    // replayed, or an attempt under this epoch already.
                    let begun = match begin {
                        None => None,
                        Some(start) => {
                            let facts = OpFacts {
                                ok: written.replayed.then(|| written.replay.clone().unwrap_or(Value::Null)),
                                attempt: (!written.replayed && written.begun == 0).then_some(None),
                            };
                            Some(match kernel::start_op(&start.op_key, fence.epoch, job.state, &facts)? {
                                Some(result) => OpBegin::Replay(result),
                                None => OpBegin::Run,
                            })
                        }
                    };
                    debug_assert!(!update_job || written.updated == 1);
                    if let (Some(index), None) = (&commit.index, &first_path) {
                        first_path = Some(index_in_commit(conn, fence, index).await?);
                    }
                    Ok(CommitOutcome {
                        begun,
                        first_path,
                        settled,
                    })
                }
                .scope_boxed()
            })
            .await
    }

    async fn ops(&self, query: &OpQuery) -> StoreResult<Vec<OpRecord>> {
        let mut text = String::from("SELECT * FROM op_rows WHERE true");
        let mut binds: Vec<Bind> = Vec::new();
        if let Some(job) = &query.job_key {
            binds.push(job.as_str().into());
            text.push_str(&format!(" AND job_key = ${}", binds.len()));
        }
        if let Some(after) = query.after_seq {
            binds.push(after.into());
            text.push_str(&format!(" AND seq > ${}", binds.len()));
        }
        text.push_str(" ORDER BY seq");
        if query.limit > 0 {
            binds.push(i64::try_from(query.limit).unwrap_or(i64::MAX).into());
            text.push_str(&format!(" LIMIT ${}", binds.len()));
        }
        let sql = binds.into_iter().fold(Sql::new(text), Sql::bind);
        let sql = &sql;
        let rows: Vec<OpRow> = self
            .db
            .run(Replay::Safe, |conn| {
                async move { Ok(sql.clone().load(conn).await?) }.scope_boxed()
            })
            .await?;
        rows.into_iter().map(OpRow::into_record).collect()
    }

    async fn artifact(&self, sha256: &str) -> StoreResult<Option<ArtifactEntry>> {
        let rows: Vec<ArtifactRow> = self
            .db
            .run(Replay::Safe, |conn| {
                async move { Ok(Sql::new(queries::ARTIFACT).bind(sha256).load(conn).await?) }.scope_boxed()
            })
            .await?;
        rows.into_iter().next().map(ArtifactRow::into_entry).transpose()
    }

    async fn requeue(&self, job_key: &str, reason: &str) -> StoreResult<bool> {
        self.db
            .transaction(Replay::Once, |conn| {
                async move {
                    let rows: Vec<StateEpoch> = Sql::new(queries::JOB_FOR_REQUEUE).bind(job_key).load(conn).await?;
                    let row = rows
                        .into_iter()
                        .next()
                        .ok_or_else(|| StoreError::job_not_found(job_key))?;
                    requeue_locked(conn, job_key, parse_state(&row.state)?, row.epoch, reason).await
                }
                .scope_boxed()
            })
            .await
    }

    async fn update_expected(
        &self,
        job_key: &str,
        expected: &Expectations,
        reason: &str,
    ) -> StoreResult<ExpectedUpdate> {
        self.db
            .transaction(Replay::Once, |conn| {
                async move {
                    let rows: Vec<ExpectedRow> = Sql::new(queries::JOB_FOR_EXPECTED).bind(job_key).load(conn).await?;
                    let row = rows
                        .into_iter()
                        .next()
                        .ok_or_else(|| StoreError::job_not_found(job_key))?;
                    let state = parse_state(&row.state)?;
                    if state.is_in_flight() {
                        return Ok(ExpectedUpdate::InFlight(state));
                    }
                    let recorded = row.expectations()?;
                    if !expected.contradicts(&recorded) {
                        return Ok(ExpectedUpdate::Unchanged);
                    }
                    let updated = expected.over(&recorded);
                    let size = updated.size.map(|s| signed(s, "expected size")).transpose()?;
                    Sql::new(queries::EXPECTED_UPDATE)
                        .bind(job_key)
                        .bind(updated.sha256.clone())
                        .bind(size)
                        .bind(updated.content_type.clone())
                        .execute(conn)
                        .await?;
                    let finished = matches!(state, JobState::Success | JobState::SkippedDuplicate);
                    if finished && !updated.admit_finished(&recorded, row.sha256.as_deref(), row.content_size()?) {
                        requeue_locked(conn, job_key, state, row.epoch, reason).await?;
                        return Ok(ExpectedUpdate::Requeued);
                    }
                    Ok(ExpectedUpdate::Recorded)
                }
                .scope_boxed()
            })
            .await
    }

    async fn requeue_matching(&self, filter: &RequeueFilter, reason: &str) -> StoreResult<RequeueCounts> {
        check_transition(Transition::Requeue, filter.state, JobState::Planned)?;
        let sql = Sql::new(queries::REQUEUE_MATCHING)
            .bind(filter.state.as_str())
            .bind(filter.include_permanent)
            .bind(filter.narrow.job_key.clone())
            .bind(filter.narrow.work_id.as_deref().map(|id| text::store(id).into_owned()))
            .bind(filter.narrow.host.clone())
            .bind(filter.narrow.error.clone())
            .bind(reason);
        let sql = &sql;
        let row: RequeuedRow = self
            .db
            .transaction(Replay::Once, |conn| {
                async move { Ok(sql.clone().get_result(conn).await?) }.scope_boxed()
            })
            .await?;
        Ok(RequeueCounts {
            retryable: count(row.retryable),
            permanent: count(row.permanent),
            finished: count(row.finished),
        })
    }

    async fn claim_request_slots(&self, host: &str, interval: Duration, count: u32) -> StoreResult<RequestSlots> {
        let count = count.max(1);
        let interval_ms = RequestSlots::interval_millis(interval);
        // One statement. Run again after an unknown outcome it claims more
        // slots than used: the host is paced slower, never faster.
        let row: Count = self
            .db
            .run(Replay::Safe, |conn| {
                async move {
                    Ok(Sql::new(queries::CLAIM_REQUEST_SLOTS)
                        .bind(host)
                        .bind(interval_ms)
                        .bind(i64::from(count))
                        .get_result(conn)
                        .await?)
                }
                .scope_boxed()
            })
            .await?;
        Ok(RequestSlots::ending_at(row.n, interval, count))
    }

    async fn note(&self, job_key: &str, op_key: &str, kind: OpKind, result: &Value) -> StoreResult<()> {
        // One statement, once per op key: safe to run again.
        let found: Count = self
            .db
            .run(Replay::Safe, |conn| {
                async move {
                    Ok(Sql::new(queries::NOTE)
                        .bind(job_key)
                        .bind(op_key)
                        .bind(kind.as_str())
                        .bind(result.clone())
                        .get_result(conn)
                        .await?)
                }
                .scope_boxed()
            })
            .await?;
        if found.n == 0 {
            return Err(StoreError::job_not_found(job_key));
        }
        Ok(())
    }
}
