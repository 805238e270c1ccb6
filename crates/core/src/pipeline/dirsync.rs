//! Coalesced directory fsyncs: many jobs placing files in one folder share
//! each `fsync` of it.
//!
//! A caller that linked a name into a folder asks [`sync_dir`] to make the
//! link durable. Callers queue per folder: when a sync is already running,
//! they wait for the next one, which starts after their link and so covers
//! it; that one sync answers every caller that asked before it started. With
//! 16 jobs placing into one folder, a folder is synced a few times per batch
//! instead of once per file.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard, PoisonError};

/// Folders with a sync running or asked for (entries go once idle).
static FOLDERS: LazyLock<Mutex<HashMap<PathBuf, Arc<Folder>>>> = LazyLock::new(Mutex::default);

/// Makes every link made in `dir` before this call durable (`fsync` of the
/// folder, shared with concurrent callers).
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    let folder = Arc::clone(lock(&FOLDERS).entry(dir.to_owned()).or_default());
    let synced = folder.sync(dir);
    let mut folders = lock(&FOLDERS);
    // Only the map and this caller hold it: nobody is queued, forget it.
    if Arc::strong_count(&folder) == 2 {
        folders.remove(dir);
    }
    synced
}

/// The folder, opened without following a link at its last component.
fn open_folder(dir: &Path) -> io::Result<File> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    Ok(File::from(rustix::fs::open(dir, flags, Mode::empty())?))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One folder's queue of sync requests.
#[derive(Debug, Default)]
struct Folder {
    state: Mutex<Generations>,
    synced: Condvar,
}

/// Requests are numbered; a sync that starts when `asked` is N covers
/// requests up to N.
#[derive(Debug, Default)]
struct Generations {
    asked: u64,
    covered: u64,
    running: bool,
}

impl Folder {
    fn sync(&self, dir: &Path) -> io::Result<()> {
        let mut state = lock(&self.state);
        state.asked += 1;
        let mine = state.asked;
        loop {
            if state.covered >= mine {
                return Ok(());
            }
            if state.running {
                state = self.synced.wait(state).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            state.running = true;
            let target = state.asked;
            drop(state);
            let result = open_folder(dir).and_then(|f| f.sync_all());
            state = lock(&self.state);
            state.running = false;
            if result.is_ok() {
                state.covered = state.covered.max(target);
            }
            self.synced.notify_all();
            // On failure the waiters stay uncovered: the next one syncs again.
            result?;
        }
    }
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
        assert!(lock(&FOLDERS).get(dir.path()).is_none(), "an idle folder is forgotten");
    }

    #[test]
    fn a_missing_folder_is_an_error_for_its_caller() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("gone");
        assert!(sync_dir(&missing).is_err());
        assert!(lock(&FOLDERS).get(&missing).is_none());
    }
}
