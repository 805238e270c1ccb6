//! Resuming never splices two versions of a resource (SPEC §6): a partial
//! file is resumed only under the validator it was downloaded with, and only
//! from a 206 that carries that validator and a `Content-Range` starting at
//! the requested offset with the total length; anything else restarts from 0.

use oncefetch_test_server::{content, Fault, TestServer};

use crate::support::*;

const LEN: usize = 3_000_000;
const ARGS: &[&str] = &["--backoff", "50ms", "--max-attempts", "5"];

/// Fetches `/doc` (3 MB of version 1) served with `faults`; returns the
/// exit code, the job, the bytes at its final path (if any) and the server.
fn fetch_doc(faults: Vec<Fault>) -> (Option<i32>, serde_json::Value, Option<Vec<u8>>, TestServer, Workspace) {
    let server = TestServer::start();
    let ws = Workspace::new();
    server.add("/doc", content(7, LEN));
    for fault in faults {
        server.fault("/doc", fault);
    }
    let manifest = ws.manifest(&[entry(&server, "w", "a", "/doc")]);
    let out = ws.fetch(&manifest, ARGS);
    let jobs = ws.jobs();
    assert_eq!(jobs.len(), 1, "{}", describe(&out));
    let placed = std::fs::read(ws.out().join("w").join("a")).ok();
    (out.status.code(), jobs[0].clone(), placed, server, ws)
}

/// The job ended SUCCESS holding exactly the bytes the server serves now,
/// and `verify` agrees.
fn assert_whole_current_version(
    code: Option<i32>,
    job: &serde_json::Value,
    placed: Option<Vec<u8>>,
    server: &TestServer,
    ws: &Workspace,
) {
    let current = server.current("/doc").expect("the resource");
    let placed = placed.expect("a file at the final path");
    assert_eq!(code, Some(0), "{job}");
    assert_eq!(job["state"], "SUCCESS", "{job}");
    assert_eq!(placed.len(), current.len());
    assert!(
        placed == current,
        "the placed file is not exactly the current version (spliced?)"
    );
    assert_eq!(job["sha256"], sha256_hex(&current));
    let verify = ws.run(&["verify", "--out", ws.out().to_str().unwrap()]);
    assert_eq!(verify.status.code(), Some(0), "{}", describe(&verify));
}

#[test]
fn content_changed_between_attempts_is_never_spliced() {
    // GET 1: version 1, cut at 60 %. GET 2: If-Range "v1" fails, version 2
    // in full, cut at 30 %. GET 3 must not resume version 1's longer partial
    // under version 2's validator.
    let (code, job, placed, server, ws) = fetch_doc(vec![
        Fault::Truncate {
            after: 1_800_000,
            times: 1,
        },
        Fault::ChangeAfter { after_gets: 1 },
        Fault::Truncate {
            after: 900_000,
            times: 1,
        },
    ]);
    assert_ne!(server.current("/doc").unwrap(), content(7, LEN), "the resource changed");
    assert_whole_current_version(code, &job, placed, &server, &ws);
    let stats = server.path_stats("/doc");
    assert_eq!(stats.gets, 3, "two cut GETs, then one that finishes");
    assert_eq!(stats.ranged_gets, 2, "each retry resumed its own version's partial");
    assert!(
        stats.bytes_served < 1_800_000 + LEN as u64 + 100_000,
        "version 2 was resumed, not fetched twice: {} bytes",
        stats.bytes_served
    );
}

#[test]
fn a_206_with_another_validator_is_refused() {
    // The server ignores If-Range: after the change it answers the resume
    // with a 206 of version 2 (its own ETag) for a partial of version 1.
    let (code, job, placed, server, ws) = fetch_doc(vec![
        Fault::Truncate {
            after: 1_800_000,
            times: 1,
        },
        Fault::ChangeAfter { after_gets: 1 },
        Fault::IgnoreIfRange,
    ]);
    assert_whole_current_version(code, &job, placed, &server, &ws);
    let stats = server.path_stats("/doc");
    assert_eq!(stats.gets, 3, "the refused 206, then a plain GET from byte 0");
    assert_eq!(stats.ranged_gets, 1);
    assert_eq!(
        job["attempts"], 2,
        "the refused resume and its plain GET are one attempt"
    );
}

#[test]
fn a_206_at_another_offset_restarts_from_zero() {
    let (code, job, placed, server, ws) = fetch_doc(vec![
        Fault::Truncate {
            after: 1_800_000,
            times: 1,
        },
        Fault::WrongContentRange,
    ]);
    assert_whole_current_version(code, &job, placed, &server, &ws);
    let stats = server.path_stats("/doc");
    assert_eq!(stats.gets, 3, "the refused 206, then a plain GET from byte 0");
    assert_eq!(stats.ranged_gets, 1);
}

#[test]
fn a_206_without_the_total_length_restarts_from_zero() {
    let (code, job, placed, server, ws) = fetch_doc(vec![
        Fault::Truncate {
            after: 1_800_000,
            times: 1,
        },
        Fault::UnknownCompleteLength,
    ]);
    assert_whole_current_version(code, &job, placed, &server, &ws);
    let stats = server.path_stats("/doc");
    assert_eq!(stats.gets, 3, "the refused 206, then a plain GET from byte 0");
    assert_eq!(stats.ranged_gets, 1);
}
