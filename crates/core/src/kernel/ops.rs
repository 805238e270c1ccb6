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

/// **Op replay**: before an attempt of `op_key` under `epoch` on a job now
/// in `state`, the result to replay (`Some`), or `None` when the op must
/// run. Only an in-flight job starts ops, and only once per epoch.
pub fn start_op(op_key: &str, epoch: i64, state: JobState, facts: &OpFacts) -> StoreResult<Option<Value>> {
    may_start_ops(state)?;
    if let Some(result) = &facts.ok {
        return Ok(Some(result.clone()));
    }
    if facts.attempt.is_some() {
        return Err(StoreError::Conflict(format!(
            "op {op_key} already attempted under epoch {epoch}"
        )));
    }
    Ok(None)
}

/// Only an in-flight job starts ops.
pub fn may_start_ops(state: JobState) -> StoreResult<()> {
    if state.is_in_flight() {
        Ok(())
    } else {
        Err(StoreError::Conflict(format!("cannot start an op on a {state} job")))
    }
}

/// **Op finish**: the attempt of `op_key` under `epoch` must be running, and
/// finishing it OK must not make a second OK row of the key.
pub fn finish_op(op_key: &str, epoch: i64, code: ResultCode, facts: &OpFacts) -> StoreResult<()> {
    if facts.attempt != Some(None) {
        return Err(StoreError::Conflict(format!(
            "no running attempt of op {op_key} under epoch {epoch}"
        )));
    }
    if code == ResultCode::Ok && facts.ok.is_some() {
        return Err(StoreError::Conflict(format!("op {op_key} already has an OK row")));
    }
    Ok(())
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
