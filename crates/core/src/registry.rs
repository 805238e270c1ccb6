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

/// A store backend, registered with `inventory::submit!`.
#[derive(Debug)]
pub struct StoreFactory {
    /// Backend name (`sqlite`, `postgres`).
    pub name: &'static str,
    /// URL schemes it answers (`postgres`, `postgresql`).
    pub schemes: &'static [&'static str],
    /// Whether a bare path (no scheme) opens this store.
    pub bare_paths: bool,
    /// Opens the store.
    pub open: OpenStoreFn,
    /// Opens the store for reading only (nothing written, not even a
    /// migration), so read-only commands work on a read-only mount; `None`
    /// when the store has no such mode ([`open_store_read_only`] then uses
    /// [`StoreFactory::open`]).
    pub open_read_only: Option<OpenStoreFn>,
}

impl StoreFactory {
    /// A factory for `schemes`.
    pub const fn new(name: &'static str, schemes: &'static [&'static str], open: OpenStoreFn) -> Self {
        Self {
            name,
            schemes,
            bare_paths: false,
            open,
            open_read_only: None,
        }
    }

    /// Also open for reading only, with `open`.
    pub const fn with_read_only(mut self, open: OpenStoreFn) -> Self {
        self.open_read_only = Some(open);
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

/// Opens the store a `--db` URL names (SPEC §7).
pub async fn open_store(url: &str) -> StoreResult<Arc<dyn Store>> {
    let factory = store_factory_for(url)?;
    (factory.open)(url.to_owned()).await
}

/// Opens the store a `--db` URL names for reading only: with the factory's
/// read-only mode when it has one, otherwise as [`open_store`] does.
pub async fn open_store_read_only(url: &str) -> StoreResult<Arc<dyn Store>> {
    let factory = store_factory_for(url)?;
    (factory.open_read_only.unwrap_or(factory.open))(url.to_owned()).await
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
}
