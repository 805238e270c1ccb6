//! Where the database lives and how it is opened: [`SqliteOptions`], parsed
//! from a `--db` URL.

use std::path::{Path, PathBuf};
use std::time::Duration;

use oncefetch_core::{StoreError, StoreResult};

use crate::error::{Invalid, STORE};

/// How hard SQLite syncs the write-ahead log (`PRAGMA synchronous`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Synchronous {
    /// `NORMAL` (the default): a commit is durable against a crash of the
    /// process; a power loss may lose the last transactions, never corrupt
    /// the ledger. URL option `synchronous=normal`.
    #[default]
    Normal,
    /// `FULL`: every commit is synced to disk before it returns, so it
    /// survives power loss too, at the price of one `fsync` per write. URL
    /// option `synchronous=full`.
    Full,
}

impl Synchronous {
    pub(crate) const fn pragma(self) -> &'static str {
        match self {
            Self::Normal => "NORMAL",
            Self::Full => "FULL",
        }
    }
}

/// How to open a SQLite ledger.
///
/// Built from a path with [`SqliteOptions::new`] or from a `--db` URL with
/// [`SqliteOptions::from_url`]:
///
/// - `sqlite:PATH`, `sqlite://PATH` (`sqlite:///abs/path` for an absolute
///   path) or a bare `PATH`; the file and its parent folder are created when
///   missing, unless [`SqliteOptions::create`] is off or the ledger is opened
///   [`read_only`](SqliteOptions::read_only);
/// - options after `?`, joined by `&`: `synchronous=normal|full` (see
///   [`Synchronous`]) and `busy_timeout_ms=N` (how long one attempt waits for
///   another process's lock before the store backs off and tries again;
///   default 30000).
///
/// ```
/// use oncefetch_store_sqlite::{SqliteOptions, Synchronous};
///
/// let options = SqliteOptions::from_url("sqlite:///var/lib/oncefetch/ledger.db?synchronous=full").unwrap();
/// assert_eq!(options.path(), std::path::Path::new("/var/lib/oncefetch/ledger.db"));
/// assert_eq!(options.synchronous_mode(), Synchronous::Full);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteOptions {
    path: PathBuf,
    synchronous: Synchronous,
    busy_timeout: Duration,
    read_only: bool,
    create: bool,
}

impl SqliteOptions {
    /// Options for the database file at `path`, with the defaults.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            synchronous: Synchronous::default(),
            busy_timeout: Duration::from_secs(30),
            read_only: false,
            create: true,
        }
    }

    /// Parses a `--db` URL (see the type docs for the forms and options).
    pub fn from_url(url: &str) -> StoreResult<Self> {
        let rest = strip_scheme(url);
        let (path, query) = match rest.split_once('?') {
            Some((path, query)) if looks_like_options(query) => (path, Some(query)),
            _ => (rest, None),
        };
        if path.is_empty() {
            return Err(invalid(format!("no database path in {url:?}")));
        }
        let mut options = Self::new(path);
        for pair in query.into_iter().flat_map(|q| q.split('&')).filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "synchronous" => {
                    options.synchronous = match value.to_ascii_lowercase().as_str() {
                        "normal" => Synchronous::Normal,
                        "full" => Synchronous::Full,
                        _ => {
                            return Err(invalid(format!(
                                "bad synchronous={value:?} in {url:?}: expected normal or full"
                            )))
                        }
                    }
                }
                "busy_timeout_ms" => {
                    let ms = value.parse::<u64>().map_err(|_| {
                        invalid(format!(
                            "bad busy_timeout_ms={value:?} in {url:?}: expected milliseconds"
                        ))
                    })?;
                    options.busy_timeout = Duration::from_millis(ms);
                }
                _ => {
                    return Err(invalid(format!(
                        "unknown option {key:?} in {url:?}: known options are synchronous, busy_timeout_ms"
                    )))
                }
            }
        }
        Ok(options)
    }

    /// Sets how hard commits are synced.
    #[must_use]
    pub fn synchronous(mut self, mode: Synchronous) -> Self {
        self.synchronous = mode;
        self
    }

    /// Sets how long one attempt waits for another connection's lock
    /// (`PRAGMA busy_timeout`) before backing off and trying again.
    #[must_use]
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// Opens an existing ledger for reading only (`SQLITE_OPEN_READ_ONLY`):
    /// nothing is written, not even a migration, so a ledger on a read-only
    /// mount can be read; a ledger that needs migrating is refused with a
    /// message saying so, and every write fails. A ledger that does not
    /// exist is never created: opening it fails with
    /// [`StoreError::NoLedger`].
    #[must_use]
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Whether the ledger is opened for reading only.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Whether a missing ledger is created, with its parent folder (the
    /// default). When off, opening a file that does not exist fails with
    /// [`StoreError::NoLedger`] naming its absolute path, and nothing is
    /// created: no folder, no database, no `-wal` or `-shm` file; an
    /// existing ledger opens read-write (`SQLITE_OPEN_CREATE` is never
    /// passed). A [`read_only`](Self::read_only) open never creates,
    /// whatever this says.
    #[must_use]
    pub fn create(mut self, create: bool) -> Self {
        self.create = create;
        self
    }

    /// Whether opening may create a missing ledger: [`create`](Self::create)
    /// is on and the open is not [`read_only`](Self::read_only).
    pub fn creates_missing(&self) -> bool {
        self.create && !self.read_only
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The sync mode.
    pub fn synchronous_mode(&self) -> Synchronous {
        self.synchronous
    }

    /// The lock wait of one attempt.
    pub fn busy_timeout_duration(&self) -> Duration {
        self.busy_timeout
    }
}

/// `sqlite://PATH` and `sqlite:PATH` (any case) give PATH; anything else is
/// a bare path.
fn strip_scheme(url: &str) -> &str {
    const SCHEME: &str = "sqlite:";
    match url.get(..SCHEME.len()) {
        Some(head) if head.eq_ignore_ascii_case(SCHEME) => {
            let rest = &url[SCHEME.len()..];
            rest.strip_prefix("//").unwrap_or(rest)
        }
        _ => url,
    }
}

/// A `?` starts options only when what follows is `key=value` pairs, so a
/// file name with a `?` in it still opens.
fn looks_like_options(query: &str) -> bool {
    query.split('&').all(|pair| {
        pair.is_empty()
            || pair
                .split_once('=')
                .is_some_and(|(k, _)| !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
    })
}

fn invalid(message: String) -> StoreError {
    StoreError::backend(STORE, Invalid(message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_forms() {
        for (url, path) in [
            ("sqlite:x.db", "x.db"),
            ("SQLite:x.db", "x.db"),
            ("sqlite://x.db", "x.db"),
            ("sqlite:///abs/x.db", "/abs/x.db"),
            ("sqlite:/abs/x.db", "/abs/x.db"),
            ("dir/x.db", "dir/x.db"),
            ("what?.db", "what?.db"),
        ] {
            let options = SqliteOptions::from_url(url).unwrap();
            assert_eq!(options.path(), Path::new(path), "{url}");
            assert_eq!(options.synchronous_mode(), Synchronous::Normal);
        }
    }

    #[test]
    fn url_options() {
        let options = SqliteOptions::from_url("sqlite:x.db?synchronous=FULL&busy_timeout_ms=5").unwrap();
        assert_eq!(options.synchronous_mode(), Synchronous::Full);
        assert_eq!(options.busy_timeout_duration(), Duration::from_millis(5));
        for bad in [
            "sqlite:x.db?synchronous=off",
            "x.db?cache=shared",
            "sqlite:",
            "sqlite://?synchronous=full",
        ] {
            assert!(SqliteOptions::from_url(bad).is_err(), "{bad}");
        }
    }
}
