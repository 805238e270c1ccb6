//! Many hosts on one PostgreSQL ledger: OS processes stand in for hosts.
//! Needs `ONCEFETCH_TEST_POSTGRES_URL` (set by `cargo xtask test-all`); skipped
//! without it unless `ONCEFETCH_REQUIRE_POSTGRES=1`. The restart test starts a
//! server of its own with the binaries in `ONCEFETCH_TEST_PG_BINDIR`, so that
//! restarting it disturbs no other test.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use oncefetch_test_postgres::Server;
use oncefetch_test_server::{content, Fault, TestServer};

use crate::support::*;

/// A fresh schema on the test server, or `None` to skip.
fn pg_db(test: &str) -> Option<String> {
    match std::env::var("ONCEFETCH_TEST_POSTGRES_URL") {
        Ok(url) => {
            let schema = format!("cli_{test}_{}", std::process::id());
            let sep = if url.contains('?') { '&' } else { '?' };
            Some(format!("{url}{sep}schema={schema}"))
        }
        Err(_) => {
            assert!(
                std::env::var("ONCEFETCH_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "ONCEFETCH_REQUIRE_POSTGRES=1 but ONCEFETCH_TEST_POSTGRES_URL is not set"
            );
            eprintln!("skipped: set ONCEFETCH_TEST_POSTGRES_URL to run the PostgreSQL tests");
            None
        }
    }
}

fn spawn_run(ws: &Workspace, db: &str, extra: &[&str]) -> KillOnDrop {
    let out = ws.out();
    // Logs go to a file: a pipe nobody drains would block the worker's writes.
    let log = tempfile::tempfile().expect("log file");
    KillOnDrop(
        std::process::Command::new(env!("CARGO_BIN_EXE_oncefetch"))
            .args(["--db", db, "run", "--out", out.to_str().unwrap(), "--backoff", "50ms"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn oncefetch run"),
    )
}

fn oncefetch(db: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_oncefetch"))
        .args(["--db", db])
        .args(args)
        .output()
        .expect("run oncefetch")
}

fn wait_ok(mut child: KillOnDrop, what: &str) {
    let status = child.0.wait().expect("wait");
    assert_eq!(status.code(), Some(0), "{what} failed");
}

/// Plans `n` files of the server in the ledger; returns the bodies by work id.
fn plan_corpus(
    server: &TestServer,
    ws: &Workspace,
    db: &str,
    n: u64,
    size: impl Fn(u64) -> usize,
) -> HashMap<String, Vec<u8>> {
    let mut lines = Vec::new();
    let mut bodies = HashMap::new();
    for i in 0..n {
        let body = content(i, size(i));
        server.add(&format!("/s{i}"), body.clone());
        lines.push(entry(server, &format!("w{i}"), "a", &format!("/s{i}")));
        bodies.insert(format!("w{i}"), body);
    }
    let manifest = ws.manifest(&lines);
    let planned = oncefetch(db, &["plan", manifest.to_str().unwrap()]);
    assert_eq!(planned.status.code(), Some(0), "{}", describe(&planned));
    bodies
}

fn assert_all_done_once(db: &str, bodies: &HashMap<String, Vec<u8>>) {
    let jobs = json_lines(&oncefetch(db, &["jobs", "--json"]));
    assert_eq!(jobs.len(), bodies.len());
    for job in &jobs {
        assert_eq!(job["state"], "SUCCESS", "{job}");
        let body = &bodies[job["work_id"].as_str().unwrap()];
        assert_eq!(std::fs::read(job["path"].as_str().unwrap()).unwrap(), *body);
    }
    let ledger = json_lines(&oncefetch(db, &["ledger", "--json"]));
    let mut finalized: HashMap<String, usize> = HashMap::new();
    for row in ledger
        .iter()
        .filter(|r| r["kind"] == "FINALIZE" && r["result_code"] == "OK")
    {
        *finalized
            .entry(row["job_key"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(finalized.len(), bodies.len(), "every job finalized");
    assert!(finalized.values().all(|&n| n == 1), "one FINALIZE per job");
}

#[test]
fn three_hosts_share_one_ledger_and_fetch_each_file_once() {
    let Some(db) = pg_db("three_hosts") else { return };
    let server = TestServer::start();
    let ws = Workspace::new();
    let bodies = plan_corpus(&server, &ws, &db, 2000, |i| 1024 + (i as usize * 37) % 3072);
    let hosts: Vec<KillOnDrop> = (0..3).map(|_| spawn_run(&ws, &db, &["--concurrency", "8"])).collect();
    for (i, host) in hosts.into_iter().enumerate() {
        wait_ok(host, &format!("host {i}"));
    }
    // Exactly one GET per file: no job stalls until its lease expires and is
    // fetched again by another host.
    let refetched: Vec<(u64, u64)> = (0..2000)
        .map(|i| (i, server.path_stats(&format!("/s{i}")).gets))
        .filter(|&(_, gets)| gets != 1)
        .collect();
    assert!(
        refetched.is_empty(),
        "files not fetched exactly once (index, GETs): {refetched:?}"
    );
    assert_eq!(server.stats().gets, 2000, "one GET per file");
    assert_all_done_once(&db, &bodies);
}

#[test]
fn three_hosts_on_one_ledger_share_the_rate_per_host() {
    let Some(db) = pg_db("shared_rate") else { return };
    let server = TestServer::start();
    let ws = Workspace::new();
    plan_corpus(&server, &ws, &db, 24, |_| 1000);
    // Three hosts: each alone would go at 4/s, 12/s together.
    let hosts: Vec<KillOnDrop> = (0..3)
        .map(|_| spawn_run(&ws, &db, &["--concurrency", "2", "--rate-per-host", "4/s"]))
        .collect();
    for (i, host) in hosts.into_iter().enumerate() {
        wait_ok(host, &format!("host {i}"));
    }
    let times = server.request_times();
    assert_eq!(times.len(), 24, "one request per job");
    assert_rate(&times, 4.0);
}

#[test]
fn workers_survive_a_postgres_restart() {
    // A server of its own: restarting the shared one would cut the
    // connections of the other tests running beside this one (the three-host
    // test then saw commits with unknown outcomes and fetched files twice).
    let Some(mut pg) = Server::for_test("cli-restart") else {
        return;
    };
    let db = format!("{}?schema=cli_restart", pg.url());
    let server = TestServer::start();
    let ws = Workspace::new();
    let bodies = plan_corpus(&server, &ws, &db, 300, |i| 64 * 1024 + (i as usize * 997) % 65536);
    for i in 0..300 {
        server.fault(
            &format!("/s{i}"),
            Fault::Throttle {
                chunk: 16 << 10,
                delay_ms: 5,
            },
        );
    }
    let workers: Vec<KillOnDrop> = (0..2)
        .map(|_| spawn_run(&ws, &db, &["--concurrency", "8", "--lease-ttl", "3s"]))
        .collect();
    let started = Instant::now();
    while server.stats().gets < 40 {
        assert!(started.elapsed() < Duration::from_secs(60), "workers never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    pg.restart().expect("restart");
    assert!(server.stats().gets < 300 + 40, "the restart happened mid-run");
    for (i, worker) in workers.into_iter().enumerate() {
        wait_ok(worker, &format!("worker {i}"));
    }
    assert_all_done_once(&db, &bodies);
}
