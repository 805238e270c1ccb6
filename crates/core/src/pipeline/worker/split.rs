//! A job's download split over several connections (SPEC §6.2): when a
//! split starts or resumes, the connections that write its pieces, and the
//! records of what they wrote. The pieces, records and hash are
//! [`crate::pipeline::split`]'s.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};

use futures::StreamExt;
use tokio::sync::{watch, OwnedSemaphorePermit};

use super::{discard, whole, ContentCheck, Downloaded, JobOutcome, JobRun, Opened, Stop};
use crate::destination::{PartLog, PartialId, Prior, SplitWrite};
use crate::fetch::{BodyStream, FetchError, GetRequest, GetResponse, ResourceMeta};
use crate::job::JobFailure;
use crate::pipeline::bandwidth::Bandwidth;
use crate::pipeline::progress::Download;
use crate::pipeline::resume;
use crate::pipeline::split::ranges::{self, Ranges};
use crate::pipeline::split::{self as plan, Due, Layout, Records, SplitPrior, WRITE_BLOCK};
use crate::url::host_port;

/// A split download about to start: the answer that opened it, and the
/// first piece with the body that serves it (a whole body goes on past the
/// piece; the rest is never read).
pub(super) struct SplitStart {
    meta: ResourceMeta,
    validator: String,
    len: u64,
    layout: Layout,
    /// What an earlier epoch wrote (copied into `write`), when resumed.
    written: Ranges,
    write: Box<dyn SplitWrite>,
    first: Piece,
}

/// What the connections of one split download share.
struct Pieces<'s> {
    write: &'s dyn SplitWrite,
    /// Every piece's GET, but for its range.
    request: GetRequest,
    len: u64,
    validator: &'s str,
    /// Pieces not yet asked for, in order.
    queue: Mutex<VecDeque<Range<u64>>>,
    records: Mutex<Records>,
    /// The end of the written prefix, for the hash.
    prefix: watch::Sender<u64>,
    host_cap: Option<&'s Bandwidth>,
}

impl Pieces<'_> {
    fn records(&self) -> MutexGuard<'_, Records> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn next_piece(&self) -> Option<Range<u64>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front()
    }
}

/// A piece of the file and the body that serves it.
struct Piece {
    range: Range<u64>,
    body: BodyStream,
}

impl JobRun<'_> {
    /// The split partial an earlier epoch left to resume, when this run
    /// splits and the ledger's records name one downloaded under the
    /// validator the job records.
    pub(super) async fn split_prior(&self, older: &[Prior]) -> Result<Option<SplitPrior>, Stop> {
        let config = &self.shared.config.split;
        if config.connections < 2 || older.is_empty() {
            return Ok(None);
        }
        let Some(validator) = self.job.validator() else {
            return Ok(None);
        };
        let records = self.log.records().await?;
        Ok(plan::prior_of(&records, older, self.fence.epoch, validator).filter(|p| config.layout(p.len).is_some()))
    }

    /// Asks for the first missing piece of `prior` under its validator: a
    /// `206` that continues the same version resumes the split; otherwise
    /// the answer (the whole resource, when the version changed) opens an
    /// ordinary download, and the split partial goes with the older ones.
    pub(super) async fn resume_split(&mut self, prior: SplitPrior) -> Result<Result<SplitStart, Opened>, Stop> {
        let layout = self
            .shared
            .config
            .split
            .layout(prior.len)
            .expect("split_prior checks the layout");
        let len = prior.len;
        // All written (the epoch ended before finishing): the last piece
        // again opens the split.
        let first = ranges::pieces(&prior.written.missing(len), layout.piece)
            .pop_front()
            .unwrap_or(len.saturating_sub(layout.piece)..len);
        let request = GetRequest {
            url: self.job.url.clone(),
            range_start: first.start,
            range_end: Some(first.end - 1),
            if_range: Some(prior.validator.clone()),
            headers: self.host_headers(),
        };
        let refused = match self.send(&request).await? {
            GetResponse::Body { meta, start: 0, body } if meta.status != 206 => return Ok(Err(whole(meta, body))),
            GetResponse::Body { meta, start, body } => match piece_refusal(&request, start, &meta, len) {
                None => {
                    let id = self.split_id(&prior.validator);
                    let log: Arc<dyn PartLog> = self.log.clone();
                    let resume = Some((&prior.prior, prior.written.as_slice()));
                    let write = self
                        .shared
                        .dest
                        .begin_split(&id, len, resume, log)
                        .await?
                        .ok_or_else(|| std::io::Error::other("the destination no longer writes split partials"))?;
                    return Ok(Ok(SplitStart {
                        meta,
                        validator: prior.validator,
                        len,
                        layout,
                        written: prior.written,
                        write,
                        first: Piece { range: first, body },
                    }));
                }
                Some(why) => why,
            },
            other => format!("unexpected answer to a ranged GET: {other:?}"),
        };
        tracing::warn!(job = %self.fence.job_key, url = %self.job.url, reason = %refused, "split resume refused; reading the whole resource from byte 0");
        self.pace().await?;
        self.open_whole().await.map(Err)
    }

    /// Starts a split of `opened`, a whole answer from byte 0, when this run
    /// splits, the file is large enough, the server serves ranges, the
    /// answer has a validator to send with them, and the destination writes
    /// at offsets; the body becomes the first piece's.
    pub(super) async fn split_fresh(&mut self, opened: &mut Opened) -> Result<Option<SplitStart>, Stop> {
        let meta = &opened.meta;
        let Some(len) = meta.content_length else {
            return Ok(None);
        };
        let Some(layout) = self.shared.config.split.layout(len) else {
            return Ok(None);
        };
        let Some(validator) = opened.validator.clone() else {
            return Ok(None);
        };
        if opened.start != 0 || meta.status != 200 || !meta.accepts_ranges || opened.body.is_none() {
            return Ok(None);
        }
        let id = self.split_id(&validator);
        let log: Arc<dyn PartLog> = self.log.clone();
        let Some(write) = self.shared.dest.begin_split(&id, len, None, log).await? else {
            return Ok(None);
        };
        let body = opened.body.take().expect("checked above");
        Ok(Some(SplitStart {
            meta: opened.meta.clone(),
            validator,
            len,
            layout,
            written: Ranges::default(),
            write,
            first: Piece {
                range: 0..layout.piece.min(len),
                body,
            },
        }))
    }

    fn split_id(&self, validator: &str) -> PartialId {
        PartialId {
            job_key: self.fence.job_key.clone(),
            epoch: self.fence.epoch,
            validator_tag: Some(resume::validator_tag(validator)),
        }
    }

    /// Runs the split to its end: STREAMING recorded, the pieces downloaded
    /// over the layout's connections while the hash follows, then the file
    /// concluded as any other. On a failure what was written is recorded,
    /// for the next epoch to resume.
    pub(super) async fn run_split(
        &mut self,
        start: SplitStart,
        older: Vec<Prior>,
        host: OwnedSemaphorePermit,
        final_path: String,
    ) -> Result<JobOutcome, Stop> {
        let SplitStart {
            meta,
            validator,
            len,
            layout,
            written,
            write,
            first,
        } = start;
        let handle = write.handle();
        self.partial_handle = Some(handle.clone());
        let recorded = self.ledger.streaming(&self.job.canonical_url, &meta, 0).await?;
        // This epoch's partial holds a copy of what it resumes.
        let older: Vec<Prior> = older.into_iter().filter(|o| o.handle != handle).collect();
        if !older.is_empty() {
            discard(self.shared.dest.as_ref(), &self.fence.job_key, older, self.log.as_ref()).await;
        }
        self.shared.progress.download_started(&Download {
            job: &self.job,
            expected: Some(len),
            start: written.len(),
        });
        let mut queue = ranges::pieces(&written.missing(len), layout.piece);
        if queue.front() == Some(&first.range) {
            queue.pop_front();
        }
        // The content check judges the first bytes of a body from byte 0.
        let check = self
            .expected_content_type()
            .filter(|_| written.len() == 0)
            .map(|expected| ContentCheck {
                expected,
                content_type: meta.content_type.as_deref(),
                first: Vec::new(),
            });
        let host_cap = self.shared.host_bandwidth(host_port(&self.job.canonical_url));
        // Every piece asks where the first answer came from.
        let url = if meta.final_url.is_empty() {
            &self.job.url
        } else {
            &meta.final_url
        };
        let pieces = Pieces {
            write: write.as_ref(),
            request: GetRequest {
                url: url.clone(),
                range_start: 0,
                range_end: None,
                if_range: Some(validator.clone()),
                headers: self.host_headers(),
            },
            len,
            validator: &validator,
            queue: Mutex::new(queue),
            prefix: watch::Sender::new(written.prefix_end()),
            records: Mutex::new(Records::from(written, layout.record_every)),
            host_cap: host_cap.as_deref(),
        };
        let downloaded = self.download_pieces(&pieces, layout.connections, first, check).await;
        let sha256 = match downloaded {
            Ok(sha256) => sha256,
            Err(stop) => {
                self.record_written(&pieces).await;
                return Err(stop);
            }
        };
        drop(pieces);
        let written = write.finish(sha256, len).await?;
        drop(host);
        self.slot = None;
        let downloaded = Downloaded {
            meta: &meta,
            recorded,
            range_start: 0,
            validator: Some(&validator),
        };
        self.conclude(written, downloaded, final_path).await
    }

    /// The pieces over `connections` connections, the first starting with
    /// `first`, and the SHA-256 of the whole file.
    async fn download_pieces(
        &self,
        pieces: &Pieces<'_>,
        connections: usize,
        first: Piece,
        mut check: Option<ContentCheck<'_>>,
    ) -> Result<String, Stop> {
        let mut first = Some(first);
        let connections = (0..connections).map(|_| self.split_connection(pieces, first.take(), check.take()));
        let downloads = futures::future::try_join_all(connections);
        let hash = async {
            let prefix = pieces.prefix.subscribe();
            plan::follow_hash(pieces.write, prefix, pieces.len)
                .await
                .map_err(Stop::from)
        };
        let (_, sha256) = futures::future::try_join(downloads, hash).await?;
        Ok(sha256)
    }

    /// One connection: pieces from the queue, one GET each, until none is
    /// left; `first`, when given, before them.
    async fn split_connection(
        &self,
        pieces: &Pieces<'_>,
        mut first: Option<Piece>,
        mut check: Option<ContentCheck<'_>>,
    ) -> Result<(), Stop> {
        let mut buf = Vec::with_capacity(WRITE_BLOCK);
        loop {
            let piece = match first.take() {
                Some(piece) => piece,
                None => {
                    let Some(range) = pieces.next_piece() else {
                        return check.map_or(Ok(()), ContentCheck::judge);
                    };
                    let body = self.piece_body(pieces, &range).await?;
                    Piece { range, body }
                }
            };
            self.write_piece(pieces, piece, &mut buf, &mut check).await?;
        }
    }

    /// The body of a GET of `range` under the split's validator: only a
    /// `206` of exactly that range of the same version will do.
    async fn piece_body(&self, pieces: &Pieces<'_>, range: &Range<u64>) -> Result<BodyStream, Stop> {
        let request = GetRequest {
            range_start: range.start,
            range_end: Some(range.end - 1),
            ..pieces.request.clone()
        };
        let answer = self.unless_interrupted(self.shared.fetcher.get(&request)).await?;
        let why = match answer.map_err(JobFailure::fetch)? {
            GetResponse::Body { meta, start, body } if meta.status == 206 => {
                match piece_refusal(&request, start, &meta, pieces.len) {
                    None => return Ok(body),
                    Some(why) => why,
                }
            }
            GetResponse::Body { meta, .. } => format!(
                "the resource changed during the split download: a ranged GET with If-Range {} was answered {}",
                pieces.validator, meta.status
            ),
            other => format!("unexpected answer to a ranged GET: {other:?}"),
        };
        Err(JobFailure::fetch(FetchError::transient(format!(
            "bytes {}-{} of {}: {why}",
            range.start,
            range.end - 1,
            request.url
        )))
        .into())
    }

    /// Streams `piece` into the split partial, a [`WRITE_BLOCK`] at a time.
    async fn write_piece(
        &self,
        pieces: &Pieces<'_>,
        piece: Piece,
        buf: &mut Vec<u8>,
        check: &mut Option<ContentCheck<'_>>,
    ) -> Result<(), Stop> {
        let Piece { range, mut body } = piece;
        let mut at = range.start;
        let mut block_start = at;
        while at < range.end {
            let Some(chunk) = self.unless_interrupted(body.next()).await? else {
                let message = format!("the body of bytes {}-{} ended at byte {at}", range.start, range.end - 1);
                return Err(JobFailure::fetch(FetchError::transient(message)).into());
            };
            self.check_lease()?;
            let chunk = chunk.map_err(JobFailure::fetch)?;
            let take = chunk.len().min(usize::try_from(range.end - at).unwrap_or(usize::MAX));
            let chunk = &chunk[..take];
            ContentCheck::feed(check, chunk)?;
            buf.extend_from_slice(chunk);
            at += take as u64;
            self.spend(pieces.host_cap, take as u64).await?;
            if buf.len() >= WRITE_BLOCK || at == range.end {
                self.write_block(pieces, block_start, buf).await?;
                block_start = at;
            }
        }
        Ok(())
    }

    /// Writes `buf` at `offset`, notes the range written, and makes the
    /// record that falls due.
    async fn write_block(&self, pieces: &Pieces<'_>, offset: u64, buf: &mut Vec<u8>) -> Result<(), Stop> {
        let len = buf.len() as u64;
        let mut block = pieces.write.write_at(offset, std::mem::take(buf)).await?;
        block.clear();
        *buf = block;
        let due = {
            let mut records = pieces.records();
            let due = records.wrote(offset..offset + len);
            let prefix = records.written.prefix_end();
            pieces
                .prefix
                .send_if_modified(|end| std::mem::replace(end, prefix) != prefix);
            due
        };
        if let Some(due) = due {
            let made = self.record(pieces, due).await;
            pieces.records().recorded();
            made?;
        }
        Ok(())
    }

    /// Makes `due`'s bytes durable (with fsync on), then records them.
    async fn record(&self, pieces: &Pieces<'_>, due: Due) -> std::io::Result<()> {
        let durable = self.shared.config.fsync;
        plan::record(
            pieces.write,
            self.log.as_ref(),
            due,
            pieces.len,
            pieces.validator,
            durable,
        )
        .await
    }

    /// Records every range written (after the split stopped), so that the
    /// next epoch resumes from there; a failure is only logged.
    async fn record_written(&self, pieces: &Pieces<'_>) {
        let Some(due) = pieces.records().all() else {
            return;
        };
        if let Err(err) = self.record(pieces, due).await {
            tracing::warn!(job = %self.fence.job_key, error = %err, "could not record the split download's progress");
        }
    }
}

/// Why the `206` of a piece's `request`, starting at `start`, cannot fill
/// the piece, or `None` when it can: it must continue the same version
/// ([`resume::refusal`]) of the same length `len`.
fn piece_refusal(request: &GetRequest, start: u64, meta: &ResourceMeta, len: u64) -> Option<String> {
    if let Some(why) = resume::refusal(request, start, meta) {
        return Some(why);
    }
    (meta.content_length != Some(len)).then(|| {
        format!(
            "the total length is now {:?}, the split began at {len}",
            meta.content_length
        )
    })
}
