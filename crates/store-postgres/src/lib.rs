#![doc = include_str!("../README.md")]
#![deny(clippy::cast_possible_truncation, clippy::cast_possible_wrap, clippy::cast_sign_loss)]

mod conn;
mod lease;
mod ledger;
mod migrate;
mod options;
mod queries;
mod rows;
mod sql;
mod store;
mod text;
mod watch;

use std::sync::Arc;

use oncefetch_core::registry::OpenFuture;
use oncefetch_core::Store;

pub use options::{PostgresOptions, DEFAULT_CONNECT_TIMEOUT, DEFAULT_POOL_SIZE, DEFAULT_RETRY_WINDOW};
pub use store::PostgresStore;

/// The backend name in errors and in the store registry.
pub const STORE: &str = "postgres";

/// The URL schemes this store answers.
pub const SCHEMES: &[&str] = &["postgres", "postgresql"];

fn open(url: String) -> OpenFuture {
    Box::pin(async move { Ok(Arc::new(PostgresStore::open(&url).await?) as Arc<dyn Store>) })
}

inventory::submit! {
    oncefetch_core::StoreFactory::new(STORE, SCHEMES, open)
}
