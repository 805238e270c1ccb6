//! Plugin registries: stores and fetchers register a factory with
//! [`inventory::submit!`], keyed by URL scheme; the CLI opens them by URL.
//!
//! A backend crate registers itself like this (the binary must name the crate,
//! e.g. `use my_store as _;`, or the linker may drop the registration):
//!
//! ```ignore
//! inventory::submit! {
//!     oncefetch_core::StoreFactory::new("mystore", &["mystore"], open_mystore)
//! }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::error::{StoreError, StoreResult};
use crate::fetch::{Fetcher, FetcherConfig};
use crate::store::Store;

/// A boxed future returned by factories.
pub type OpenFuture = Pin<Box<dyn Future<Output = StoreResult<Arc<dyn Store>>> + Send>>;

/// Opens a store from the whole `--db` URL.
pub type OpenStoreFn = fn(url: String) -> OpenFuture;

/// Opens a store from the whole `--db` URL, the way [`OpenMode`] asks.
pub type OpenModeFn = fn(url: String, mode: OpenMode) -> OpenFuture;

/// How a command opens its ledger (SPEC §7): only commands that plan may
/// bring a new ledger into being, so a mistyped `--db` is an error rather
/// than a new, empty ledger.
///
/// A store registered [`StoreFactory::with_modes`] interprets the mode; one
/// without modes opens every mode with [`StoreFactory::open`], which suits a
/// store whose ledgers cannot come into being by opening them (a database
/// server: it exists or the connection fails).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpenMode {
    /// Read and write; a ledger that does not exist yet is created, empty
    /// (`plan`, `fetch`).
    Create,
    /// Read and write a ledger that exists: a missing one is
    /// [`StoreError::NoLedger`], and nothing is created.
    Existing,
    /// Read an existing ledger and write nothing, not even a migration (so a
    /// ledger on a read-only mount can be read): a missing one is
    /// [`StoreError::NoLedger`], and nothing is created.
    ReadOnly,
}

impl OpenMode {
    /// Whether a missing ledger may be created ([`OpenMode::Create`]).
    pub const fn creates(self) -> bool {
        matches!(self, Self::Create)
    }

    /// Whether the store may write (everything but [`OpenMode::ReadOnly`]).
    pub const fn writes(self) -> bool {
        !matches!(self, Self::ReadOnly)
    }
}

/// A store backend, registered with `inventory::submit!`.
#[derive(Debug)]
pub struct StoreFactory {
    /// Backend name (`sqlite`, `postgres`).
    pub name: &'static str,
    /// URL schemes it answers (`postgres`, `postgresql`).
    pub schemes: &'static [&'static str],
    /// Whether a bare path (no scheme) opens this store.
    pub bare_paths: bool,
    /// Opens the store ([`OpenMode::Create`], and every mode when
    /// [`StoreFactory::open_with_mode`] is `None`).
    pub open: OpenStoreFn,
    /// Opens the store the way an [`OpenMode`] asks; `None` when the store
    /// has no modes ([`open_store_with`] then uses [`StoreFactory::open`]).
    pub open_with_mode: Option<OpenModeFn>,
}

impl StoreFactory {
    /// A factory for `schemes`.
    pub const fn new(name: &'static str, schemes: &'static [&'static str], open: OpenStoreFn) -> Self {
        Self {
            name,
            schemes,
            bare_paths: false,
            open,
            open_with_mode: None,
        }
    }

    /// Opens every [`OpenMode`] with `open`, which must honour it: a store
    /// that creates its ledger on opening (a file) must refuse a missing
    /// one with [`StoreError::NoLedger`] unless the mode
    /// [`creates`](OpenMode::creates), and must write nothing unless it
    /// [`writes`](OpenMode::writes).
    pub const fn with_modes(mut self, open: OpenModeFn) -> Self {
        self.open_with_mode = Some(open);
        self
    }

    /// Also open bare paths (only the embedded default should).
    pub const fn with_bare_paths(mut self) -> Self {
        self.bare_paths = true;
        self
    }
}

inventory::collect!(StoreFactory);

/// Builds a fetcher for a run.
pub type OpenFetcherFn = fn(&FetcherConfig) -> Result<Arc<dyn Fetcher>, crate::error::BoxError>;

/// A fetcher backend, registered with `inventory::submit!`.
#[derive(Debug)]
pub struct FetcherFactory {
    /// Backend name (`http`).
    pub name: &'static str,
    /// URL schemes it fetches.
    pub schemes: &'static [&'static str],
    /// Builds the fetcher.
    pub open: OpenFetcherFn,
}

impl FetcherFactory {
    /// A factory for `schemes`.
    pub const fn new(name: &'static str, schemes: &'static [&'static str], open: OpenFetcherFn) -> Self {
        Self { name, schemes, open }
    }
}

inventory::collect!(FetcherFactory);

/// Every registered store factory, sorted by name.
pub fn store_factories() -> Vec<&'static StoreFactory> {
    let mut all: Vec<_> = inventory::iter::<StoreFactory>.into_iter().collect();
    all.sort_by_key(|f| f.name);
    all
}

/// Every registered fetcher factory, sorted by name.
pub fn fetcher_factories() -> Vec<&'static FetcherFactory> {
    let mut all: Vec<_> = inventory::iter::<FetcherFactory>.into_iter().collect();
    all.sort_by_key(|f| f.name);
    all
}

/// Every scheme a compiled-in store answers, sorted.
pub fn store_schemes() -> Vec<&'static str> {
    let mut schemes: Vec<_> = store_factories()
        .into_iter()
        .flat_map(|f| f.schemes.iter().copied())
        .collect();
    schemes.sort_unstable();
    schemes
}

/// The scheme of `url` (`postgres` of `postgres://…`), or `None` for a bare
/// path.
pub fn url_scheme(url: &str) -> Option<&str> {
    let (scheme, _) = url.split_once(':')?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    let valid = first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && scheme.len() > 1; // `C:\…` is a path, not a scheme
    valid.then_some(scheme)
}

/// Finds the factory for a `--db` URL: by scheme, or the bare-path store.
pub fn store_factory_for(url: &str) -> StoreResult<&'static StoreFactory> {
    let factories = store_factories();
    let found = match url_scheme(url) {
        Some(scheme) => factories
            .iter()
            .find(|f| f.schemes.iter().any(|s| s.eq_ignore_ascii_case(scheme))),
        None => factories.iter().find(|f| f.bare_paths),
    };
    found.copied().ok_or_else(|| StoreError::UnknownScheme {
        url: url.to_owned(),
        known: match store_schemes().join(", ") {
            s if s.is_empty() => "(none compiled in)".to_owned(),
            s => s,
        },
    })
}

/// Opens the store a `--db` URL names (SPEC §7), creating a missing ledger
/// ([`OpenMode::Create`]).
pub async fn open_store(url: &str) -> StoreResult<Arc<dyn Store>> {
    open_store_with(url, OpenMode::Create).await
}

/// Opens the store a `--db` URL names for reading only
/// ([`OpenMode::ReadOnly`]: a missing ledger is [`StoreError::NoLedger`]).
pub async fn open_store_read_only(url: &str) -> StoreResult<Arc<dyn Store>> {
    open_store_with(url, OpenMode::ReadOnly).await
}

/// Opens the store a `--db` URL names the way `mode` asks: with the
/// factory's [`StoreFactory::open_with_mode`] when it has one, otherwise
/// with [`StoreFactory::open`].
pub async fn open_store_with(url: &str, mode: OpenMode) -> StoreResult<Arc<dyn Store>> {
    let factory = store_factory_for(url)?;
    match factory.open_with_mode {
        Some(open) => open(url.to_owned(), mode).await,
        None => (factory.open)(url.to_owned()).await,
    }
}

/// Builds the fetcher registered for `scheme`.
pub fn open_fetcher(scheme: &str, config: &FetcherConfig) -> Result<Arc<dyn Fetcher>, crate::error::BoxError> {
    let factory = fetcher_factories()
        .into_iter()
        .find(|f| f.schemes.iter().any(|s| s.eq_ignore_ascii_case(scheme)))
        .ok_or_else(|| format!("no fetcher for scheme {scheme:?}"))?;
    (factory.open)(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_and_bare_paths() {
        assert_eq!(url_scheme("postgres://h/db"), Some("postgres"));
        assert_eq!(url_scheme("sqlite:foo.db"), Some("sqlite"));
        assert_eq!(url_scheme("foo.db"), None);
        assert_eq!(url_scheme("./dir/foo.db"), None);
        assert_eq!(url_scheme("C:\\x.db"), None);
    }

    #[test]
    fn unknown_scheme_lists_known_ones() {
        let err = store_factory_for("nosuch://x").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("nosuch://x"), "{msg}");
        assert!(msg.contains("memory"), "the conformance build registers memory: {msg}");
    }

    #[test]
    fn modes_say_what_they_allow() {
        assert!(OpenMode::Create.creates() && OpenMode::Create.writes());
        assert!(!OpenMode::Existing.creates() && OpenMode::Existing.writes());
        assert!(!OpenMode::ReadOnly.creates() && !OpenMode::ReadOnly.writes());
    }

    #[test]
    fn no_ledger_names_where_it_looked() {
        let err = StoreError::NoLedger {
            location: "/srv/ledgr.db".into(),
        };
        assert_eq!(err.to_string(), "no ledger at /srv/ledgr.db");
        assert!(!err.is_retryable());
    }
}
