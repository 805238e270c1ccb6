//! The [`LeaseManager`](oncefetch_core::LeaseManager) operations, as
//! synchronous functions that run on the connection thread, each atomic in
//! its own savepoint of a group transaction.

use std::collections::HashSet;
use std::time::Duration;

use oncefetch_core::{kernel, out_of_attempts, AcquireRequest, Fence, Job, Lease, Millis, ReconcileReport};
use rusqlite::{named_params, Connection};

use crate::clock::{self, millis};
use crate::error::TxError;
use crate::queries;
use crate::rows;
use crate::tables::{freed_through, insert_row, lease_lost, load_job, not_found};

/// Grants up to `request.limit` runnable jobs in one transaction, in the
/// order of `sql/queries/runnable.sql`: released and expired in-flight jobs
/// first (they hold work already done), then retryable failures past their
/// backoff, then PLANNED jobs in planning order. A picked job out of
/// attempts ends FAILED instead ([`out_of_attempts`]) and takes its place in
/// the batch.
pub(crate) fn acquire(conn: &Connection, request: &AcquireRequest) -> Result<Vec<Lease>, TxError> {
    let now = clock::now(conn)?;
    let expires_at = now.saturating_add(millis(request.ttl));
    let mut leases = Vec::new();
    let mut failed = 0;
    let mut urls = HashSet::new();
    let mut keys = HashSet::new();
    // Each round either picks a job (granted, whose URL the next round then
    // sees as busy, or failed, which the next round no longer finds) or
    // ends; a round only comes short when one page held several jobs of one
    // URL.
    while leases.len() + failed < request.limit {
        let remaining = request.limit - leases.len() - failed;
        let candidates = conn
            .prepare_cached(queries::RUNNABLE)?
            .query_map(
                named_params! {
                    ":now": now,
                    ":max_attempts": request.max_attempts,
                    ":limit": rows::limit(remaining),
                },
                rows::seq_and_job,
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let before = leases.len() + failed;
        for (seq, job) in candidates {
            if leases.len() + failed == request.limit {
                break;
            }
            if keys.contains(&job.job_key) || urls.contains(&job.canonical_url) {
                continue;
            }
            keys.insert(job.job_key.clone());
            urls.insert(job.canonical_url.clone());
            match out_of_attempts(&job, now, request.max_attempts) {
                Some(message) => {
                    fail_out_of_attempts(conn, seq, job, message, now)?;
                    failed += 1;
                }
                None => leases.push(grant(conn, seq, job, request, expires_at, now)?),
            }
        }
        if leases.len() + failed == before {
            break;
        }
    }
    Ok(leases)
}

/// Grants one given job if it is runnable and its URL is free.
pub(crate) fn acquire_job(
    conn: &Connection,
    job_key: &str,
    request: &AcquireRequest,
) -> Result<Option<Lease>, TxError> {
    let now = clock::now(conn)?;
    let (seq, job) = load_job(conn, job_key)?.ok_or_else(|| not_found(job_key))?;
    if !kernel::runnable(&job, now, request.max_attempts) {
        return Ok(None);
    }
    let busy: bool = conn
        .prepare_cached(queries::URL_BUSY)?
        .query_row(named_params! {":canonical_url": job.canonical_url, ":now": now}, |r| {
            r.get(0)
        })?;
    if busy {
        return Ok(None);
    }
    if let Some(message) = out_of_attempts(&job, now, request.max_attempts) {
        return fail_out_of_attempts(conn, seq, job, message, now).map(|()| None);
    }
    let expires_at = now.saturating_add(millis(request.ttl));
    grant(conn, seq, job, request, expires_at, now).map(Some)
}

/// LEASED under the next epoch ([`kernel::grant`]); abandons older
/// unfinished attempts and writes the grant's RELET row, if any. `job` is
/// the row as read in this transaction.
fn grant(
    conn: &Connection,
    seq: i64,
    job: Job,
    request: &AcquireRequest,
    expires_at: Millis,
    now: Millis,
) -> Result<Lease, TxError> {
    let granted = kernel::grant(&job, &request.owner, expires_at, now)?;
    let lease = granted.lease;
    conn.prepare_cached(queries::GRANT)?.execute(named_params! {
        ":epoch": lease.job.epoch,
        ":owner": lease.job.lease_owner,
        ":expires_at": lease.job.lease_expires_at,
        ":planned_seq": seq,
    })?;
    // Attempts are only started under a lease, so a job never leased before
    // (epoch 0) has none to abandon.
    if job.epoch > 0 {
        abandon_old_epochs(conn, &job.job_key, lease.job.epoch, now)?;
    }
    if let Some(row) = &granted.relet {
        insert_row(conn, row)?;
    }
    Ok(lease)
}

/// Ends a picked job out of attempts FAILED under the next epoch
/// ([`kernel::fail_out_of_attempts`]) instead of leasing it: abandons its
/// unfinished attempts and writes the RELET row saying so. `job` is the row
/// as read in this transaction.
fn fail_out_of_attempts(conn: &Connection, seq: i64, job: Job, message: String, now: Millis) -> Result<(), TxError> {
    let (failed, row) = kernel::fail_out_of_attempts(&job, message, now)?;
    conn.prepare_cached(queries::FAIL_OUT_OF_ATTEMPTS)?
        .execute(named_params! {
            ":epoch": failed.epoch,
            ":last_error": failed.last_error,
            ":now": failed.next_attempt_at,
            ":planned_seq": seq,
        })?;
    abandon_old_epochs(conn, &job.job_key, failed.epoch, now)?;
    insert_row(conn, &row)
}

/// [`kernel::abandoned_on_grant`], set-wise: the job's unfinished attempts
/// of epochs other than `epoch` become ABANDONED.
fn abandon_old_epochs(conn: &Connection, job_key: &str, epoch: i64, now: Millis) -> Result<(), TxError> {
    conn.prepare_cached(queries::ABANDON_OLD_EPOCHS)?
        .execute(named_params! {":now": now, ":job_key": job_key, ":epoch": epoch})?;
    Ok(())
}

/// Extends a live lease; returns the new expiry.
pub(crate) fn renew(conn: &Connection, fence: &Fence, ttl: Duration) -> Result<Millis, TxError> {
    let now = clock::now(conn)?;
    let expires_at = now.saturating_add(millis(ttl));
    let changed = conn.prepare_cached(queries::RENEW)?.execute(named_params! {
        ":expires_at": expires_at,
        ":job_key": fence.job_key,
        ":epoch": fence.epoch,
        ":owner": fence.owner,
        ":now": now,
    })?;
    if changed == 1 {
        Ok(expires_at)
    } else {
        Err(lease_lost(fence))
    }
}

/// Gives a live lease back.
pub(crate) fn release(conn: &Connection, fence: &Fence) -> Result<(), TxError> {
    let now = clock::now(conn)?;
    let changed = conn.prepare_cached(queries::RELEASE)?.execute(named_params! {
        ":job_key": fence.job_key,
        ":epoch": fence.epoch,
        ":owner": fence.owner,
        ":now": now,
    })?;
    if changed == 1 {
        Ok(())
    } else {
        Err(lease_lost(fence))
    }
}

/// Frees leases expired at least `stale_after` ago and abandons every
/// unfinished attempt no live lease covers. Freeing moves the reconcile mark
/// (see `0004_reconcile_mark.sql`) and counts the leases it passed, rewriting
/// no job row; abandoning is one set-based update.
pub(crate) fn reconcile(conn: &Connection, stale_after: Duration) -> Result<ReconcileReport, TxError> {
    let now = clock::now(conn)?;
    let cutoff = now.saturating_sub(millis(stale_after));
    let freed_through = freed_through(conn)?;
    let expired: i64 = conn.prepare_cached(queries::RECONCILE_LEASES)?.query_row(
        named_params! {":freed_through": freed_through, ":cutoff": cutoff},
        |row| row.get(0),
    )?;
    conn.prepare_cached(queries::RECONCILE_MARK_MOVE)?
        .execute(named_params! {":cutoff": cutoff})?;
    let abandoned = conn
        .prepare_cached(queries::RECONCILE_OPS)?
        .execute(named_params! {":now": now})?;
    Ok(ReconcileReport {
        expired_leases: u64::try_from(expired).unwrap_or(0),
        abandoned_ops: u64::try_from(abandoned).unwrap_or(u64::MAX),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::SqliteOptions;
    use oncefetch_core::{Commit, JobState, NewJob};
    use rusqlite::StatementStatus;

    /// The hot statements keep their plan across calls: a re-prepare per
    /// call (bound values consulted by the planner) would cost more than
    /// the work itself.
    #[test]
    fn hot_statements_are_prepared_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let conn = crate::conn::set_up(&SqliteOptions::new(dir.path().join("x.db"))).expect("open");
        let jobs: Vec<NewJob> = (0..20)
            .map(|i| NewJob {
                job_key: format!("key-{i:02}"),
                work_id: format!("w{i}"),
                artifact_id: "a".into(),
                url: format!("https://example.org/{i}"),
                canonical_url: format!("https://example.org/{i}"),
                expected_sha256: None,
                expected_size: None,
                expected_content_type: None,
            })
            .collect();
        crate::ledger::plan(&conn, &jobs).expect("plan");
        for limit in [1, 2, 1, 3] {
            let request = AcquireRequest {
                owner: "o".into(),
                ttl: Duration::from_secs(60),
                limit,
                max_attempts: 3,
            };
            for lease in acquire(&conn, &request).expect("acquire") {
                let commit = Commit {
                    steps: vec![JobState::HeadDone],
                    ..Commit::default()
                };
                crate::ledger::commit(&conn, &lease.fence, &commit).expect("commit");
            }
            std::thread::sleep(Duration::from_millis(3));
        }
        for (name, sql) in [
            ("now", queries::NOW),
            ("runnable", queries::RUNNABLE),
            ("grant", queries::GRANT),
            ("job_get", queries::JOB_GET),
            ("job_step", queries::JOB_STEP),
        ] {
            let stmt = conn.prepare_cached(sql).expect("cached");
            assert!(stmt.get_status(StatementStatus::Run) > 0, "{name} ran");
            assert_eq!(stmt.get_status(StatementStatus::RePrepare), 0, "{name} was re-prepared");
        }
    }
}
