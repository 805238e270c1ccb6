//! The store registers through core and opens from URLs.

use oncefetch_core::registry::store_factory_for;
use oncefetch_core::{open_store, StoreError};
use oncefetch_store_sqlite::SqliteStore;

#[test]
fn factory_answers_sqlite_urls_and_bare_paths() {
    // Naming a symbol of the crate keeps its registration linked in.
    let _ = std::any::type_name::<SqliteStore>();
    for url in ["x.db", "sqlite:x.db", "sqlite://x.db", "SQLITE:x.db", "./dir/x.db"] {
        let factory = store_factory_for(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(factory.name, "sqlite", "{url}");
    }
    assert!(oncefetch_core::registry::store_schemes().contains(&"sqlite"));
}

#[tokio::test]
async fn open_store_creates_file_and_parents() {
    let root = crate::fresh_db_path();
    let root = root.parent().expect("folder");
    for (i, url) in [
        format!("sqlite:{}/a/b/one.db", root.display()),
        format!("sqlite://{}/c/two.db?synchronous=full", root.display()),
        format!("{}/d/three.db", root.display()),
    ]
    .iter()
    .enumerate()
    {
        let store = open_store(url).await.unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(store.status().await.expect("status").total(), 0);
        let file = ["a/b/one.db", "c/two.db", "d/three.db"][i];
        assert!(root.join(file).is_file(), "{url} created {file}");
    }
}

#[tokio::test]
async fn unopenable_paths_fail_clearly() {
    let root = crate::fresh_db_path();
    let root = root.parent().expect("folder");
    let blocker = root.join("plain-file");
    std::fs::write(&blocker, b"not a folder").expect("write");
    // Parent is a regular file; the path is a folder; a corrupt file.
    std::fs::create_dir_all(root.join("a-folder.db")).expect("mkdir");
    let corrupt = root.join("corrupt.db");
    std::fs::write(&corrupt, vec![0x5a; 8192]).expect("write");
    for path in [blocker.join("x.db"), root.join("a-folder.db"), corrupt] {
        let url = format!("sqlite:{}", path.display());
        let err = SqliteStore::open(&url).await.expect_err(&url);
        assert!(matches!(err, StoreError::Backend { store: "sqlite", .. }), "{err:?}");
        let message = err.to_string();
        assert!(message.contains("cannot open sqlite database"), "{message}");
        assert!(message.contains(&path.display().to_string()), "{message}");
    }
}

#[tokio::test]
async fn bad_options_are_refused() {
    for url in ["sqlite:x.db?synchronous=sometimes", "sqlite:x.db?journal=delete"] {
        let err = SqliteStore::open(url).await.expect_err(url);
        assert!(err.to_string().contains(url), "{err}");
    }
}
