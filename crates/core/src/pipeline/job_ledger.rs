//! [`JobLedger`]: one epoch of a job as the ledger sees it, a method per
//! transition the worker makes, each one fenced [`Commit`].
//!
//! A side effect is an op (SPEC §5): begun (a running attempt is recorded,
//! or an earlier OK result is replayed), run, then finished OK with its
//! result or ERROR. [`run_effect`](crate::run_effect) spends a commit on the
//! begin and one on the finish. The worker folds them into its state
//! changes instead: each transition finishes the op that is running, steps
//! through its states and begins the next op, in one transaction — the op
//! is *handed over*. The guarantees are the same, because the store checks
//! the fence and the op rows of every part of a [`Commit`], all or nothing:
//! an OK row is replayed, not run again; a stale epoch writes nothing.
//!
//! | method | the job | op finished | op begun |
//! | --- | --- | --- | --- |
//! | [`begin_head`](JobLedger::begin_head) | LEASED | | HEAD |
//! | [`streaming`](JobLedger::streaming) | → HEAD_DONE → RESUME_OK → STREAMING | HEAD, OK (the GET's headers) | STREAM |
//! | [`finalizing`](JobLedger::finalizing) | STREAMING | STREAM, OK | FINALIZE |
//! | [`indexed`](JobLedger::indexed) | → FINALIZED → INDEXED (→ DEDUPED → SUCCESS for a first copy) | FINALIZE, OK; INDEX, OK | DEDUPE (recorded OK for a first copy) |
//! | [`succeeded`](JobLedger::succeeded) | → DEDUPED → SUCCESS | DEDUPE, OK | |
//! | [`linking`](JobLedger::linking) | LEASED, a duplicate | | DEDUPE |
//! | [`skipped`](JobLedger::skipped) | → SKIPPED_DUPLICATE | DEDUPE, OK | |
//! | [`failed`](JobLedger::failed) | → FAILED | the running op, ERROR | |
//! | [`stopped`](JobLedger::stopped) | as it is (the lease is given back) | the running op, ERROR | |

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};

use crate::error::StoreResult;
use crate::fetch::ResourceMeta;
use crate::job::{Job, JobFailure, JobPatch};
use crate::kernel;
use crate::key::OpKeys;
use crate::lease::Fence;
use crate::ledger::{
    ArtifactEntry, Commit, CommitOutcome, IndexOp, OpBegin, OpFinish, OpKind, OpStart, ResultCode, Settle,
};
use crate::state::JobState;
use crate::store::Store;

/// One leased epoch's ledger writes: it owns the running op — the attempt
/// begun and not yet finished — and each transition finishes it and begins
/// the next in one commit.
#[derive(Debug)]
pub(super) struct JobLedger<'a> {
    store: &'a dyn Store,
    fence: Fence,
    /// The lease keeper's flag: once set, a transition writes nothing.
    lost: Arc<AtomicBool>,
    /// The op attempt begun and not yet finished.
    running: Option<String>,
    /// Whether this epoch reached STREAMING (its attempt was counted).
    streamed: bool,
}

/// What the STREAM op finished with: the bytes the partial file holds.
#[derive(Debug, Clone, Copy)]
pub(super) struct Streamed<'a> {
    /// Their SHA-256.
    pub(super) sha256: &'a str,
    /// Their length.
    pub(super) size: u64,
    /// The offset this epoch's GET started at.
    pub(super) range_start: u64,
    /// The validator of the version they are bytes of.
    pub(super) validator: Option<&'a str>,
}

/// Where [`JobLedger::finalizing`] says the final file goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Finalize {
    /// The FINALIZE op runs: place the file at this path.
    Place(String),
    /// A FINALIZE recorded before placed the file where its result says:
    /// that path stands, even if the ids would encode otherwise today.
    Placed(String),
}

/// The placed copy that [`JobLedger::indexed`] records and indexes.
#[derive(Debug, Clone, Copy)]
pub(super) struct Placed<'a> {
    /// Where it stands.
    pub(super) path: &'a str,
    /// Its SHA-256.
    pub(super) sha256: &'a str,
    /// Its length.
    pub(super) size: u64,
}

/// What [`JobLedger::indexed`] found in the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Indexed {
    /// This copy is the content's first: DEDUPE had nothing to link, was
    /// recorded, and the job is SUCCESS, all in the same commit.
    Succeeded,
    /// The content's first copy stands at `first_path`: link to it, then
    /// [`JobLedger::succeeded`].
    Link {
        /// The first copy.
        first_path: String,
    },
}

/// A duplicate's link to its original, for [`JobLedger::skipped`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Link<'a> {
    /// The SUCCESS job with the same canonical URL (its content hash and
    /// file recorded).
    pub(super) original: &'a Job,
    /// This job's own path, now holding the original's bytes.
    pub(super) path: &'a str,
    /// Whether the bytes were copied (a bucket) rather than hard-linked.
    pub(super) copied: bool,
}

impl<'a> JobLedger<'a> {
    /// The ledger of the epoch `fence` holds; `lost` is its lease keeper's
    /// flag.
    pub(super) fn new(store: &'a dyn Store, fence: Fence, lost: Arc<AtomicBool>) -> Self {
        Self {
            store,
            fence,
            lost,
            running: None,
            streamed: false,
        }
    }

    /// Whether this epoch reached STREAMING, where its attempt was counted.
    pub(super) fn streamed(&self) -> bool {
        self.streamed
    }

    fn keys(&self) -> OpKeys<'_> {
        OpKeys {
            job_key: &self.fence.job_key,
        }
    }

    /// LEASED, downloading: begins the HEAD op. No HEAD request is sent
    /// (SPEC §3): the op's result is the GET's response headers, recorded
    /// by [`Self::streaming`].
    pub(super) async fn begin_head(&mut self, canonical_url: &str) -> StoreResult<()> {
        let begin = self.keys().head(canonical_url);
        self.hand_over(None, begin_only(begin, OpKind::Head)).await.map(drop)
    }

    /// → HEAD_DONE → RESUME_OK → STREAMING, in one commit; STREAMING counts
    /// the epoch's attempt.
    ///
    /// HEAD_DONE's metadata comes from the GET's response headers (`head`):
    /// there is no HEAD request. They finish the HEAD op as its result and
    /// record the validators and length on the job; RESUME_OK is the start
    /// offset `range_start` the answer proved, and the STREAM op of that
    /// offset begins. Returns the STREAM op's recorded result when an
    /// earlier epoch streamed from this offset, then lost its lease before
    /// finalizing: the bytes are streamed again and must match it.
    pub(super) async fn streaming(
        &mut self,
        canonical_url: &str,
        head: &ResourceMeta,
        range_start: u64,
    ) -> StoreResult<Option<Value>> {
        let commit = Commit {
            steps: vec![JobState::HeadDone, JobState::ResumeOk, JobState::Streaming],
            patch: JobPatch {
                etag: head.etag.clone(),
                last_modified: head.last_modified.clone(),
                remote_size: head.content_length,
                ..JobPatch::default()
            },
            ..begin_only(self.keys().stream(canonical_url, range_start), OpKind::Stream)
        };
        let result = serde_json::to_value(head).unwrap_or(Value::Null);
        let outcome = self.hand_over(Some(result), commit).await?;
        self.streamed = true;
        Ok(match outcome.begun {
            Some(OpBegin::Replay(recorded)) => Some(recorded),
            _ => None,
        })
    }

    /// STREAMING, the body in: finishes the STREAM op with `streamed` and
    /// begins FINALIZE, which places the file at `final_path` (or a path
    /// recorded before).
    pub(super) async fn finalizing(&mut self, streamed: Streamed<'_>, final_path: String) -> StoreResult<Finalize> {
        let result = json!({
            "sha256": streamed.sha256,
            "size": streamed.size,
            "range_start": streamed.range_start,
            "validator": streamed.validator,
        });
        let begin = begin_only(self.keys().content(OpKind::Finalize, streamed.sha256), OpKind::Finalize);
        let outcome = self.hand_over(Some(result), begin).await?;
        Ok(match outcome.begun {
            Some(OpBegin::Run) => Finalize::Place(final_path),
            Some(OpBegin::Replay(recorded)) => {
                Finalize::Placed(recorded["path"].as_str().map_or(final_path, str::to_owned))
            }
            None => Finalize::Placed(final_path),
        })
    }

    /// → FINALIZED → INDEXED in one commit: finishes FINALIZE, records the
    /// file on the job, and runs the INDEX op there (its effect is the
    /// ledger write itself, so it starts and finishes in the commit), then
    /// begins DEDUPE. When this copy is the content's first, DEDUPE has
    /// nothing to link: it is recorded and the job goes → DEDUPED → SUCCESS
    /// in the same commit ([`Commit::settle`]).
    pub(super) async fn indexed(&mut self, placed: Placed<'_>) -> StoreResult<Indexed> {
        let path = placed.path.to_owned();
        let commit = Commit {
            steps: vec![JobState::Finalized, JobState::Indexed],
            patch: JobPatch {
                path: Some(path.clone()),
                sha256: Some(placed.sha256.to_owned()),
                size: Some(placed.size),
                ..JobPatch::default()
            },
            index: Some(IndexOp {
                op_key: self.keys().content(OpKind::Index, placed.sha256),
                entry: ArtifactEntry {
                    sha256: placed.sha256.to_owned(),
                    path: path.clone(),
                    size: placed.size,
                    job_key: self.fence.job_key.clone(),
                },
            }),
            settle: Some(Settle {
                result: deduped(&path, false),
                steps: vec![JobState::Deduped, JobState::Success],
            }),
            ..begin_only(self.keys().content(OpKind::Dedupe, placed.sha256), OpKind::Dedupe)
        };
        let outcome = self.hand_over(Some(json!({ "path": path })), commit).await?;
        Ok(if outcome.settled {
            Indexed::Succeeded
        } else {
            Indexed::Link {
                first_path: outcome.first_path.unwrap_or(path),
            }
        })
    }

    /// → DEDUPED → SUCCESS: finishes DEDUPE, naming the first copy and
    /// whether this job's path is now a hard link to it.
    pub(super) async fn succeeded(&mut self, original: &str, hard_linked: bool) -> StoreResult<()> {
        let commit = Commit {
            steps: vec![JobState::Deduped, JobState::Success],
            ..Commit::default()
        };
        self.hand_over(Some(deduped(original, hard_linked)), commit)
            .await
            .map(drop)
    }

    /// LEASED, a duplicate of a SUCCESS job: begins DEDUPE, whose effect
    /// places the original's bytes at this job's path; whether it must run
    /// (it has no OK row to replay).
    pub(super) async fn linking(&mut self, sha256: &str) -> StoreResult<bool> {
        let begin = begin_only(self.keys().content(OpKind::Dedupe, sha256), OpKind::Dedupe);
        let outcome = self.hand_over(None, begin).await?;
        Ok(matches!(outcome.begun, Some(OpBegin::Run)))
    }

    /// → SKIPPED_DUPLICATE: finishes DEDUPE with the link and records the
    /// original's content on the job.
    pub(super) async fn skipped(&mut self, link: Link<'_>) -> StoreResult<()> {
        let commit = Commit {
            steps: vec![JobState::SkippedDuplicate],
            patch: JobPatch {
                path: Some(link.path.to_owned()),
                sha256: link.original.sha256.clone(),
                size: link.original.size,
                duplicate_of: Some(link.original.job_key.clone()),
                ..JobPatch::default()
            },
            ..Commit::default()
        };
        let result = json!({
            "duplicate_of": link.original.job_key,
            "linked_to": link.original.path,
            "copied": link.copied,
        });
        self.hand_over(Some(result), commit).await.map(drop)
    }

    /// → FAILED: finishes the running op as ERROR with the failure's
    /// message and records `failure` (the store counts its attempt when
    /// [`JobFailure::counts_attempt`], ends the lease and sets the backoff).
    /// Written even when the lease keeper saw the lease go: the store's
    /// fence is the judge.
    pub(super) async fn failed(&mut self, failure: &JobFailure) -> StoreResult<()> {
        let commit = Commit {
            finish: self.finish_error(&failure.message),
            steps: vec![JobState::Failed],
            patch: JobPatch {
                failure: Some(failure.clone()),
                ..JobPatch::default()
            },
            ..Commit::default()
        };
        self.store.commit(&self.fence, &commit).await.map(drop)
    }

    /// The run stops (an interrupt, a resource error): finishes the running
    /// op as ERROR with `reason`, the state left as it is. No commit when
    /// no op runs.
    pub(super) async fn stopped(&mut self, reason: &str) -> StoreResult<()> {
        let Some(finish) = self.finish_error(reason) else {
            return Ok(());
        };
        let commit = Commit {
            finish: Some(finish),
            ..Commit::default()
        };
        self.store.commit(&self.fence, &commit).await.map(drop)
    }

    /// The running op, taken, finished as ERROR with `message`.
    fn finish_error(&mut self, message: &str) -> Option<OpFinish> {
        self.running.take().map(|op_key| OpFinish {
            op_key,
            code: ResultCode::Error,
            result: json!({ "error": message }),
        })
    }

    /// One transition's fenced commit, unless the lease keeper saw the lease
    /// go: the running op finishes OK with `result` (when one runs; a
    /// replayed op has none), `commit` applies, and its `begin` op, when it
    /// must run, is the running op from here on.
    async fn hand_over(&mut self, result: Option<Value>, mut commit: Commit) -> StoreResult<CommitOutcome> {
        if self.lost.load(Ordering::SeqCst) {
            return Err(kernel::lease_lost(&self.fence));
        }
        commit.finish = match (self.running.take(), result) {
            (Some(op_key), Some(result)) => Some(OpFinish {
                op_key,
                code: ResultCode::Ok,
                result,
            }),
            _ => None,
        };
        let outcome = self.store.commit(&self.fence, &commit).await?;
        if let (Some(OpBegin::Run), Some(begun)) = (&outcome.begun, commit.begin) {
            self.running = Some(begun.op_key);
        }
        Ok(outcome)
    }
}

/// A commit that only begins `op_key`.
fn begin_only(op_key: String, kind: OpKind) -> Commit {
    Commit {
        begin: Some(OpStart { op_key, kind }),
        ..Commit::default()
    }
}

/// The DEDUPE op's result: the first copy, and whether this job's path is
/// now a hard link to it.
fn deduped(original: &str, hard_linked: bool) -> Value {
    json!({ "original": original, "hard_linked": hard_linked })
}
