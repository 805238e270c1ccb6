//! The core conformance kit, run twice.

/// One handle on a fresh file.
mod single_handle {
    use oncefetch_core::conformance::Setup;

    async fn setup() -> Setup {
        Setup::single(crate::fresh_store().await)
    }

    oncefetch_core::store_conformance!(setup);
}

/// Two handles (two connections, two threads) on one fresh file.
mod two_handles {
    use std::sync::Arc;

    use oncefetch_core::conformance::Setup;
    use oncefetch_store_sqlite::SqliteStore;

    async fn setup() -> Setup {
        let path = crate::fresh_db_path();
        let url = format!("sqlite:{}", path.display());
        let a = SqliteStore::open(&url).await.expect("open a");
        let b = SqliteStore::open(&url).await.expect("open b");
        Setup::pair(Arc::new(a), Arc::new(b))
    }

    oncefetch_core::store_conformance!(setup);
}
