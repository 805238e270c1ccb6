use oncefetch_test_server::{content, TestServer};
use serde_json::json;

use crate::support::*;

/// `http://USERINFO@127.0.0.1:PORT/path`.
fn with_userinfo(server: &TestServer, userinfo: &str, path: &str) -> String {
    format!("http://{userinfo}@{}{path}", server.addr())
}

#[test]
fn credentials_in_urls_are_shown_redacted() {
    let server = TestServer::start();
    let ws = Workspace::new();
    server.add("/doc", content(3, 5000));
    let manifest = ws.manifest(&[
        json!({ "work_id": "w1", "artifact_id": "a", "url": with_userinfo(&server, "alice:s3cret", "/doc") }),
        json!({ "work_id": "w2", "artifact_id": "a", "url": with_userinfo(&server, "t0ken", "/doc") }),
        json!({ "work_id": "w3", "artifact_id": "a", "url": with_userinfo(&server, "bob:hunter2", "/missing") }),
    ]);
    let fetched = ws
        .command(&[
            "-v",
            "fetch",
            manifest.to_str().unwrap(),
            "--out",
            ws.out().to_str().unwrap(),
        ])
        .env("ONCEFETCH_LOG", "debug")
        .output()
        .unwrap();
    assert_eq!(fetched.status.code(), Some(4), "{}", describe(&fetched));
    let jobs_out = ws.run(&["jobs", "--json"]);
    let ledger_out = ws.run(&["ledger", "--json"]);
    let status_out = ws.run(&["status"]);
    let mut shown = String::new();
    for output in [&fetched, &jobs_out, &ledger_out, &status_out] {
        shown.push_str(&String::from_utf8_lossy(&output.stdout));
        shown.push_str(&String::from_utf8_lossy(&output.stderr));
    }
    for secret in ["s3cret", "t0ken", "hunter2"] {
        assert!(!shown.contains(secret), "{secret:?} shown:\n{shown}");
    }
    let stderr = String::from_utf8_lossy(&fetched.stderr);
    assert!(
        stderr.contains("bob:***@"),
        "the logs name the URL, redacted:\n{stderr}"
    );

    let jobs = json_lines(&jobs_out);
    let alice = job_of(&jobs, "w1");
    assert_eq!(alice["state"], "SUCCESS", "the credentials are still sent: {alice}");
    assert_eq!(alice["url"], with_userinfo(&server, "alice:***", "/doc"));
    assert_eq!(alice["canonical_url"], with_userinfo(&server, "alice:***", "/doc"));
    assert_eq!(job_of(&jobs, "w2")["url"], with_userinfo(&server, "***", "/doc"));
    let bob = job_of(&jobs, "w3");
    let error = bob["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&with_userinfo(&server, "bob:***", "/missing")),
        "{error}"
    );
    assert_ne!(
        alice["job_key"],
        job_of(&jobs, "w2")["job_key"],
        "the key still hashes the URL as written (SPEC §2)"
    );
}
