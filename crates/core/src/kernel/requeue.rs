//! Requeue (SPEC §4): a FAILED or finished job back to PLANNED, its effect
//! rows superseded, a REQUEUE row written.

use serde_json::json;

use super::ops::ok_row;
use crate::job::{Job, Millis, NewJob};
use crate::key::OpKeys;
use crate::ledger::{OpKind, OpRecord, ResultCode};
use crate::state::JobState;
use crate::transition::{check_transition, Transition};

/// **Requeue**: `job` as PLANNED afresh (attempts reset, result fields
/// cleared, epoch kept), or `None` when the table does not requeue from its
/// state.
pub fn requeue(job: &Job) -> Option<Job> {
    check_transition(Transition::Requeue, job.state, JobState::Planned).ok()?;
    let planned = Job::planned(&NewJob {
        job_key: job.job_key.clone(),
        work_id: job.work_id.clone(),
        artifact_id: job.artifact_id.clone(),
        url: job.url.clone(),
        canonical_url: job.canonical_url.clone(),
        expected_sha256: job.expected_sha256.clone(),
        expected_size: job.expected_size,
        expected_content_type: job.expected_content_type.clone(),
    });
    Some(Job {
        epoch: job.epoch,
        ..planned
    })
}

/// Whether a requeue supersedes `row` of its job (it becomes ABANDONED): an
/// OK row of an effect, whose result no longer describes the world.
pub fn superseded_by_requeue(row: &OpRecord) -> bool {
    row.result_code == Some(ResultCode::Ok) && row.kind.is_effect()
}

/// The REQUEUE row of a job requeued from `from` under `epoch`.
pub fn requeue_row(job_key: &str, epoch: i64, from: JobState, reason: &str, superseded: u64, now: Millis) -> OpRecord {
    let op_key = OpKeys { job_key }.epoch_action(OpKind::Requeue, epoch);
    let result = json!({ "from": from.as_str(), "reason": reason, "superseded_ops": superseded });
    ok_row(op_key, job_key, OpKind::Requeue, epoch, now, result)
}
