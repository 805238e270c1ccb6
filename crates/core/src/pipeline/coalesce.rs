//! Shared syncs: many callers that each need "everything I wrote before now
//! is durable" share one sync of a folder or a filesystem.
//!
//! Callers queue per key (a folder, a filesystem): when a sync is already
//! running they wait for the next one, which starts after their write and so
//! covers it; that one sync answers every caller that asked before it
//! started. With 16 jobs finishing at once, a key is synced a few times per
//! batch instead of once per file.

use std::collections::HashMap;
use std::hash::Hash;
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

/// The keys with a sync running or asked for (entries go once idle).
#[derive(Debug)]
pub(crate) struct Syncs<K> {
    keys: Mutex<HashMap<K, Arc<Queue>>>,
}

impl<K: Hash + Eq + Clone> Syncs<K> {
    /// No key synced yet.
    pub(crate) fn new() -> Self {
        Self {
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// Runs `sync` for `key` unless a sync of `key` that started after this
    /// call (by another caller) succeeds first; either way, returns once a
    /// sync that started after this call succeeded, or with the error of the
    /// one this caller ran. A failed sync covers nobody: each of its waiters
    /// runs `sync` again in turn (so a `sync` that knows it cannot succeed
    /// fails fast).
    pub(crate) fn sync(&self, key: &K, sync: impl FnMut() -> io::Result<()>) -> io::Result<()> {
        let queue = Arc::clone(lock(&self.keys).entry(key.clone()).or_default());
        let synced = queue.sync(sync);
        let mut keys = lock(&self.keys);
        // Only the map and this caller hold it: nobody is queued, forget it.
        if Arc::strong_count(&queue) == 2 {
            keys.remove(key);
        }
        synced
    }

    /// Whether `key` has a sync running or asked for.
    #[cfg(test)]
    pub(crate) fn busy(&self, key: &K) -> bool {
        lock(&self.keys).contains_key(key)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One key's queue of sync requests.
#[derive(Debug, Default)]
struct Queue {
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

impl Queue {
    fn sync(&self, mut sync: impl FnMut() -> io::Result<()>) -> io::Result<()> {
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
            let result = sync();
            state = lock(&self.state);
            state.running = false;
            if result.is_ok() {
                state.covered = state.covered.max(target);
            }
            self.synced.notify_all();
            result?;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Barrier;

    use super::*;

    #[test]
    fn concurrent_callers_share_syncs_and_all_return() {
        let syncs = Arc::new(Syncs::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let start = Arc::new(Barrier::new(16));
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let (syncs, runs, start) = (Arc::clone(&syncs), Arc::clone(&runs), Arc::clone(&start));
                std::thread::spawn(move || {
                    start.wait();
                    syncs.sync(&"k", || {
                        runs.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        Ok(())
                    })
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("thread").expect("synced");
        }
        let runs = runs.load(Ordering::SeqCst);
        assert!((1..16).contains(&runs), "16 callers shared {runs} syncs");
        assert!(!syncs.busy(&"k"), "an idle key is forgotten");
    }

    #[test]
    fn a_failed_sync_covers_nobody_and_its_error_reaches_its_caller() {
        let syncs = Syncs::new();
        let failed = syncs.sync(&1, || Err(io::Error::other("disk gone")));
        assert_eq!(failed.expect_err("failed").to_string(), "disk gone");
        let mut ran = false;
        syncs
            .sync(&1, || {
                ran = true;
                Ok(())
            })
            .expect("synced");
        assert!(ran, "the next caller syncs again");
        assert!(!syncs.busy(&1));
    }
}
