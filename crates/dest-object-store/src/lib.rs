//! An S3-compatible bucket as an oncefetch [`Destination`]: `--out
//! s3://bucket/prefix` (SPEC §6, "Object storage").
//!
//! - The artifact key is `prefix/<work_id>/<artifact_id>`, each id encoded
//!   as a file name on disk.
//! - A body shorter than one part ([`PART`]) is written with one PUT,
//!   `If-None-Match: *`.
//! - A longer one streams into a multipart upload at a staging key,
//!   `prefix/.oncefetch/partial/<job_key>.<epoch>[.<tag>].part`, while its
//!   SHA-256 is computed; the upload id and every finished part (number,
//!   ETag, size, end offset, the hash state at its end) are recorded in the
//!   ledger under the job's epoch ([`PartLog`]). A later epoch resumes the
//!   upload from its last recorded part, taking up the recorded hash state.
//!   The completed staging object is placed by a server-side copy completed
//!   with `If-None-Match: *` (UploadPartCopy, then CompleteMultipartUpload),
//!   so no byte travels twice and the final key is never replaced; a stale
//!   epoch cannot complete (its ledger record before completing fails).
//! - A duplicate is placed by the same conditional server-side copy.
//! - [`Destination::probe`] refuses a server that ignores conditional
//!   writes, naming it.

mod records;
mod sha;
mod url;

use std::io;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder, S3ConditionalPut, S3CopyIfNotExists};
use object_store::multipart::MultipartStore;
use object_store::path::Path;
use object_store::{Attribute, Attributes, ClientOptions, GetOptions, ObjectStore, PutMode, PutOptions, PutPayload};
use oncefetch_core::destination::{
    Destination, DestinationFactory, DestinationOptions, OpenDestinationFuture, PartLog, PartialId, PartialWrite,
    Placement, Prior, ReadStream, Stat, Written,
};
use oncefetch_core::ledger::OpKind;
use oncefetch_core::pipeline::files::{encode_component, PartialName};
use oncefetch_core::pipeline::stream_records;
use oncefetch_core::{op_key, JobPages, JobQuery, JobState, KeyValue, Store};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use records::{Part, Upload};
use sha::Resumable;
pub use url::BucketUrl;

/// Bytes of every part but the last: S3's smallest (5 MiB), a whole
/// number of SHA-256 blocks.
pub const PART: usize = 5 << 20;

/// Jobs read per page by [`Destination::abort_dead`].
const JOB_PAGE: usize = 10_000;

/// The staging folder under the prefix.
const PARTIAL_DIR: &str = ".oncefetch/partial";

/// The object metadata key that carries an object's SHA-256 (hex), for
/// `verify --quick`.
pub const SHA256_METADATA: &str = "oncefetch-sha256";

/// A bucket (and prefix) artifacts go into.
#[derive(Debug, Clone)]
pub struct ObjectDest {
    store: Arc<AmazonS3>,
    url: BucketUrl,
    /// Where requests go, for messages.
    endpoint: String,
}

fn failed(what: &str, err: object_store::Error) -> io::Error {
    let kind = match err {
        object_store::Error::NotFound { .. } => io::ErrorKind::NotFound,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, format!("{what}: {err}"))
}

fn taken(err: &object_store::Error) -> bool {
    matches!(
        err,
        object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }
    )
}

impl ObjectDest {
    /// Opens `s3://bucket/prefix` with the `AWS_*` environment (credentials,
    /// region, `AWS_ENDPOINT_URL`) and `options`.
    pub fn open(url: &str, options: &DestinationOptions) -> io::Result<Self> {
        let url = BucketUrl::parse(url)?;
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&url.bucket)
            .with_conditional_put(S3ConditionalPut::ETagMatch)
            .with_copy_if_not_exists(S3CopyIfNotExists::Multipart)
            .with_virtual_hosted_style_request(!options.path_style)
            // A server-side copy of a large object takes a while.
            .with_client_options(ClientOptions::new().with_timeout(Duration::from_secs(600)));
        let endpoint = options
            .endpoint
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
            .or_else(|| std::env::var("AWS_ENDPOINT").ok());
        if let Some(endpoint) = &endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        let store = builder
            .build()
            .map_err(|e| io::Error::other(format!("--out {url}: {e}")))?;
        Ok(Self {
            store: Arc::new(store),
            endpoint: endpoint.unwrap_or_else(|| "AWS S3".to_owned()),
            url,
        })
    }

    /// The object store client.
    pub fn store(&self) -> Arc<AmazonS3> {
        Arc::clone(&self.store)
    }

    /// The key of a location this destination holds.
    fn key_of(&self, location: &str) -> io::Result<Path> {
        let key = self
            .url
            .key_of(location)
            .ok_or_else(|| io::Error::other(format!("{location} is not in {}", self.url)))?;
        Path::parse(key).map_err(|e| io::Error::other(format!("{location}: {e}")))
    }

    fn under_prefix(&self, rest: &str) -> io::Result<Path> {
        Path::parse(self.url.join(rest)).map_err(|e| io::Error::other(format!("{}: {e}", self.url)))
    }

    /// The staging key of a partial.
    fn staging(&self, id: &PartialId) -> io::Result<Path> {
        let name = PartialName {
            job_key: id.job_key.clone(),
            epoch: id.epoch,
            validator_tag: id.validator_tag.clone(),
            split: false,
        };
        self.under_prefix(&format!("{PARTIAL_DIR}/{}", name.file_name()))
    }

    /// Whether the object at `key` holds bytes hashing to `sha256`.
    async fn holds_bytes(&self, key: &Path, sha256: &str) -> io::Result<bool> {
        let got = self.store.get(key).await.map_err(|e| failed("read back", e))?;
        let mut stream = got.into_stream();
        let mut hasher = Sha256::new();
        while let Some(chunk) = stream.next().await {
            hasher.update(&chunk.map_err(|e| failed("read back", e))?);
        }
        Ok(hex::encode(hasher.finalize()) == sha256)
    }

    /// What a refused conditional write found at `key`.
    async fn occupant(&self, key: &Path, sha256: &str) -> io::Result<Placement> {
        if self.holds_bytes(key, sha256).await? {
            Ok(Placement::AlreadyThere)
        } else {
            Ok(Placement::Occupied)
        }
    }

    /// Copies `from` to `to` unless `to` exists (a server-side copy).
    async fn copy_new(&self, from: &Path, to: &Path, sha256: &str) -> io::Result<Placement> {
        match self.store.copy_if_not_exists(from, to).await {
            Ok(()) => Ok(Placement::Copied),
            Err(err) if taken(&err) => self.occupant(to, sha256).await,
            Err(err) => Err(failed(&format!("copy {from} to {to}"), err)),
        }
    }

    /// Aborts `upload`; one gone already is no error.
    async fn abort(&self, upload: &Upload) -> io::Result<()> {
        let staging = Path::parse(&upload.staging).map_err(|e| io::Error::other(e.to_string()))?;
        match self.store.abort_multipart(&staging, &upload.id).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(err) => Err(failed(&format!("abort upload {} of {staging}", upload.id), err)),
        }
    }

    /// Deletes `key`; one gone already is no error.
    async fn delete(&self, key: &Path) -> io::Result<()> {
        match self.store.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(err) => Err(failed(&format!("delete {key}"), err)),
        }
    }

    /// The staging objects under the prefix (completed uploads not placed
    /// yet, left by a crash), parsed.
    async fn staged(&self) -> io::Result<Vec<Prior>> {
        let folder = self.under_prefix(PARTIAL_DIR)?;
        let listed: Vec<_> = self
            .store
            .list(Some(&folder))
            .try_collect()
            .await
            .map_err(|e| failed("list partials", e))?;
        Ok(listed
            .into_iter()
            .filter_map(|meta| {
                let name = PartialName::parse(meta.location.filename()?)?;
                Some(Prior {
                    handle: format!("{}{}", records::OBJECT, meta.location),
                    name: name.file_name(),
                    job_key: name.job_key,
                    epoch: name.epoch,
                    validator_tag: name.validator_tag,
                    len: meta.size,
                })
            })
            .collect())
    }

    /// The refusal of a server that ignored a conditional write.
    fn ignores(&self, what: &str) -> io::Error {
        io::Error::other(format!(
            "the object server at {} ignores {what}: it replaced an existing object; \
             oncefetch refuses to write into {} (it could not promise never to overwrite)",
            self.endpoint, self.url
        ))
    }
}

#[async_trait]
impl Destination for ObjectDest {
    fn describe(&self) -> String {
        self.url.to_string()
    }

    fn location(&self, work_id: &str, artifact_id: &str) -> String {
        self.url.location(&format!(
            "{}/{}",
            encode_component(work_id),
            encode_component(artifact_id)
        ))
    }

    fn holds(&self, location: &str) -> bool {
        self.url.key_of(location).is_some()
    }

    /// Writes a probe object twice with `If-None-Match: *` and copies it
    /// twice conditionally: the second of each must be refused.
    async fn probe(&self) -> io::Result<()> {
        let nonce = format!("{}-{:016x}", std::process::id(), rand_u64());
        let first = self.under_prefix(&format!(".oncefetch/probe-{nonce}"))?;
        let second = self.under_prefix(&format!(".oncefetch/probe-{nonce}-copy"))?;
        let create = || PutOptions::from(PutMode::Create);
        let result = async {
            self.store
                .put_opts(&first, PutPayload::from_static(b"first"), create())
                .await
                .map_err(|e| failed(&format!("write a probe object into {}", self.url), e))?;
            match self
                .store
                .put_opts(&first, PutPayload::from_static(b"second"), create())
                .await
            {
                Err(err) if taken(&err) => {}
                Ok(_) => return Err(self.ignores("If-None-Match: * on PUT (conditional writes)")),
                Err(err) => return Err(failed("probe a conditional PUT", err)),
            }
            self.store
                .copy_if_not_exists(&first, &second)
                .await
                .map_err(|e| failed("probe a conditional server-side copy", e))?;
            match self.store.copy_if_not_exists(&second, &first).await {
                Err(err) if taken(&err) => {}
                Ok(()) => {
                    return Err(
                        self.ignores("If-None-Match: * on CompleteMultipartUpload (conditional server-side copies)")
                    )
                }
                Err(err) => return Err(failed("probe a conditional server-side copy", err)),
            }
            Ok(())
        }
        .await;
        let _ = self.delete(&first).await;
        let _ = self.delete(&second).await;
        result
    }

    async fn priors(&self, job_key: &str, epoch: i64, log: &dyn PartLog) -> io::Result<Vec<Prior>> {
        let uploads = records::open_uploads(&log.records().await?);
        let mut priors: Vec<Prior> = uploads
            .into_iter()
            .filter(|u| u.epoch < epoch)
            .map(|u| u.prior(job_key))
            .collect();
        priors.extend(
            self.staged()
                .await?
                .into_iter()
                .filter(|p| p.job_key == job_key && p.epoch < epoch),
        );
        Ok(priors)
    }

    async fn begin(
        &self,
        id: &PartialId,
        resume: Option<&Prior>,
        log: Arc<dyn PartLog>,
        _durable: bool,
    ) -> io::Result<Box<dyn PartialWrite>> {
        let mut writer = ObjectPartial {
            dest: self.clone(),
            staging: self.staging(id)?,
            upload: None,
            parts: Vec::new(),
            hash: Resumable::default(),
            buffer: BytesMut::new(),
            log,
        };
        if let Some(prior) = resume {
            let records = writer.log.records().await?;
            let upload = records::open_uploads(&records)
                .into_iter()
                .find(|u| u.upload.id == prior.handle)
                .ok_or_else(|| io::Error::other(format!("upload {} is no longer recorded", prior.handle)))?;
            let hash = upload
                .hash()
                .ok_or_else(|| io::Error::other(format!("upload {}: no usable hash state recorded", prior.handle)))?;
            if hash.len() != prior.len {
                return Err(io::Error::other(format!(
                    "upload {}: {} bytes recorded, {} expected",
                    prior.handle,
                    hash.len(),
                    prior.len
                )));
            }
            writer.staging = Path::parse(&upload.upload.staging).map_err(|e| io::Error::other(e.to_string()))?;
            writer.parts = upload.parts;
            writer.upload = Some(upload.upload);
            writer.hash = hash;
        }
        Ok(Box::new(writer))
    }

    async fn remove(&self, partials: Vec<Prior>, log: Option<&dyn PartLog>) -> io::Result<()> {
        for partial in partials {
            if let Some(key) = partial.handle.strip_prefix(records::OBJECT) {
                self.delete(&Path::parse(key).map_err(|e| io::Error::other(e.to_string()))?)
                    .await?;
                continue;
            }
            let upload = Upload {
                id: partial.handle.clone(),
                staging: partial.name.clone(),
            };
            self.abort(&upload).await?;
            if let Some(log) = log {
                log.record(&records::closed_key(&upload.id), records::closed(&upload.id))
                    .await?;
            }
        }
        Ok(())
    }

    async fn discard(&self, job_key: &str, epoch: i64, _own: Option<String>, log: &dyn PartLog) -> io::Result<()> {
        for open in records::open_uploads(&log.records().await?) {
            self.abort(&open.upload).await?;
            log.record(&records::closed_key(&open.upload.id), records::closed(&open.upload.id))
                .await?;
        }
        for staged in self.staged().await? {
            if staged.job_key == job_key && staged.epoch <= epoch {
                self.remove(vec![staged], None).await?;
            }
        }
        Ok(())
    }

    async fn place_copy(&self, source: &str, location: &str, sha256: &str, _durable: bool) -> io::Result<Placement> {
        let (from, to) = (self.key_of(source)?, self.key_of(location)?);
        self.copy_new(&from, &to, sha256).await
    }

    async fn exists(&self, location: &str) -> io::Result<bool> {
        let Ok(key) = self.key_of(location) else {
            return Ok(false);
        };
        match self.store.head(&key).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(err) => Err(failed(&format!("look up {location}"), err)),
        }
    }

    async fn read(&self, location: &str) -> io::Result<ReadStream> {
        let key = self.key_of(location)?;
        let got = self
            .store
            .get(&key)
            .await
            .map_err(|e| failed(&format!("read {location}"), e))?;
        let what = location.to_owned();
        Ok(Box::pin(
            got.into_stream().map_err(move |e| failed(&format!("read {what}"), e)),
        ))
    }

    async fn all_partials(&self) -> io::Result<Vec<Prior>> {
        self.staged().await
    }

    /// One HEAD: the object's size, its ETag, and the SHA-256 its
    /// `x-amz-meta-oncefetch-sha256` metadata carries (objects written by
    /// one PUT; an object placed by a server-side copy carries none).
    async fn stat(&self, location: &str) -> io::Result<Option<Stat>> {
        let key = self.key_of(location)?;
        let options = GetOptions {
            head: true,
            ..GetOptions::default()
        };
        let got = match self.store.get_opts(&key, options).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(err) => return Err(failed(&format!("look up {location}"), err)),
        };
        let sha256 = got
            .attributes
            .get(&Attribute::Metadata(SHA256_METADATA.into()))
            .map(|v| v.to_string());
        Ok(Some(Stat {
            size: got.meta.size,
            sha256,
            etag: got.meta.e_tag,
        }))
    }

    fn placed_etag(&self, location: &str, records: &[(i64, Value)]) -> Option<String> {
        records::placed_etag(records, location)
    }

    /// Reads every job's records from the ledger (one query per job).
    async fn abort_dead(&self, store: &dyn Store) -> io::Result<u64> {
        let mut aborted = 0;
        let query = JobQuery {
            limit: JOB_PAGE,
            ..JobQuery::default()
        };
        let mut pages = JobPages::new(store, query);
        while let Some(page) = pages.next().await.map_err(io::Error::other)? {
            for job in &page {
                let records = stream_records(store, &job.job_key).await?;
                for open in records::open_uploads(&records) {
                    // A FAILED job is only run again after `retry`, whose
                    // requeue supersedes its uploads (one with attempts left
                    // aborted its own uploads when it failed).
                    let ended = job.state.is_terminal() || job.state == JobState::Failed;
                    if !(ended || open.superseded) {
                        continue;
                    }
                    self.abort(&open.upload).await?;
                    // Recorded as closed (a recovery row, outside any epoch's
                    // fence), so it is not aborted and counted again.
                    let closed = records::closed_key(&open.upload.id);
                    let op = op_key(
                        OpKind::Stream.as_str(),
                        &job.job_key,
                        &[("destination", KeyValue::Str(&closed)), ("recover", KeyValue::Int(1))],
                    );
                    let state = json!({ "destination": closed, "state": records::closed(&open.upload.id) });
                    store
                        .note(&job.job_key, &op, OpKind::Stream, &state)
                        .await
                        .map_err(io::Error::other)?;
                    aborted += 1;
                }
            }
        }
        Ok(aborted)
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

/// A partial being written: a buffer until one part is full, then a
/// multipart upload at the staging key.
#[derive(Debug)]
struct ObjectPartial {
    dest: ObjectDest,
    staging: Path,
    upload: Option<Upload>,
    /// Parts finished and recorded, in order.
    parts: Vec<Part>,
    /// The hash of the parts' bytes.
    hash: Resumable,
    /// Bytes not in a part yet.
    buffer: BytesMut,
    log: Arc<dyn PartLog>,
}

impl ObjectPartial {
    /// Uploads `bytes` as the next part and records it.
    async fn upload_part(&mut self, bytes: Bytes) -> io::Result<()> {
        let upload = match &self.upload {
            Some(upload) => upload.clone(),
            None => {
                self.log.check()?;
                let id = self
                    .dest
                    .store
                    .create_multipart(&self.staging)
                    .await
                    .map_err(|e| failed(&format!("start an upload to {}", self.staging), e))?;
                let upload = Upload {
                    id,
                    staging: self.staging.to_string(),
                };
                self.log
                    .record(&records::upload_key(&upload.id), upload.state())
                    .await?;
                self.upload = Some(upload.clone());
                upload
            }
        };
        let number = self.parts.len() + 1;
        let size = bytes.len() as u64;
        self.hash.update(&bytes);
        let part = self
            .dest
            .store
            .put_part(&self.staging, &upload.id, number - 1, PutPayload::from(bytes))
            .await
            .map_err(|e| failed(&format!("upload part {number} of {}", self.staging), e))?;
        let part = Part {
            number,
            etag: part.content_id,
            size,
            end: self.hash.len(),
            hash: self.hash.saved(),
        };
        self.log
            .record(&records::part_key(&upload.id, number), part.state(&upload.id))
            .await?;
        self.parts.push(part);
        Ok(())
    }
}

#[async_trait]
impl PartialWrite for ObjectPartial {
    async fn push(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.buffer.extend_from_slice(chunk);
        while self.buffer.len() >= PART {
            let part = self.buffer.split_to(PART).freeze();
            self.upload_part(part).await?;
        }
        Ok(())
    }

    fn len(&self) -> u64 {
        self.hash.len() + self.buffer.len() as u64
    }

    fn handle(&self) -> String {
        self.upload
            .as_ref()
            .map_or_else(|| self.staging.to_string(), |u| u.id.clone())
    }

    async fn finish(self: Box<Self>) -> io::Result<Box<dyn Written>> {
        let mut hash = self.hash.clone();
        hash.update(&self.buffer);
        Ok(Box::new(ObjectWritten {
            size: hash.len(),
            sha256: hash.finish(),
            partial: *self,
        }))
    }
}

/// A body written to its end: the last bytes in memory, the rest in a
/// multipart upload (if it needed one).
#[derive(Debug)]
struct ObjectWritten {
    partial: ObjectPartial,
    sha256: String,
    size: u64,
}

#[async_trait]
impl Written for ObjectWritten {
    fn sha256(&self) -> &str {
        &self.sha256
    }

    fn size(&self) -> u64 {
        self.size
    }

    fn handle(&self) -> String {
        self.partial.handle()
    }

    async fn place(self: Box<Self>, location: &str, _durable: bool) -> io::Result<Placement> {
        let Self {
            mut partial, sha256, ..
        } = *self;
        partial.log.check()?;
        let dest = partial.dest.clone();
        let key = dest.key_of(location)?;
        if partial.upload.is_none() {
            // One PUT, If-None-Match: *.
            let mut attributes = Attributes::new();
            attributes.insert(Attribute::Metadata(SHA256_METADATA.into()), sha256.clone().into());
            let options = PutOptions {
                mode: PutMode::Create,
                attributes,
                ..PutOptions::default()
            };
            let body = partial.buffer.split().freeze();
            return match dest.store.put_opts(&key, PutPayload::from(body), options).await {
                Ok(_) => Ok(Placement::Placed),
                Err(err) if taken(&err) => dest.occupant(&key, &sha256).await,
                Err(err) => Err(failed(&format!("write {location}"), err)),
            };
        }
        if !partial.buffer.is_empty() {
            let last = partial.buffer.split().freeze();
            partial.upload_part(last).await?;
        }
        let upload = partial.upload.clone().expect("an upload was started");
        // The fenced record a stale epoch cannot write: nothing completes
        // after the lease moved on.
        partial
            .log
            .record(
                &records::complete_key(&upload.id),
                json!({ "upload": upload.id, "completing": true }),
            )
            .await?;
        let parts = partial
            .parts
            .iter()
            .map(|p| object_store::multipart::PartId {
                content_id: p.etag.clone(),
            })
            .collect();
        dest.store
            .complete_multipart(&partial.staging, &upload.id, parts)
            .await
            .map_err(|e| failed(&format!("complete the upload to {}", partial.staging), e))?;
        partial
            .log
            .record(&records::closed_key(&upload.id), records::closed(&upload.id))
            .await?;
        let placed = dest.copy_new(&partial.staging, &key, &sha256).await?;
        dest.delete(&partial.staging).await?;
        if matches!(placed, Placement::Copied | Placement::AlreadyThere) {
            // The copy carries no metadata (object_store's conditional copy
            // takes no attributes): the ledger keeps the placed object's
            // ETag for `verify --quick`. Without it (a lost lease, a ledger
            // error) `verify --quick` reads the object back instead.
            if let Ok(meta) = dest.store.head(&key).await {
                if let Some(etag) = meta.e_tag {
                    let record = records::placed(location, &etag, meta.size);
                    if let Err(err) = partial.log.record(&records::placed_key(location), record).await {
                        tracing::warn!(location, error = %err, "the placed object's ETag is not recorded");
                    }
                }
            }
        }
        Ok(placed)
    }
}

/// Opens `s3://…` for the registry.
fn open_s3(url: String, options: DestinationOptions) -> OpenDestinationFuture {
    Box::pin(async move {
        let dest: Arc<dyn Destination> = Arc::new(ObjectDest::open(&url, &options)?);
        Ok(dest)
    })
}

oncefetch_core::inventory::submit! {
    DestinationFactory::new("object-store", &["s3"], open_s3)
}
