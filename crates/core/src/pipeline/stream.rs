//! A partial file being written: bytes hashed as they arrive, written in
//! large blocks off the async executor.
//!
//! A small body is gathered in memory, and the file created, written and
//! hashed by one blocking call at [`Partial::finish`]. Once a body fills a [`BLOCK`], the partial
//! file becomes a pipeline so that receiving, writing and hashing overlap on
//! different cores:
//!
//! ```text
//! push (async: copy into a block) → write stage → hash stage → back to push
//!                                       ↘ write-back stage (fsync on): fdatasync, then drop-behind
//! ```
//!
//! The stages are blocking tasks joined by bounded channels, and at most
//! [`BLOCKS`] blocks exist at once (the memory bound, whatever the body's
//! size); they are reused, so their pages are touched once. Blocks reach the
//! file in order, so the partial file always holds a prefix of the body (what
//! a resume needs). With fsync on, the write-back stage makes the kernel write
//! the file to disk while it streams: the fsync before placement then has
//! little left to wait for, instead of serializing the whole file's disk
//! writes after the download; and the pages already on disk leave the page
//! cache, so that writing reuses them (see `write_back_stage`).

use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::files::{OutDir, PartialName};

/// Bytes of one block: one `write(2)`, one hand-off between stages.
const BLOCK: usize = 1 << 20;
/// Blocks in flight between receiving, writing and hashing (8 MiB).
const BLOCKS: usize = 8;
/// Bytes written between two requests to the write-back stage.
const WRITE_BACK_STEP: u64 = 16 << 20;

/// The partial file of one job and epoch.
#[derive(Debug)]
pub(crate) struct Partial {
    path: PathBuf,
    /// Where the file is created.
    target: Target,
    len: u64,
    /// The block being filled.
    block: Vec<u8>,
    /// Whether to start the disk's write-back while streaming.
    write_back: bool,
    state: State,
}

#[derive(Debug)]
enum State {
    /// No block filled yet: the hash state is here, and the file once
    /// opened (a small body opens, writes and hashes it in one blocking call).
    Direct { file: Option<File>, hasher: Sha256 },
    /// The stages run.
    Piped(Pipeline),
    /// A stage failed (this error); nothing more is written.
    Failed(Failure),
}

/// A stage's error, kept to report again: an OS error keeps its code (the
/// run tells a full disk from a job's own error by it).
#[derive(Debug, Clone)]
struct Failure {
    kind: io::ErrorKind,
    message: String,
    os_code: Option<i32>,
}

impl Failure {
    fn of(err: &io::Error) -> Self {
        Self {
            kind: err.kind(),
            message: err.to_string(),
            os_code: err.raw_os_error(),
        }
    }

    fn error(&self) -> io::Error {
        match self.os_code {
            Some(code) => io::Error::from_raw_os_error(code),
            None => io::Error::new(self.kind, self.message.clone()),
        }
    }
}

/// The running stages of a large body.
#[derive(Debug)]
struct Pipeline {
    to_write: mpsc::Sender<Vec<u8>>,
    /// Blocks the hash stage is done with.
    free: mpsc::Receiver<Vec<u8>>,
    /// Blocks allocated so far (at most [`BLOCKS`]).
    allocated: usize,
    writer: JoinHandle<io::Result<()>>,
    hasher: JoinHandle<Sha256>,
    write_back: Option<JoinHandle<io::Result<()>>>,
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| io::Error::other(format!("file task failed: {e}")))?
}

async fn joined<T>(task: JoinHandle<T>) -> io::Result<T> {
    task.await
        .map_err(|e| io::Error::other(format!("file task failed: {e}")))
}

/// Where a partial file is created.
#[derive(Debug, Clone)]
enum Target {
    /// `DIR/.oncefetch/partial/<name>`, opened beneath the output folder
    /// without following links.
    Out {
        /// The output folder.
        out: OutDir,
        /// The file name.
        name: String,
    },
    /// A plain path, as the system resolves it (tests of the stages, e.g.
    /// on `/dev/full`).
    #[cfg(test)]
    Path(PathBuf),
}

impl Target {
    /// Creates (or truncates) the partial file.
    fn create(&self) -> io::Result<File> {
        match self {
            Self::Out { out, name } => out.create_partial(name),
            #[cfg(test)]
            Self::Path(path) => std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .read(true)
                .open(path),
        }
    }

    /// Opens an earlier epoch's partial file to read.
    fn open_earlier(&self, source: &Path) -> io::Result<File> {
        match self {
            Self::Out { out, .. } => out.open_file(source),
            #[cfg(test)]
            Self::Path(_) => File::open(source),
        }
    }

    /// Removes the partial file when a failed write left it empty: one
    /// empty file per failed attempt would pile up, and resumes nothing.
    fn remove_if_empty(&self) {
        match self {
            Self::Out { out, name } => {
                if let Err(err) = out.remove_partial_if_empty(name) {
                    tracing::warn!(file = %name, error = %err, "could not remove an empty partial file");
                }
            }
            #[cfg(test)]
            Self::Path(_) => {}
        }
    }
}

impl Partial {
    /// The partial file of `job_key` under `epoch` in `out`, created (or
    /// truncated) when the first bytes are written, or by
    /// [`finish`](Self::finish) for an empty body.
    pub(crate) fn new(out: &OutDir, job_key: &str, epoch: i64, validator_tag: Option<&str>) -> Self {
        let name = PartialName {
            job_key: job_key.to_owned(),
            epoch,
            validator_tag: validator_tag.map(str::to_owned),
            split: false,
        }
        .file_name();
        Self::with_target(
            out.partial_path(job_key, epoch, validator_tag),
            Target::Out { out: out.clone(), name },
        )
    }

    /// Where the partial file is (or will be) written.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// A partial file at a plain path.
    #[cfg(test)]
    fn at(path: PathBuf) -> Self {
        Self::with_target(path.clone(), Target::Path(path))
    }

    fn with_target(path: PathBuf, target: Target) -> Self {
        Self {
            path,
            target,
            len: 0,
            block: Vec::new(),
            write_back: false,
            state: State::Direct {
                file: None,
                hasher: Sha256::new(),
            },
        }
    }

    /// Asks the kernel to write a large body to disk while it streams
    /// (`fdatasync` in a background task every few MiB), so that the fsync
    /// of finalize has little left. For durable runs; call before
    /// [`push`](Self::push).
    pub(crate) fn write_back_early(&mut self, on: bool) {
        self.write_back = on;
    }

    /// Copies the first `len` bytes of an earlier epoch's partial file into
    /// this one (`copy_file_range` where the kernel has it) and hashes them
    /// from the copy.
    pub(crate) async fn copy_prefix_from(&mut self, source: &Path, len: u64) -> io::Result<()> {
        let source = source.to_owned();
        let State::Direct { file, .. } = &mut self.state else {
            return Err(io::Error::other("partial file already streaming"));
        };
        let (file, target) = (file.take(), self.target.clone());
        let (file, hasher) = blocking(move || {
            let mut file = file.map_or_else(|| target.create(), Ok)?;
            let copied = match target.open_earlier(&source) {
                Ok(earlier) => io::copy(&mut earlier.take(len), &mut file),
                Err(err) => Err(err),
            }
            .inspect_err(|_| target.remove_if_empty())?;
            if copied != len {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "earlier partial file shrank",
                ));
            }
            file.rewind()?;
            let mut hasher = Sha256::new();
            let mut block = vec![0u8; BLOCK];
            let mut reader = (&file).take(len);
            loop {
                let n = reader.read(&mut block)?;
                if n == 0 {
                    break;
                }
                hasher.update(&block[..n]);
            }
            file.seek(io::SeekFrom::End(0))?;
            Ok((file, hasher))
        })
        .await?;
        self.state = State::Direct {
            file: Some(file),
            hasher,
        };
        self.len = len;
        Ok(())
    }

    /// Bytes so far.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Appends a chunk: copied into the current block, which goes to the
    /// write stage when full (waiting for a free block when all are in use).
    pub(crate) async fn push(&mut self, mut chunk: &[u8]) -> io::Result<()> {
        self.failed()?;
        self.len += chunk.len() as u64;
        while !chunk.is_empty() {
            let take = chunk.len().min(BLOCK - self.block.len());
            self.block.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
            if self.block.len() == BLOCK {
                self.send_block().await?;
            }
        }
        Ok(())
    }

    /// The state, leaving a closed one in its place.
    fn take_state(&mut self) -> State {
        std::mem::replace(
            &mut self.state,
            State::Failed(Failure::of(&io::Error::other("partial file closed"))),
        )
    }

    fn failed(&self) -> io::Result<()> {
        match &self.state {
            State::Failed(failure) => Err(failure.error()),
            _ => Ok(()),
        }
    }

    /// Hands the full current block to the write stage (starting the stages
    /// on the first one) and takes a free block to fill next.
    async fn send_block(&mut self) -> io::Result<()> {
        if matches!(self.state, State::Direct { .. }) {
            self.start_pipeline().await?;
        }
        let State::Piped(pipeline) = &mut self.state else {
            return self.failed();
        };
        let block = std::mem::take(&mut self.block);
        let next = if pipeline.to_write.send(block).await.is_err() {
            None
        } else if pipeline.allocated < BLOCKS {
            pipeline.allocated += 1;
            Some(Vec::with_capacity(BLOCK))
        } else {
            pipeline.free.recv().await
        };
        match next {
            Some(block) => {
                self.block = block;
                Ok(())
            }
            // A stage stopped early: its error says why.
            None => match self.stop_pipeline().await {
                Ok(_) => Err(io::Error::other("partial file writer stopped")),
                Err(err) => Err(err),
            },
        }
    }

    async fn start_pipeline(&mut self) -> io::Result<()> {
        let State::Direct { file, hasher } = self.take_state() else {
            return Ok(());
        };
        let file = match file {
            Some(file) => file,
            None => {
                let target = self.target.clone();
                match blocking(move || target.create()).await {
                    Ok(file) => file,
                    Err(err) => {
                        self.state = State::Failed(Failure::of(&err));
                        return Err(err);
                    }
                }
            }
        };
        let (to_write, write_rx) = mpsc::channel::<Vec<u8>>(BLOCKS);
        let (to_hash, hash_rx) = mpsc::channel::<Vec<u8>>(BLOCKS);
        let (to_free, free) = mpsc::channel::<Vec<u8>>(BLOCKS);
        let write_back = if self.write_back {
            match file.try_clone() {
                Ok(clone) => {
                    let (request, requests) = std_mpsc::sync_channel::<()>(1);
                    let written = Arc::new(AtomicU64::new(0));
                    let seen = Arc::clone(&written);
                    let task = tokio::task::spawn_blocking(move || write_back_stage(&clone, &requests, &seen));
                    Some(((request, written), task))
                }
                // Only an optimization: the fsync of finalize still comes.
                Err(_) => None,
            }
        } else {
            None
        };
        let (request, write_back) = match write_back {
            Some((request, task)) => (Some(request), Some(task)),
            None => (None, None),
        };
        let writer = tokio::task::spawn_blocking(move || write_stage(file, write_rx, &to_hash, request));
        let hasher = tokio::task::spawn_blocking(move || hash_stage(hasher, hash_rx, &to_free));
        self.state = State::Piped(Pipeline {
            to_write,
            free,
            allocated: 1,
            writer,
            hasher,
            write_back,
        });
        Ok(())
    }

    /// Ends the stages (after they drained what was sent) and returns the
    /// hash state, or the first error of a stage.
    async fn stop_pipeline(&mut self) -> io::Result<Sha256> {
        let state = self.take_state();
        let State::Piped(pipeline) = state else {
            self.state = state;
            self.failed()?;
            return Err(io::Error::other("partial file not streaming"));
        };
        let Pipeline {
            to_write,
            free,
            writer,
            hasher,
            write_back,
            ..
        } = pipeline;
        drop(to_write);
        drop(free);
        let written = joined(writer).await.and_then(|r| r);
        let synced = match write_back {
            Some(task) => joined(task).await.and_then(|r| r),
            None => Ok(()),
        };
        let hashed = joined(hasher).await;
        match written.and(synced).and(hashed) {
            Ok(hasher) => Ok(hasher),
            Err(err) => {
                self.state = State::Failed(Failure::of(&err));
                Err(err)
            }
        }
    }

    /// Writes what is left; returns the path, SHA-256 (hex) and length. On
    /// an error, a file left empty is removed.
    pub(crate) async fn finish(self) -> io::Result<(PathBuf, String, u64)> {
        let target = self.target.clone();
        let finished = self.write_rest().await;
        if finished.is_err() {
            // Best effort: the error that matters is the write's.
            let _ = blocking(move || {
                target.remove_if_empty();
                Ok(())
            })
            .await;
        }
        finished
    }

    async fn write_rest(mut self) -> io::Result<(PathBuf, String, u64)> {
        self.failed()?;
        let rest = std::mem::take(&mut self.block);
        let hasher = match self.take_state() {
            State::Direct { file: Some(_), hasher } if rest.is_empty() => hasher,
            State::Direct { file, mut hasher } => {
                let target = self.target.clone();
                blocking(move || {
                    let mut file = file.map_or_else(|| target.create(), Ok)?;
                    file.write_all(&rest)?;
                    hasher.update(&rest);
                    Ok(hasher)
                })
                .await?
            }
            state @ State::Piped(_) => {
                self.state = state;
                if !rest.is_empty() {
                    if let State::Piped(pipeline) = &self.state {
                        // A failed send means a stage stopped: its error follows.
                        let _ = pipeline.to_write.send(rest).await;
                    }
                }
                self.stop_pipeline().await?
            }
            State::Failed(failure) => return Err(failure.error()),
        };
        Ok((self.path, hex::encode(hasher.finalize()), self.len))
    }
}

/// Writes blocks in order, passes each on to the hash stage, and wakes the
/// write-back stage every [`WRITE_BACK_STEP`] bytes.
fn write_stage(
    mut file: File,
    mut blocks: mpsc::Receiver<Vec<u8>>,
    to_hash: &mpsc::Sender<Vec<u8>>,
    write_back: Option<(std_mpsc::SyncSender<()>, Arc<AtomicU64>)>,
) -> io::Result<()> {
    // After a resumed prefix: offsets are the file's.
    let mut position = file.stream_position()?;
    let mut since_request = 0u64;
    while let Some(block) = blocks.blocking_recv() {
        file.write_all(&block)?;
        position += block.len() as u64;
        since_request += block.len() as u64;
        if let Some((request, written)) = &write_back {
            written.store(position, Ordering::Release);
            if since_request >= WRITE_BACK_STEP {
                // Full: a request is already waiting, and it covers these bytes too.
                match request.try_send(()) {
                    Ok(()) | Err(std_mpsc::TrySendError::Full(())) => since_request = 0,
                    // The stage stopped on an error, reported when it is joined.
                    Err(std_mpsc::TrySendError::Disconnected(())) => {}
                }
            }
        }
        if to_hash.blocking_send(block).is_err() {
            return Err(io::Error::other("partial file hasher stopped"));
        }
    }
    Ok(())
}

/// Hashes blocks in order and hands them back to be filled again.
fn hash_stage(mut hasher: Sha256, mut blocks: mpsc::Receiver<Vec<u8>>, free: &mpsc::Sender<Vec<u8>>) -> Sha256 {
    while let Some(mut block) = blocks.blocking_recv() {
        hasher.update(&block);
        block.clear();
        // At most BLOCKS blocks exist, so this never finds the channel full;
        // a closed one means the pusher is gone.
        let _ = free.try_send(block);
    }
    hasher
}

/// On each request, `fdatasync`: the disk writes what was written so far
/// while the body streams on. An error is kept and returned (a later fsync
/// on another descriptor might not report it again). Then the range just
/// made clean leaves the page cache (drop-behind), so the next blocks are
/// written into pages freed a moment ago rather than into memory never
/// touched before, which costs several times more (a first touch is a fault
/// in the hypervisor too); a large download then occupies a few dozen MiB
/// of page cache instead of its whole size.
fn write_back_stage(file: &File, requests: &std_mpsc::Receiver<()>, written: &AtomicU64) -> io::Result<()> {
    let mut dropped = 0u64;
    while requests.recv().is_ok() {
        // Everything below `upto` was written before this fdatasync began.
        let upto = written.load(Ordering::Acquire);
        file.sync_data()?;
        drop_clean(file, dropped, upto);
        dropped = dropped.max(upto);
    }
    Ok(())
}

/// Advises the kernel to drop the (clean) cached pages of `start..end`.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn drop_clean(file: &File, start: u64, end: u64) {
    if let Some(len) = end.checked_sub(start).and_then(std::num::NonZeroU64::new) {
        // Advice only: a failure costs memory, never bytes.
        let _ = rustix::fs::fadvise(file, start, Some(len), rustix::fs::Advice::DontNeed);
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn drop_clean(_file: &File, _start: u64, _end: u64) {}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 4093) as u8).collect()
    }

    async fn stream(dir: &Path, name: &str, data: &[u8], chunk: usize, write_back: bool) -> (PathBuf, String, u64) {
        let out = OutDir::create(dir).unwrap();
        let mut partial = Partial::new(&out, name, 1, None);
        partial.write_back_early(write_back);
        for piece in data.chunks(chunk.max(1)) {
            partial.push(piece).await.unwrap();
        }
        partial.finish().await.unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn small_and_large_bodies_are_written_and_hashed_whole() {
        let dir = tempfile::tempdir().unwrap();
        let sizes = [
            0,
            1,
            4096,
            BLOCK - 1,
            BLOCK,
            BLOCK + 1,
            3 * BLOCK + 17,
            BLOCKS * BLOCK * 3 + 5,
        ];
        for (i, size) in sizes.into_iter().enumerate() {
            let data = body(size);
            for (chunk, write_back) in [(1000, false), (BLOCK + 3, true), (416 << 10, true)] {
                let (path, sha, len) = stream(dir.path(), &format!("{i}-{chunk}"), &data, chunk, write_back).await;
                assert_eq!(len, size as u64);
                assert_eq!(std::fs::read(&path).unwrap(), data, "size {size}, chunks of {chunk}");
                assert_eq!(sha, hex::encode(Sha256::digest(&data)));
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_file_is_created_by_the_first_write_and_open_errors_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lazy");
        let mut partial = Partial::at(path.clone());
        partial.push(b"abc").await.unwrap();
        assert!(!path.exists(), "a small body is held until finish");
        partial.finish().await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"abc");
        let missing = dir.path().join("no-such-dir").join("p");
        let error = Partial::at(missing.clone()).finish().await.expect_err("small body");
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
        let mut large = Partial::at(missing);
        let error = large.push(&body(BLOCK)).await.expect_err("large body");
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
        assert_eq!(large.finish().await.expect_err("again").kind(), io::ErrorKind::NotFound);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_error_stops_the_stream_and_is_reported_again_by_finish() {
        // Every write to /dev/full fails with ENOSPC.
        let mut partial = Partial::at(PathBuf::from("/dev/full"));
        partial.write_back_early(true);
        let data = body(BLOCK);
        let mut error = None;
        for _ in 0..4 * BLOCKS {
            if let Err(err) = partial.push(&data).await {
                error = Some(err);
                break;
            }
        }
        let error = error.expect("the write error reaches push");
        assert_eq!(error.raw_os_error(), Some(28), "ENOSPC: {error}");
        let again = partial.finish().await.expect_err("finish reports it too");
        assert_eq!((again.kind(), again.to_string()), (error.kind(), error.to_string()));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_resumed_prefix_is_hashed_with_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        // Long enough for the write-back stage to run past the prefix.
        let data = body(2 * WRITE_BACK_STEP as usize + 99);
        let prefix = 2 * BLOCK + 7;
        let earlier = dir.path().join("earlier");
        std::fs::write(&earlier, &data[..prefix + 50]).unwrap();
        let mut partial = Partial::at(dir.path().join("now"));
        partial.write_back_early(true);
        partial.copy_prefix_from(&earlier, prefix as u64).await.unwrap();
        assert_eq!(partial.len(), prefix as u64);
        for piece in data[prefix..].chunks(70_000) {
            partial.push(piece).await.unwrap();
        }
        let (path, sha, len) = partial.finish().await.unwrap();
        assert_eq!(len, data.len() as u64);
        assert_eq!(std::fs::read(path).unwrap(), data);
        assert_eq!(sha, hex::encode(Sha256::digest(&data)));
    }
}
