//! SIGINT and SIGTERM (SPEC §7): the run stops its downloads, records their
//! running ops, releases its leases and exits 130 / 143 within 2 s, so a
//! rerun resumes the partial files at once, not after the lease TTL.

use std::time::{Duration, Instant};

use oncefetch_test_server::{content, Fault, TestServer};

use crate::support::*;

const SIZE: usize = 4 << 20;

fn signal(pid: u32, name: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name}");
}

/// Interrupts a run mid-stream with `name`; checks the exit code, the
/// ledger, and that a rerun finishes with one ranged GET within 5 s.
fn interrupt_mid_stream(name: &str, code: i32) {
    let server = TestServer::start();
    let ws = Workspace::new();
    let body = content(11, SIZE);
    server.add("/big", body.clone());
    // ~64 KiB every 20 ms: the file takes more than a second.
    server.fault(
        "/big",
        Fault::Throttle {
            chunk: 64 << 10,
            delay_ms: 20,
        },
    );
    let manifest = ws.manifest(&[entry(&server, "w", "a", "/big")]);
    assert_eq!(ws.run(&["plan", manifest.to_str().unwrap()]).status.code(), Some(0));
    let out = ws.out();
    // A long lease: a rerun that waited for it would time out below.
    let args = ["run", "--out", out.to_str().unwrap(), "--lease-ttl", "60s"];
    let mut child = KillOnDrop::spawn(&ws, &args);
    await_bytes_served(&server, 512 << 10);
    signal(child.0.id(), name);
    let signalled = Instant::now();
    let status = child.wait_within(Duration::from_secs(5));
    let took = signalled.elapsed();
    let stderr = child.stderr();
    assert_eq!(status.code(), Some(code), "stderr:\n{stderr}");
    assert!(took < Duration::from_secs(2), "exited {took:?} after the signal");
    assert!(stderr.contains("interrupted"), "says what it did:\n{stderr}");

    let jobs = ws.jobs();
    assert_ne!(jobs[0]["state"], "SUCCESS", "the download was cut short: {}", jobs[0]);
    assert_eq!(
        jobs[0]["attempts"], 0,
        "an interrupted attempt is given back: {}",
        jobs[0]
    );
    let running: Vec<_> = ws
        .ledger()
        .into_iter()
        .filter(|op| op["result_code"].is_null())
        .collect();
    assert!(running.is_empty(), "no running op row is left: {running:?}");
    assert!(!ws.partial_files().is_empty(), "the partial file is kept for the rerun");

    server.clear_faults("/big");
    server.reset_stats();
    let rerun = Instant::now();
    let output = ws.run(&args);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert!(
        rerun.elapsed() < Duration::from_secs(5),
        "the rerun waited {:?}",
        rerun.elapsed()
    );
    let stats = server.path_stats("/big");
    assert_eq!(
        (stats.gets, stats.ranged_gets),
        (1, 1),
        "one ranged GET resumed the partial"
    );
    let job = &ws.jobs()[0];
    assert_eq!(job["state"], "SUCCESS", "{job}");
    assert_eq!(job["attempts"], 1, "only the finished attempt counts: {job}");
    assert_eq!(std::fs::read(job["path"].as_str().unwrap()).unwrap(), body);
}

#[test]
fn sigint_releases_leases_and_exits_130() {
    interrupt_mid_stream("INT", 130);
}

#[test]
fn sigterm_releases_leases_and_exits_143() {
    interrupt_mid_stream("TERM", 143);
}

#[test]
fn sigint_while_planning_exits_130_and_loses_nothing_planned() {
    const LINES: usize = 50_000;
    let ws = Workspace::new();
    let lines: Vec<_> = (0..LINES)
        .map(|i| serde_json::json!({"work_id": format!("w{i}"), "artifact_id": "a", "url": format!("http://127.0.0.1:9/x/{i}")}))
        .collect();
    let manifest = ws.manifest(&lines);
    let mut child = KillOnDrop::spawn(&ws, &["plan", manifest.to_str().unwrap()]);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "planning {LINES} lines takes longer than 300 ms"
    );
    signal(child.0.id(), "INT");
    let status = child.wait_within(Duration::from_secs(5));
    let stderr = child.stderr();
    assert_eq!(status.code(), Some(130), "stderr:\n{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    // The ledger opens and counts what was planned; planning again
    // completes it, every line once.
    let status = ws.run(&["status", "--json"]);
    assert_eq!(status.status.code(), Some(0), "{}", describe(&status));
    let again = ws.run(&["plan", manifest.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(0), "{}", describe(&again));
    let totals: serde_json::Value = serde_json::from_slice(&ws.run(&["status", "--json"]).stdout).unwrap();
    assert_eq!(totals["total"], LINES, "{totals}");
    assert_eq!(totals["states"]["PLANNED"], LINES, "{totals}");
}

#[test]
fn sigint_before_the_first_body_byte_leaves_no_partial_file() {
    let server = TestServer::start();
    let ws = Workspace::new();
    server.add("/held", content(12, 100_000));
    // The answer's headers come at once, its body 30 s later.
    server.fault("/held", Fault::HoldBody { ms: 30_000 });
    let manifest = ws.manifest(&[entry(&server, "w", "a", "/held")]);
    assert_eq!(ws.run(&["plan", manifest.to_str().unwrap()]).status.code(), Some(0));
    let out = ws.out();
    let args = ["run", "--out", out.to_str().unwrap(), "--lease-ttl", "60s"];
    let mut child = KillOnDrop::spawn(&ws, &args);
    let started = Instant::now();
    while server.path_stats("/held").gets == 0 {
        assert!(started.elapsed() < Duration::from_secs(20), "the GET never came");
        std::thread::sleep(Duration::from_millis(5));
    }
    // Time for the headers to arrive and the run to wait on the body.
    std::thread::sleep(Duration::from_millis(500));
    signal(child.0.id(), "INT");
    let status = child.wait_within(Duration::from_secs(5));
    assert_eq!(status.code(), Some(130), "stderr:\n{}", child.stderr());
    assert_eq!(ws.jobs()[0]["attempts"], 0, "given back: {}", ws.jobs()[0]);
    // Nothing arrived, so there is nothing to resume from: an empty
    // partial file would only be litter (one per interrupted attempt).
    assert_eq!(ws.partial_files(), Vec::<std::path::PathBuf>::new());
}
