//! Single-row reads and writes that the ledger and lease operations share:
//! a job row, an op row, the reconcile mark.

use oncefetch_core::{kernel, Fence, Job, Millis, OpKind, OpRecord, ResultCode, StoreError};
use rusqlite::{named_params, Connection, OptionalExtension};
use serde_json::Value;

use crate::error::{is_unique_violation, TxError};
use crate::queries;
use crate::rows;

pub(crate) fn not_found(job_key: &str) -> TxError {
    TxError::Store(StoreError::job_not_found(job_key))
}

pub(crate) fn lease_lost(fence: &Fence) -> TxError {
    TxError::Store(kernel::lease_lost(fence))
}

/// One job row and its rowid, if present.
pub(crate) fn load_job(conn: &Connection, job_key: &str) -> rusqlite::Result<Option<(i64, Job)>> {
    conn.prepare_cached(queries::JOB_GET)?
        .query_row(named_params! {":job_key": job_key}, rows::seq_and_job)
        .optional()
}

/// Inserts a row the kernel built for the job at `job_seq` (its planned_seq).
pub(crate) fn insert_row(conn: &Connection, job_seq: i64, row: &OpRecord) -> Result<(), TxError> {
    insert_op(
        conn,
        job_seq,
        &row.op_key,
        &row.job_key,
        row.kind,
        row.epoch,
        row.started_at,
        row.result_code,
        row.result.as_ref(),
    )
}

/// Inserts a ledger row of the job at `job_seq` (its planned_seq); a
/// duplicate (op_key, epoch) is [`StoreError::OpAlreadyAttempted`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn insert_op(
    conn: &Connection,
    job_seq: i64,
    op_key: &str,
    job_key: &str,
    kind: OpKind,
    epoch: i64,
    now: Millis,
    code: Option<ResultCode>,
    result: Option<&Value>,
) -> Result<(), TxError> {
    let finished_at = code.map(|_| now);
    conn.prepare_cached(queries::OP_INSERT)?
        .execute(named_params! {
            ":op_key": op_key,
            ":job_key": job_key,
            ":kind": kind.as_str(),
            ":epoch": epoch,
            ":started_at": now,
            ":finished_at": finished_at,
            ":result_code": code.map(ResultCode::as_str),
            ":result": result.map(Value::to_string),
            ":job_seq": job_seq,
        })
        .map_err(|e| {
            if is_unique_violation(&e) {
                TxError::Store(StoreError::OpAlreadyAttempted {
                    op_key: op_key.to_owned(),
                    epoch,
                })
            } else {
                TxError::Sql(e)
            }
        })?;
    Ok(())
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
