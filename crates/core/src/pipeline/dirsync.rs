//! Coalesced directory fsyncs: many jobs placing files in one folder share
//! each `fsync` of it ([`Syncs`]): with 16 jobs placing into one folder, a
//! folder is synced a few times per batch instead of once per file.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use super::coalesce::Syncs;

/// The folders with a sync running or asked for.
static FOLDERS: LazyLock<Syncs<PathBuf>> = LazyLock::new(Syncs::new);

/// Makes every link made in `dir` before this call durable (`fsync` of the
/// folder, shared with concurrent callers).
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    FOLDERS.sync(&dir.to_owned(), || open_folder(dir).and_then(|f| f.sync_all()))
}

/// The folder, opened without following a link at its last component.
fn open_folder(dir: &Path) -> io::Result<File> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    Ok(File::from(rustix::fs::open(dir, flags, Mode::empty())?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_callers_share_syncs_and_all_return() {
        let dir = tempfile::tempdir().expect("tempdir");
        let threads: Vec<_> = (0..16)
            .map(|i| {
                let path = dir.path().to_owned();
                std::thread::spawn(move || {
                    std::fs::write(path.join(format!("f{i}")), b"x").expect("write");
                    sync_dir(&path)
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("thread").expect("synced");
        }
        assert!(!FOLDERS.busy(&dir.path().to_owned()), "an idle folder is forgotten");
    }

    #[test]
    fn a_missing_folder_is_an_error_for_its_caller() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("gone");
        assert!(sync_dir(&missing).is_err());
        assert!(!FOLDERS.busy(&missing));
    }
}
