//! Resource errors: the machine's, not the job's. A full disk, an exceeded
//! quota, a read-only filesystem, no file descriptors left, or an output
//! folder that is gone or no longer writable fails every job alike, so
//! retrying each job would only burn its attempts and hammer the servers.
//! The first one stops the run instead: the jobs in hand give their leases
//! (and their attempts) back and keep their partial files for the next run.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use rustix::io::Errno;

use super::files::OutDir;

/// What ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Shortage {
    /// No space left on the device (`ENOSPC`).
    Space,
    /// The user's disk quota is used up (`EDQUOT`).
    Quota,
    /// The filesystem is mounted read-only (`EROFS`).
    ReadOnly,
    /// No file descriptor left, in the process or the system (`EMFILE`,
    /// `ENFILE`).
    FileDescriptors,
    /// The output folder was deleted, moved or unmounted during the run.
    Gone,
    /// The output folder no longer lets this process create files.
    Unwritable,
}

impl Shortage {
    /// What happened, and what is needed before running again.
    fn explain(self) -> (&'static str, &'static str) {
        match self {
            Self::Space => ("no space left on the device", "free some there"),
            Self::Quota => ("the disk quota is exceeded", "free space or raise the quota"),
            Self::ReadOnly => (
                "the filesystem is read-only",
                "remount it read-write or choose another --out",
            ),
            Self::FileDescriptors => (
                "too many open files",
                "raise the limit (ulimit -n) or lower --concurrency",
            ),
            Self::Gone => (
                "the folder is gone (deleted, moved or unmounted during the run)",
                "restore it or choose another --out",
            ),
            Self::Unwritable => ("the folder is not writable", "fix its permissions"),
        }
    }

    /// The shortage an OS error reports, by itself.
    fn of_error(err: &io::Error) -> Option<Self> {
        match err.kind() {
            io::ErrorKind::StorageFull => return Some(Self::Space),
            io::ErrorKind::QuotaExceeded => return Some(Self::Quota),
            io::ErrorKind::ReadOnlyFilesystem => return Some(Self::ReadOnly),
            _ => {}
        }
        let errno = Errno::from_io_error(err)?;
        match errno {
            Errno::NOSPC => Some(Self::Space),
            Errno::DQUOT => Some(Self::Quota),
            Errno::ROFS => Some(Self::ReadOnly),
            Errno::MFILE | Errno::NFILE => Some(Self::FileDescriptors),
            _ => None,
        }
    }
}

/// A resource error that stops the run (exit 1): names the output folder,
/// what ran out and what is needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceError {
    folder: PathBuf,
    shortage: Shortage,
    cause: String,
}

impl ResourceError {
    /// `err`, met writing under `out`, as a resource error, if it is one:
    /// an OS error that says so, or any error once the folder is gone or
    /// refuses new files.
    pub fn of(err: &io::Error, out: &OutDir) -> Option<Self> {
        let shortage = Shortage::of_error(err).or_else(|| {
            if out.is_gone() {
                Some(Shortage::Gone)
            } else if err.kind() == io::ErrorKind::PermissionDenied && out.probe().is_err() {
                Some(Shortage::Unwritable)
            } else {
                None
            }
        })?;
        Some(Self {
            folder: out.root().to_owned(),
            shortage,
            cause: err.to_string(),
        })
    }

    /// The output folder.
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// What ran out.
    pub fn shortage(&self) -> Shortage {
        self.shortage
    }
}

impl fmt::Display for ResourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (what, need) = self.shortage.explain();
        // The partial files went with a folder that is gone.
        let kept = match self.shortage {
            Shortage::Gone => "",
            _ => ", and the partial files are kept and resumed",
        };
        write!(
            f,
            "output folder {}: {what} ({}); {need}, then run again: no job lost an attempt{kept}",
            self.folder.display(),
            self.cause
        )
    }
}

impl std::error::Error for ResourceError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(errno: Errno) -> io::Error {
        io::Error::from_raw_os_error(errno.raw_os_error())
    }

    #[test]
    fn os_errors_name_their_shortage() {
        assert_eq!(Shortage::of_error(&os(Errno::NOSPC)), Some(Shortage::Space));
        assert_eq!(Shortage::of_error(&os(Errno::DQUOT)), Some(Shortage::Quota));
        assert_eq!(Shortage::of_error(&os(Errno::ROFS)), Some(Shortage::ReadOnly));
        assert_eq!(Shortage::of_error(&os(Errno::MFILE)), Some(Shortage::FileDescriptors));
        assert_eq!(Shortage::of_error(&os(Errno::NFILE)), Some(Shortage::FileDescriptors));
        assert_eq!(
            Shortage::of_error(&io::Error::new(io::ErrorKind::StorageFull, "carried over")),
            Some(Shortage::Space),
            "by kind when the OS code was not kept"
        );
        assert_eq!(Shortage::of_error(&os(Errno::IO)), None);
        assert_eq!(Shortage::of_error(&io::Error::other("x")), None);
    }

    #[test]
    fn a_job_error_in_a_usable_folder_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let out = OutDir::create(dir.path()).unwrap();
        assert_eq!(ResourceError::of(&os(Errno::NOENT), &out), None);
        assert_eq!(
            ResourceError::of(&os(Errno::ACCESS), &out),
            None,
            "the folder still takes files"
        );
        let full = ResourceError::of(&os(Errno::NOSPC), &out).unwrap();
        assert_eq!(full.folder(), out.root());
        let message = full.to_string();
        assert!(message.contains(&out.root().display().to_string()), "{message}");
        assert!(message.contains("no space left"), "{message}");
    }

    #[test]
    fn a_deleted_folder_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("out");
        let out = OutDir::create(&root).unwrap();
        std::fs::remove_dir_all(&root).unwrap();
        let gone = ResourceError::of(&os(Errno::NOENT), &out).unwrap();
        assert_eq!(gone.shortage(), Shortage::Gone);
        // Made again under the same name: still not the folder this run opened.
        std::fs::create_dir_all(&root).unwrap();
        assert_eq!(
            ResourceError::of(&os(Errno::NOENT), &out).map(|e| e.shortage()),
            Some(Shortage::Gone)
        );
    }
}
