use std::os::unix::fs::MetadataExt;

use oncefetch_test_server::{content, TestServer};
use serde_json::json;

use crate::support::*;

#[test]
fn fetches_every_artifact_once_and_refetch_makes_no_requests() {
    let server = TestServer::start();
    let ws = Workspace::new();
    let mut lines = Vec::new();
    let mut bodies = Vec::new();
    for i in 0..30u64 {
        let body = content(i, 1000 + (i as usize) * 3000);
        server.add(&format!("/f{i}"), body.clone());
        lines.push(entry(&server, &format!("w{i}"), "pdf", &format!("/f{i}")));
        bodies.push(body);
    }
    let manifest = ws.manifest(&lines);
    let first = ws.fetch(&manifest, FAST);
    assert_eq!(first.status.code(), Some(0), "{}", describe(&first));
    assert_eq!(server.stats().gets, 30, "one GET per artifact");
    assert_eq!(server.stats().heads, 0, "metadata comes from the GET's headers");
    let jobs = ws.jobs();
    assert_eq!(jobs.len(), 30);
    for (i, body) in bodies.iter().enumerate() {
        let job = job_of(&jobs, &format!("w{i}"));
        assert_eq!(job["state"], "SUCCESS");
        assert_eq!(job["sha256"], sha256_hex(body));
        let path = job["path"].as_str().unwrap();
        assert!(std::path::Path::new(path).is_absolute());
        assert_eq!(std::fs::read(path).unwrap(), *body);
        assert_eq!(
            ws.out().join(format!("w{i}")).join("pdf").canonicalize().unwrap(),
            std::path::Path::new(path)
        );
    }
    assert!(ws.partial_files().is_empty(), "no partial file remains");
    // Every job passed every state: one OK row of each op kind.
    let ledger = ws.ledger();
    for kind in ["HEAD", "STREAM", "FINALIZE", "INDEX", "DEDUPE"] {
        let ok = ledger
            .iter()
            .filter(|r| r["kind"] == kind && r["result_code"] == "OK")
            .count();
        assert_eq!(ok, 30, "{kind} rows");
    }
    server.reset_stats();
    let again = ws.fetch(&manifest, FAST);
    assert_eq!(again.status.code(), Some(0), "{}", describe(&again));
    assert!(String::from_utf8_lossy(&again.stdout).contains("0 new, 30 already planned"));
    assert_eq!(server.stats().gets, 0, "a finished manifest makes zero GET requests");
    let status: serde_json::Value = serde_json::from_slice(&ws.run(&["status", "--json"]).stdout).unwrap();
    assert_eq!(status["total"], 30);
    assert_eq!(status["states"]["SUCCESS"], 30);
    assert_eq!(status["states"].as_object().unwrap().len(), 11, "every state present");
    let verify = ws.run(&["verify", "--out", ws.out().to_str().unwrap()]);
    assert_eq!(verify.status.code(), Some(0), "{}", describe(&verify));
}

#[test]
fn duplicate_content_shares_one_inode_and_duplicate_urls_are_skipped() {
    let server = TestServer::start();
    let ws = Workspace::new();
    let body = content(7, 50_000);
    server.add("/a", body.clone());
    server.add("/b", body.clone());
    let lines = vec![
        entry(&server, "w1", "x", "/a"),
        entry(&server, "w2", "x", "/b"),
        // Same canonical URL as /a: downloaded once.
        json!({ "work_id": "w3", "artifact_id": "x", "url": server.url("/a#page=2") }),
    ];
    let manifest = ws.manifest(&lines);
    let out = ws.fetch(&manifest, FAST);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(server.path_stats("/a").gets, 1, "one URL is downloaded once");
    let jobs = ws.jobs();
    let (j1, j2, j3) = (job_of(&jobs, "w1"), job_of(&jobs, "w2"), job_of(&jobs, "w3"));
    let inode = |j: &serde_json::Value| std::fs::metadata(j["path"].as_str().unwrap()).unwrap().ino();
    assert_eq!(inode(j1), inode(j2), "identical content is stored once");
    let skipped = [j1, j3]
        .into_iter()
        .find(|j| j["state"] == "SKIPPED_DUPLICATE")
        .expect("one duplicate skipped");
    let original = [j1, j3]
        .into_iter()
        .find(|j| j["state"] == "SUCCESS")
        .expect("one original");
    assert_eq!(skipped["duplicate_of"], original["job_key"]);
    assert_eq!(inode(skipped), inode(original), "the duplicate is a hard link");
    assert!(skipped["path"]
        .as_str()
        .unwrap()
        .ends_with(&format!("{}/x", skipped["work_id"].as_str().unwrap())));
}

#[test]
fn unsafe_ids_stay_inside_the_output_folder() {
    let server = TestServer::start();
    let ws = Workspace::new();
    server.add("/p", content(1, 100));
    server.add("/q", content(2, 100));
    server.add("/r", content(3, 100));
    let lines = vec![
        json!({ "work_id": "..", "artifact_id": "../../escape", "url": server.url("/p") }),
        json!({ "work_id": "/abs", "artifact_id": ".", "url": server.url("/q") }),
        json!({ "work_id": "tab\tand\u{0}nul", "artifact_id": "ü".repeat(120), "url": server.url("/r") }),
    ];
    let manifest = ws.manifest(&lines);
    let out = ws.fetch(&manifest, FAST);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let root = ws.out().canonicalize().unwrap();
    for job in ws.jobs() {
        let path = std::path::PathBuf::from(job["path"].as_str().unwrap());
        assert!(path.starts_with(&root), "{} escaped {}", path.display(), root.display());
        assert_eq!(path.parent().unwrap().parent().unwrap(), root, "exactly two components");
        assert!(path.is_file());
    }
    assert!(root.join("%2E.").join("%2E.%2F..%2Fescape").is_file());
    assert!(root.join("%2Fabs").join("%2E").is_file());
    assert!(!ws.dir.path().join("escape").exists());
}

#[test]
fn downloads_stay_within_the_per_host_and_run_bounds() {
    let server = TestServer::start();
    let ws = Workspace::new();
    let paths: Vec<String> = (0..12).map(|i| format!("/slow{i}")).collect();
    for (i, path) in paths.iter().enumerate() {
        server.add(path, content(i as u64 + 50, 8000));
        // 8 chunks 25 ms apart: each body takes about 200 ms to send.
        server.fault(
            path,
            oncefetch_test_server::Fault::Throttle {
                chunk: 1000,
                delay_ms: 25,
            },
        );
    }
    let lines: Vec<_> = paths
        .iter()
        .enumerate()
        .map(|(i, path)| entry(&server, &format!("w{i}"), "a", path))
        .collect();
    let manifest = ws.manifest(&lines);
    let run = ws.fetch(&manifest, &["--concurrency", "8", "--per-host", "3"]);
    assert_eq!(run.status.code(), Some(0), "{}", describe(&run));
    let stats = server.stats();
    assert_eq!(stats.gets, 12, "one GET per file");
    assert_eq!(
        stats.peak_bodies, 3,
        "--per-host 3 bounds one host's downloads, and they overlap"
    );
    server.reset_stats();
    let ws = Workspace::new();
    let run = ws.fetch(&manifest, &["--concurrency", "2", "--per-host", "8"]);
    assert_eq!(run.status.code(), Some(0), "{}", describe(&run));
    assert_eq!(
        server.stats().peak_bodies,
        2,
        "--concurrency 2 bounds the run's downloads"
    );
}
