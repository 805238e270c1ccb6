//! One worker commit as a write set: what [`LedgerStore::commit`] reads,
//! checks and writes, in the order every store follows (fence, finish,
//! steps, patch, index, begin or settle).
//!
//! [`LedgerStore::commit`]: crate::LedgerStore::commit

use serde_json::{json, Value};

use super::lease::{holds_lease, lease_lost};
use super::ops::{finish_op, ok_row, start_op, OpFacts};
use super::step::{patch, steps};
use crate::error::StoreResult;
use crate::job::{Job, Millis};
use crate::lease::Fence;
use crate::ledger::{ArtifactEntry, Commit, CommitOutcome, OpBegin, OpKind, OpRecord};
use crate::state::JobState;

/// What a store reads, in the commit's transaction, before [`plan_commit`]:
/// the fenced job and the facts of each op key the commit names
/// (`OpFacts::default()` for a part the commit leaves out).
#[derive(Debug, Clone)]
pub struct CommitReads {
    /// The fenced job, as stored (lease columns included).
    pub job: Job,
    /// Facts of `Commit::finish`'s op key.
    pub finish: OpFacts,
    /// Facts of `Commit::index`'s op key.
    pub index: OpFacts,
    /// Facts of `Commit::begin`'s op key.
    pub begin: OpFacts,
    /// The path indexed under `Commit::index`'s hash, if the hash is indexed.
    pub indexed: Option<String>,
}

/// The INDEX op's writes: the entry (recorded unless its hash is indexed
/// by then: first writer wins) and its OK row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexWrite {
    /// The copy to index.
    pub entry: ArtifactEntry,
    /// The OK row, `{"first_path": …}`.
    pub row: OpRecord,
}

/// What a store writes for one commit, all in its transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitWrites {
    /// The job after the commit.
    pub job: Job,
    /// Whether any job field changed (steps, settle or patch).
    pub job_changed: bool,
    /// Whether to finish `Commit::finish`'s running attempt with its code
    /// and result at now.
    pub finish: bool,
    /// The INDEX op's writes, unless its OK row was replayed.
    pub index: Option<IndexWrite>,
    /// The row of `Commit::begin`'s op to insert: running, or (settled)
    /// finished OK.
    pub begin: Option<OpRecord>,
    /// The state the job stepped into when it is FAILED or terminal (a
    /// finish the watch counters count).
    pub finished: Option<JobState>,
    /// What the commit answers.
    pub outcome: CommitOutcome,
}

/// The `first_path` an INDEX op recorded.
fn first_path_of(result: &Value) -> String {
    result["first_path"].as_str().unwrap_or_default().to_owned()
}

/// **The commit rule**: the write set of `commit` under `fence` at `now`
/// (store clock), or the typed error, nothing written: lease lost, no
/// running attempt to finish, an invalid step, an op started twice.
pub fn plan_commit(fence: &Fence, commit: &Commit, reads: CommitReads, now: Millis) -> StoreResult<CommitWrites> {
    let mut job = reads.job;
    if !holds_lease(&job, fence, now) {
        return Err(lease_lost(fence));
    }
    let before = job.state;
    if let Some(finish) = &commit.finish {
        finish_op(&finish.op_key, fence.epoch, finish.code, &reads.finish)?;
    }
    let failure = commit.patch.failure.as_ref();
    steps(&mut job, &commit.steps, failure, now)?;
    let patched = patch(&mut job, &commit.patch);
    let replayed_index = match &commit.index {
        Some(index) => start_op(&index.op_key, fence.epoch, job.state, &reads.index)?.map(|r| first_path_of(&r)),
        None => None,
    };
    let begun = match &commit.begin {
        Some(start) => Some(match start_op(&start.op_key, fence.epoch, job.state, &reads.begin)? {
            Some(result) => OpBegin::Replay(result),
            None => OpBegin::Run,
        }),
        None => None,
    };
    // The path that stands for the content: replayed, indexed before, or
    // this entry's.
    let first_path = commit.index.as_ref().map(|index| {
        replayed_index
            .clone()
            .or_else(|| reads.indexed.clone())
            .unwrap_or_else(|| index.entry.path.clone())
    });
    let settle = commit.settling(first_path.as_deref(), begun == Some(OpBegin::Run));
    if let Some(settle) = settle {
        steps(&mut job, &settle.steps, failure, now)?;
    }
    let index = match (&commit.index, &first_path, &replayed_index) {
        (Some(index), Some(standing), None) => Some(IndexWrite {
            entry: index.entry.clone(),
            row: ok_row(
                index.op_key.clone(),
                &fence.job_key,
                OpKind::Index,
                fence.epoch,
                now,
                json!({ "first_path": standing }),
            ),
        }),
        _ => None,
    };
    let begin = commit
        .begin
        .as_ref()
        .filter(|_| begun == Some(OpBegin::Run))
        .map(|start| match settle {
            Some(settle) => ok_row(
                start.op_key.clone(),
                &fence.job_key,
                start.kind,
                fence.epoch,
                now,
                settle.result.clone(),
            ),
            None => OpRecord {
                seq: 0,
                op_key: start.op_key.clone(),
                job_key: fence.job_key.clone(),
                kind: start.kind,
                epoch: fence.epoch,
                started_at: now,
                finished_at: None,
                result_code: None,
                result: None,
            },
        });
    let finished =
        (job.state != before && (job.state == JobState::Failed || job.state.is_terminal())).then_some(job.state);
    Ok(CommitWrites {
        job,
        job_changed: !commit.steps.is_empty() || patched || settle.is_some(),
        finish: commit.finish.is_some(),
        index,
        begin,
        finished,
        outcome: CommitOutcome {
            begun: if settle.is_some() { None } else { begun },
            first_path,
            settled: settle.is_some(),
        },
    })
}
