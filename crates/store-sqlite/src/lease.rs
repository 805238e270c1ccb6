//! The [`LeaseManager`](oncefetch_core::LeaseManager) operations, as
//! synchronous functions that run on the connection thread, each atomic in
//! its own savepoint of a group transaction.

use std::collections::HashSet;
use std::time::Duration;

use oncefetch_core::kernel::{self, Picked};
use oncefetch_core::{millis, AcquireRequest, Fence, Job, Lease, Millis, ReconcileReport};
use rusqlite::{named_params, Connection};

use crate::clock;
use crate::error::TxError;
use crate::queries;
use crate::rows;
use crate::tables::{freed_through, insert_row, lease_lost};

/// Grants up to `request.limit` runnable jobs in one transaction, in the
/// order of `sql/queries/runnable.sql`: released and expired in-flight jobs
/// first (they hold work already done), then retryable failures past their
/// backoff, then PLANNED jobs in planning order. A picked job out of
/// attempts ends FAILED instead ([`kernel::grant_picked`]) and takes its
/// place in the batch.
pub(crate) fn acquire(conn: &Connection, request: &AcquireRequest) -> Result<Vec<Lease>, TxError> {
    let now = clock::now(conn)?;
    let mut leases = Vec::new();
    let mut failed = 0;
    let mut urls = HashSet::new();
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
            // A job key is derived from its canonical URL, so a job picked
            // before has its URL here too.
            if !urls.insert(job.canonical_url.clone()) {
                continue;
            }
            match grant(conn, seq, &job, request, now)? {
                Some(lease) => leases.push(lease),
                None => failed += 1,
            }
        }
        if leases.len() + failed == before {
            break;
        }
    }
    Ok(leases)
}

/// Writes the grant of a picked job ([`kernel::grant_picked`]): LEASED
/// under the next epoch, or, out of attempts, FAILED under it (no lease);
/// abandons older unfinished attempts and writes the RELET row, if any.
/// `job` is the row as read in this transaction.
fn grant(
    conn: &Connection,
    seq: i64,
    job: &Job,
    request: &AcquireRequest,
    now: Millis,
) -> Result<Option<Lease>, TxError> {
    let picked = kernel::grant_picked(job, request, now)?;
    let written = picked.job();
    if let Picked::Leased { .. } = picked {
        conn.prepare_cached(queries::GRANT)?.execute(named_params! {
            ":epoch": written.epoch,
            ":owner": written.lease_owner,
            ":expires_at": written.lease_expires_at,
            ":planned_seq": seq,
        })?;
    } else {
        conn.prepare_cached(queries::FAIL_OUT_OF_ATTEMPTS)?
            .execute(named_params! {
                ":epoch": written.epoch,
                ":last_error": written.last_error,
                ":now": written.next_attempt_at,
                ":planned_seq": seq,
            })?;
    }
    // Attempts are only started under a lease, so a job never leased before
    // (epoch 0) has none to abandon.
    if job.epoch > 0 {
        abandon_old_epochs(conn, seq, written.epoch, now)?;
    }
    if let Some(row) = picked.relet() {
        insert_row(conn, seq, row)?;
    }
    Ok(match picked {
        Picked::Leased { lease, .. } => Some(lease),
        Picked::Failed { .. } => None,
    })
}

/// [`kernel::abandoned_on_grant`], set-wise: the job's unfinished attempts
/// of epochs other than `epoch` become ABANDONED.
fn abandon_old_epochs(conn: &Connection, job_seq: i64, epoch: i64, now: Millis) -> Result<(), TxError> {
    conn.prepare_cached(queries::ABANDON_OLD_EPOCHS)?
        .execute(named_params! {":now": now, ":job_seq": job_seq, ":epoch": epoch})?;
    Ok(())
}

/// Extends a live lease; returns the new expiry.
pub(crate) fn renew(conn: &Connection, fence: &Fence, ttl: Duration) -> Result<Millis, TxError> {
    let now = clock::now(conn)?;
    let expires_at = kernel::expiry(now, ttl);
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
