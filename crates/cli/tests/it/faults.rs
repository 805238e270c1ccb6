use std::path::Path;
use std::time::{Duration, Instant};

use oncefetch_test_server::{content, Fault, TestServer};
use serde_json::json;

use crate::support::*;

const RETRY_FAST: &[&str] = &["--backoff", "50ms", "--max-attempts", "5"];

/// Fetches one artifact served with `faults`; returns (exit code, job, body).
fn fetch_one(faults: Vec<Fault>, extra: &[&str]) -> (Option<i32>, serde_json::Value, Vec<u8>, TestServer, Workspace) {
    let server = TestServer::start();
    let ws = Workspace::new();
    let body = content(42, 200_000);
    server.add("/doc", body.clone());
    for fault in faults {
        server.fault("/doc", fault);
    }
    let manifest = ws.manifest(&[entry(&server, "w", "a", "/doc")]);
    let mut args = RETRY_FAST.to_vec();
    args.extend_from_slice(extra);
    let out = ws.fetch(&manifest, &args);
    let jobs = ws.jobs();
    assert_eq!(jobs.len(), 1, "{}", describe(&out));
    (out.status.code(), jobs[0].clone(), body, server, ws)
}

fn assert_success(code: Option<i32>, job: &serde_json::Value, body: &[u8]) {
    assert_eq!(code, Some(0), "job: {job}");
    assert_eq!(job["state"], "SUCCESS", "{job}");
    assert_eq!(job["sha256"], sha256_hex(body));
    assert_eq!(std::fs::read(job["path"].as_str().unwrap()).unwrap(), body);
}

fn assert_permanent_failure(code: Option<i32>, job: &serde_json::Value, ws: &Workspace, needle: &str) {
    assert_eq!(code, Some(4), "FAILED jobs exit 4: {job}");
    assert_eq!(job["state"], "FAILED");
    assert_eq!(job["path"], serde_json::Value::Null);
    let error = job["last_error"].as_str().unwrap_or_default();
    assert!(error.contains(needle), "last_error {error:?} should mention {needle:?}");
    assert!(!ws.out().join("w").join("a").exists(), "no file at the final path");
    assert!(ws.partial_files().is_empty(), "nothing left in partial/");
}

#[test]
fn server_errors_are_retried_until_success() {
    let (code, job, body, server, _ws) = fetch_one(vec![Fault::Status { status: 503, times: 2 }], &[]);
    assert_success(code, &job, &body);
    assert_eq!(server.path_stats("/doc").gets, 3);
    assert_eq!(job["attempts"], 3, "each GET counts an attempt");
}

#[test]
fn retry_after_is_honoured() {
    let started = Instant::now();
    let (code, job, body, server, _ws) = fetch_one(
        vec![Fault::RetryAfterSecs {
            status: 429,
            secs: 2,
            times: 1,
        }],
        &[],
    );
    assert_success(code, &job, &body);
    assert_eq!(server.path_stats("/doc").gets, 2);
    assert!(started.elapsed() >= Duration::from_secs(2), "waited for Retry-After");
}

#[test]
fn retry_after_as_http_date_is_honoured() {
    let started = Instant::now();
    let (code, job, body, _server, _ws) = fetch_one(
        vec![Fault::RetryAfterDate {
            status: 503,
            secs: 2,
            times: 1,
        }],
        &[],
    );
    assert_success(code, &job, &body);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited for the Retry-After date"
    );
}

#[test]
fn truncated_body_resumes_with_a_range() {
    let (code, job, body, server, _ws) = fetch_one(
        vec![Fault::Truncate {
            after: 100_000,
            times: 1,
        }],
        &[],
    );
    assert_success(code, &job, &body);
    let stats = server.path_stats("/doc");
    assert_eq!(stats.gets, 2);
    assert_eq!(stats.ranged_gets, 1, "the retry resumed with Range + If-Range");
    assert!(
        stats.bytes_served < 250_000,
        "resume did not re-send the prefix: {}",
        stats.bytes_served
    );
}

#[test]
fn changed_validator_restarts_from_zero() {
    let (code, job, _body, server, ws) = fetch_one(
        vec![
            Fault::Truncate {
                after: 50_000,
                times: 1,
            },
            Fault::ChangeAfter { after_gets: 1 },
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{job}");
    assert_eq!(job["state"], "SUCCESS");
    let path = job["path"].as_str().unwrap();
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(job["sha256"], sha256_hex(&bytes), "the file is the new resource, whole");
    assert_eq!(bytes.len(), 200_000);
    assert_ne!(bytes, content(42, 200_000), "the resource changed between requests");
    assert_eq!(server.path_stats("/doc").gets, 2);
    let verify = ws.run(&["verify", "--out", ws.out().to_str().unwrap()]);
    assert_eq!(verify.status.code(), Some(0), "{}", describe(&verify));
}

#[test]
fn ignored_range_restarts_from_zero() {
    let (code, job, body, server, _ws) = fetch_one(
        vec![
            Fault::Truncate {
                after: 80_000,
                times: 1,
            },
            Fault::IgnoreRange,
        ],
        &[],
    );
    assert_success(code, &job, &body);
    assert_eq!(server.path_stats("/doc").gets, 2);
}

#[test]
fn refused_head_is_read_with_get() {
    let (code, job, body, server, _ws) = fetch_one(vec![Fault::RefuseHead { status: 405 }], &[]);
    assert_success(code, &job, &body);
    assert_eq!(server.path_stats("/doc").gets, 1);
}

#[test]
fn not_found_fails_after_one_request() {
    let (code, job, _body, server, ws) = fetch_one(
        vec![Fault::Status {
            status: 404,
            times: 100,
        }],
        &[],
    );
    assert_permanent_failure(code, &job, &ws, "404");
    assert_eq!(server.path_stats("/doc").gets, 1, "permanent failures are not retried");
}

#[test]
fn gone_fails_after_one_request() {
    let (code, job, _body, server, ws) = fetch_one(
        vec![Fault::Status {
            status: 410,
            times: 100,
        }],
        &[],
    );
    assert_permanent_failure(code, &job, &ws, "410");
    assert_eq!(server.path_stats("/doc").gets, 1);
}

#[test]
fn wrong_checksum_fails_without_retry() {
    let server = TestServer::start();
    let ws = Workspace::new();
    server.add("/doc", content(1, 5000));
    let manifest = ws.manifest(&[json!({
        "work_id": "w", "artifact_id": "a", "url": server.url("/doc"), "sha256": "00".repeat(32)
    })]);
    let out = ws.fetch(&manifest, RETRY_FAST);
    let jobs = ws.jobs();
    assert_permanent_failure(out.status.code(), &jobs[0], &ws, "sha256 mismatch");
    assert_eq!(server.path_stats("/doc").gets, 1);
}

#[test]
fn size_cap_fails_without_retry() {
    let (code, job, _body, server, ws) = fetch_one(vec![], &["--max-size", "1000"]);
    assert_permanent_failure(code, &job, &ws, "cap");
    assert_eq!(server.path_stats("/doc").gets, 1);
}

#[test]
fn redirect_to_file_is_refused() {
    let (code, job, _body, server, ws) = fetch_one(
        vec![Fault::RedirectTo {
            location: "file:///etc/passwd".into(),
        }],
        &[],
    );
    assert_permanent_failure(code, &job, &ws, "file");
    assert_eq!(server.path_stats("/doc").gets, 1);
}

#[test]
fn redirect_loop_fails_without_retry() {
    let (code, job, _body, server, ws) = fetch_one(vec![Fault::RedirectLoop], &[]);
    assert_permanent_failure(code, &job, &ws, "redirect");
    assert!(
        server.stats().gets <= 12,
        "one chain of at most 10 redirects: {}",
        server.stats().gets
    );
}

#[test]
fn occupied_final_path_is_left_untouched() {
    let server = TestServer::start();
    let ws = Workspace::new();
    server.add("/doc", content(3, 3000));
    let dest = ws.out().join("w").join("a");
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    std::fs::write(&dest, b"somebody else's file").unwrap();
    let manifest = ws.manifest(&[entry(&server, "w", "a", "/doc")]);
    let out = ws.fetch(&manifest, RETRY_FAST);
    assert_eq!(out.status.code(), Some(4), "{}", describe(&out));
    let job = &ws.jobs()[0];
    assert_eq!(job["state"], "FAILED");
    assert!(
        job["last_error"].as_str().unwrap().contains(dest.to_str().unwrap()),
        "{job}"
    );
    assert_eq!(std::fs::read(&dest).unwrap(), b"somebody else's file");
    assert!(Path::new(&dest).is_file());
}

#[test]
fn retry_requeues_failed_jobs() {
    let (code, job, body, server, ws) = fetch_one(vec![Fault::Status { status: 404, times: 1 }], &[]);
    assert_eq!((code, job["state"].as_str()), (Some(4), Some("FAILED")));
    // A 404 is not retryable: a plain `retry` leaves it, `--permanent` takes it.
    let plain = ws.run(&["retry"]);
    assert!(
        String::from_utf8_lossy(&plain.stdout).contains("requeued 0"),
        "{}",
        describe(&plain)
    );
    let retry = ws.run(&["retry", "--permanent"]);
    assert!(
        String::from_utf8_lossy(&retry.stdout).contains("requeued 1"),
        "{}",
        describe(&retry)
    );
    let out = ws.run(&["run", "--out", ws.out().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_success(Some(0), &ws.jobs()[0], &body);
    assert_eq!(server.path_stats("/doc").gets, 2);
}

/// Requests of any method that reached `/doc`.
fn requests(server: &TestServer) -> u64 {
    let stats = server.path_stats("/doc");
    stats.gets + stats.heads
}

#[test]
fn huge_header_block_fails_without_retry() {
    let (code, job, _body, server, ws) = fetch_one(vec![Fault::HugeHeaders { bytes: 1 << 20 }], &[]);
    assert_permanent_failure(code, &job, &ws, "header");
    assert_eq!(requests(&server), 1, "a header block over the limit is not asked again");
}

#[test]
fn overlong_url_fails_without_retry() {
    let server = TestServer::start();
    let ws = Workspace::new();
    server.add("/doc", content(42, 1000));
    let url = server.url(&format!("/doc?q={}", "a".repeat(100_000)));
    let manifest = ws.manifest(&[json!({ "work_id": "w", "artifact_id": "a", "url": url })]);
    let out = ws.fetch(&manifest, RETRY_FAST);
    let jobs = ws.jobs();
    assert_eq!(jobs.len(), 1, "{}", describe(&out));
    let error = jobs[0]["last_error"].as_str().unwrap_or_default();
    assert!(error.len() < 1000, "the error shortens the URL: {} bytes", error.len());
    assert!(error.contains("URL too long"), "{error}");
    let mut job = jobs[0].clone();
    job["last_error"] = json!(error.chars().take(300).collect::<String>());
    assert_permanent_failure(out.status.code(), &job, &ws, "cannot request");
    assert!(requests(&server) <= 1, "asked {} times", requests(&server));
    let attempts = jobs[0]["attempts"].as_u64().unwrap_or_default();
    assert!(attempts <= 1, "no retry: {} attempts", jobs[0]["attempts"]);
}

/// `gzip.compress(b"hello oncefetch, stored as served\n" * 8, mtime=0)`.
const GZIPPED: &[u8] = &[
    0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0xcb, 0x48, 0xcd, 0xc9, 0xc9, 0x57, 0xc8, 0xcf, 0x4b,
    0x4e, 0x4d, 0x4b, 0x2d, 0x49, 0xce, 0xd0, 0x51, 0x28, 0x2e, 0xc9, 0x2f, 0x4a, 0x4d, 0x51, 0x48, 0x2c, 0x56, 0x28,
    0x4e, 0x2d, 0x2a, 0x4b, 0x4d, 0xe1, 0xca, 0x18, 0x51, 0x2a, 0x00, 0x70, 0xb0, 0xc4, 0x49, 0x10, 0x01, 0x00, 0x00,
];

#[test]
fn unasked_gzip_body_is_stored_as_served() {
    let server = TestServer::start();
    let ws = Workspace::new();
    server.add("/doc.gz", GZIPPED.to_vec());
    server.fault("/doc.gz", Fault::ContentEncoding { value: "gzip".into() });
    let manifest = ws.manifest(&[json!({
        "work_id": "w",
        "artifact_id": "a",
        "url": server.url("/doc.gz"),
        "sha256": sha256_hex(GZIPPED),
        "size": GZIPPED.len(),
    })]);
    let out = ws.fetch(&manifest, RETRY_FAST);
    let jobs = ws.jobs();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(jobs[0]["state"], "SUCCESS", "{}", jobs[0]);
    assert_eq!(
        jobs[0]["sha256"],
        sha256_hex(GZIPPED),
        "the hash of the bytes as served"
    );
    let stored = std::fs::read(jobs[0]["path"].as_str().unwrap()).unwrap();
    assert_eq!(
        stored, GZIPPED,
        "stored still compressed, like curl without --compressed"
    );
}

#[test]
fn redirect_to_a_dead_target_names_the_target() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let target = format!("http://127.0.0.1:{port}/moved");
    let server = TestServer::start();
    let ws = Workspace::new();
    server.fault(
        "/doc",
        Fault::RedirectTo {
            location: target.replace("http://", "http://user:hidden@"),
        },
    );
    let manifest = ws.manifest(&[entry(&server, "w", "a", "/doc")]);
    let out = ws.fetch(&manifest, &["--backoff", "50ms", "--max-attempts", "2"]);
    let jobs = ws.jobs();
    assert_eq!(jobs.len(), 1, "{}", describe(&out));
    assert_eq!(out.status.code(), Some(4), "{}", describe(&out));
    assert_eq!(jobs[0]["state"], "FAILED", "{}", jobs[0]);
    let error = jobs[0]["last_error"].as_str().unwrap_or_default();
    let shown_target = target.replace("http://", "http://user:***@");
    assert!(error.contains(&shown_target), "last_error names the target: {error}");
    assert!(error.contains(&server.url("/doc")), "and the original: {error}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&shown_target), "the log names the target:\n{stderr}");
    assert!(!format!("{error}{stderr}").contains("hidden"), "{error}\n{stderr}");
    assert_eq!(server.path_stats("/doc").gets, 2, "a dead target is retried");
}
