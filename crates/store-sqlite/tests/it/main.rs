//! Integration tests of the SQLite store (one test binary, see STYLE.md §8).

// The core conformance kit on one handle, then on two handles of one file.
mod conformance;
// Lookup through the core store registry, URLs and open errors.
mod registry;
// Focused checks of this store beyond the kit: FIFO order, busy URLs at the
// head of the queue, planning in chunks, reopen and migrations, query plans.
mod semantics;
// Four OS processes leasing from one file at once.
mod multiprocess;
// The rules kept in SQL pinned to core's kernel.
mod kernel;

use std::path::PathBuf;
use std::sync::Arc;

use oncefetch_store_sqlite::SqliteStore;

/// A fresh database path in its own folder under cargo's per-target temp
/// folder. The folder is kept (not deleted on drop) so that the store, which
/// outlives the setup function, keeps its WAL and shared-memory files.
pub fn fresh_db_path() -> PathBuf {
    let dir = tempfile::Builder::new()
        .prefix("store-sqlite-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("temp dir");
    dir.keep().join("ledger.db")
}

/// A fresh store on a fresh file.
pub async fn fresh_store() -> Arc<SqliteStore> {
    Arc::new(
        SqliteStore::open(fresh_db_path().to_str().expect("utf-8 path"))
            .await
            .expect("open"),
    )
}
