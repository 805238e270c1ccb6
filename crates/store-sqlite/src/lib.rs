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

use std::sync::Arc;

use oncefetch_core::registry::OpenFuture;
use oncefetch_core::{Store, StoreFactory};

pub use options::{SqliteOptions, Synchronous};
pub use store::SqliteStore;

/// The registry's entry point: opens the store a `--db` URL names.
fn open_url(url: String) -> OpenFuture {
    Box::pin(async move { Ok(Arc::new(SqliteStore::open(&url).await?) as Arc<dyn Store>) })
}

oncefetch_core::inventory::submit! {
    StoreFactory::new("sqlite", &["sqlite"], open_url).with_bare_paths()
}
