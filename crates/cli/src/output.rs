//! JSON shapes of `jobs`, `ledger` and `status`, and the `--json` summaries
//! of `plan`, `recover`, `verify` and `retry` (SPEC §7).

use std::time::{Duration, UNIX_EPOCH};

use oncefetch_core::pipeline::recover::RecoverReport;
use oncefetch_core::url::redact;
use oncefetch_core::{Job, JobState, Millis, OpRecord, RequeueCounts, StatusCounts};
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
        "expected_content_type": job.expected_content_type,
        "lease_owner": live,
        "lease_expires_at": live.and(job.lease_expires_at).map(timestamp),
        "retryable": (job.state == JobState::Failed).then_some(job.retryable),
        "next_attempt_at": (job.state == JobState::Failed).then_some(job.next_attempt_at).flatten().map(timestamp),
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
pub(crate) fn redacted(value: Value) -> Value {
    match value {
        Value::String(s) => Value::String(redact(&s).into_owned()),
        Value::Array(items) => Value::Array(items.into_iter().map(redacted).collect()),
        Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k, redacted(v))).collect()),
        other => other,
    }
}

/// `status --json`; `max_attempts` judges which FAILED jobs are final.
pub(crate) fn status_json(counts: &StatusCounts, max_attempts: u32) -> Value {
    let states: Map<String, Value> = counts
        .states
        .iter()
        .map(|(state, n)| (state.as_str().to_owned(), Value::from(*n)))
        .collect();
    let failed = counts.failed(max_attempts);
    json!({
        "total": counts.total(),
        "states": states,
        "leases": { "live": counts.live_leases, "expired": counts.expired_leases() },
        "bytes_done": counts.bytes_done,
        "failed": { "retryable": failed.retryable, "final": failed.final_ },
        "backoff_waiting": counts.backoff_waiting(max_attempts),
    })
}

/// `recover --json`; the partial-file counts are `null` without `--out`
/// (not checked).
pub(crate) fn recover_json(report: &RecoverReport, partials_checked: bool, uploads_checked: bool) -> Value {
    let partials = |n: u64| partials_checked.then_some(n);
    let mut value = json!({
        "expired_leases": report.expired_leases,
        "abandoned_ops": report.abandoned_ops,
        "partials_removed": partials(report.partials_removed),
        "partials_kept": partials(report.partials_kept),
        "requeued_missing": report.requeued_missing,
    });
    if uploads_checked {
        value["uploads_aborted"] = json!(report.uploads_aborted);
    }
    value
}

/// What `verify` found.
#[derive(Debug, Default)]
pub(crate) struct VerifyTally {
    /// Artifacts looked for.
    pub(crate) looked: u64,
    /// Found with the recorded hash.
    pub(crate) ok: u64,
    /// Not found (or no file recorded).
    pub(crate) missing: u64,
    /// Found with other bytes.
    pub(crate) different: u64,
    /// Recorded outside the folder given.
    pub(crate) outside: u64,
}

/// `verify --json`: `out` is the folder checked against (`null` without
/// `--out`, and then `outside` is 0).
pub(crate) fn verify_json(tally: &VerifyTally, out: Option<&std::path::Path>) -> Value {
    json!({
        "out": out.map(|dir| dir.display().to_string()),
        "looked": tally.looked,
        "ok": tally.ok,
        "missing": tally.missing,
        "different": tally.different,
        "outside": tally.outside,
    })
}

/// `retry --json`.
pub(crate) fn retry_json(state: JobState, counts: &RequeueCounts) -> Value {
    json!({
        "state": state.as_str(),
        "requeued": counts.total(),
        "retryable": counts.retryable,
        "permanent": counts.permanent,
    })
}
