//! One job through every state: HEAD_DONE → RESUME_OK → STREAMING →
//! FINALIZED → INDEXED → DEDUPED → SUCCESS (or SKIPPED_DUPLICATE / FAILED),
//! each side effect recorded in the ledger under the job's op keys, each
//! transition one commit of the job's [`JobLedger`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;

use super::backoff;
use super::bandwidth::Bandwidth;
use super::breaker::{self, Admit, Breakers, Tripped};
use super::files::FileError;
use super::job_ledger::{Finalize, Indexed, JobLedger, Link, Placed, Streamed};
use super::lease_keeper::LeaseKeeper;
use super::part_log::LedgerLog;
use super::progress::Download;
use super::resume;
use super::robots::Permit;
use super::Shared;
use crate::content;
use crate::destination::{Destination, PartLog, PartialId, PartialWrite, Placement, Prior, Written};
use crate::error::StoreError;
use crate::fetch::{BodyStream, FetchError, GetRequest, GetResponse, ResourceMeta};
use crate::job::{Job, JobFailure, JobQuery};
use crate::lease::{Fence, Lease};
use crate::robots::RobotsMode;
use crate::state::JobState;
use crate::url::host_port;

mod split;

/// How a job ended for this worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    /// SUCCESS.
    Succeeded,
    /// SKIPPED_DUPLICATE.
    Skipped {
        /// The size of the original's content the job now links to: bytes
        /// not downloaded.
        bytes: u64,
    },
    /// FAILED (retried later when `retryable` and attempts remain).
    Failed {
        /// Whether it may be retried.
        retryable: bool,
        /// Whether a later lease retries it: retryable, and attempts remain
        /// under [`RunConfig::max_attempts`](super::RunConfig::max_attempts).
        /// When false the job is settled FAILED.
        will_retry: bool,
        /// Why.
        message: String,
    },
    /// The lease moved on; this worker wrote nothing more.
    LeaseLost,
    /// The ledger failed; the lease will expire and the job be taken over.
    StoreFailed(String),
    /// The run was interrupted: the job's running op was recorded and its
    /// lease given back, so another run takes it at once.
    Interrupted,
    /// Its host is paused (its circuit breaker is open): the job is FAILED
    /// for now, retryable, with no attempt counted, and is tried again when
    /// the pause ends.
    Deferred {
        /// Why.
        message: String,
    },
}

/// Why a job stopped before SUCCESS.
#[derive(Debug)]
enum Stop {
    Lost,
    Store(StoreError),
    Fail(JobFailure),
    /// A failure that is its host's, not the job's: it counts no attempt.
    Paused(JobFailure),
    Interrupted,
    /// A local file error: the machine's (see [`ResourceError`]) or the
    /// job's.
    Local(std::io::Error),
}

impl From<StoreError> for Stop {
    fn from(err: StoreError) -> Self {
        if err.is_lease_lost() {
            Self::Lost
        } else {
            Self::Store(err)
        }
    }
}

impl From<std::io::Error> for Stop {
    fn from(err: std::io::Error) -> Self {
        Self::Local(err)
    }
}

impl From<JobFailure> for Stop {
    fn from(failure: JobFailure) -> Self {
        Self::Fail(failure)
    }
}

/// A local error that is the job's own, not the machine's: a link in the
/// output folder or a copy that does not verify fails the job for good; any
/// other is retried, and counts an attempt even before STREAMING, so that a
/// job failing locally again and again ends FAILED instead of being leased
/// forever.
fn local_failure(err: &std::io::Error) -> JobFailure {
    match FileError::of(err) {
        Some(file_error) => JobFailure::permanent(file_error.to_string()),
        None => JobFailure::retryable(format!("local file error: {err}")),
    }
}

/// Removes `partials` of `key`; a failure is only logged (recovery removes
/// leftovers of finished jobs).
async fn discard(dest: &dyn Destination, key: &str, partials: Vec<Prior>, log: &dyn PartLog) {
    if let Err(err) = dest.remove(partials, Some(log)).await {
        tracing::warn!(job = %key, error = %err, "could not remove partial files");
    }
}

/// Takes one leased job as far as it goes, then reports its outcome to the
/// run's [`Progress`](super::Progress); its download waits for one of `slots`
/// (its lease is renewed while it waits).
///
/// The job's log lines carry a `job` span naming it (`work_id/artifact_id`
/// and host), at ERROR level so that it is enabled whenever one of its
/// events is.
pub(crate) async fn process(shared: &Shared, lease: Lease, slots: Arc<Semaphore>) -> JobOutcome {
    let job = lease.job.clone();
    let span = tracing::error_span!("job", id = %job.name(), host = %host_port(&job.canonical_url));
    let outcome = take(shared, lease, slots).instrument(span).await;
    shared.progress.job_done(&job, &outcome);
    outcome
}

/// [`process`] up to the outcome.
async fn take(shared: &Shared, lease: Lease, slots: Arc<Semaphore>) -> JobOutcome {
    let keeper = LeaseKeeper::start(Arc::clone(&shared.store), lease.fence.clone(), shared.config.lease_ttl);
    let log = Arc::new(LedgerLog::fenced(
        Arc::clone(&shared.store),
        lease.fence.clone(),
        keeper.lost_flag(),
    ));
    let mut run = JobRun {
        shared,
        ledger: JobLedger::new(shared.store.as_ref(), lease.fence.clone(), keeper.lost_flag()),
        fence: lease.fence,
        job: lease.job,
        keeper,
        queue: QueuePlace {
            queued: &shared.queued,
            slots,
            waiting: true,
        },
        slot: None,
        probe: None,
        partial_handle: None,
        log,
    };
    match run.run().await {
        Ok(outcome) => outcome,
        Err(Stop::Lost) => JobOutcome::LeaseLost,
        Err(Stop::Store(err)) => JobOutcome::StoreFailed(err.to_string()),
        Err(Stop::Fail(failure)) => run.record_failure(failure).await,
        Err(Stop::Paused(failure)) => match run.record_failure(failure).await {
            JobOutcome::Failed { message, .. } => JobOutcome::Deferred { message },
            other => other,
        },
        Err(Stop::Interrupted) => run.give_back("interrupted").await,
        Err(Stop::Local(err)) => match shared.dest.resource_error(&err) {
            Some(resource) => {
                tracing::debug!(job = %run.fence.job_key, error = %resource, "resource error");
                let reason = resource.to_string();
                shared.halt(resource);
                run.give_back(&reason).await
            }
            None => run.record_failure(local_failure(&err)).await,
        },
    }
}

struct JobRun<'a> {
    shared: &'a Shared,
    /// This epoch's ledger writes, one commit per transition.
    ledger: JobLedger<'a>,
    fence: Fence,
    job: Job,
    keeper: LeaseKeeper,
    /// Where the job waits for its download slot.
    queue: QueuePlace<'a>,
    /// This job's place among the `--concurrency` downloads, taken just
    /// before its GET and given back once its body is in: the ledger writes
    /// before it, and finishing (fsync, placement, ledger) after it, overlap
    /// other downloads.
    slot: Option<OwnedSemaphorePermit>,
    /// This job's request is its paused host's one probe.
    probe: Option<Probe<'a>>,
    /// This epoch's partial's handle, once it is begun.
    partial_handle: Option<String>,
    /// The ledger as the destination sees it, for this epoch.
    log: Arc<LedgerLog>,
}

/// A leased job's place in the queue for a download slot: counted in
/// `Shared::queued` until it takes a slot or ends.
struct QueuePlace<'a> {
    queued: &'a AtomicUsize,
    slots: Arc<Semaphore>,
    waiting: bool,
}

impl QueuePlace<'_> {
    /// Waits for a download slot and leaves the queue.
    async fn take(&mut self) -> OwnedSemaphorePermit {
        let slot = Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .expect("semaphore never closes");
        self.leave();
        slot
    }

    fn leave(&mut self) {
        if std::mem::take(&mut self.waiting) {
            self.queued.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.leave();
    }
}

/// A paused host's probe, taken by one job: reported with the answer, or
/// given up (the job stopped before its request) when dropped, so that the
/// next job probes instead.
struct Probe<'a> {
    breakers: &'a Breakers,
    host: String,
    reported: bool,
}

impl Drop for Probe<'_> {
    fn drop(&mut self) {
        if !self.reported {
            self.breakers.give_up_probe(&self.host);
        }
    }
}

/// The GET's answer, with the start offset decided.
struct Opened {
    meta: ResourceMeta,
    start: u64,
    body: Option<BodyStream>,
    /// The validator of the version whose bytes the partial file holds
    /// from here on: the one the resume was proven under, else the
    /// response's own.
    validator: Option<String>,
}

/// A body downloaded, as [`JobRun::conclude`] judges it.
struct Downloaded<'m> {
    /// The answer it came with.
    meta: &'m ResourceMeta,
    /// The STREAM result an earlier epoch recorded from the same offset.
    recorded: Option<serde_json::Value>,
    range_start: u64,
    validator: Option<&'m str>,
}

/// A partial an earlier epoch left that this epoch may resume: a prefix of
/// the version with this validator.
struct Resumable {
    prior: Prior,
    validator: String,
}

impl JobRun<'_> {
    fn check_lease(&self) -> Result<(), Stop> {
        if self.keeper.is_lost() {
            Err(Stop::Lost)
        } else {
            Ok(())
        }
    }

    /// `fut`, unless the run is interrupted first.
    async fn unless_interrupted<T>(&self, fut: impl std::future::Future<Output = T>) -> Result<T, Stop> {
        self.shared.interrupt.or_stop(fut).await.ok_or(Stop::Interrupted)
    }

    /// When the run stops (an interrupt, a resource error): records the
    /// running op as ERROR with `reason` and gives the lease back, with the
    /// attempt. A partial file that streamed stays for the next run; one
    /// that did not holds at most a copy of an earlier epoch's prefix, and
    /// is removed, so each job keeps one.
    async fn give_back(&mut self, reason: &str) -> JobOutcome {
        if !self.ledger.streamed() {
            if let Some(handle) = self.partial_handle.take() {
                let own = Prior {
                    job_key: self.fence.job_key.clone(),
                    epoch: self.fence.epoch,
                    validator_tag: None,
                    len: 0,
                    name: handle.clone(),
                    handle,
                };
                discard(
                    self.shared.dest.as_ref(),
                    &self.fence.job_key,
                    vec![own],
                    self.log.as_ref(),
                )
                .await;
            }
        }
        if let Err(err) = self.ledger.stopped(reason).await {
            tracing::warn!(job = %self.fence.job_key, error = %err, "could not record the stopped op");
            return JobOutcome::Interrupted;
        }
        if let Err(err) = self.shared.store.release(&self.fence).await {
            tracing::warn!(job = %self.fence.job_key, error = %err, "could not give the lease back; it expires on its own");
        }
        JobOutcome::Interrupted
    }

    async fn record_failure(&mut self, mut failure: JobFailure) -> JobOutcome {
        let streamed = self.ledger.streamed();
        if streamed {
            failure.counts_attempt = false;
        }
        if failure.retryable {
            let delay = backoff::delay(
                self.job.attempts,
                self.shared.config.backoff_base,
                self.shared.config.backoff_cap,
                (failure.retry_after > Duration::ZERO).then_some(failure.retry_after),
            );
            failure.retry_after = delay;
            // Past the cap the job waits in the ledger, not in this run
            // (`outstanding` leaves it out).
            let beyond = delay > self.shared.config.max_retry_after;
            let host = host_port(&self.job.canonical_url);
            self.shared.waits.note(host, &failure.message, delay, beyond);
        }
        // This epoch's attempt: counted at STREAMING, or with the failure.
        let attempts = self.job.attempts + u32::from(streamed || failure.counts_attempt);
        match self.ledger.failed(&failure).await {
            Ok(_) => {
                if !failure.retryable {
                    // Nothing to resume: a permanent failure's bytes are useless.
                    self.remove_partials().await;
                }
                JobOutcome::Failed {
                    retryable: failure.retryable,
                    will_retry: failure.retryable && attempts < self.shared.config.max_attempts,
                    message: failure.message,
                }
            }
            Err(err) if err.is_lease_lost() => JobOutcome::LeaseLost,
            Err(err) => JobOutcome::StoreFailed(err.to_string()),
        }
    }

    async fn run(&mut self) -> Result<JobOutcome, Stop> {
        let final_path = self.shared.dest.location(&self.job.work_id, &self.job.artifact_id);
        if let Some(original) = self.find_original().await? {
            return self.skip_duplicate(original, final_path).await;
        }
        self.ledger.begin_head(&self.job.canonical_url).await?;
        self.obey_robots().await?;
        let (prior, older) = self.prior_partials().await?;
        let split_prior = self.split_prior(&older).await?;
        // The download: a permit of the host, then one of the run.
        let host = self
            .unless_interrupted(
                self.shared
                    .host_slot(host_port(&self.job.canonical_url))
                    .acquire_owned(),
            )
            .await?
            .expect("semaphore never closes");
        // A paused host's jobs wait in the ledger, not in the queue; then
        // the first request's turn at the host's rate, before a download
        // slot: a host's queue does not hold slots other hosts could use.
        self.admit()?;
        self.pace().await?;
        let slot = self.shared.interrupt.or_stop(self.queue.take()).await;
        self.slot = Some(slot.ok_or(Stop::Interrupted)?);
        let mut opened = match split_prior {
            Some(split_prior) => match self.resume_split(split_prior).await? {
                Ok(start) => return self.run_split(start, older, host, final_path).await,
                Err(opened) => opened,
            },
            None => self.open(prior.as_ref()).await?,
        };
        if let Some(len) = opened.meta.content_length {
            if len > self.shared.config.max_size {
                return Err(JobFailure::permanent(format!(
                    "size {len} exceeds the cap of {} bytes",
                    self.shared.config.max_size
                ))
                .into());
            }
        }
        if let Some(start) = self.split_fresh(&mut opened).await? {
            return self.run_split(start, older, host, final_path).await;
        }
        // The partial file's name tags the validator of the bytes it holds,
        // so that only a later epoch resuming under that validator uses it.
        let id = PartialId {
            job_key: self.fence.job_key.clone(),
            epoch: self.fence.epoch,
            validator_tag: opened.validator.as_deref().map(resume::validator_tag),
        };
        let resumed = if opened.start > 0 {
            let resumable = prior.as_ref().expect("a resumed start has a prior partial");
            Some(&resumable.prior)
        } else {
            None
        };
        let log: Arc<dyn PartLog> = self.log.clone();
        let mut partial = self
            .shared
            .dest
            .begin(&id, resumed, log, self.shared.config.fsync)
            .await?;
        // A partial this epoch took over (an upload it continues) is not
        // its own to remove, nor one of the older ones.
        let handle = partial.handle();
        let older: Vec<Prior> = older.into_iter().filter(|o| o.handle != handle).collect();
        if resumed.is_none_or(|r| r.handle != handle) {
            self.partial_handle = Some(handle);
        }
        // HEAD_DONE from the GET's response headers: no HEAD request.
        let recorded = self
            .ledger
            .streaming(&self.job.canonical_url, &opened.meta, opened.start)
            .await?;
        // This epoch holds what it needs of the earlier epochs' partial
        // files (a copy of the resumed prefix): one partial file per job.
        if !older.is_empty() {
            discard(self.shared.dest.as_ref(), &self.fence.job_key, older, self.log.as_ref()).await;
        }
        // A replayed STREAM (an earlier epoch streamed from this offset, then
        // lost its lease before finalizing) is re-materialized, not re-run:
        // the bytes are streamed again and must match the recorded result.
        self.shared.progress.download_started(&Download {
            job: &self.job,
            expected: opened.meta.content_length.or(self.job.expected_size),
            start: opened.start,
        });
        // The content check judges the body's first bytes, so it runs on a
        // body from byte 0; a resumed one continues bytes already judged.
        let check = self
            .expected_content_type()
            .filter(|_| opened.start == 0)
            .map(|expected| ContentCheck {
                expected,
                content_type: opened.meta.content_type.as_deref(),
                first: Vec::new(),
            });
        let streamed = match opened.body {
            Some(body) => self.stream_body(partial.as_mut(), body, check).await,
            None => Ok(()),
        };
        // Keep what arrived, even on failure: a retry resumes from it. When
        // nothing arrived there is nothing to keep (finishing would write an
        // empty partial).
        let streamed = match streamed {
            Err(stop) if partial.is_empty() => return Err(stop),
            streamed => streamed,
        };
        let written = partial.finish().await?;
        streamed?;
        // The download is over: its host and concurrency slots go to the
        // next ones while this job finishes.
        drop(host);
        self.slot = None;
        let streamed = Downloaded {
            meta: &opened.meta,
            recorded,
            range_start: opened.start,
            validator: opened.validator.as_deref(),
        };
        self.conclude(written, streamed, final_path).await
    }

    /// The body is in `written`: checks it against what the answer and the
    /// manifest announced and what an earlier epoch recorded, then
    /// finalizes it.
    async fn conclude(
        &mut self,
        written: Box<dyn Written>,
        downloaded: Downloaded<'_>,
        final_path: String,
    ) -> Result<JobOutcome, Stop> {
        let (sha256, size) = (written.sha256().to_owned(), written.size());
        self.verify(downloaded.meta, &sha256, size)?;
        if let Some(recorded) = downloaded.recorded {
            if recorded["sha256"] != sha256.as_str() || recorded["size"] != size {
                return Err(JobFailure::permanent(format!(
                    "the resource changed since the recorded stream from byte {} (recorded {}, now sha256 {sha256}); \
                     requeue with `oncefetch retry`",
                    downloaded.range_start, recorded
                ))
                .into());
            }
        }
        let streamed = Streamed {
            sha256: &sha256,
            size,
            range_start: downloaded.range_start,
            validator: downloaded.validator,
        };
        self.finalize(written, final_path, streamed).await
    }

    /// Another job with this canonical URL already SUCCESS, whose file is
    /// still there (a duplicate of a file deleted since downloads its own
    /// bytes).
    async fn find_original(&self) -> Result<Option<Job>, Stop> {
        let query = JobQuery {
            state: Some(JobState::Success),
            canonical_url: Some(self.job.canonical_url.clone()),
            after: None,
            limit: 2,
        };
        let found = self.shared.store.jobs(&query).await?;
        let Some(original) = found
            .into_iter()
            .find(|j| j.job_key != self.fence.job_key && j.path.is_some() && j.sha256.is_some())
        else {
            return Ok(None);
        };
        let path = original.path.clone().unwrap_or_default();
        let present = self.shared.dest.exists(&path).await?;
        if !present {
            tracing::warn!(job = %self.fence.job_key, original = %original.job_key, path = original.path.as_deref().unwrap_or(""), "the original's file is gone; downloading this duplicate's own bytes");
            return Ok(None);
        }
        Ok(Some(original))
    }

    /// LEASED → SKIPPED_DUPLICATE: a hard link to the original at this job's
    /// own path.
    ///
    /// The line's declared `sha256`/`size` must hold for the original's
    /// content too: otherwise the job fails without retry, naming the
    /// original and both hashes.
    async fn skip_duplicate(&mut self, original: Job, final_path: String) -> Result<JobOutcome, Stop> {
        let sha256 = original.sha256.clone().unwrap_or_default();
        let expected = self.job.expectations();
        if !expected.admit(Some(&sha256), original.size) {
            let size = original.size.map_or_else(|| "unknown".to_owned(), |s| s.to_string());
            return Err(JobFailure::permanent(format!(
                "expectation mismatch: the line expects {expected}, but job {} (same canonical URL) holds sha256 \
                 {sha256} and size {size}",
                original.job_key
            ))
            .into());
        }
        let source = original.path.clone().unwrap_or_default();
        // The original's bytes must fit this job's expected content type
        // too, judged by their first bytes (no header to go by).
        if let Some(expected) = self.expected_content_type() {
            let mut first = Vec::with_capacity(content::SNIFF_LEN);
            let mut read = self.shared.dest.read(&source).await?;
            while first.len() < content::SNIFF_LEN {
                match read.next().await.transpose()? {
                    Some(chunk) => first.extend_from_slice(&chunk[..chunk.len().min(content::SNIFF_LEN - first.len())]),
                    None => break,
                }
            }
            content::check(expected, None, &first)
                .map_err(|e| JobFailure::permanent(format!("{e}, in job {} (same canonical URL)", original.job_key)))?;
        }
        let copied = if self.ledger.linking(&sha256).await? {
            self.place_copy(&source, &final_path, &sha256).await? == Placement::Copied
        } else {
            false
        };
        let link = Link {
            original: &original,
            path: &final_path,
            copied,
        };
        self.ledger.skipped(link).await?;
        Ok(JobOutcome::Skipped {
            bytes: original.size.unwrap_or(0),
        })
    }

    /// The partials earlier epochs of this job left, and the one to
    /// resume: the longest left under the validator the ledger records for
    /// the job (only such a partial holds a prefix of the version an
    /// `If-Range` with that validator asks for).
    async fn prior_partials(&self) -> Result<(Option<Resumable>, Vec<Prior>), Stop> {
        if self.fence.epoch <= 1 {
            return Ok((None, Vec::new()));
        }
        let older = self
            .shared
            .dest
            .priors(&self.fence.job_key, self.fence.epoch, self.log.as_ref())
            .await?;
        let prior = self.job.validator().and_then(|validator| {
            let tag = resume::validator_tag(validator);
            older
                .iter()
                .filter(|prior| prior.len > 0 && prior.validator_tag.as_deref() == Some(&tag))
                .max_by_key(|prior| (prior.len, prior.epoch))
                .map(|prior| Resumable {
                    prior: prior.clone(),
                    validator: validator.to_owned(),
                })
        });
        Ok((prior, older))
    }

    /// Sends the GET — ranged with `If-Range` when a prior partial allows a
    /// resume — and decides the start offset: the partial's length only
    /// when the answer proves it continues the partial's version
    /// ([`resume::refusal`]); otherwise the prior partial is set aside and
    /// the whole resource is read with a plain GET.
    async fn open(&mut self, prior: Option<&Resumable>) -> Result<Opened, Stop> {
        let Some(prior) = prior else {
            return self.open_whole().await;
        };
        let request = GetRequest {
            url: self.job.url.clone(),
            range_start: prior.prior.len,
            range_end: None,
            if_range: Some(prior.validator.clone()),
            headers: self.host_headers(),
        };
        let resumed = |meta, start, body| Opened {
            meta,
            start,
            body,
            validator: Some(prior.validator.clone()),
        };
        let refused = match self.send(&request).await? {
            // The whole resource: Range ignored, or If-Range did not match.
            GetResponse::Body { meta, start: 0, body } => return Ok(whole(meta, body)),
            GetResponse::Body { meta, start, body } => match resume::refusal(&request, start, &meta) {
                None => return Ok(resumed(meta, start, Some(body))),
                Some(why) => why,
            },
            // Complete already, unless the answer names another version.
            GetResponse::RangeNotSatisfiable { mut meta, complete_len }
                if complete_len == Some(prior.prior.len)
                    && (meta.validator().is_none() || resume::carries_validator(&meta, &prior.validator)) =>
            {
                meta.content_length = Some(prior.prior.len);
                return Ok(resumed(meta, prior.prior.len, None));
            }
            GetResponse::RangeNotSatisfiable { complete_len, .. } => {
                format!(
                    "416 with total length {complete_len:?} for a partial of {} bytes",
                    prior.prior.len
                )
            }
            GetResponse::UnusableRange { reason, .. } => reason,
        };
        tracing::warn!(job = %self.fence.job_key, url = %self.job.url, reason = %refused, "resume refused; reading the whole resource from byte 0");
        self.pace().await?;
        self.open_whole().await
    }

    /// Under `--robots respect`, fails a job its host's `robots.txt`
    /// disallows (for good), or whose `robots.txt` could not be read
    /// (retryable, an attempt counted, so a later run asks again).
    async fn obey_robots(&self) -> Result<(), Stop> {
        if self.shared.config.robots != RobotsMode::Respect {
            return Ok(());
        }
        let check = self.shared.robots.check(self.shared.fetcher.as_ref(), &self.job.url);
        match self.unless_interrupted(check).await? {
            Permit::Allowed => Ok(()),
            Permit::Disallowed(message) => Err(JobFailure::permanent(message).into()),
            Permit::Unreachable(message) => Err(JobFailure::retryable(message).into()),
        }
    }

    /// Whether the job's host takes requests now: a paused host's job is
    /// put off until the pause ends (or, while another job probes the host,
    /// for a cool-down), with no attempt counted; a job let through after
    /// a pause is the host's probe.
    fn admit(&mut self) -> Result<(), Stop> {
        let host = host_port(&self.job.canonical_url);
        match self.shared.breakers.admit(host) {
            Admit::Go { probe } => {
                self.probe = probe.then(|| Probe {
                    breakers: &self.shared.breakers,
                    host: host.to_owned(),
                    reported: false,
                });
                Ok(())
            }
            Admit::Wait(wait) => Err(Stop::Paused(JobFailure::host_paused(
                format!(
                    "host {host} is paused after failing {} requests in a row",
                    breaker::THRESHOLD
                ),
                wait,
            ))),
        }
    }

    /// Sends `request` and tells the host's breaker how it went: a
    /// transient failure while the host is paused (sent before the pause,
    /// or its probe) is the host's, and counts no attempt.
    async fn send(&mut self, request: &GetRequest) -> Result<GetResponse, Stop> {
        let answer = self.shared.fetcher.get(request).await;
        let mut probe = self.probe.take();
        if let Some(probe) = &mut probe {
            probe.reported = true;
        }
        let breakers = &self.shared.breakers;
        let host = host_port(&self.job.canonical_url);
        let err = match answer {
            Ok(response) => {
                breakers.succeeded(host);
                return Ok(response);
            }
            Err(err) if !err.is_retryable() => {
                breakers.succeeded(host);
                return Err(JobFailure::fetch(err).into());
            }
            Err(err) => err,
        };
        let probed = probe.is_some();
        let asked = err.retry_after.unwrap_or_default();
        match breakers.failed(host, probed, asked) {
            Tripped::No => Err(JobFailure::fetch(err).into()),
            Tripped::Now(pause) => {
                let reason = format!(
                    "{} requests in a row failed, the last: {}",
                    breaker::THRESHOLD,
                    err.message
                );
                self.shared.waits.note(host, &reason, pause, false);
                Err(JobFailure::fetch(err).into())
            }
            Tripped::Already(pause) => {
                let wait = pause.max(asked);
                let message = format!("{} (host {host} paused)", err.message);
                Err(Stop::Paused(JobFailure::host_paused(message, wait)))
            }
        }
    }

    /// Waits for this job's next request turn at its host's rate
    /// ([`RunConfig::rate_per_host`](super::RunConfig::rate_per_host)).
    async fn pace(&self) -> Result<(), Stop> {
        let host = host_port(&self.job.canonical_url);
        if let Some(rate) = self.shared.policy(host).rate {
            self.unless_interrupted(self.shared.rates.take(self.shared.store.as_ref(), host, rate))
                .await?;
        }
        Ok(())
    }

    /// The headers the job's host policy adds to each of its requests
    /// ([`HostPolicy::headers`](super::HostPolicy::headers)).
    fn host_headers(&self) -> Vec<(String, String)> {
        self.shared.policy(host_port(&self.job.canonical_url)).headers
    }

    /// A plain GET of the whole resource.
    async fn open_whole(&mut self) -> Result<Opened, Stop> {
        let request = GetRequest {
            url: self.job.url.clone(),
            range_start: 0,
            range_end: None,
            if_range: None,
            headers: self.host_headers(),
        };
        match self.send(&request).await? {
            GetResponse::Body { meta, start: 0, body } => Ok(whole(meta, body)),
            other => Err(JobFailure::fetch(FetchError::transient(format!(
                "unexpected answer to a GET of the whole resource: {other:?}"
            )))
            .into()),
        }
    }

    /// The media type this job's content must fit: its own, else the run's
    /// `--accept`.
    fn expected_content_type(&self) -> Option<&str> {
        self.job
            .expected_content_type
            .as_deref()
            .or(self.shared.config.accept.as_deref())
    }

    /// Streams `body` into `partial`. With a content `check`, the first
    /// [`content::SNIFF_LEN`] bytes are judged before they are written (all
    /// of a shorter body at its end): a body that does not fit is abandoned
    /// there, the rest never read.
    async fn stream_body(
        &self,
        partial: &mut dyn PartialWrite,
        mut body: BodyStream,
        mut check: Option<ContentCheck<'_>>,
    ) -> Result<(), Stop> {
        let cap = self.shared.config.max_size;
        let host_cap = self.shared.host_bandwidth(host_port(&self.job.canonical_url));
        while let Some(chunk) = self.unless_interrupted(body.next()).await? {
            self.check_lease()?;
            let chunk = chunk.map_err(JobFailure::fetch)?;
            ContentCheck::feed(&mut check, &chunk)?;
            partial.push(&chunk).await?;
            self.spend(host_cap.as_deref(), chunk.len() as u64).await?;
            if partial.len() > cap {
                return Err(JobFailure::permanent(format!("body exceeds the cap of {cap} bytes")).into());
            }
        }
        check.map_or(Ok(()), |done| done.judge())
    }

    /// `bytes` of body arrived: waits on the run's bandwidth cap and the
    /// host's (`host_cap`), and reports them to the progress.
    async fn spend(&self, host_cap: Option<&Bandwidth>, bytes: u64) -> Result<(), Stop> {
        for cap in self.shared.bandwidth.iter().chain(host_cap) {
            self.unless_interrupted(cap.consume(bytes)).await?;
        }
        self.shared.progress.download_bytes(&self.fence.job_key, bytes);
        Ok(())
    }

    fn verify(&self, meta: &ResourceMeta, sha256: &str, size: u64) -> Result<(), Stop> {
        if let Some(announced) = meta.content_length {
            if size != announced {
                return Err(JobFailure::retryable(format!("truncated body: got {size} of {announced} bytes")).into());
            }
        }
        if let Some(expected) = self.job.expected_size {
            if size != expected {
                return Err(
                    JobFailure::permanent(format!("size mismatch: expected {expected} bytes, got {size}")).into(),
                );
            }
        }
        if let Some(expected) = &self.job.expected_sha256 {
            if expected != sha256 {
                return Err(
                    JobFailure::permanent(format!("sha256 mismatch: expected {expected}, got {sha256}")).into(),
                );
            }
        }
        Ok(())
    }

    /// Places a copy of the artifact at `source` at `dest`, never replacing
    /// (a hard link in a folder, a server-side copy in a bucket).
    async fn place_copy(&self, source: &str, dest: &str, sha256: &str) -> Result<Placement, Stop> {
        self.check_lease()?;
        let placement = self
            .shared
            .dest
            .place_copy(source, dest, sha256, self.shared.config.fsync)
            .await?;
        occupied(placement, dest)
    }

    /// FINALIZED → INDEXED → DEDUPED → SUCCESS; `streamed` is the STREAM
    /// op's result.
    async fn finalize(
        &mut self,
        written: Box<dyn Written>,
        final_path: String,
        streamed: Streamed<'_>,
    ) -> Result<JobOutcome, Stop> {
        let final_path = match self.ledger.finalizing(streamed, final_path).await? {
            Finalize::Place(final_path) => {
                // Content stored before under another path is linked to it
                // at DEDUPE, once the index names the first copy. The
                // partials go once the bytes are in place.
                self.check_lease()?;
                let placement = written.place(&final_path, self.shared.config.fsync).await?;
                occupied(placement, &final_path)?;
                final_path
            }
            Finalize::Placed(final_path) => final_path,
        };
        self.remove_partials().await;
        let placed = Placed {
            path: &final_path,
            sha256: streamed.sha256,
            size: streamed.size,
        };
        let first_path = match self.ledger.indexed(placed).await? {
            Indexed::Succeeded => return Ok(JobOutcome::Succeeded),
            Indexed::Link { first_path } => first_path,
        };
        // Same content placed concurrently by two jobs: end as one inode.
        let shared_inode = if first_path == final_path {
            false
        } else {
            self.check_lease()?;
            let durable = self.shared.config.fsync;
            self.shared
                .dest
                .share(&first_path, &final_path, durable)
                .await
                .unwrap_or(false)
        };
        self.ledger.succeeded(&first_path, shared_inode).await?;
        Ok(JobOutcome::Succeeded)
    }

    /// Removes every partial of this job (this epoch's and older ones); a
    /// failure is only logged (recovery removes leftovers of finished jobs).
    async fn remove_partials(&self) {
        let own = self.partial_handle.clone();
        let removed = self
            .shared
            .dest
            .discard(&self.fence.job_key, self.fence.epoch, own, self.log.as_ref())
            .await;
        if let Err(err) = removed {
            tracing::warn!(job = %self.fence.job_key, error = %err, "could not remove partial files");
        }
    }
}

/// A placement that found other bytes at `dest` fails the job without retry.
fn occupied(placement: Placement, dest: &str) -> Result<Placement, Stop> {
    if placement == Placement::Occupied {
        return Err(JobFailure::permanent(format!(
            "a different file already occupies {dest}; it was left untouched"
        ))
        .into());
    }
    Ok(placement)
}

/// A content check under way (SPEC §8): the expectation, the answer's
/// `Content-Type`, and the first bytes gathered so far.
struct ContentCheck<'a> {
    expected: &'a str,
    content_type: Option<&'a str>,
    first: Vec<u8>,
}

impl ContentCheck<'_> {
    /// Gathers the body's first bytes from `chunk`, the next one, and judges
    /// them once there are [`content::SNIFF_LEN`] of them.
    fn feed(check: &mut Option<Self>, chunk: &[u8]) -> Result<(), Stop> {
        if let Some(pending) = check.as_mut() {
            let wanted = content::SNIFF_LEN - pending.first.len();
            pending.first.extend_from_slice(&chunk[..chunk.len().min(wanted)]);
            if pending.first.len() == content::SNIFF_LEN {
                check.take().map_or(Ok(()), Self::judge)?;
            }
        }
        Ok(())
    }

    /// [`content::check`]: a body that does not fit fails without retry.
    fn judge(self) -> Result<(), Stop> {
        content::check(self.expected, self.content_type, &self.first).map_err(|e| JobFailure::permanent(e).into())
    }
}

/// The whole resource from byte 0, downloaded under its own validator.
fn whole(meta: ResourceMeta, body: BodyStream) -> Opened {
    Opened {
        validator: meta.validator().map(str::to_owned),
        meta,
        start: 0,
        body: Some(body),
    }
}
