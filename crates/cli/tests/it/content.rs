//! Content checks (SPEC §8): an error page is never stored as an artifact.

use oncefetch_test_server::{Fault, TestServer};
use serde_json::{json, Value};

use crate::support::*;

const HTML: &[u8] = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body>Please log in</body></html>\n";

/// A PDF-looking body of `len` bytes.
fn pdf(len: usize) -> Vec<u8> {
    let mut body = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n".to_vec();
    body.resize(len, b'x');
    body
}

/// A line for `path` expecting `content_type`.
fn expecting(server: &TestServer, work: &str, path: &str, content_type: &str) -> Value {
    json!({ "work_id": work, "artifact_id": "x", "url": server.url(path), "content_type": content_type })
}

/// The job failed without retry after one GET, with nothing at its final
/// path and no partial file, naming both types and the first bytes.
fn assert_rejected(ws: &Workspace, server: &TestServer, path: &str, job: &Value) {
    assert_eq!(job["state"], "FAILED", "{job}");
    let error = job["last_error"].as_str().expect("last_error");
    assert!(
        error.contains(r#"expected application/pdf, got text/html (first bytes "<!DOCTYPE html")"#),
        "{error}"
    );
    assert_eq!(server.path_stats(path).gets, 1, "one GET, no retry");
    assert!(!ws.out().join("w").join("x").exists(), "nothing at the final path");
    assert!(ws.partial_files().is_empty(), "no partial: {:?}", ws.partial_files());
    // Final: a second run does not fetch it again.
    let again = ws.run(&[
        "run",
        "--out",
        ws.out().to_str().unwrap(),
        "--accept",
        "application/pdf",
    ]);
    assert_eq!(again.status.code(), Some(4), "{}", describe(&again));
    assert_eq!(server.path_stats(path).gets, 1, "not retried");
}

#[test]
fn an_html_page_where_a_pdf_was_expected_fails_without_retry() {
    let server = TestServer::start();
    let ws = Workspace::new();
    server.add("/paper.pdf", HTML.to_vec());
    server.fault(
        "/paper.pdf",
        Fault::ContentType {
            value: Some("text/html; charset=utf-8".into()),
        },
    );
    let manifest = ws.manifest(&[expecting(&server, "w", "/paper.pdf", "application/pdf")]);
    let out = ws.fetch(&manifest, FAST);
    assert_eq!(out.status.code(), Some(4), "a FAILED job exits 4: {}", describe(&out));
    let jobs = ws.jobs();
    let job = job_of(&jobs, "w");
    assert_eq!(job["expected_content_type"], "application/pdf", "jobs --json shows it");
    assert_rejected(&ws, &server, "/paper.pdf", job);
}

#[test]
fn accept_sets_the_expectation_of_lines_without_one() {
    let server = TestServer::start();
    let ws = Workspace::new();
    server.add("/paper.pdf", HTML.to_vec());
    server.add("/other.pdf", HTML.to_vec());
    server.fault(
        "/paper.pdf",
        Fault::ContentType {
            value: Some("text/html".into()),
        },
    );
    // Its own expectation wins over --accept.
    let manifest = ws.manifest(&[
        entry(&server, "w", "x", "/paper.pdf"),
        expecting(&server, "w2", "/other.pdf", "text/html"),
    ]);
    let mut args = FAST.to_vec();
    args.extend(["--accept", "Application/PDF"]);
    let out = ws.fetch(&manifest, &args);
    assert_eq!(out.status.code(), Some(4), "{}", describe(&out));
    let jobs = ws.jobs();
    let job = job_of(&jobs, "w");
    assert_eq!(job["expected_content_type"], Value::Null, "--accept is not recorded");
    assert_eq!(job_of(&jobs, "w2")["state"], "SUCCESS", "{}", job_of(&jobs, "w2"));
    assert_rejected(&ws, &server, "/paper.pdf", job);
}

#[test]
fn a_pdf_served_as_octet_stream_or_without_a_type_passes() {
    let server = TestServer::start();
    let ws = Workspace::new();
    let (body, bare) = (pdf(50_000), pdf(300));
    server.add("/a.pdf", body.clone());
    server.add("/b.pdf", bare.clone());
    server.fault("/b.pdf", Fault::ContentType { value: None });
    let manifest = ws.manifest(&[
        expecting(&server, "w", "/a.pdf", "application/pdf"),
        expecting(&server, "w2", "/b.pdf", "application/*"),
    ]);
    let out = ws.fetch(&manifest, FAST);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(std::fs::read(ws.out().join("w").join("x")).unwrap(), body);
    assert_eq!(std::fs::read(ws.out().join("w2").join("x")).unwrap(), bare);
    assert_eq!(job_of(&ws.jobs(), "w2")["expected_content_type"], "application/*");
}

#[test]
fn a_large_wrong_body_is_abandoned_early() {
    let server = TestServer::start();
    let ws = Workspace::new();
    let mut body = HTML.to_vec();
    body.resize(4 << 20, b' ');
    server.add("/big.pdf", body);
    server.fault(
        "/big.pdf",
        Fault::Throttle {
            chunk: 16 << 10,
            delay_ms: 20,
        },
    );
    let manifest = ws.manifest(&[expecting(&server, "w", "/big.pdf", "application/pdf")]);
    let started = std::time::Instant::now();
    let out = ws.fetch(&manifest, FAST);
    assert_eq!(out.status.code(), Some(4), "{}", describe(&out));
    let served = server.path_stats("/big.pdf").bytes_served;
    assert!(
        served < 512 << 10,
        "abandoned on the first bytes: {served} of {} served",
        4 << 20
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(4),
        "did not wait for the rest"
    );
    let jobs = ws.jobs();
    let job = job_of(&jobs, "w");
    let error = job["last_error"].as_str().expect("last_error");
    assert!(error.contains("expected application/pdf, got text/html"), "{error}");
    assert!(!ws.out().join("w").join("x").exists());
    assert!(ws.partial_files().is_empty());
}

#[test]
fn replanning_a_line_with_another_content_type_is_rejected_until_updated() {
    let server = TestServer::start();
    let ws = Workspace::new();
    let first = ws.manifest(&[expecting(&server, "w", "/a.pdf", "application/pdf")]);
    let out = ws.run(&["plan", first.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let other = ws.path("other.jsonl");
    std::fs::write(&other, format!("{}\n", expecting(&server, "w", "/a.pdf", "text/html"))).unwrap();
    let out = ws.run(&["plan", other.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "another type is a rejected line: {}",
        describe(&out)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("already planned with content_type application/pdf; the line declares content_type text/html"),
        "{err}"
    );
    assert_eq!(job_of(&ws.jobs(), "w")["expected_content_type"], "application/pdf");
    let out = ws.run(&["plan", "--update-expected", other.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(job_of(&ws.jobs(), "w")["expected_content_type"], "text/html");
    // A bad type is a rejected line.
    let bad = ws.path("bad.jsonl");
    std::fs::write(&bad, format!("{}\n", expecting(&server, "w3", "/c", "pdf"))).unwrap();
    let out = ws.run(&["plan", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not a media type"),
        "{}",
        describe(&out)
    );
}

#[test]
fn a_duplicate_is_judged_by_the_original_files_first_bytes() {
    let server = TestServer::start();
    let ws = Workspace::new();
    server.add("/page", HTML.to_vec());
    let lines = vec![
        entry(&server, "w1", "x", "/page"),
        // Same canonical URL: linked to w1's file, whose bytes are HTML.
        expecting(&server, "w2", "/page#pdf", "application/pdf"),
        expecting(&server, "w3", "/page#html", "text/html"),
    ];
    let out = ws.fetch(&ws.manifest(&lines), &["--concurrency", "1"]);
    assert_eq!(out.status.code(), Some(4), "{}", describe(&out));
    assert_eq!(server.path_stats("/page").gets, 1, "one URL is downloaded once");
    let jobs = ws.jobs();
    let twin = job_of(&jobs, "w2");
    assert_eq!(twin["state"], "FAILED", "{twin}");
    let error = twin["last_error"].as_str().expect("last_error");
    assert!(error.contains("expected application/pdf, got text/html"), "{error}");
    assert!(
        error.contains(job_of(&jobs, "w1")["job_key"].as_str().unwrap()),
        "{error}"
    );
    assert!(!ws.out().join("w2").join("x").exists());
    assert_eq!(job_of(&jobs, "w3")["state"], "SKIPPED_DUPLICATE");
}
