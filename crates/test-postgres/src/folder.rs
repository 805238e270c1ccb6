//! The temporary folder of a server, removed with its contents on drop.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// Folders tried before giving up (leftovers of earlier processes with this
/// pid may hold the first names).
const ATTEMPTS: u32 = 100;

/// Numbers the folders of this process.
static NEXT: AtomicU32 = AtomicU32::new(0);

/// `oncefetch-pg-LABEL-PID-N` under the system temporary folder.
#[derive(Debug)]
pub(crate) struct Folder {
    path: PathBuf,
}

impl Folder {
    /// Creates a folder named after `label`, this process and a number of its own.
    pub(crate) fn create(label: &str) -> io::Result<Self> {
        let base = std::env::temp_dir();
        for _ in 0..ATTEMPTS {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let path = base.join(format!("oncefetch-pg-{label}-{}-{n}", std::process::id()));
            match fs::create_dir(&path) {
                Ok(()) => return Ok(Self { path }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(annotate(e, &path)),
            }
        }
        Err(io::Error::other(format!(
            "could not create a folder in {} after {ATTEMPTS} attempts",
            base.display()
        )))
    }

    /// Where it is.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Folder {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_dir_all(&self.path) {
            eprintln!("warning: could not remove {}: {e}", self.path.display());
        }
    }
}

/// `e` with the path it is about.
pub(crate) fn annotate(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}
