//! The local folder's partial of a split download: one file in
//! `DIR/.oncefetch/partial/`, named `….split.part`, written at offsets by
//! several connections at once, and placed like any other partial.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;

use super::local::{blocking, LocalWritten};
use super::{PartLog, PartialId, Prior, SplitWrite, Written};
use crate::pipeline::files::{OutDir, PartialName};

/// A split partial file, open to write at offsets.
#[derive(Debug)]
pub(super) struct LocalSplit {
    out: OutDir,
    log: Arc<dyn PartLog>,
    path: PathBuf,
    file: Arc<File>,
}

impl LocalSplit {
    /// Creates the split partial of `id` in `out`; with `resume`, copies
    /// the `written` ranges of the earlier epoch's file into it (this
    /// epoch writes only its own file: a stalled earlier epoch may still
    /// write to its own).
    pub(super) async fn begin(
        out: &OutDir,
        id: &PartialId,
        resume: Option<(&Prior, &[Range<u64>])>,
        log: Arc<dyn PartLog>,
    ) -> io::Result<Self> {
        let name = PartialName {
            job_key: id.job_key.clone(),
            epoch: id.epoch,
            validator_tag: id.validator_tag.clone(),
            split: true,
        }
        .file_name();
        let path = out.partial_dir().join(&name);
        let resume = resume.map(|(prior, written)| (PathBuf::from(&prior.handle), written.to_vec()));
        let folder = out.clone();
        let file = blocking(move || {
            let file = folder.create_partial(&name)?;
            if let Some((source, written)) = resume {
                let source = folder.open_file(&source)?;
                for range in written {
                    copy_range(&source, &file, range)?;
                }
            }
            Ok(file)
        })
        .await?;
        Ok(Self {
            out: out.clone(),
            log,
            path,
            file: Arc::new(file),
        })
    }
}

/// Copies the bytes of `range` from `source` to the same offsets of
/// `target`, in the kernel where it can (`copy_file_range`).
fn copy_range(source: &File, target: &File, range: Range<u64>) -> io::Result<()> {
    let (mut from, mut to) = (range.start, range.start);
    while from < range.end {
        let left = usize::try_from(range.end - from).unwrap_or(usize::MAX);
        let copied = rustix::fs::copy_file_range(source, Some(&mut from), target, Some(&mut to), left)?;
        if copied == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the earlier split partial ends before byte {}", range.end),
            ));
        }
    }
    Ok(())
}

#[async_trait]
impl SplitWrite for LocalSplit {
    fn handle(&self) -> String {
        self.path.to_string_lossy().into_owned()
    }

    async fn write_at(&self, offset: u64, bytes: Vec<u8>) -> io::Result<Vec<u8>> {
        let file = Arc::clone(&self.file);
        blocking(move || file.write_all_at(&bytes, offset).map(|()| bytes)).await
    }

    async fn read_at(&self, offset: u64, mut buf: Vec<u8>) -> io::Result<Vec<u8>> {
        let file = Arc::clone(&self.file);
        blocking(move || file.read_exact_at(&mut buf, offset).map(|()| buf)).await
    }

    async fn sync(&self) -> io::Result<()> {
        let file = Arc::clone(&self.file);
        blocking(move || file.sync_data()).await
    }

    async fn finish(self: Box<Self>, sha256: String, size: u64) -> io::Result<Box<dyn Written>> {
        let Self { out, log, path, file } = *self;
        let len = blocking(move || file.metadata().map(|m| m.len())).await?;
        if len != size {
            return Err(io::Error::other(format!(
                "split partial {} holds {len} bytes, not {size}",
                path.display()
            )));
        }
        Ok(Box::new(LocalWritten::new(out, log, path, sha256, size)))
    }
}
