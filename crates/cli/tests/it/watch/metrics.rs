//! `/metrics` scraped during a real run against the test server, parsed
//! strictly, with counters that match the run's ledger.

use std::process::Stdio;
use std::time::{Duration, Instant};

use oncefetch_test_server::{content, Fault, TestServer};
use serde_json::json;

use super::http::{address_in_log, get};
use super::prom::{parse, Scrape};
use crate::support::*;

/// Counters that only grow, scrape after scrape.
const COUNTERS: [&str; 4] = [
    "oncefetch_requests_total",
    "oncefetch_received_bytes_total",
    "oncefetch_jobs_finished_total",
    "oncefetch_leases_granted_total",
];

#[test]
fn metrics_scraped_during_a_run_match_its_ledger() {
    let server = TestServer::start();
    let ws = Workspace::new();
    let mut lines = Vec::new();
    let mut fast_bytes = 0u64;
    for i in 0..5u64 {
        let body = content(i, 20_000);
        fast_bytes += body.len() as u64;
        server.add(&format!("/f{i}"), body);
        lines.push(entry(&server, &format!("w{i}"), "pdf", &format!("/f{i}")));
    }
    // The twin of /f0 (another artifact of the same URL) is linked, not fetched.
    lines.push(entry(&server, "w0", "twin", "/f0"));
    // /f1 fails once with a 503: one retry.
    server.fault("/f1", Fault::Status { status: 503, times: 1 });
    // The slow one streams for ~3 s, while the others are done.
    server.add("/slow", content(99, 30_000));
    server.fault(
        "/slow",
        Fault::Throttle {
            chunk: 1000,
            delay_ms: 100,
        },
    );
    lines.push(entry(&server, "slow", "pdf", "/slow"));
    let manifest = ws.manifest(&lines);
    let log = ws.path("run.log");
    let out = ws.out();
    let mut child = KillOnDrop(
        ws.command(&[
            "fetch",
            manifest.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--backoff",
            "10ms",
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("spawn oncefetch fetch"),
    );
    let addr = address_in_log(&log);

    // Scrape until every job but the slow one is counted as the ledger has it.
    let started = Instant::now();
    let mut previous: Option<Scrape> = None;
    let settled = loop {
        let answer = get(addr, "/metrics", &[]);
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert!(answer
            .header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4"));
        let scrape = parse(&answer.body).unwrap_or_else(|e| panic!("{e}\n{}", answer.body));
        if let Some(before) = &previous {
            for name in COUNTERS {
                assert!(scrape.sum(name, &[]) >= before.sum(name, &[]), "{name} went down");
            }
        }
        let success = scrape.sum("oncefetch_jobs", &[("state", "SUCCESS")]);
        let skipped = scrape.sum("oncefetch_jobs", &[("state", "SKIPPED_DUPLICATE")]);
        let counted = scrape.sum("oncefetch_jobs_finished_total", &[("outcome", "succeeded")]);
        if success == 5.0 && skipped == 1.0 && counted == 5.0 {
            break scrape;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the ledger never showed 5 SUCCESS and 1 SKIPPED_DUPLICATE:\n{}",
            answer.body
        );
        previous = Some(scrape);
        std::thread::sleep(Duration::from_millis(50));
    };
    let status = child.wait_within(Duration::from_secs(60));
    assert!(status.success(), "{}", std::fs::read_to_string(&log).unwrap());

    // Every state of the ledger is a series; the slow job was in flight.
    assert_eq!(settled.types["oncefetch_jobs"], "gauge");
    assert_eq!(settled.sum("oncefetch_jobs", &[]), 7.0, "every job is in some state");
    assert_eq!(settled.sum("oncefetch_jobs", &[("state", "PLANNED")]), 0.0);
    assert_eq!(
        settled.sum("oncefetch_jobs_finished_total", &[("outcome", "skipped")]),
        1.0
    );
    assert_eq!(settled.sum("oncefetch_duplicates_linked_total", &[]), 1.0);
    assert_eq!(settled.sum("oncefetch_duplicate_saved_bytes_total", &[]), 20_000.0);
    // The 503 was one transient request and one retry for a 5xx.
    assert_eq!(
        settled.sum(
            "oncefetch_requests_total",
            &[("class", "5xx"), ("outcome", "transient")]
        ),
        1.0
    );
    assert_eq!(settled.sum("oncefetch_retries_total", &[("reason", "http_5xx")]), 1.0);
    assert_eq!(
        settled.sum("oncefetch_jobs_finished_total", &[("outcome", "failed")]),
        1.0
    );
    // Six bodies answered (five fast, the slow one streaming).
    assert_eq!(
        settled.sum("oncefetch_requests_total", &[("class", "2xx"), ("outcome", "ok")]),
        6.0
    );
    let received = settled.sum("oncefetch_received_bytes_total", &[]);
    assert!(
        received >= fast_bytes as f64 && received < (fast_bytes + 30_000) as f64,
        "received {received} bytes: all of the five, part of the slow one"
    );
    // Leases: the twin, the five, the slow one, and /f1 again after its 503.
    assert_eq!(settled.sum("oncefetch_leases_granted_total", &[]), 8.0);
    assert_eq!(settled.sum("oncefetch_fenced_writes_refused_total", &[]), 0.0);
    let commits = settled.sum("oncefetch_ledger_commit_duration_seconds_count", &[]);
    assert!(commits >= 6.0 * 3.0, "{commits} commits for six finished jobs");
    assert_eq!(settled.sum("oncefetch_time_to_first_byte_seconds_count", &[]), 7.0);
    // The ledger's one host has a label of its own.
    let host = server.addr().to_string();
    assert_eq!(
        settled.sum("oncefetch_host_in_flight", &[("host", &host)]),
        1.0,
        "the slow one"
    );
    assert_eq!(settled.sum("oncefetch_host_in_flight", &[("host", "other")]), 0.0);
    assert!(settled.has("oncefetch_download_duration_seconds_bucket"));

    // The end: the ledger holds what the counters said, and the slow one.
    let after: serde_json::Value = serde_json::from_slice(&ws.run(&["status", "--json"]).stdout).unwrap();
    assert_eq!(after["states"]["SUCCESS"], json!(6));
    assert_eq!(after["states"]["SKIPPED_DUPLICATE"], json!(1));
    assert_eq!(after["bytes_done"], json!(fast_bytes + 30_000));
}
