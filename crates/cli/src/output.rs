//! JSON shapes of `jobs`, `ledger` and `status` (SPEC §7).

use std::time::{Duration, UNIX_EPOCH};

use oncefetch_core::url::redact;
use oncefetch_core::{Job, Millis, OpRecord, StatusCounts};
use serde_json::{json, Map, Value};

/// One `jobs` line; credentials in URLs are shown as `***`
/// ([`redact`]), in the URLs and in the error. `now` (store clock) tells a
/// live lease from a dead one: only a live lease's owner and expiry are shown.
pub(crate) fn job_json(job: &Job, now: Millis) -> Value {
    let live = job.lease_expires_at.filter(|&t| t > now).and(job.lease_owner.as_ref());
    json!({
        "job_key": job.job_key,
        "work_id": job.work_id,
        "artifact_id": job.artifact_id,
        "url": redact(&job.url),
        "canonical_url": redact(&job.canonical_url),
        "state": job.state.as_str(),
        "attempts": job.attempts,
        "path": job.path,
        "sha256": job.sha256,
        "size": job.size,
        "duplicate_of": job.duplicate_of,
        "last_error": job.last_error.as_deref().map(redact),
        "expected_sha256": job.expected_sha256,
        "expected_size": job.expected_size,
        "lease_owner": live,
        "lease_expires_at": live.and(job.lease_expires_at).map(timestamp),
    })
}

/// RFC 3339 with milliseconds, UTC.
pub(crate) fn timestamp(millis: Millis) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(u64::try_from(millis).unwrap_or(0));
    humantime::format_rfc3339_millis(at).to_string()
}

/// One `ledger` line; credentials in the URLs of a result (HEAD's
/// `final_url`, an error) are shown as `***`.
pub(crate) fn op_json(op: &OpRecord) -> Value {
    json!({
        "op_key": op.op_key,
        "job_key": op.job_key,
        "kind": op.kind.as_str(),
        "epoch": op.epoch,
        "started_at": timestamp(op.started_at),
        "finished_at": op.finished_at.map(timestamp),
        "result_code": op.result_code.map(|c| c.as_str()),
        "result": op.result.clone().map(redacted),
    })
}

/// `value` with [`redact`] applied to every string in it.
fn redacted(value: Value) -> Value {
    match value {
        Value::String(s) => Value::String(redact(&s).into_owned()),
        Value::Array(items) => Value::Array(items.into_iter().map(redacted).collect()),
        Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k, redacted(v))).collect()),
        other => other,
    }
}

/// `status --json`.
pub(crate) fn status_json(counts: &StatusCounts) -> Value {
    let states: Map<String, Value> = counts
        .states
        .iter()
        .map(|(state, n)| (state.as_str().to_owned(), Value::from(*n)))
        .collect();
    json!({
        "total": counts.total(),
        "states": states,
        "leases": { "live": counts.live_leases, "expired": counts.expired_leases() },
    })
}
