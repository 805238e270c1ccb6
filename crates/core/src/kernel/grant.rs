//! A grant (SPEC §4): the next epoch's lease, the RELET row of a backward
//! step, and the end in FAILED of a job out of attempts.

use std::time::Duration;

use serde_json::json;

use super::ops::ok_row;
use super::step::step;
use crate::error::StoreResult;
use crate::job::{Job, JobFailure, Millis};
use crate::key::OpKeys;
use crate::lease::{Fence, Lease};
use crate::ledger::{OpKind, OpRecord};
use crate::state::JobState;
use crate::transition::{check_transition, Transition};

/// What one grant writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted {
    /// The lease (its `job` is the row as written).
    pub lease: Lease,
    /// The RELET row of a grant from an in-flight state (the backward step).
    pub relet: Option<OpRecord>,
}

/// **The grant**: `job` (runnable, picked) leased to `owner` until
/// `expires_at` under the next epoch, in LEASED.
pub fn grant(job: &Job, owner: &str, expires_at: Millis, now: Millis) -> StoreResult<Granted> {
    let previous_state = job.state;
    check_transition(Transition::Grant, previous_state, JobState::Leased)?;
    let mut job = job.clone();
    job.epoch += 1;
    job.state = JobState::Leased;
    job.lease_owner = Some(owner.to_owned());
    job.lease_expires_at = Some(expires_at);
    let relet = previous_state.is_in_flight().then(|| {
        let op_key = OpKeys { job_key: &job.job_key }.epoch_action(OpKind::Relet, job.epoch);
        let result = json!({ "from": previous_state.as_str(), "epoch": job.epoch });
        ok_row(op_key, &job.job_key, OpKind::Relet, job.epoch, now, result)
    });
    Ok(Granted {
        lease: Lease {
            fence: Fence {
                job_key: job.job_key.clone(),
                epoch: job.epoch,
                owner: owner.to_owned(),
            },
            expires_at,
            previous_state,
            job,
        },
        relet,
    })
}

/// **Out of attempts**: a picked job that ran out of attempts (`message`,
/// from [`out_of_attempts`](crate::out_of_attempts)) ends FAILED, not
/// retryable, under the next epoch, with a RELET row saying so; its
/// unfinished attempts are abandoned ([`abandoned_on_grant`]).
pub fn fail_out_of_attempts(job: &Job, message: String, now: Millis) -> StoreResult<(Job, OpRecord)> {
    let previous_state = job.state;
    check_transition(Transition::Grant, previous_state, JobState::Leased)?;
    let mut job = job.clone();
    job.epoch += 1;
    job.state = JobState::Leased;
    let failure = JobFailure {
        message: message.clone(),
        retryable: false,
        retry_after: Duration::ZERO,
        counts_attempt: false,
    };
    step(&mut job, JobState::Failed, Some(&failure), now)?;
    let op_key = OpKeys { job_key: &job.job_key }.epoch_action(OpKind::Relet, job.epoch);
    let result = json!({
        "from": previous_state.as_str(),
        "epoch": job.epoch,
        "to": JobState::Failed.as_str(),
        "last_error": message,
    });
    let row = ok_row(op_key, &job.job_key, OpKind::Relet, job.epoch, now, result);
    Ok((job, row))
}

/// Whether a grant under `epoch` abandons `row` of its job: an unfinished
/// attempt of another epoch.
pub fn abandoned_on_grant(row: &OpRecord, epoch: i64) -> bool {
    row.result_code.is_none() && row.epoch != epoch
}
