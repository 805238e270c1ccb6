//! The [`LeaseManager`](oncefetch_core::LeaseManager) operations, as
//! synchronous functions that run on the connection thread, each atomic in
//! its own savepoint of a group transaction.

use std::collections::HashSet;
use std::time::Duration;

use oncefetch_core::{
    check_transition, out_of_attempts, AcquireRequest, Fence, Job, JobState, Lease, Millis, OpKeys, OpKind,
    ReconcileReport, ResultCode, Transition,
};
use rusqlite::{named_params, Connection};
use serde_json::json;

use crate::clock::{self, millis};
use crate::error::TxError;
use crate::ledger::{insert_op, lease_lost, load_job, not_found};
use crate::queries;
use crate::rows;

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
                    fail_out_of_attempts(conn, seq, job, &message, now)?;
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
    if !runnable(&job, now, request.max_attempts) {
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
        return fail_out_of_attempts(conn, seq, job, &message, now).map(|()| None);
    }
    let expires_at = now.saturating_add(millis(request.ttl));
    grant(conn, seq, job, request, expires_at, now).map(Some)
}

/// Whether a grant may pick `job` at `now` (the reference store's rule).
fn runnable(job: &Job, now: Millis, max_attempts: u32) -> bool {
    match job.state {
        JobState::Planned => job.next_attempt_at.is_none_or(|t| t <= now),
        JobState::Failed => {
            job.retryable && job.attempts < max_attempts && job.next_attempt_at.is_none_or(|t| t <= now)
        }
        s if s.is_in_flight() => job.lease_expires_at.is_none_or(|t| t <= now),
        _ => false,
    }
}

/// LEASED under the next epoch; abandons older unfinished attempts and, for
/// the backward step from an in-flight state, records a RELET row. `job` is
/// the row as read in this transaction.
fn grant(
    conn: &Connection,
    seq: i64,
    mut job: Job,
    request: &AcquireRequest,
    expires_at: Millis,
    now: Millis,
) -> Result<Lease, TxError> {
    let previous_state = job.state;
    check_transition(Transition::Grant, previous_state, JobState::Leased)?;
    let previous_epoch = job.epoch;
    job.epoch += 1;
    job.state = JobState::Leased;
    job.lease_owner = Some(request.owner.clone());
    job.lease_expires_at = Some(expires_at);
    conn.prepare_cached(queries::GRANT)?.execute(named_params! {
        ":epoch": job.epoch,
        ":owner": request.owner,
        ":expires_at": expires_at,
        ":planned_seq": seq,
    })?;
    // Attempts are only started under a lease, so a job never leased before
    // (epoch 0) has none to abandon.
    if previous_epoch > 0 {
        conn.prepare_cached(queries::ABANDON_OLD_EPOCHS)?
            .execute(named_params! {":now": now, ":job_key": job.job_key, ":epoch": job.epoch})?;
    }
    if previous_state.is_in_flight() {
        let op_key = OpKeys { job_key: &job.job_key }.epoch_action(OpKind::Relet, job.epoch);
        let result = json!({ "from": previous_state.as_str(), "epoch": job.epoch });
        insert_op(
            conn,
            &op_key,
            &job.job_key,
            OpKind::Relet,
            job.epoch,
            now,
            Some(ResultCode::Ok),
            Some(&result),
        )?;
    }
    Ok(Lease {
        fence: Fence {
            job_key: job.job_key.clone(),
            epoch: job.epoch,
            owner: request.owner.clone(),
        },
        expires_at,
        previous_state,
        job,
    })
}

/// Takes a job out of attempts under the next epoch and ends it FAILED with
/// `message` instead of leasing it: abandons its unfinished attempts and
/// records a RELET row saying so. `job` is the row as read in this
/// transaction.
fn fail_out_of_attempts(conn: &Connection, seq: i64, job: Job, message: &str, now: Millis) -> Result<(), TxError> {
    check_transition(Transition::Grant, job.state, JobState::Leased)?;
    check_transition(Transition::Step, JobState::Leased, JobState::Failed)?;
    let epoch = job.epoch + 1;
    conn.prepare_cached(queries::FAIL_OUT_OF_ATTEMPTS)?
        .execute(named_params! {
            ":epoch": epoch,
            ":last_error": message,
            ":now": now,
            ":planned_seq": seq,
        })?;
    conn.prepare_cached(queries::ABANDON_OLD_EPOCHS)?
        .execute(named_params! {":now": now, ":job_key": job.job_key, ":epoch": epoch})?;
    let op_key = OpKeys { job_key: &job.job_key }.epoch_action(OpKind::Relet, epoch);
    let result = json!({
        "from": job.state.as_str(),
        "epoch": epoch,
        "to": JobState::Failed.as_str(),
        "last_error": message,
    });
    insert_op(
        conn,
        &op_key,
        &job.job_key,
        OpKind::Relet,
        epoch,
        now,
        Some(ResultCode::Ok),
        Some(&result),
    )
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

/// The reconcile mark: a lease that expired at or before it was freed.
pub(crate) fn freed_through(conn: &Connection) -> rusqlite::Result<Millis> {
    conn.prepare_cached(queries::RECONCILE_MARK_GET)?
        .query_row([], |row| row.get(0))
}

/// Shows the leases that reconcile freed as gone (no owner, no expiry), as a
/// read of these jobs reports them. The mark is read only when one of them
/// records a lease.
pub(crate) fn hide_freed_leases(conn: &Connection, jobs: &mut [Job]) -> rusqlite::Result<()> {
    if jobs.iter().all(|job| job.lease_expires_at.is_none()) {
        return Ok(());
    }
    let freed_through = freed_through(conn)?;
    for job in jobs {
        if job.lease_expires_at.is_some_and(|t| t <= freed_through) {
            job.lease_owner = None;
            job.lease_expires_at = None;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::SqliteOptions;
    use oncefetch_core::{Commit, NewJob};
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
