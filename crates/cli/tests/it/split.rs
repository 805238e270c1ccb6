//! `--split N` (SPEC §6.2): one large file over several ranged connections,
//! hashed whole, what is written recorded in the ledger so that a SIGKILL
//! mid-split resumes every piece; never spliced from two versions.

use std::time::Duration;

use oncefetch_test_server::{content, Fault, PathStats, TestServer};

use crate::support::*;

/// 24 MiB: split over 4 connections of at least 4 MiB, in 1 MiB pieces.
const LEN: usize = 24 << 20;
const SPLIT: &[&str] = &["--split", "4", "--split-min", "4MiB", "--backoff", "50ms"];

/// `/big`, `LEN` bytes of `seed`, in a fresh workspace.
fn serve(seed: u64) -> (TestServer, Workspace, Vec<u8>) {
    let server = TestServer::start();
    let body = content(seed, LEN);
    server.add("/big", body.clone());
    (server, Workspace::new(), body)
}

/// The one job is SUCCESS with exactly `body` at its path, and `verify`
/// agrees.
fn assert_done(ws: &Workspace, body: &[u8]) {
    let jobs = ws.jobs();
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    assert_eq!(job["state"], "SUCCESS", "{job}");
    assert_eq!(
        job["sha256"],
        sha256_hex(body),
        "the hash is the whole file's, in order"
    );
    let placed = std::fs::read(job["path"].as_str().unwrap()).unwrap();
    assert!(placed == body, "the placed file is exactly the served bytes");
    assert!(ws.partial_files().is_empty(), "{:?}", ws.partial_files());
    let verify = ws.run(&["verify", "--out", ws.out().to_str().unwrap()]);
    assert_eq!(verify.status.code(), Some(0), "{}", describe(&verify));
}

/// Fetches `/big` with `args`; the one job ends SUCCESS with exactly
/// `body` ([`assert_done`]). Returns the server's counts for `/big`.
fn fetch_big(server: &TestServer, ws: &Workspace, body: &[u8], args: &[&str]) -> PathStats {
    let manifest = ws.manifest(&[entry(server, "w", "a", "/big")]);
    let out = ws.fetch(&manifest, args);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_done(ws, body);
    server.path_stats("/big")
}

/// The split records the ledger holds for the job (STREAM rows whose result
/// names a split partial).
fn split_records(ws: &Workspace) -> usize {
    ws.ledger()
        .iter()
        .filter(|r| r["kind"] == "STREAM" && r["result"]["state"]["split"].is_string())
        .count()
}

#[test]
fn a_large_file_is_split_into_ranged_pieces_and_hashed_whole() {
    let (server, ws, body) = serve(41);
    let stats = fetch_big(&server, &ws, &body, SPLIT);
    assert_eq!(
        stats.ranged_gets, 23,
        "one GET a 1 MiB piece after the first: {stats:?}"
    );
    assert_eq!(stats.gets, 24, "{stats:?}");
    assert!(split_records(&ws) >= 2, "what was written is recorded as it goes");
}

#[test]
fn a_server_without_ranges_or_a_small_file_is_not_split() {
    let (server, ws, body) = serve(42);
    server.fault("/big", Fault::IgnoreRange);
    let stats = fetch_big(&server, &ws, &body, SPLIT);
    assert_eq!(
        (stats.gets, stats.ranged_gets),
        (1, 0),
        "Accept-Ranges: none is one stream"
    );

    let (server, ws, body) = serve(43);
    let stats = fetch_big(&server, &ws, &body, &["--split", "4", "--split-min", "13MiB"]);
    assert_eq!(stats.gets, 1, "24 MiB is less than two 13 MiB connections");
    assert_eq!(split_records(&ws), 0);
}

/// Plans `/big`, then runs with `--split` and SIGKILLs the run once about
/// 40 % of the file has been served.
fn kill_mid_split(server: &TestServer, ws: &Workspace) {
    // ~64 KiB every 10 ms a connection: the split takes about half a second
    // a connection's share.
    server.fault(
        "/big",
        Fault::Throttle {
            chunk: 64 << 10,
            delay_ms: 10,
        },
    );
    let manifest = ws.manifest(&[entry(server, "w", "a", "/big")]);
    assert_eq!(ws.run(&["plan", manifest.to_str().unwrap()]).status.code(), Some(0));
    let out = ws.out();
    let mut args = vec!["run", "--out", out.to_str().unwrap(), "--lease-ttl", "2s"];
    args.extend_from_slice(SPLIT);
    let mut child = KillOnDrop::spawn(ws, &args);
    wait_until(Duration::from_secs(30), "40 % of the file served", || {
        server.path_stats("/big").bytes_served > (LEN as u64) * 2 / 5
    });
    child.0.kill().expect("SIGKILL the run");
    child.0.wait().unwrap();
    assert!(split_records(ws) >= 1, "the killed run recorded what it wrote");
}

#[test]
fn sigkill_mid_split_resumes_every_piece() {
    let (server, ws, body) = serve(44);
    kill_mid_split(&server, &ws);
    let served_before = server.path_stats("/big").bytes_served;
    assert!(served_before < LEN as u64, "killed before the end");
    let out = ws.out();
    let mut args = vec!["run", "--out", out.to_str().unwrap()];
    args.extend_from_slice(SPLIT);
    let rerun = ws.run(&args);
    assert_eq!(rerun.status.code(), Some(0), "{}", describe(&rerun));
    assert_done(&ws, &body);
    let served = server.path_stats("/big").bytes_served;
    assert!(
        (served as f64) < 1.1 * LEN as f64,
        "every piece resumed where the record left it: served {served} bytes for a file of {LEN}; {}",
        describe(&rerun)
    );
    let finalize_ok = ws
        .ledger()
        .iter()
        .filter(|r| r["kind"] == "FINALIZE" && r["result_code"] == "OK")
        .count();
    assert_eq!(finalize_ok, 1);
}

#[test]
fn a_split_resumed_after_the_resource_changed_is_never_spliced() {
    let (server, ws, _) = serve(45);
    kill_mid_split(&server, &ws);
    let changed = content(46, LEN);
    server.replace("/big", changed.clone());
    server.clear_faults("/big");
    let out = ws.out();
    let mut args = vec!["run", "--out", out.to_str().unwrap()];
    args.extend_from_slice(SPLIT);
    let rerun = ws.run(&args);
    assert_eq!(rerun.status.code(), Some(0), "{}", describe(&rerun));
    assert_done(&ws, &changed);
}

#[test]
fn split_flags_out_of_range_are_usage_errors_naming_the_flag() {
    let ws = Workspace::new();
    let out = ws.out();
    for (flag, value, says) in [
        ("--split", "0", "--split"),
        ("--split", "65", "--split"),
        ("--split-min", "512KiB", "below 1MiB"),
        ("--split-min", "lots", "--split-min"),
    ] {
        let run = ws.run(&["run", "--out", out.to_str().unwrap(), flag, value]);
        assert_eq!(run.status.code(), Some(2), "{flag} {value}: {}", describe(&run));
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(stderr.contains(flag) && stderr.contains(says), "{stderr}");
    }
}
