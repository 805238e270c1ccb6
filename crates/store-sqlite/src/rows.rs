//! Rows to values and back: the column order of `sql/queries/job_get.sql`,
//! `ops_page.sql` and `artifact_get.sql`, and the integer conversions where
//! unsigned sizes meet SQLite's signed integers.

use oncefetch_core::{ArtifactEntry, Job, JobState, OpKind, OpRecord, ResultCode};
use rusqlite::types::Type;
use rusqlite::Row;

use crate::error::{out_of_range, TxError};

/// A column value that does not decode.
fn bad(index: usize, kind: Type, message: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, kind, message.into())
}

fn state_at(row: &Row<'_>, index: usize) -> rusqlite::Result<JobState> {
    let name: String = row.get(index)?;
    name.parse().map_err(|e| bad(index, Type::Text, format!("{e}")))
}

pub(crate) fn u64_at(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<u64>> {
    let value: Option<i64> = row.get(index)?;
    value
        .map(|v| u64::try_from(v).map_err(|_| bad(index, Type::Integer, format!("negative size {v}"))))
        .transpose()
}

fn u32_at(row: &Row<'_>, index: usize) -> rusqlite::Result<u32> {
    let value: i64 = row.get(index)?;
    u32::try_from(value).map_err(|_| bad(index, Type::Integer, format!("count {value} out of range")))
}

/// A job from the columns `job_key … duplicate_of` (22, in schema order),
/// then `expected_content_type` (added by schema version 5).
pub(crate) fn job(row: &Row<'_>) -> rusqlite::Result<Job> {
    Ok(Job {
        job_key: row.get(0)?,
        work_id: row.get(1)?,
        artifact_id: row.get(2)?,
        url: row.get(3)?,
        canonical_url: row.get(4)?,
        expected_sha256: row.get(5)?,
        expected_size: u64_at(row, 6)?,
        state: state_at(row, 7)?,
        epoch: row.get(8)?,
        lease_owner: row.get(9)?,
        lease_expires_at: row.get(10)?,
        attempts: u32_at(row, 11)?,
        next_attempt_at: row.get(12)?,
        last_error: row.get(13)?,
        retryable: row.get(14)?,
        etag: row.get(15)?,
        last_modified: row.get(16)?,
        remote_size: u64_at(row, 17)?,
        path: row.get(18)?,
        sha256: row.get(19)?,
        size: u64_at(row, 20)?,
        duplicate_of: row.get(21)?,
        expected_content_type: row.get(22)?,
    })
}

/// A job followed by its rowid (`planned_seq`, column 23), which the
/// writes of the same transaction address it by.
pub(crate) fn seq_and_job(row: &Row<'_>) -> rusqlite::Result<(i64, Job)> {
    Ok((row.get(23)?, job(row)?))
}

/// A JSON result column.
pub(crate) fn json_at(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<serde_json::Value>> {
    let text: Option<String> = row.get(index)?;
    text.map(|t| serde_json::from_str(&t).map_err(|e| bad(index, Type::Text, format!("bad result JSON: {e}"))))
        .transpose()
}

/// A result code column (`None` while the attempt runs).
pub(crate) fn result_code_at(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<ResultCode>> {
    let code: Option<String> = row.get(index)?;
    code.map(|c| ResultCode::parse(&c).ok_or_else(|| bad(index, Type::Text, format!("unknown result code {c:?}"))))
        .transpose()
}

/// A ledger row from `seq, op_key, job_key, kind, epoch, started_at,
/// finished_at, result_code, result`.
pub(crate) fn op(row: &Row<'_>) -> rusqlite::Result<OpRecord> {
    let kind: String = row.get(3)?;
    Ok(OpRecord {
        seq: row.get(0)?,
        op_key: row.get(1)?,
        job_key: row.get(2)?,
        kind: OpKind::parse(&kind).ok_or_else(|| bad(3, Type::Text, format!("unknown op kind {kind:?}")))?,
        epoch: row.get(4)?,
        started_at: row.get(5)?,
        finished_at: row.get(6)?,
        result_code: result_code_at(row, 7)?,
        result: json_at(row, 8)?,
    })
}

/// An artifact entry from `sha256, path, size, job_key`.
pub(crate) fn artifact(row: &Row<'_>) -> rusqlite::Result<ArtifactEntry> {
    Ok(ArtifactEntry {
        sha256: row.get(0)?,
        path: row.get(1)?,
        size: u64_at(row, 2)?.unwrap_or(0),
        job_key: row.get(3)?,
    })
}

/// An unsigned size as a column value.
pub(crate) fn size(value: Option<u64>, what: &str) -> Result<Option<i64>, TxError> {
    value
        .map(|v| i64::try_from(v).map_err(|_| out_of_range(what)))
        .transpose()
}

/// A `LIMIT` value: 0 means no limit (`-1` to SQLite).
pub(crate) fn limit(n: usize) -> i64 {
    if n == 0 {
        -1
    } else {
        i64::try_from(n).unwrap_or(i64::MAX)
    }
}
