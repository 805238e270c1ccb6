//! Shared file syncs: the bytes of every file written before a call made
//! durable by one `syncfs(2)` of their filesystem, shared with concurrent
//! callers ([`Syncs`]). Sixteen jobs finishing at once cost a few syncs of
//! the filesystem instead of sixteen fsyncs.
//!
//! `syncfs` reports a writeback error of the filesystem once, to one caller,
//! and the file it concerns may be another caller's. So after a failed
//! `syncfs` (or on a system without it) every caller — those the failed sync
//! would have covered and every later one — syncs its own file with `fsync`,
//! which reports that file's own error, for the rest of the process.

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::LazyLock;

use super::coalesce::Syncs;

/// The filesystems (by device) with a sync running or asked for.
static FILESYSTEMS: LazyLock<Syncs<u64>> = LazyLock::new(Syncs::new);

/// Set once a `syncfs` failed: each file is synced on its own from then on.
static PER_FILE: AtomicBool = AtomicBool::new(false);

/// Makes the bytes and size of `file` (written before this call) durable.
pub(crate) fn sync_file(file: &File) -> io::Result<()> {
    if !PER_FILE.load(Ordering::Acquire) {
        let device = rustix::fs::fstat(file)?.st_dev;
        let shared = FILESYSTEMS.sync(&device, || {
            if PER_FILE.load(Ordering::Acquire) {
                return Err(io::Error::other("syncing each file on its own"));
            }
            rustix::fs::syncfs(file).map_err(|errno| {
                if !PER_FILE.swap(true, Ordering::AcqRel) {
                    tracing::warn!("syncfs failed ({errno}); each file is fsynced on its own from now on");
                }
                io::Error::from(errno)
            })
        });
        if shared.is_ok() {
            return Ok(());
        }
    }
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn concurrent_files_are_synced_and_every_caller_returns() {
        let dir = tempfile::tempdir().expect("tempdir");
        let threads: Vec<_> = (0..16)
            .map(|i| {
                let path = dir.path().join(format!("f{i}"));
                std::thread::spawn(move || {
                    let mut file = File::create(&path).expect("create");
                    file.write_all(&[i; 4096]).expect("write");
                    sync_file(&file)
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("thread").expect("synced");
        }
    }
}
