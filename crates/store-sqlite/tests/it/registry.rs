//! The store registers through core and opens from URLs.

use oncefetch_core::registry::store_factory_for;
use oncefetch_core::{open_store, open_store_with, OpenMode, StoreError};
use oncefetch_store_sqlite::{SqliteOptions, SqliteStore};

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

/// Every file and folder under `dir`.
fn entries(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found: Vec<_> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .collect();
    found.sort();
    found
}

#[tokio::test]
async fn only_a_creating_open_brings_a_missing_ledger_into_being() {
    let root = crate::fresh_db_path();
    let root = root.parent().expect("folder");
    let typo = root.join("ledgr.db");
    let nested = root.join("no-such-folder").join("ledger.db");
    for (url, path) in [
        (format!("sqlite:{}", typo.display()), &typo),
        (format!("sqlite://{}?synchronous=full", typo.display()), &typo),
        (typo.display().to_string(), &typo),
        (format!("sqlite:{}", nested.display()), &nested),
    ] {
        for mode in [OpenMode::Existing, OpenMode::ReadOnly] {
            let err = match open_store_with(&url, mode).await {
                Err(err) => err,
                Ok(_) => panic!("{url} {mode:?} opened a missing ledger"),
            };
            match &err {
                StoreError::NoLedger { location } => assert_eq!(location, &path.display().to_string(), "{url}"),
                other => panic!("{url} {mode:?}: {other:?}"),
            }
            assert_eq!(err.to_string(), format!("no ledger at {}", path.display()));
            assert_eq!(
                entries(root),
                Vec::<std::path::PathBuf>::new(),
                "{url} {mode:?} created a file"
            );
        }
    }
    let created = open_store_with(&format!("sqlite:{}", nested.display()), OpenMode::Create)
        .await
        .expect("a creating open");
    created.close().await.expect("close");
    assert!(nested.is_file());
    for mode in [OpenMode::Existing, OpenMode::ReadOnly] {
        let store = open_store_with(&format!("sqlite:{}", nested.display()), mode)
            .await
            .unwrap_or_else(|e| panic!("{mode:?} opens an existing ledger: {e}"));
        assert_eq!(store.status().await.expect("status").total(), 0);
        store.close().await.expect("close");
    }
}

#[tokio::test]
async fn create_false_refuses_a_missing_file_and_opens_an_existing_one_read_write() {
    let path = crate::fresh_db_path();
    let options = SqliteOptions::new(&path).create(false);
    assert!(!options.creates_missing());
    assert!(!SqliteOptions::new(&path).read_only(true).creates_missing());
    let err = SqliteStore::open_with(options.clone()).await.expect_err("missing");
    assert!(matches!(err, StoreError::NoLedger { .. }), "{err:?}");
    assert!(!path.exists());
    drop(SqliteStore::open(path.to_str().expect("utf-8")).await.expect("create"));
    let store = SqliteStore::open_with(options).await.expect("existing");
    let planned = oncefetch_core::LedgerStore::plan(
        &store,
        &[oncefetch_core::conformance::sample_job("w", "a", "http://h.example/a")],
    )
    .await
    .expect("writes");
    assert_eq!(planned.new, 1);
}
