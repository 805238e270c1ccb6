use oncefetch_test_server::{content, TestServer};
use serde_json::{json, Value};

use crate::support::*;

/// A line of `work` for `path`, declaring `sha256` (and `size`, when given).
fn declaring(server: &TestServer, work: &str, path: &str, sha256: &str, size: Option<usize>) -> Value {
    let mut line = json!({ "work_id": work, "artifact_id": "x", "url": server.url(path), "sha256": sha256 });
    if let Some(size) = size {
        line["size"] = json!(size);
    }
    line
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_duplicate_line_declaring_another_hash_fails_naming_the_original() {
    let server = TestServer::start();
    let ws = Workspace::new();
    let body = content(11, 20_000);
    server.add("/a", body.clone());
    let wrong = sha256_hex(b"some other bytes");
    let lines = vec![
        entry(&server, "w1", "x", "/a"),
        // Same canonical URL as line 1, and a hash its bytes do not have.
        declaring(&server, "w2", "/a#page=2", &wrong, None),
    ];
    let out = ws.fetch(&ws.manifest(&lines), FAST);
    assert_eq!(out.status.code(), Some(4), "a FAILED job exits 4: {}", describe(&out));
    assert_eq!(server.path_stats("/a").gets, 1, "one URL is still downloaded once");
    let jobs = ws.jobs();
    let (original, twin) = (job_of(&jobs, "w1"), job_of(&jobs, "w2"));
    assert_eq!(original["state"], "SUCCESS");
    assert_eq!(twin["state"], "FAILED", "{twin}");
    let error = twin["last_error"].as_str().expect("last_error");
    let original_key = original["job_key"].as_str().unwrap();
    for needle in [original_key, wrong.as_str(), sha256_hex(&body).as_str()] {
        assert!(error.contains(needle), "last_error should name {needle}: {error}");
    }
    assert_eq!(twin["expected_sha256"], wrong.as_str(), "jobs shows the declared hash");
    assert!(twin["path"].is_null(), "{twin}");
    assert!(!ws.out().join("w2").join("x").exists(), "no file for the failed twin");
    // Not retried: a second run changes nothing.
    let again = ws.run(&["run", "--out", ws.out().to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(4), "{}", describe(&again));
    assert_eq!(server.path_stats("/a").gets, 1);
    assert_eq!(job_of(&ws.jobs(), "w2")["attempts"], twin["attempts"]);
}

#[test]
fn a_duplicate_line_declaring_the_right_hash_is_skipped() {
    let server = TestServer::start();
    let ws = Workspace::new();
    let body = content(12, 9_000);
    server.add("/a", body.clone());
    let lines = vec![
        entry(&server, "w1", "x", "/a"),
        declaring(&server, "w2", "/a#page=2", &sha256_hex(&body), Some(body.len())),
    ];
    let out = ws.fetch(&ws.manifest(&lines), FAST);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let jobs = ws.jobs();
    let twin = job_of(&jobs, "w2");
    assert_eq!(twin["state"], "SKIPPED_DUPLICATE", "{twin}");
    assert_eq!(twin["duplicate_of"], job_of(&jobs, "w1")["job_key"]);
    assert_eq!(twin["expected_sha256"], sha256_hex(&body).as_str());
    assert_eq!(twin["expected_size"], body.len());
    assert_eq!(job_of(&jobs, "w1")["expected_sha256"], Value::Null);
    assert_eq!(std::fs::read(ws.out().join("w2").join("x")).unwrap(), body);
}

#[test]
fn replanning_a_line_with_other_expectations_is_rejected() {
    let server = TestServer::start();
    let ws = Workspace::new();
    let body = content(13, 1_000);
    server.add("/a", body.clone());
    server.add("/b", content(14, 1_000));
    let plain = vec![entry(&server, "w1", "x", "/a"), entry(&server, "w2", "x", "/b")];
    let first = ws.run(&["plan", ws.manifest(&plain).to_str().unwrap()]);
    assert_eq!(first.status.code(), Some(0), "{}", describe(&first));
    // The same lines, the second now declaring a hash; a blank line moves it
    // to line 3.
    let text = format!(
        "{}\n\n{}\n",
        plain[0],
        declaring(&server, "w2", "/b", &sha256_hex(&body), None)
    );
    let manifest = ws.path("hashed.jsonl");
    std::fs::write(&manifest, text).unwrap();
    let replan = ws.run(&["plan", manifest.to_str().unwrap()]);
    assert_eq!(
        replan.status.code(),
        Some(3),
        "a rejected line exits 3: {}",
        describe(&replan)
    );
    let err = stderr(&replan);
    assert!(err.contains("line 3: already planned with"), "{err}");
    assert!(err.contains(&sha256_hex(&body)), "the declared hash is named: {err}");
    assert!(!err.contains("line 1"), "{err}");
    assert!(
        stdout(&replan).contains("0 new, 1 already planned, 1 rejected"),
        "{}",
        describe(&replan)
    );
    assert_eq!(
        job_of(&ws.jobs(), "w2")["expected_sha256"],
        Value::Null,
        "nothing recorded"
    );
    // Recorded with --update-expected; then the lines without the hash are
    // no conflict, and the lines with it plan as they are.
    let update = ws.run(&["plan", "--update-expected", manifest.to_str().unwrap()]);
    assert_eq!(update.status.code(), Some(0), "{}", describe(&update));
    assert!(
        stdout(&update).contains("1 expectation updated, 0 jobs requeued"),
        "{}",
        describe(&update)
    );
    assert_eq!(job_of(&ws.jobs(), "w2")["expected_sha256"], sha256_hex(&body).as_str());
    for manifest in [ws.manifest(&plain), manifest] {
        let again = ws.run(&["plan", manifest.to_str().unwrap()]);
        assert_eq!(again.status.code(), Some(0), "{}", describe(&again));
        assert!(stdout(&again).contains("0 new, 2 already planned, 0 rejected"));
    }
}

#[test]
fn update_expected_requeues_a_finished_job_whose_bytes_no_longer_match() {
    let server = TestServer::start();
    let ws = Workspace::new();
    let (a, b) = (content(15, 3_000), content(16, 4_000));
    server.add("/a", a.clone());
    server.add("/b", b.clone());
    let plain = vec![entry(&server, "w1", "x", "/a"), entry(&server, "w2", "x", "/b")];
    let first = ws.fetch(&ws.manifest(&plain), FAST);
    assert_eq!(first.status.code(), Some(0), "{}", describe(&first));
    // w1 declares the hash it has; w2 one its bytes do not have.
    let wrong = sha256_hex(b"not b");
    let lines = vec![
        declaring(&server, "w1", "/a", &sha256_hex(&a), Some(a.len())),
        declaring(&server, "w2", "/b", &wrong, None),
    ];
    let manifest = ws.manifest(&lines);
    let update = ws.run(&["plan", "--update-expected", manifest.to_str().unwrap()]);
    assert_eq!(update.status.code(), Some(0), "{}", describe(&update));
    assert!(
        stdout(&update).contains("2 expectations updated, 1 job requeued"),
        "{}",
        describe(&update)
    );
    let jobs = ws.jobs();
    let (w1, w2) = (job_of(&jobs, "w1"), job_of(&jobs, "w2"));
    assert_eq!(
        (&w1["state"], &w1["expected_sha256"], &w1["expected_size"]),
        (&json!("SUCCESS"), &json!(sha256_hex(&a)), &json!(a.len()))
    );
    assert_eq!(
        (&w2["state"], &w2["expected_sha256"]),
        (&json!("PLANNED"), &json!(wrong))
    );
    let requeue = ws
        .ledger()
        .into_iter()
        .find(|r| r["kind"] == "REQUEUE" && r["job_key"] == w2["job_key"])
        .expect("a REQUEUE row for w2");
    assert!(
        requeue["result"]["reason"].as_str().unwrap().contains(&wrong),
        "{requeue}"
    );
    // The next run downloads w2 again and fails it per the new hash.
    let out = ws.out();
    let run = ws.run(&["run", "--out", out.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(4), "{}", describe(&run));
    assert_eq!(server.path_stats("/b").gets, 2, "w2 was downloaded again");
    assert_eq!(server.path_stats("/a").gets, 1, "w1 was not");
    let w2 = job_of(&ws.jobs(), "w2").clone();
    assert_eq!(w2["state"], "FAILED");
    assert!(w2["last_error"].as_str().unwrap().contains("sha256 mismatch"), "{w2}");
    // The right hash: recorded on the FAILED job, which `retry` sends on to
    // SUCCESS (its file, the same bytes, already in place). A mismatch is a
    // permanent failure, so `retry` takes it with `--permanent`.
    let fixed = ws.manifest(&[declaring(&server, "w2", "/b", &sha256_hex(&b), None)]);
    let update = ws.run(&["plan", "--update-expected", fixed.to_str().unwrap()]);
    assert!(
        stdout(&update).contains("1 expectation updated, 0 jobs requeued"),
        "{}",
        describe(&update)
    );
    assert_eq!(ws.run(&["retry", "--permanent"]).status.code(), Some(0));
    let run = ws.run(&["run", "--out", out.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(0), "{}", describe(&run));
    let w2 = job_of(&ws.jobs(), "w2").clone();
    assert_eq!(
        (&w2["state"], &w2["sha256"]),
        (&json!("SUCCESS"), &json!(sha256_hex(&b)))
    );
}
