//! `--robots respect|ignore` (SPEC §7, §8): each host's robots.txt fetched
//! once per run, disallowed jobs failed without a request or a retry.

use oncefetch_test_server::{content, Fault, TestServer};

use crate::support::*;

const ROBOTS: &str = "User-agent: *\nDisallow: /private/\nAllow: /private/open\n\nUser-agent: otherbot\nDisallow: /\n";

/// A server holding `paths`, each a small artifact, and its manifest (work
/// ids `w0`, `w1`, … in the order of `paths`).
fn serve(server: &TestServer, ws: &Workspace, paths: &[&str]) -> std::path::PathBuf {
    let lines: Vec<_> = paths
        .iter()
        .enumerate()
        .map(|(i, path)| {
            server.add(path, content(i as u64 + 3, 2000));
            entry(server, &format!("w{i}"), "a", path)
        })
        .collect();
    ws.manifest(&lines)
}

#[test]
fn respect_fails_disallowed_jobs_without_a_request_and_fetches_robots_once() {
    let server = TestServer::start();
    server.add("/robots.txt", ROBOTS.as_bytes().to_vec());
    let ws = Workspace::new();
    let mut paths = vec!["/private/secret", "/private/open"];
    let public: Vec<String> = (0..12).map(|i| format!("/pub/{i}")).collect();
    paths.extend(public.iter().map(String::as_str));
    let manifest = serve(&server, &ws, &paths);
    let out = ws.fetch(&manifest, &["-j", "8", "--no-fsync", "--robots", "respect"]);
    assert_eq!(out.status.code(), Some(4), "a FAILED job exits 4: {}", describe(&out));
    assert_eq!(
        server.path_stats("/robots.txt").gets,
        1,
        "robots.txt fetched once for 14 jobs"
    );
    assert_eq!(
        server.path_stats("/private/secret").gets,
        0,
        "a disallowed path is never requested"
    );
    assert_eq!(server.path_stats("/private/secret").heads, 0);
    let jobs = ws.jobs();
    let denied = job_of(&jobs, "w0");
    assert_eq!(denied["state"], "FAILED", "{denied}");
    let error = denied["last_error"].as_str().expect("last_error");
    let expected = format!(
        "disallowed by {}: \"Disallow: /private/\" for user-agent *",
        server.url("/robots.txt")
    );
    assert!(error.contains(&expected), "{error}\nnot {expected}");
    assert_eq!(denied["attempts"], 0, "no attempt spent: {denied}");
    for i in 1..paths.len() {
        let job = job_of(&jobs, &format!("w{i}"));
        assert_eq!(job["state"], "SUCCESS", "{job}");
    }
    // Not retried: a second run requests nothing of it either.
    let again = ws.fetch(&manifest, &["--no-fsync", "--robots", "respect"]);
    assert_eq!(again.status.code(), Some(4), "{}", describe(&again));
    assert_eq!(server.path_stats("/private/secret").gets, 0);
}

#[test]
fn ignore_is_the_default_and_never_requests_robots_txt() {
    let server = TestServer::start();
    server.add("/robots.txt", b"User-agent: *\nDisallow: /\n".to_vec());
    let ws = Workspace::new();
    let manifest = serve(&server, &ws, &["/a", "/private/b"]);
    let out = ws.fetch(&manifest, &["--no-fsync"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let ignored = ws.fetch(&manifest, &["--no-fsync", "--robots", "ignore"]);
    assert_eq!(ignored.status.code(), Some(0), "{}", describe(&ignored));
    assert_eq!(server.path_stats("/robots.txt").gets, 0, "robots.txt never requested");
    assert_eq!(server.path_stats("/private/b").gets, 1);
}

#[test]
fn a_missing_robots_txt_allows_everything() {
    let server = TestServer::start();
    let ws = Workspace::new();
    let manifest = serve(&server, &ws, &["/a", "/private/b", "/c"]);
    let out = ws.fetch(&manifest, &["--no-fsync", "--robots", "respect"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(server.path_stats("/robots.txt").gets, 1, "asked once, answered 404");
    for job in ws.jobs() {
        assert_eq!(job["state"], "SUCCESS", "{job}");
    }
}

#[test]
fn an_unreadable_robots_txt_fails_the_hosts_jobs_retryably() {
    let server = TestServer::start();
    server.add("/robots.txt", ROBOTS.as_bytes().to_vec());
    server.fault("/robots.txt", Fault::Status { status: 503, times: 1 });
    let ws = Workspace::new();
    let manifest = serve(&server, &ws, &["/a"]);
    let out = ws.fetch(&manifest, &["--no-fsync", "--robots", "respect", "--max-attempts", "1"]);
    assert_eq!(out.status.code(), Some(4), "{}", describe(&out));
    assert_eq!(
        server.path_stats("/a").gets,
        0,
        "nothing fetched while robots.txt is unknown"
    );
    let job = job_of(&ws.jobs(), "w0").clone();
    assert_eq!(job["state"], "FAILED", "{job}");
    let error = job["last_error"].as_str().expect("last_error");
    assert!(error.contains("robots.txt could not be read"), "{error}");
    // A later run asks again, and the job goes through.
    let retry = ws.run(&["retry"]);
    assert_eq!(retry.status.code(), Some(0), "{}", describe(&retry));
    let again = ws.fetch(&manifest, &["--no-fsync", "--robots", "respect"]);
    assert_eq!(again.status.code(), Some(0), "{}", describe(&again));
    assert_eq!(server.path_stats("/robots.txt").gets, 2);
    assert_eq!(server.path_stats("/a").gets, 1);
}
