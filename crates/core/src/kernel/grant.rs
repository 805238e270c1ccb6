//! A grant (SPEC §4): the next epoch's lease, the RELET row of a backward
//! step, and the end in FAILED of a job out of attempts.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;

use super::ops::ok_row;
use super::step::step;
use crate::error::StoreResult;
use crate::job::{Job, JobFailure, Millis};
use crate::key::OpKeys;
use crate::lease::{out_of_attempts, AcquireRequest, Fence, Lease};
use crate::ledger::{OpKind, OpRecord};
use crate::state::JobState;
use crate::transition::{check_transition, Transition};

/// **The grant**: `job` (runnable, picked) leased to `owner` until
/// `expires_at` under the next epoch, in LEASED, with the RELET row of a
/// grant from an in-flight state (the backward step).
fn grant(job: &Job, owner: &str, expires_at: Millis, now: Millis) -> StoreResult<Picked> {
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
    let lease = Lease {
        fence: Fence {
            job_key: job.job_key.clone(),
            epoch: job.epoch,
            owner: owner.to_owned(),
        },
        expires_at,
        previous_state,
        job,
    };
    Ok(Picked::Leased { lease, relet })
}

/// **Out of attempts**: a picked job that ran out of attempts (`message`,
/// from [`out_of_attempts`](crate::out_of_attempts)) ends FAILED, not
/// retryable, under the next epoch, with a RELET row saying so; its
/// unfinished attempts are abandoned ([`abandoned_on_grant`]).
fn fail_out_of_attempts(job: &Job, message: String, now: Millis) -> StoreResult<Picked> {
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
    let relet = ok_row(op_key, &job.job_key, OpKind::Relet, job.epoch, now, result);
    Ok(Picked::Failed { job, relet })
}

/// What granting a picked job writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Picked {
    /// Leased under the next epoch, in LEASED.
    Leased {
        /// The lease; its `job` is the row as written.
        lease: Lease,
        /// The RELET row of a job taken over in flight.
        relet: Option<OpRecord>,
    },
    /// Out of attempts: FAILED, not retryable, under the next epoch.
    Failed {
        /// The row as written.
        job: Job,
        /// The RELET row saying so.
        relet: OpRecord,
    },
}

impl Picked {
    /// The job row as written.
    pub fn job(&self) -> &Job {
        match self {
            Picked::Leased { lease, .. } => &lease.job,
            Picked::Failed { job, .. } => job,
        }
    }

    /// The RELET row to write, if any.
    pub fn relet(&self) -> Option<&OpRecord> {
        match self {
            Picked::Leased { relet, .. } => relet.as_ref(),
            Picked::Failed { relet, .. } => Some(relet),
        }
    }
}

/// **A picked job's grant**: when [`out_of_attempts`] says so, the job
/// ends FAILED, not retryable, under the next epoch, with a RELET row
/// saying so; else it is leased to `request.owner` for `request.ttl` from
/// `now` under the next epoch, in LEASED, with a RELET row when it was
/// taken over in flight. Either way its unfinished attempts of older epochs
/// are abandoned ([`abandoned_on_grant`]).
pub fn grant_picked(job: &Job, request: &AcquireRequest, now: Millis) -> StoreResult<Picked> {
    match out_of_attempts(job, now, request.max_attempts) {
        Some(message) => fail_out_of_attempts(job, message, now),
        None => grant(job, &request.owner, super::expiry(now, request.ttl), now),
    }
}

/// **The pick**: the keys of the jobs an acquire of `request` at `now`
/// grants, from `jobs` (every job, in grant order): [`runnable`](super::runnable)
/// ones, at most one per canonical URL and none whose URL is busy (a job of
/// it holds a [live lease](super::lease_live)), at most `request.limit`.
pub fn pick<'a>(jobs: impl Iterator<Item = &'a Job> + Clone, request: &AcquireRequest, now: Millis) -> Vec<String> {
    let live = jobs.clone().filter(|j| super::lease_live(j, now));
    let mut busy: HashSet<&str> = live.map(|j| j.canonical_url.as_str()).collect();
    jobs.filter(|j| super::runnable(j, now, request.max_attempts))
        .filter(|j| busy.insert(&j.canonical_url))
        .take(request.limit)
        .map(|j| j.job_key.clone())
        .collect()
}

/// Whether a grant under `epoch` abandons `row` of its job: an unfinished
/// attempt of another epoch.
pub fn abandoned_on_grant(row: &OpRecord, epoch: i64) -> bool {
    row.result_code.is_none() && row.epoch != epoch
}
