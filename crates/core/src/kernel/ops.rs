//! Op start, finish and replay (SPEC §5): at most one OK row per op key,
//! one attempt per (op key, epoch).

use serde_json::Value;

use crate::error::{StoreError, StoreResult};
use crate::job::Millis;
use crate::ledger::{OpKind, OpRecord, ResultCode};
use crate::state::JobState;

/// What the ledger records of one op key, as the rules need it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpFacts {
    /// The result of the key's OK row, under any epoch (`Value::Null` for an
    /// OK row without one), or `None` without an OK row.
    pub ok: Option<Value>,
    /// The key's attempt under the fence's epoch: `None` without one,
    /// `Some(None)` while it runs, `Some(Some(code))` once finished.
    pub attempt: Option<Option<ResultCode>>,
}

impl OpFacts {
    /// The facts of one op key from its rows (any epochs), for `epoch`.
    pub fn of<'a>(rows: impl Iterator<Item = &'a OpRecord> + Clone, epoch: i64) -> Self {
        let ok = rows.clone().find(|r| r.result_code == Some(ResultCode::Ok));
        Self {
            ok: ok.map(|r| r.result.clone().unwrap_or(Value::Null)),
            attempt: rows.into_iter().find(|r| r.epoch == epoch).map(|r| r.result_code),
        }
    }
}

/// **Op replay**: before an attempt of `op_key` under `epoch` on a job now
/// in `state`, the result to replay (`Some`), or `None` when the op must
/// run. Only an in-flight job starts ops, and only once per epoch.
pub fn start_op(op_key: &str, epoch: i64, state: JobState, facts: &OpFacts) -> StoreResult<Option<Value>> {
    may_start_ops(state)?;
    if let Some(result) = &facts.ok {
        return Ok(Some(result.clone()));
    }
    if facts.attempt.is_some() {
        return Err(StoreError::OpAlreadyAttempted {
            op_key: op_key.to_owned(),
            epoch,
        });
    }
    Ok(None)
}

/// Only an in-flight job starts ops.
pub fn may_start_ops(state: JobState) -> StoreResult<()> {
    if state.is_in_flight() {
        Ok(())
    } else {
        Err(StoreError::OpOutsideFlight { state })
    }
}

/// **Op finish**: the attempt of `op_key` under `epoch` must be running, and
/// finishing it OK must not make a second OK row of the key.
pub fn finish_op(op_key: &str, epoch: i64, code: ResultCode, facts: &OpFacts) -> StoreResult<()> {
    if facts.attempt != Some(None) {
        return Err(StoreError::OpNotRunning {
            op_key: op_key.to_owned(),
            epoch,
        });
    }
    if code == ResultCode::Ok && facts.ok.is_some() {
        return Err(StoreError::OpAlreadyOk {
            op_key: op_key.to_owned(),
        });
    }
    Ok(())
}

/// Finishes the running attempt `row` with `code` and `result` at `now`.
pub fn finish_row(row: &mut OpRecord, code: ResultCode, result: &Value, now: Millis) {
    (row.result_code, row.result, row.finished_at) = (Some(code), Some(result.clone()), Some(now));
}

/// **Abandoning** an attempt (superseded by a grant, a requeue or
/// reconcile): ABANDONED, finished when it first finished or else at `now`.
pub fn abandon(row: &mut OpRecord, now: Millis) {
    (row.result_code, row.finished_at) = (Some(ResultCode::Abandoned), row.finished_at.or(Some(now)));
}

/// [`abandon`]s every row of `rows`; how many.
pub fn abandon_all<'a>(rows: impl Iterator<Item = &'a mut OpRecord>, now: Millis) -> u64 {
    rows.map(|row| abandon(row, now)).count() as u64
}

/// A ledger row started and finished OK at `now` with `result` (its `seq`
/// is the store's to assign).
pub fn ok_row(op_key: String, job_key: &str, kind: OpKind, epoch: i64, now: Millis, result: Value) -> OpRecord {
    OpRecord {
        seq: 0,
        op_key,
        job_key: job_key.to_owned(),
        kind,
        epoch,
        started_at: now,
        finished_at: Some(now),
        result_code: Some(ResultCode::Ok),
        result: Some(result),
    }
}
