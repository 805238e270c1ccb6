#![doc = include_str!("../README.md")]

mod clock;
mod conn;
mod error;
mod lease;
mod ledger;
mod migrate;
mod options;
mod queries;
mod rows;
mod store;
mod tables;
mod watch;

use std::sync::Arc;

use oncefetch_core::registry::OpenFuture;
use oncefetch_core::{OpenMode, Store, StoreFactory};

pub use options::{SqliteOptions, Synchronous};
pub use store::SqliteStore;

/// The registry's entry point: opens the store a `--db` URL names.
fn open_url(url: String) -> OpenFuture {
    Box::pin(async move { Ok(Arc::new(SqliteStore::open(&url).await?) as Arc<dyn Store>) })
}

/// The registry's entry point for every [`OpenMode`]: only
/// [`OpenMode::Create`] creates a missing file ([`SqliteOptions::create`]);
/// [`OpenMode::ReadOnly`] opens with [`SqliteOptions::read_only`].
fn open_url_with_mode(url: String, mode: OpenMode) -> OpenFuture {
    Box::pin(async move {
        let options = SqliteOptions::from_url(&url)?
            .create(mode.creates())
            .read_only(!mode.writes());
        Ok(Arc::new(SqliteStore::open_with(options).await?) as Arc<dyn Store>)
    })
}

oncefetch_core::inventory::submit! {
    StoreFactory::new("sqlite", &["sqlite"], open_url)
        .with_bare_paths()
        .with_modes(open_url_with_mode)
}
