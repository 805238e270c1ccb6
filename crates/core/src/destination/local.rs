//! The local folder as a [`Destination`]: partial files in
//! `DIR/.oncefetch/partial/`, placed by `link(2)` (never replacing), a
//! duplicate hard-linked to its original (SPEC §6).

use std::io::{self, Read};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use super::local_split::LocalSplit;
use super::{Destination, PartLog, PartialId, PartialWrite, Placement, Prior, ReadStream, SplitWrite, Stat, Written};
use crate::pipeline::files::{OutDir, PartialName};
use crate::pipeline::stream::Partial;
use crate::pipeline::ResourceError;

/// Bytes read per chunk by [`Destination::read`].
const READ_CHUNK: usize = 1 << 20;

pub(super) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| io::Error::other(format!("file task failed: {e}")))?
}

/// The prior of a partial file. A split partial carries no validator tag
/// here: it holds no prefix to resume (its resume goes by the ledger's
/// split records and its handle).
fn prior(name: PartialName, path: PathBuf, len: u64) -> Prior {
    Prior {
        name: name.file_name(),
        job_key: name.job_key,
        epoch: name.epoch,
        validator_tag: name.validator_tag.filter(|_| !name.split),
        len,
        handle: path.to_string_lossy().into_owned(),
    }
}

/// Removes each of `paths` beneath `out`; one already gone is no error.
fn remove_all(out: &OutDir, paths: impl IntoIterator<Item = impl AsRef<Path>>) -> io::Result<()> {
    for path in paths {
        match out.remove_file(path.as_ref()) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(err),
            _ => {}
        }
    }
    Ok(())
}

impl From<OutDir> for Arc<dyn Destination> {
    fn from(out: OutDir) -> Self {
        Arc::new(out)
    }
}

#[async_trait]
impl Destination for OutDir {
    fn describe(&self) -> String {
        self.root().display().to_string()
    }

    fn location(&self, work_id: &str, artifact_id: &str) -> String {
        self.final_path(work_id, artifact_id).to_string_lossy().into_owned()
    }

    fn holds(&self, location: &str) -> bool {
        Path::new(location).starts_with(self.root())
    }

    async fn probe(&self) -> io::Result<()> {
        let out = self.clone();
        blocking(move || out.probe()).await
    }

    async fn sweep_probes(&self) {
        let out = self.clone();
        // Best effort, as each removal already is: a failed sweep only leaves probes for the next.
        let _ = tokio::task::spawn_blocking(move || out.sweep_write_probes()).await;
    }

    async fn priors(&self, job_key: &str, epoch: i64, _log: &dyn PartLog) -> io::Result<Vec<Prior>> {
        if epoch <= 1 {
            // The first epoch is the only writer so far: no folder scan.
            return Ok(Vec::new());
        }
        let (out, key) = (self.clone(), job_key.to_owned());
        let found = blocking(move || out.partials_of(&key)).await?;
        Ok(found
            .into_iter()
            .filter(|(name, _, _)| name.epoch < epoch)
            .map(|(name, path, len)| prior(name, path, len))
            .collect())
    }

    async fn begin(
        &self,
        id: &PartialId,
        resume: Option<&Prior>,
        log: Arc<dyn PartLog>,
        durable: bool,
    ) -> io::Result<Box<dyn PartialWrite>> {
        let mut partial = Partial::new(self, &id.job_key, id.epoch, id.validator_tag.as_deref());
        partial.write_back_early(durable);
        if let Some(prior) = resume {
            partial.copy_prefix_from(Path::new(&prior.handle), prior.len).await?;
        }
        Ok(Box::new(LocalPartial {
            out: self.clone(),
            partial,
            log,
        }))
    }

    async fn begin_split(
        &self,
        id: &PartialId,
        _len: u64,
        resume: Option<(&Prior, &[Range<u64>])>,
        log: Arc<dyn PartLog>,
    ) -> io::Result<Option<Box<dyn SplitWrite>>> {
        Ok(Some(Box::new(LocalSplit::begin(self, id, resume, log).await?)))
    }

    async fn remove(&self, partials: Vec<Prior>, _log: Option<&dyn PartLog>) -> io::Result<()> {
        let out = self.clone();
        blocking(move || remove_all(&out, partials.iter().map(|p| PathBuf::from(&p.handle)))).await
    }

    async fn discard(&self, job_key: &str, epoch: i64, own: Option<String>, _log: &dyn PartLog) -> io::Result<()> {
        let (out, key) = (self.clone(), job_key.to_owned());
        blocking(move || {
            if epoch <= 1 {
                // The first epoch is the only writer so far: just its own file.
                return remove_all(&out, own);
            }
            let partials = out.partials_of(&key)?;
            remove_all(
                &out,
                partials
                    .into_iter()
                    .filter(|(name, _, _)| name.epoch <= epoch)
                    .map(|(_, path, _)| path),
            )
        })
        .await
    }

    async fn place_copy(&self, source: &str, location: &str, sha256: &str, durable: bool) -> io::Result<Placement> {
        let (out, source, dest, sha) = (
            self.clone(),
            PathBuf::from(source),
            PathBuf::from(location),
            sha256.to_owned(),
        );
        blocking(move || out.place(&source, &dest, &sha, durable)).await
    }

    async fn share(&self, first: &str, location: &str, durable: bool) -> io::Result<bool> {
        let (out, first, dest) = (self.clone(), PathBuf::from(first), PathBuf::from(location));
        blocking(move || out.relink_to_first(&first, &dest, durable)).await
    }

    async fn exists(&self, location: &str) -> io::Result<bool> {
        let path = PathBuf::from(location);
        blocking(move || Ok(std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file()))).await
    }

    /// A file's length from its metadata; a local file has no stored
    /// hash. Something other than a regular file at the path is an error.
    async fn stat(&self, location: &str) -> io::Result<Option<Stat>> {
        let path = PathBuf::from(location);
        blocking(move || match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_file() => Ok(Some(Stat {
                size: meta.len(),
                sha256: None,
                etag: None,
            })),
            Ok(_) => Err(io::Error::other(format!("{} is not a regular file", path.display()))),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err),
        })
        .await
    }

    async fn read(&self, location: &str) -> io::Result<ReadStream> {
        let (out, path) = (self.clone(), PathBuf::from(location));
        let file = blocking(move || out.open_file(&path)).await?;
        let chunks = futures::stream::try_unfold(Some(file), |file| async move {
            let Some(mut file) = file else { return Ok(None) };
            let (file, chunk) = blocking(move || {
                let mut buf = vec![0u8; READ_CHUNK];
                let n = file.read(&mut buf)?;
                buf.truncate(n);
                Ok((file, buf))
            })
            .await?;
            if chunk.is_empty() {
                return Ok(None);
            }
            Ok(Some((Bytes::from(chunk), Some(file))))
        });
        Ok(Box::pin(chunks))
    }

    async fn all_partials(&self) -> io::Result<Vec<Prior>> {
        let out = self.clone();
        let found = blocking(move || out.all_partials()).await?;
        Ok(found
            .into_iter()
            .map(|(name, path)| {
                let len = std::fs::symlink_metadata(&path).map(|m| m.len()).unwrap_or(0);
                prior(name, path, len)
            })
            .collect())
    }

    fn resource_error(&self, err: &io::Error) -> Option<ResourceError> {
        ResourceError::of(err, self)
    }
}

/// A partial file being written.
#[derive(Debug)]
struct LocalPartial {
    out: OutDir,
    partial: Partial,
    log: Arc<dyn PartLog>,
}

#[async_trait]
impl PartialWrite for LocalPartial {
    async fn push(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.partial.push(chunk).await
    }

    fn len(&self) -> u64 {
        self.partial.len()
    }

    fn handle(&self) -> String {
        self.partial.path().to_string_lossy().into_owned()
    }

    async fn finish(self: Box<Self>) -> io::Result<Box<dyn Written>> {
        let (path, sha256, size) = self.partial.finish().await?;
        Ok(Box::new(LocalWritten::new(self.out, self.log, path, sha256, size)))
    }
}

/// A partial file written to its end.
#[derive(Debug)]
pub(super) struct LocalWritten {
    out: OutDir,
    log: Arc<dyn PartLog>,
    path: PathBuf,
    sha256: String,
    size: u64,
}

impl LocalWritten {
    /// The partial file at `path`, `size` bytes hashing to `sha256`.
    pub(super) fn new(out: OutDir, log: Arc<dyn PartLog>, path: PathBuf, sha256: String, size: u64) -> Self {
        Self {
            out,
            log,
            path,
            sha256,
            size,
        }
    }
}

#[async_trait]
impl Written for LocalWritten {
    fn sha256(&self) -> &str {
        &self.sha256
    }

    fn size(&self) -> u64 {
        self.size
    }

    fn handle(&self) -> String {
        self.path.to_string_lossy().into_owned()
    }

    async fn place(self: Box<Self>, location: &str, durable: bool) -> io::Result<Placement> {
        // A stale epoch's bytes are never placed (contract rule 4).
        self.log.check()?;
        let dest = PathBuf::from(location);
        let Self { out, path, sha256, .. } = *self;
        blocking(move || out.place(&path, &dest, &sha256, durable)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destination::conformance::{self, fails, IgnoresStaleness, Overwrites};

    #[tokio::test]
    async fn the_local_folder_keeps_the_destination_contract() {
        let dir = tempfile::tempdir().unwrap();
        let out = OutDir::create(dir.path()).unwrap();
        conformance::run_all(Arc::new(out)).await;
    }

    #[tokio::test]
    async fn the_kit_catches_a_folder_that_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let out = OutDir::create(dir.path()).unwrap();
        // Placing removes whatever stands at the location first.
        let clear: conformance::Clear = Arc::new(|location| {
            Box::pin(async move {
                let _ = std::fs::remove_file(location);
            })
        });
        let overwrites = Arc::new(Overwrites::new(Arc::new(out), clear));
        assert!(fails(conformance::placement_never_replaces(overwrites)).await);
    }

    #[tokio::test]
    async fn the_kit_catches_a_folder_that_places_a_stale_epochs_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let out: Arc<dyn Destination> = Arc::new(OutDir::create(dir.path()).unwrap());
        let blind = Arc::new(IgnoresStaleness(out));
        assert!(fails(conformance::stale_epochs_never_place(blind)).await);
    }
}
