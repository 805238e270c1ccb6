//! Destinations: where artifacts go (SPEC §6). The local folder
//! ([`OutDir`](crate::pipeline::OutDir)) is one; an object store (the
//! `oncefetch-dest-object-store` crate, `s3://bucket/prefix`) another. A
//! backend registers a [`DestinationFactory`] with [`inventory::submit!`],
//! keyed by URL scheme, and the CLI opens `--out` with [`open_destination`].
//!
//! # Contract
//!
//! Every destination keeps these rules. Each clause is led by the name of
//! the check of the conformance kit (`destination::conformance`, feature
//! `conformance`) that asserts it; `conformance::CHECKS` lists them in this
//! order, `conformance::run_all` runs them, and the kit's own test holds the
//! names here equal to that list.
//!
//! 1. `locations_are_distinct_and_held`: [`Destination::location`] maps
//!    `(work_id, artifact_id)` to one location, the same for the same ids,
//!    different for different ids (the name encoding of
//!    [`encode_component`](crate::pipeline::files::encode_component)). It is
//!    the text the ledger records as the job's path; [`Destination::holds`]
//!    is true of it.
//! 2. `partials_resume_from_a_prefix`: the bytes pushed into a
//!    [`PartialWrite`] are kept, in order, as they arrive; after the body
//!    broke off (the writer finished, or dropped without
//!    [`PartialWrite::finish`] in a crash), the next epoch's
//!    [`Destination::priors`] lists what was kept durably (a prefix, of
//!    the pushed bytes), with its length, epoch and validator tag, and a
//!    [`Destination::begin`] that resumes it starts with exactly those bytes
//!    (hashed into the final SHA-256) and never splices in bytes it cannot
//!    vouch for: the placed artifact reads back as the whole body.
//! 3. `placement_never_replaces`: [`Written::place`] never replaces what
//!    stands at a location: the same bytes there (by SHA-256) count as
//!    [`Placement::AlreadyThere`]; other bytes are [`Placement::Occupied`]
//!    and stay untouched. Bodies of any size (empty, small, multipart) are
//!    placed and read back.
//! 4. `stale_epochs_never_place`: once a later epoch of the job has begun
//!    (its [`PartLog`] records are in the ledger), the writer of an earlier
//!    epoch cannot place its bytes: it fails, and what it started is left for
//!    the later epoch or removed, never completed; the later epoch's bytes
//!    stand.
//! 5. `copies_never_replace`: [`Destination::place_copy`] places the bytes
//!    of a location this destination holds (whose bytes hash to the given
//!    SHA-256) at another one without fetching them again; copied again they
//!    are [`Placement::AlreadyThere`]; at a location other bytes hold it is
//!    [`Placement::Occupied`] and the occupant stands.
//! 6. `cleanup_is_idempotent`: [`Destination::remove`] and
//!    [`Destination::discard`] leave no partial behind (neither
//!    [`Destination::priors`] nor [`Destination::all_partials`] lists one of
//!    the job) — of a writer dropped without [`PartialWrite::finish`] (a
//!    crash) as of a finished one — and treat one gone already as removed.
//! 7. `placed_bytes_read_back`: [`Destination::exists`] tells whether an
//!    artifact stands at a location (not before it is placed, and after);
//!    [`Destination::read`] streams exactly the placed bytes.
//! 8. `split_partials_keep_what_is_written`: a destination whose
//!    [`Destination::begin_split`] gives a [`SplitWrite`] (one that gives
//!    `None` passes) keeps bytes written at any offset, in any order, where
//!    they were written ([`SplitWrite::read_at`] reads them back); after a
//!    crash, the next epoch's [`Destination::priors`] lists the split partial
//!    without a validator tag (it is never resumed as a prefix), and a
//!    `begin_split` that resumes it with the written ranges starts with
//!    exactly those bytes; finished whole, it places like any partial.

pub mod local;
mod local_split;

#[cfg(feature = "conformance")]
pub mod conformance;

use std::fmt::Debug;
use std::future::Future;
use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use serde_json::Value;

pub use crate::pipeline::files::Placement;
use crate::pipeline::ResourceError;
use crate::Store;

/// The bytes of a placed artifact, as read back.
pub type ReadStream = BoxStream<'static, io::Result<Bytes>>;

/// Which partial a writer writes: one per job and epoch, tagged with the
/// validator of the version its bytes come from (`None`: no validator, never
/// resumed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartialId {
    /// The job.
    pub job_key: String,
    /// The epoch writing it.
    pub epoch: i64,
    /// Tag of the validator of the bytes (see SPEC §6).
    pub validator_tag: Option<String>,
}

/// A partial an epoch left: what a later epoch may resume or must remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prior {
    /// The job.
    pub job_key: String,
    /// The epoch that wrote it.
    pub epoch: i64,
    /// Tag of the validator of its bytes.
    pub validator_tag: Option<String>,
    /// Bytes kept (a resume starts there).
    pub len: u64,
    /// The destination's own handle of it (a file path, an upload id).
    pub handle: String,
    /// A short name for logs and the ledger's CLEANUP rows.
    pub name: String,
}

/// The ledger as a destination sees it for one job: records made under the
/// job's epoch, fenced by its lease (SPEC §6: an object store records its
/// multipart upload and every finished part here).
#[async_trait]
pub trait PartLog: Send + Sync + Debug {
    /// Records `state` under `key` for this epoch; fails once the lease has
    /// moved on (the epoch is stale).
    async fn record(&self, key: &str, state: Value) -> io::Result<()>;
    /// Every record of the job, `(epoch, state)`, oldest first. A record the
    /// ledger has since superseded (the job was requeued) carries
    /// `"superseded": true` in its state: what it describes may be removed,
    /// never resumed.
    async fn records(&self) -> io::Result<Vec<(i64, Value)>>;
    /// The epoch records are made under.
    fn epoch(&self) -> i64;
    /// Fails when the epoch is known to be stale without asking the ledger
    /// (its lease lost): a writer checks before it places.
    fn check(&self) -> io::Result<()>;
}

/// Where artifacts go. See the [module documentation](self) for the
/// contract every implementation keeps.
#[async_trait]
pub trait Destination: Send + Sync + Debug {
    /// What it is, for messages (`/srv/out`, `s3://bucket/prefix`).
    fn describe(&self) -> String;

    /// The location of the artifact `(work_id, artifact_id)`: the text
    /// recorded as the job's path.
    fn location(&self, work_id: &str, artifact_id: &str) -> String;

    /// Whether `location`, a recorded path, lies in this destination.
    fn holds(&self, location: &str) -> bool;

    /// Fails when the destination cannot take artifacts safely now (not
    /// writable, or it would not refuse to replace).
    async fn probe(&self) -> io::Result<()>;

    /// The partials earlier epochs (before `epoch`) of `job_key` left.
    async fn priors(&self, job_key: &str, epoch: i64, log: &dyn PartLog) -> io::Result<Vec<Prior>>;

    /// Starts the partial `id`. With `resume`, a prior of the same job and
    /// validator tag, it starts with that prior's `len` bytes. `durable`:
    /// the bytes are made durable before they count.
    async fn begin(
        &self,
        id: &PartialId,
        resume: Option<&Prior>,
        log: Arc<dyn PartLog>,
        durable: bool,
    ) -> io::Result<Box<dyn PartialWrite>>;

    /// Starts the partial `id` of a download split over several
    /// connections: `len` bytes written at any offset, in any order. With
    /// `resume`, a split partial of an earlier epoch of the same job and
    /// validator, it starts with the bytes of `written` copied from it.
    /// `None` when this destination cannot write at offsets (the download
    /// then streams over one connection); the default cannot.
    async fn begin_split(
        &self,
        _id: &PartialId,
        _len: u64,
        _resume: Option<(&Prior, &[Range<u64>])>,
        _log: Arc<dyn PartLog>,
    ) -> io::Result<Option<Box<dyn SplitWrite>>> {
        Ok(None)
    }

    /// Removes these partials (a file, an upload); one gone is no error.
    /// `log`, when the caller holds the job's lease, records that they are
    /// gone.
    async fn remove(&self, partials: Vec<Prior>, log: Option<&dyn PartLog>) -> io::Result<()>;

    /// Removes every partial of `job_key` up to `epoch`; `own` is the
    /// handle of this epoch's, when it has one.
    async fn discard(&self, job_key: &str, epoch: i64, own: Option<String>, log: &dyn PartLog) -> io::Result<()>;

    /// Places the artifact at `source` (a location this destination
    /// holds, whose bytes hash to `sha256`) at `location` too, without
    /// fetching its bytes again and never replacing.
    async fn place_copy(&self, source: &str, location: &str, sha256: &str, durable: bool) -> io::Result<Placement>;

    /// Makes `location` share the storage of `first` (the same verified
    /// bytes, placed by this job): true when it now does. The default
    /// cannot.
    async fn share(&self, _first: &str, _location: &str, _durable: bool) -> io::Result<bool> {
        Ok(false)
    }

    /// Whether an artifact stands at `location`.
    async fn exists(&self, location: &str) -> io::Result<bool>;

    /// The bytes at `location`, from the start.
    async fn read(&self, location: &str) -> io::Result<ReadStream>;

    /// What stands at `location`, learnt without reading its bytes where
    /// the destination can (`verify --quick`); `None` when nothing does.
    /// The default reads the bytes to count them.
    async fn stat(&self, location: &str) -> io::Result<Option<Stat>> {
        if !self.exists(location).await? {
            return Ok(None);
        }
        let mut read = self.read(location).await?;
        let mut size = 0u64;
        while let Some(chunk) = futures::TryStreamExt::try_next(&mut read).await? {
            size += chunk.len() as u64;
        }
        Ok(Some(Stat {
            size,
            sha256: None,
            etag: None,
        }))
    }

    /// The entity tag this destination recorded, among one job's
    /// [`PartLog`] `records`, for the object it placed at `location`
    /// (compared with [`Stat::etag`] by `verify --quick`). The default
    /// records none.
    fn placed_etag(&self, _location: &str, _records: &[(i64, Value)]) -> Option<String> {
        None
    }

    /// Aborts the unfinished uploads the ledger's [`PartLog`] records name
    /// that can no longer complete (their job is finished or FAILED, or a
    /// requeue superseded them), for recovery: how many it aborted. The default: a
    /// destination without uploads.
    async fn abort_dead(&self, _store: &dyn Store) -> io::Result<u64> {
        Ok(0)
    }

    /// Every partial in the destination (recovery); those it cannot list
    /// without the ledger are left out.
    async fn all_partials(&self) -> io::Result<Vec<Prior>>;

    /// Removes what [`probe`](Self::probe) left behind in processes that
    /// ended between writing and removing it (recovery). The default: a
    /// destination whose probe leaves nothing.
    async fn sweep_probes(&self) {}

    /// `err`, met writing here, as an error that stops the run (a full
    /// disk), if it is one. The default: none is.
    fn resource_error(&self, _err: &io::Error) -> Option<ResourceError> {
        None
    }
}

/// What [`Destination::stat`] learns of an artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    /// Its length in bytes.
    pub size: u64,
    /// The SHA-256 (hex) the destination stores with it, if it stores one.
    pub sha256: Option<String>,
    /// The destination's entity tag of its bytes, if it has one.
    pub etag: Option<String>,
}

/// A partial being written.
#[async_trait]
pub trait PartialWrite: Send + Debug {
    /// Appends `chunk`.
    async fn push(&mut self, chunk: &[u8]) -> io::Result<()>;
    /// Bytes so far (a resumed prefix included).
    fn len(&self) -> u64;
    /// Whether no byte is in it yet.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The handle [`Prior::handle`] will name this partial by.
    fn handle(&self) -> String;
    /// Writes what is left and returns the whole body's SHA-256 and length;
    /// what arrived is kept for a resume, also on an error.
    async fn finish(self: Box<Self>) -> io::Result<Box<dyn Written>>;
}

/// A partial of a split download, written at offsets: which of its bytes
/// count is the caller's to record (the ledger's split records, SPEC §6).
#[async_trait]
pub trait SplitWrite: Send + Sync + Debug {
    /// The handle [`Prior::handle`] will name this partial by.
    fn handle(&self) -> String;
    /// Writes all of `bytes` at `offset`; gives the buffer back.
    async fn write_at(&self, offset: u64, bytes: Vec<u8>) -> io::Result<Vec<u8>>;
    /// Fills `buf` with the bytes at `offset` (written before); gives it back.
    async fn read_at(&self, offset: u64, buf: Vec<u8>) -> io::Result<Vec<u8>>;
    /// Makes every byte written so far durable.
    async fn sync(&self) -> io::Result<()>;
    /// Every byte of `0..size` is written and they hash to `sha256`: the
    /// partial, ready to place.
    async fn finish(self: Box<Self>, sha256: String, size: u64) -> io::Result<Box<dyn Written>>;
}

/// A partial written to its end, ready to place.
#[async_trait]
pub trait Written: Send + Debug {
    /// SHA-256 (hex) of the bytes.
    fn sha256(&self) -> &str;
    /// Their length.
    fn size(&self) -> u64;
    /// The partial's handle.
    fn handle(&self) -> String;
    /// Places the bytes at `location`, never replacing (contract rule 3);
    /// a stale epoch fails (rule 4).
    async fn place(self: Box<Self>, location: &str, durable: bool) -> io::Result<Placement>;
}

/// Settings of a destination from the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DestinationOptions {
    /// An S3-compatible endpoint (`--s3-endpoint`), over `AWS_ENDPOINT_URL`.
    pub endpoint: Option<String>,
    /// Path-style requests (`--s3-path-style`).
    pub path_style: bool,
}

/// A boxed future returned by destination factories.
pub type OpenDestinationFuture = Pin<Box<dyn Future<Output = io::Result<Arc<dyn Destination>>> + Send>>;

/// Opens a destination from the whole `--out` URL.
pub type OpenDestinationFn = fn(url: String, options: DestinationOptions) -> OpenDestinationFuture;

/// A destination backend, registered with `inventory::submit!`.
#[derive(Debug)]
pub struct DestinationFactory {
    /// Backend name (`object-store`).
    pub name: &'static str,
    /// URL schemes it answers (`s3`).
    pub schemes: &'static [&'static str],
    /// Opens it.
    pub open: OpenDestinationFn,
}

impl DestinationFactory {
    /// A factory for `schemes`.
    pub const fn new(name: &'static str, schemes: &'static [&'static str], open: OpenDestinationFn) -> Self {
        Self { name, schemes, open }
    }
}

inventory::collect!(DestinationFactory);

/// The factory registered for `url`'s scheme; `None` for a bare path (the
/// local folder).
pub fn destination_factory_for(url: &str) -> io::Result<Option<&'static DestinationFactory>> {
    let Some(scheme) = crate::registry::url_scheme(url) else {
        return Ok(None);
    };
    let mut all: Vec<_> = inventory::iter::<DestinationFactory>.into_iter().collect();
    all.sort_by_key(|f| f.name);
    match all
        .iter()
        .find(|f| f.schemes.iter().any(|s| s.eq_ignore_ascii_case(scheme)))
    {
        Some(found) => Ok(Some(*found)),
        None => {
            let known: Vec<_> = all.iter().flat_map(|f| f.schemes.iter().copied()).collect();
            let known = if known.is_empty() {
                "none compiled in; build with `--features s3` for s3://".to_owned()
            } else {
                known.join(", ")
            };
            Err(io::Error::other(format!(
                "--out {url}: no destination for scheme {scheme:?} (known: {known})"
            )))
        }
    }
}

/// Opens the destination a `--out` URL names by its scheme; a bare path is
/// `None` (the caller opens the local folder).
pub async fn open_destination(url: &str, options: DestinationOptions) -> io::Result<Option<Arc<dyn Destination>>> {
    match destination_factory_for(url)? {
        Some(factory) => (factory.open)(url.to_owned(), options).await.map(Some),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_path_is_the_local_folder_and_an_unknown_scheme_is_named() {
        assert!(destination_factory_for("/srv/out").unwrap().is_none());
        assert!(destination_factory_for("out").unwrap().is_none());
        let err = destination_factory_for("nosuch://b/p").unwrap_err().to_string();
        assert!(err.contains("nosuch"), "{err}");
    }
}
