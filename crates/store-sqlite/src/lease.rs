//! The [`LeaseManager`](oncefetch_core::LeaseManager) operations, as
//! synchronous functions that run on the connection thread inside one
//! `BEGIN IMMEDIATE` transaction each.

use std::collections::HashSet;
use std::time::Duration;

use oncefetch_core::{
    check_transition, AcquireRequest, Fence, Job, JobState, Lease, Millis, OpKeys, OpKind, ReconcileReport, ResultCode,
    Transition,
};
use rusqlite::{named_params, Connection, ToSql};
use serde_json::json;

use crate::clock::{self, millis};
use crate::error::TxError;
use crate::ledger::{insert_op, lease_lost, load_job, not_found};
use crate::queries;
use crate::rows;

/// The runnable jobs, by kind, in the order a batch takes them: in-flight
/// jobs whose lease expired (or was released) first, since they hold work
/// already done; then retryable failures past their backoff; then PLANNED
/// jobs in planning order. Each query skips URLs held by a live lease.
const RUNNABLE: [&str; 3] = [
    queries::RUNNABLE_IN_FLIGHT,
    queries::RUNNABLE_FAILED,
    queries::RUNNABLE_PLANNED,
];

/// Grants up to `request.limit` runnable jobs in one transaction.
pub(crate) fn acquire(conn: &Connection, request: &AcquireRequest) -> Result<Vec<Lease>, TxError> {
    let now = clock::now(conn)?;
    let expires_at = now.saturating_add(millis(request.ttl));
    let mut leases = Vec::new();
    let mut urls = HashSet::new();
    let mut keys = HashSet::new();
    for query in RUNNABLE {
        // Each round either grants a job (whose URL the next round then sees
        // as busy) or ends; a round only comes short when one page held
        // several jobs of one URL.
        while leases.len() < request.limit {
            let remaining = request.limit - leases.len();
            let candidates = runnable_page(conn, query, now, request.max_attempts, remaining)?;
            let before = leases.len();
            for (job_key, url, state) in candidates {
                if leases.len() == request.limit {
                    break;
                }
                if keys.contains(&job_key) || urls.contains(&url) {
                    continue;
                }
                let previous: JobState = state.parse().map_err(|e| {
                    TxError::Sql(rusqlite::Error::FromSqlConversionFailure(
                        2,
                        rusqlite::types::Type::Text,
                        Box::new(e),
                    ))
                })?;
                leases.push(grant(conn, &job_key, previous, request, expires_at, now)?);
                keys.insert(job_key);
                urls.insert(url);
            }
            if leases.len() == before {
                break;
            }
        }
    }
    Ok(leases)
}

/// One page of candidates `(job_key, canonical_url, state)` from a
/// `runnable_*.sql` query (each binds the parameters it names).
fn runnable_page(
    conn: &Connection,
    query: &str,
    now: Millis,
    max_attempts: u32,
    limit: usize,
) -> Result<Vec<(String, String, String)>, TxError> {
    let mut stmt = conn.prepare_cached(query)?;
    let limit = rows::limit(limit);
    let params: [(&str, &dyn ToSql); 3] = [(":now", &now), (":max_attempts", &max_attempts), (":limit", &limit)];
    for (name, value) in params {
        if let Some(index) = stmt.parameter_index(name)? {
            stmt.raw_bind_parameter(index, value)?;
        }
    }
    let mut rows = stmt.raw_query();
    let mut page = Vec::new();
    while let Some(row) = rows.next()? {
        page.push((row.get(0)?, row.get(1)?, row.get(2)?));
    }
    Ok(page)
}

/// Grants one given job if it is runnable and its URL is free.
pub(crate) fn acquire_job(
    conn: &Connection,
    job_key: &str,
    request: &AcquireRequest,
) -> Result<Option<Lease>, TxError> {
    let now = clock::now(conn)?;
    let job = load_job(conn, job_key)?.ok_or_else(|| not_found(job_key))?;
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
    let expires_at = now.saturating_add(millis(request.ttl));
    grant(conn, job_key, job.state, request, expires_at, now).map(Some)
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
/// the backward step from an in-flight state, records a RELET row.
fn grant(
    conn: &Connection,
    job_key: &str,
    previous_state: JobState,
    request: &AcquireRequest,
    expires_at: Millis,
    now: Millis,
) -> Result<Lease, TxError> {
    check_transition(Transition::Grant, previous_state, JobState::Leased)?;
    let job = conn.prepare_cached(queries::GRANT)?.query_row(
        named_params! {":owner": request.owner, ":expires_at": expires_at, ":job_key": job_key},
        rows::job,
    )?;
    conn.prepare_cached(queries::ABANDON_OLD_EPOCHS)?
        .execute(named_params! {":now": now, ":job_key": job_key, ":epoch": job.epoch})?;
    if previous_state.is_in_flight() {
        let op_key = OpKeys { job_key }.epoch_action(OpKind::Relet, job.epoch);
        let result = json!({ "from": previous_state.as_str(), "epoch": job.epoch });
        insert_op(
            conn,
            &op_key,
            job_key,
            OpKind::Relet,
            job.epoch,
            now,
            Some(ResultCode::Ok),
            Some(&result),
        )?;
    }
    Ok(Lease {
        fence: Fence {
            job_key: job_key.to_owned(),
            epoch: job.epoch,
            owner: request.owner.clone(),
        },
        expires_at,
        previous_state,
        job,
    })
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
/// unfinished attempt no live lease covers: two set-based updates.
pub(crate) fn reconcile(conn: &Connection, stale_after: Duration) -> Result<ReconcileReport, TxError> {
    let now = clock::now(conn)?;
    let cutoff = now.saturating_sub(millis(stale_after));
    let expired = conn
        .prepare_cached(queries::RECONCILE_LEASES)?
        .execute(named_params! {":cutoff": cutoff})?;
    let abandoned = conn
        .prepare_cached(queries::RECONCILE_OPS)?
        .execute(named_params! {":now": now})?;
    Ok(ReconcileReport {
        expired_leases: u64::try_from(expired).unwrap_or(u64::MAX),
        abandoned_ops: u64::try_from(abandoned).unwrap_or(u64::MAX),
    })
}
