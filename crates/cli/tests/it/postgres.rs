//! Many hosts on one PostgreSQL ledger: OS processes stand in for hosts.
//! Needs `ONCEFETCH_TEST_POSTGRES_URL` (set by `cargo xtask test-all`); skipped
//! without it unless `ONCEFETCH_REQUIRE_POSTGRES=1`.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

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
    // Known defect (issue 5, open): now and then a job stalls in the
    // PostgreSQL store until its lease expires and another host fetches it
    // again (seen: 2,004 GETs for 2,000 files). Exactly-once *outcomes* hold
    // regardless and are asserted strictly below; the extra GETs are counted.
    let gets = server.stats().gets;
    assert!(gets >= 2000, "every file was requested");
    let refetched = (0..2000)
        .filter(|i| server.path_stats(&format!("/s{i}")).gets > 1)
        .count();
    if refetched > 0 {
        eprintln!("known defect: {refetched} files fetched twice ({gets} GETs for 2000 files)");
    }
    assert!(refetched <= 20, "{refetched} files fetched more than once");
    assert_all_done_once(&db, &bodies);
}

#[test]
fn workers_survive_a_postgres_restart() {
    let Some(db) = pg_db("restart") else { return };
    let (Ok(bindir), Ok(datadir)) = (
        std::env::var("ONCEFETCH_TEST_PG_BINDIR"),
        std::env::var("ONCEFETCH_TEST_PG_DATADIR"),
    ) else {
        assert!(
            std::env::var("ONCEFETCH_REQUIRE_POSTGRES").as_deref() != Ok("1"),
            "the restart test needs ONCEFETCH_TEST_PG_BINDIR and ONCEFETCH_TEST_PG_DATADIR"
        );
        return;
    };
    let run_as = std::env::var("ONCEFETCH_TEST_PG_RUN_AS").unwrap_or_default();
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
    let pg_ctl = format!("{bindir}/pg_ctl");
    let mut restart = if run_as.is_empty() {
        std::process::Command::new(&pg_ctl)
    } else {
        let mut cmd = std::process::Command::new("runuser");
        cmd.args(["-u", &run_as, "--", &pg_ctl]);
        cmd
    };
    let status = restart
        .args(["-D", &datadir, "restart", "-m", "fast", "-w"])
        .stdout(Stdio::null())
        .status()
        .expect("pg_ctl restart");
    assert!(status.success(), "pg_ctl restart");
    assert!(server.stats().gets < 300 + 40, "the restart happened mid-run");
    for (i, worker) in workers.into_iter().enumerate() {
        wait_ok(worker, &format!("worker {i}"));
    }
    assert_all_done_once(&db, &bodies);
}
