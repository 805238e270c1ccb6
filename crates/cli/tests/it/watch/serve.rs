//! `serve` over a ledger of known content (SQLite, and PostgreSQL when a
//! server is given): the JSON API agrees with `status --json` and with the
//! jobs, the pages show the same, and the access rules hold.

use std::net::SocketAddr;
use std::process::{Command, Stdio};

use oncefetch_test_server::{content, Fault, TestServer};
use serde_json::{json, Value};

use super::http::{address_in_log, get};
use crate::support::*;

/// `oncefetch --db DB ARGS`.
fn oncefetch(db: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_oncefetch"));
    cmd.arg("--db")
        .arg(db)
        .args(args)
        .env_remove("ONCEFETCH_DB")
        .env_remove("ONCEFETCH_AUTH_TOKEN");
    cmd
}

/// `serve` on a free loopback port with `extra` arguments; its address.
pub(crate) fn serve(ws: &Workspace, db: &str, extra: &[&str]) -> (KillOnDrop, SocketAddr) {
    let log = ws.path(&format!("serve-{}.log", extra.len()));
    let child = oncefetch(db, &["serve", "--addr", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("spawn oncefetch serve");
    (KillOnDrop(child), address_in_log(&log))
}

/// Three artifacts, a twin of one, a 404: fetched into `db`. Returns the
/// bytes of the three.
fn known_ledger(ws: &Workspace, server: &TestServer, db: &str) -> u64 {
    let mut lines = Vec::new();
    let mut total = 0;
    for i in 0..3u64 {
        let body = content(i, 1000 * (i as usize + 1));
        total += body.len() as u64;
        server.add(&format!("/k{i}"), body);
        lines.push(entry(server, &format!("w{i}"), "pdf", &format!("/k{i}")));
    }
    lines.push(entry(server, "w0", "twin", "/k0"));
    server.add("/gone", content(9, 10));
    server.fault(
        "/gone",
        Fault::Status {
            status: 404,
            times: 100,
        },
    );
    lines.push(entry(server, "gone", "pdf", "/gone"));
    let manifest = ws.manifest(&lines);
    let out = ws.out();
    let fetched = oncefetch(
        db,
        &["fetch", manifest.to_str().unwrap(), "--out", out.to_str().unwrap()],
    )
    .output()
    .expect("run fetch");
    assert_eq!(fetched.status.code(), Some(4), "one job FAILED: {}", describe(&fetched));
    total
}

fn check_serve(db: &str) {
    let server = TestServer::start();
    let ws = Workspace::new();
    let bytes = known_ledger(&ws, &server, db);
    let host = server.addr().to_string();
    let (_serve, addr) = serve(&ws, db, &[]);

    let status = get(addr, "/api/status", &[]).json();
    let cli: Value = serde_json::from_slice(&oncefetch(db, &["status", "--json"]).output().unwrap().stdout).unwrap();
    for field in ["total", "states", "leases", "bytes_done", "failed", "backoff_waiting"] {
        assert_eq!(status[field], cli[field], "/api/status {field} as status --json");
    }
    assert_eq!(status["total"], json!(5));
    assert_eq!(status["bytes_done"], json!(bytes));
    assert_eq!(status["remaining"], json!(0));
    assert_eq!(status["in_flight"], json!([]));
    let finished: u64 = status["throughput"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["succeeded"].as_u64().unwrap() + m["skipped"].as_u64().unwrap() + m["failed"].as_u64().unwrap())
        .sum();
    assert_eq!(finished, 5, "every finish in the last hour: {}", status["throughput"]);
    assert!(status["rate_per_minute"].as_f64().unwrap() > 0.0);

    let failed = get(addr, "/api/jobs?state=FAILED", &[]).json();
    let failed_jobs = failed["jobs"].as_array().unwrap();
    assert_eq!(failed_jobs.len(), 1);
    let gone = failed_jobs[0]["job_key"].as_str().unwrap().to_owned();
    assert_eq!(
        status["failures"],
        json!([{ "reason": "HTTP 404 not found", "jobs": 1, "examples": [gone] }])
    );

    let hosts = get(addr, "/api/hosts", &[]).json();
    assert_eq!(hosts, status["hosts"]);
    let row = &hosts[0];
    assert_eq!(
        (
            row["host"].as_str(),
            row["total"].as_u64(),
            row["succeeded"].as_u64(),
            row["skipped"].as_u64()
        ),
        (Some(host.as_str()), Some(5), Some(3), Some(1))
    );
    assert_eq!(
        (row["failed"].as_u64(), row["bytes_done"].as_u64()),
        (Some(1), Some(bytes))
    );

    // Pages of two, in key order, until `next` is null.
    let mut keys = Vec::new();
    let mut path = "/api/jobs?limit=2".to_owned();
    for _ in 0..5 {
        let page = get(addr, &path, &[]).json();
        keys.extend(
            page["jobs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|j| j["job_key"].as_str().unwrap().to_owned()),
        );
        match page["next"].as_str() {
            Some(next) => path = format!("/api/jobs?limit=2&after={next}"),
            None => break,
        }
    }
    let all: Vec<String> = json_lines(&oncefetch(db, &["jobs", "--json"]).output().unwrap())
        .iter()
        .map(|j| j["job_key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(keys, all, "/api/jobs pages through every job in key order");

    let job = get(addr, &format!("/api/job/{gone}"), &[]).json();
    assert_eq!(job["job"]["state"], "FAILED");
    let ledger: Vec<Value> = json_lines(&oncefetch(db, &["ledger", "--job", &gone, "--json"]).output().unwrap());
    assert_eq!(job["ledger"], json!(ledger), "a job's trail is `ledger --job`");

    let page = get(addr, "/", &[]);
    assert_eq!(page.status, 200);
    assert!(page.header("content-type").unwrap().starts_with("text/html"));
    for needle in [
        "<td class=\"n\" id=\"total\">5</td>",
        "<td class=\"n\" id=\"succeeded\">3</td>",
        &format!("<td>{host}</td>"),
        "HTTP 404 not found",
        &format!("href=\"/job/{gone}\""),
        "<noscript><meta http-equiv=\"refresh\" content=\"5\"></noscript>",
        "<svg class=\"chart\"",
    ] {
        assert!(
            page.body.contains(needle),
            "the status page shows {needle}:\n{}",
            page.body
        );
    }
    let job_page = get(addr, &format!("/job/{gone}"), &[]);
    assert!(job_page.body.contains("server answered 404"), "{}", job_page.body);
    assert_eq!(job_page.body.matches("<tr class=\"op\">").count(), ledger.len());
    let list = get(addr, "/jobs?state=SKIPPED_DUPLICATE", &[]);
    assert_eq!(list.body.matches("<tr class=\"job\"").count(), 1, "{}", list.body);
    for (path, code) in [
        ("/jobs?state=BOGUS", 400),
        ("/api/job/ffff", 404),
        ("/nothing", 404),
        ("/metrics", 404),
    ] {
        assert_eq!(get(addr, path, &[]).status, code, "{path}");
    }
    let js = get(addr, "/assets/watch.js", &[]);
    assert!(js.header("content-type").unwrap().starts_with("text/javascript") && js.body.contains("DOMParser"));
}

#[test]
fn serve_shows_a_known_sqlite_ledger() {
    let ws = Workspace::new();
    check_serve(&ws.db());
}

#[cfg(feature = "postgres")]
#[test]
fn serve_shows_a_known_postgres_ledger() {
    match std::env::var("ONCEFETCH_TEST_POSTGRES_URL") {
        Ok(url) => {
            let sep = if url.contains('?') { '&' } else { '?' };
            check_serve(&format!("{url}{sep}schema=cli_serve_{}", std::process::id()));
        }
        Err(_) => {
            assert!(
                std::env::var("ONCEFETCH_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "ONCEFETCH_REQUIRE_POSTGRES=1 but ONCEFETCH_TEST_POSTGRES_URL is not set"
            );
            eprintln!("skipped: set ONCEFETCH_TEST_POSTGRES_URL to run the PostgreSQL tests");
        }
    }
}

#[test]
fn another_address_needs_a_token_and_every_request_carries_it() {
    let ws = Workspace::new();
    let manifest = ws.manifest(&[]);
    assert!(ws.run(&["plan", manifest.to_str().unwrap()]).status.success());
    // Refused before anything listens.
    for args in [
        vec!["serve", "--addr", "0.0.0.0:0"],
        vec!["serve", "--addr", "[::]:0"],
        vec!["run", "--out", "out", "--metrics-addr", "0.0.0.0:0"],
    ] {
        let refused = oncefetch(&ws.db(), &args).current_dir(ws.dir.path()).output().unwrap();
        assert_eq!(refused.status.code(), Some(1), "{args:?}: {}", describe(&refused));
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(
            stderr.contains("not a loopback address") && stderr.contains("--auth-token"),
            "{stderr}"
        );
    }
    // A token given is checked on loopback too.
    let (_serve, addr) = serve(&ws, &ws.db(), &["--auth-token", "s3cret"]);
    for path in ["/", "/api/status", "/api/jobs", "/assets/watch.css"] {
        let refused = get(addr, path, &[]);
        assert_eq!(refused.status, 401, "{path} without the token");
        assert_eq!(refused.header("www-authenticate"), Some("Bearer"));
        assert!(!refused.body.contains("total"), "{}", refused.body);
        assert_eq!(get(addr, path, &["Authorization: Bearer wrong"]).status, 401);
        assert_eq!(get(addr, path, &["Authorization: Bearer s3cret"]).status, 200, "{path}");
    }
    let by_query = get(addr, "/?token=s3cret", &[]);
    assert_eq!(by_query.status, 200);
    let cookie = by_query.header("set-cookie").expect("the token kept in a cookie");
    assert!(
        cookie.starts_with("oncefetch_token=s3cret;") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    assert_eq!(
        get(addr, "/api/status", &["Cookie: oncefetch_token=s3cret"]).status,
        200
    );
    assert_eq!(get(addr, "/?token=s3cre", &[]).status, 401);
}
