use std::path::Path;

use oncefetch_test_server::{content, TestServer};
use serde_json::{json, Value};

use crate::support::*;

/// `oncefetch --db sqlite:DB ARGS`.
fn on(db: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_oncefetch"))
        .arg("--db")
        .arg(format!("sqlite:{}", db.display()))
        .args(args)
        .env_remove("ONCEFETCH_DB")
        .output()
        .expect("run oncefetch")
}

fn total(output: &std::process::Output) -> Value {
    json_lines(output)[0]["total"].clone()
}

#[test]
fn the_db_file_alone_holds_every_job_after_a_command() {
    let ws = Workspace::new();
    let lines: Vec<Value> = (0..50)
        .map(|i| json!({ "work_id": format!("w{i}"), "artifact_id": "a", "url": format!("http://127.0.0.1:9/{i}") }))
        .collect();
    let manifest = ws.manifest(&lines);
    let planned = ws.run(&["plan", manifest.to_str().unwrap()]);
    assert_eq!(planned.status.code(), Some(0), "{}", describe(&planned));
    let copy_dir = tempfile::tempdir().unwrap();
    let copy = copy_dir.path().join("copy.db");
    std::fs::copy(ws.path("ledger.db"), &copy).unwrap();
    assert_eq!(
        total(&on(&copy, &["status", "--json"])),
        50,
        "the .db file without its -wal"
    );
}

#[test]
fn read_only_commands_read_a_ledger_on_a_read_only_mount() {
    let Some(mount) = Tmpfs::mount() else {
        return;
    };
    let server = TestServer::start();
    let ws = Workspace::new();
    server.add("/a", content(8, 3000));
    let db = mount.path("ledger.db");
    let manifest = ws.manifest(&[entry(&server, "w", "a", "/a")]);
    let out_dir = ws.out();
    let fetched = on(
        &db,
        &["fetch", manifest.to_str().unwrap(), "--out", out_dir.to_str().unwrap()],
    );
    assert_eq!(fetched.status.code(), Some(0), "{}", describe(&fetched));
    mount.make_read_only();

    assert_eq!(total(&on(&db, &["status", "--json"])), 1);
    let jobs = json_lines(&on(&db, &["jobs", "--json"]));
    assert_eq!(jobs[0]["state"], "SUCCESS");
    let ledger = json_lines(&on(&db, &["ledger", "--json"]));
    assert!(ledger.iter().any(|op| op["kind"] == "FINALIZE"), "{ledger:?}");
    let verified = on(&db, &["verify", "--out", out_dir.to_str().unwrap()]);
    assert_eq!(verified.status.code(), Some(0), "{}", describe(&verified));
    assert!(String::from_utf8_lossy(&verified.stdout).contains("1 ok"));

    let planned = on(&db, &["plan", manifest.to_str().unwrap()]);
    assert_eq!(
        planned.status.code(),
        Some(1),
        "a writing command fails: {}",
        describe(&planned)
    );
}
