use std::sync::Arc;

use oncefetch_core::conformance::Setup;
use oncefetch_core::memory::MemoryStore;
use oncefetch_store_postgres::PostgresStore;

use crate::support::{base_url, fresh_url};

/// Two stores (two pools) on one fresh schema. Without a server the clauses
/// run against the reference in-memory store (with a note), as the kit's
/// macro has no way to skip.
async fn setup() -> Setup {
    let Some(base) = base_url() else {
        return Setup::single(Arc::new(MemoryStore::new()));
    };
    let url = fresh_url(&base);
    let store = PostgresStore::open(&url).await.expect("open");
    let other = PostgresStore::open(&url).await.expect("open a second handle");
    Setup::pair(Arc::new(store), Arc::new(other))
}

oncefetch_core::store_conformance!(setup);
