//! A partial file being written: bytes hashed as they arrive, written in
//! large blocks off the async executor.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Bytes gathered before one write.
const WRITE_BLOCK: usize = 256 << 10;

/// The partial file of one job and epoch.
#[derive(Debug)]
pub(crate) struct Partial {
    path: PathBuf,
    file: Option<File>,
    hasher: Sha256,
    len: u64,
    buf: Vec<u8>,
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| io::Error::other(format!("file task failed: {e}")))?
}

impl Partial {
    /// Creates (or truncates) the partial file at `path`.
    pub(crate) async fn create(path: PathBuf) -> io::Result<Self> {
        let open_path = path.clone();
        let file = blocking(move || {
            OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .read(true)
                .open(open_path)
        })
        .await?;
        Ok(Self {
            path,
            file: Some(file),
            hasher: Sha256::new(),
            len: 0,
            buf: Vec::new(),
        })
    }

    /// Copies the first `len` bytes of an earlier epoch's partial file into
    /// this one (`copy_file_range` where the kernel has it) and hashes them
    /// from the copy.
    pub(crate) async fn copy_prefix_from(&mut self, source: &Path, len: u64) -> io::Result<()> {
        let source = source.to_owned();
        let mut file = self
            .file
            .take()
            .ok_or_else(|| io::Error::other("partial file closed"))?;
        let (file, hasher) = blocking(move || {
            let copied = io::copy(&mut File::open(source)?.take(len), &mut file)?;
            if copied != len {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "earlier partial file shrank",
                ));
            }
            file.rewind()?;
            let mut hasher = Sha256::new();
            let mut block = vec![0u8; WRITE_BLOCK];
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
        self.file = Some(file);
        self.hasher = hasher;
        self.len = len;
        Ok(())
    }

    /// Bytes so far.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Appends a chunk (hashed now, written in blocks).
    pub(crate) async fn push(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.hasher.update(chunk);
        self.len += chunk.len() as u64;
        if self.buf.is_empty() && chunk.len() >= WRITE_BLOCK {
            return self.write_block(chunk.to_vec()).await;
        }
        self.buf.extend_from_slice(chunk);
        if self.buf.len() >= WRITE_BLOCK {
            let block = std::mem::take(&mut self.buf);
            self.write_block(block).await?;
        }
        Ok(())
    }

    async fn write_block(&mut self, block: Vec<u8>) -> io::Result<()> {
        let mut file = self
            .file
            .take()
            .ok_or_else(|| io::Error::other("partial file closed"))?;
        let (file, mut block) = blocking(move || {
            file.write_all(&block)?;
            Ok((file, block))
        })
        .await?;
        self.file = Some(file);
        block.clear();
        if self.buf.capacity() == 0 {
            self.buf = block;
        }
        Ok(())
    }

    /// Writes what is left; returns the path, SHA-256 (hex) and length.
    pub(crate) async fn finish(mut self) -> io::Result<(PathBuf, String, u64)> {
        let rest = std::mem::take(&mut self.buf);
        if !rest.is_empty() {
            self.write_block(rest).await?;
        }
        Ok((self.path, hex::encode(self.hasher.finalize()), self.len))
    }
}
