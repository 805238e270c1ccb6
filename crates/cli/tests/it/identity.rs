//! `run`/`fetch` flags of SPEC §7 and §8 that shape each request: identity
//! (`--user-agent`, `--header`, `--proxy`), trust (`--ca-cert`,
//! `SSL_CERT_FILE`, `--insecure`, certificate errors) and deadlines
//! (`--max-time`, `--low-speed`), through the binary on loopback.

use std::path::PathBuf;
use std::process::Output;

use oncefetch_test_server::{content, Fault, TestCa, TestServer, Validity};
use serde_json::{json, Value};

use crate::support::*;

/// `fetch` of the one line `entry` with `extra` flags (and `env` set).
fn fetch_one(ws: &Workspace, entry: Value, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let manifest = ws.manifest(&[entry]);
    let out = ws.out();
    let mut args = vec!["fetch", manifest.to_str().unwrap(), "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    let mut command = ws.command(&args);
    for var in ["ONCEFETCH_USER_AGENT", "SSL_CERT_FILE", "SSL_CERT_DIR"] {
        command.env_remove(var);
    }
    command.envs(env.iter().copied());
    command.output().expect("run oncefetch")
}

/// The values of header `name` in the last request for `path`.
fn seen(server: &TestServer, path: &str, name: &str) -> Vec<String> {
    let headers = server.last_request_headers(path).expect("a request");
    headers.into_iter().filter(|(n, _)| n == name).map(|(_, v)| v).collect()
}

/// `text` in a file of `ws`.
fn write(ws: &Workspace, name: &str, text: &str) -> PathBuf {
    let path = ws.path(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The result of the one job's HEAD op.
fn head_result(ws: &Workspace) -> Value {
    let ledger = ws.ledger();
    let head = ledger.iter().find(|op| op["kind"] == "HEAD").expect("a HEAD op");
    head["result"].clone()
}

#[test]
fn user_agent_and_headers_are_sent_with_every_request() {
    let server = TestServer::start();
    server.add("/a", "x");
    let ws = Workspace::new();
    let args = [
        "--user-agent",
        "harvester/2 (ops@example.org)",
        "--header",
        "X-Token: abc",
        "--header",
        "Accept:*/*",
    ];
    let out = fetch_one(&ws, entry(&server, "w", "a", "/a"), &args, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(seen(&server, "/a", "user-agent"), ["harvester/2 (ops@example.org)"]);
    assert_eq!(seen(&server, "/a", "x-token"), ["abc"]);
    assert_eq!(seen(&server, "/a", "accept"), ["*/*"]);
}

#[test]
fn the_user_agent_defaults_to_oncefetch_and_its_version_or_the_environment() {
    let server = TestServer::start();
    server.add("/a", "x");
    server.add("/b", "y");
    let ws = Workspace::new();
    let out = fetch_one(&ws, entry(&server, "w", "a", "/a"), &[], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(
        seen(&server, "/a", "user-agent"),
        [concat!("oncefetch/", env!("CARGO_PKG_VERSION"))]
    );
    let env = [("ONCEFETCH_USER_AGENT", "from-env/1")];
    let out = fetch_one(&ws, entry(&server, "w", "b", "/b"), &[], &env);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(seen(&server, "/b", "user-agent"), ["from-env/1"]);
}

#[test]
fn a_malformed_header_is_a_usage_error_naming_the_flag() {
    let ws = Workspace::new();
    for bad in ["no colon here", "Bad Name: v", ": v"] {
        for command in ["run", "fetch"] {
            let mut args = vec![command];
            if command == "fetch" {
                args.push("m.jsonl");
            }
            args.extend(["--out", "o", "--header", bad]);
            let out = ws.run(&args);
            assert_eq!(out.status.code(), Some(2), "{bad}: {}", describe(&out));
            assert!(
                String::from_utf8_lossy(&out.stderr).contains("--header"),
                "{}",
                describe(&out)
            );
        }
    }
}

#[test]
fn a_proxy_carries_the_requests_and_its_credentials_stay_hidden() {
    let proxy = TestServer::start();
    proxy.add("/a", "via proxy");
    let ws = Workspace::new();
    let line = json!({ "work_id": "w", "artifact_id": "a", "url": "http://origin.invalid/a" });
    let with_credentials = proxy.url("").replace("http://", "http://user:s3cret@");
    let out = fetch_one(&ws, line, &["--proxy", &with_credentials], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(std::fs::read(ws.out().join("w").join("a")).unwrap(), b"via proxy");
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("s3cret"),
        "{}",
        describe(&out)
    );

    let out = fetch_one(
        &ws,
        entry(&proxy, "w", "b", "/a"),
        &["--proxy", "http://user:s3cret@[bad"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("proxy") && !stderr.contains("s3cret"), "{stderr}");
}

#[test]
fn a_local_ca_is_trusted_through_ca_cert_and_ssl_cert_file() {
    let ca = TestCa::new();
    let server = TestServer::start_tls(&ca.issue(&["127.0.0.1"], Validity::Current));
    server.add("/a", content(1, 10_000));
    server.add("/b", content(2, 10_000));
    let ws = Workspace::new();
    let pem = write(&ws, "ca.pem", &ca.pem());
    let out = fetch_one(
        &ws,
        entry(&server, "w", "a", "/a"),
        &["--ca-cert", pem.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let env = [("SSL_CERT_FILE", pem.to_str().unwrap())];
    let out = fetch_one(&ws, entry(&server, "w", "b", "/b"), &[], &env);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(std::fs::read(ws.out().join("w").join("b")).unwrap(), content(2, 10_000));
    assert!(head_result(&ws).get("insecure").is_none(), "{}", head_result(&ws));
}

#[test]
fn a_certificate_error_fails_at_once_naming_the_problem() {
    let ca = TestCa::new();
    let server = TestServer::start_tls(&ca.issue(&["127.0.0.1"], Validity::Current));
    server.add("/a", "x");
    let ws = Workspace::new();
    let out = fetch_one(&ws, entry(&server, "w", "a", "/a"), &["--backoff", "10ms"], &[]);
    assert_eq!(out.status.code(), Some(4), "{}", describe(&out));
    let jobs = ws.jobs();
    let error = jobs[0]["last_error"].as_str().unwrap();
    assert!(error.contains("unknown issuer"), "{error}");
    assert_eq!(jobs[0]["state"], "FAILED");
    assert_eq!(server.stats().connections, 1, "a permanent failure: no retry");
}

#[test]
fn a_bad_ca_file_is_a_clear_error_naming_it() {
    let server = TestServer::start();
    server.add("/a", "x");
    let ws = Workspace::new();
    let garbage = write(&ws, "garbage.pem", "not a certificate\n");
    let out = fetch_one(
        &ws,
        entry(&server, "w", "a", "/a"),
        &["--ca-cert", garbage.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(garbage.to_str().unwrap()), "{stderr}");
    assert_eq!(server.stats().gets, 0);
}

#[test]
fn insecure_accepts_a_bad_certificate_warns_once_and_is_recorded() {
    let ca = TestCa::new();
    let server = TestServer::start_tls(&ca.issue(&["localhost"], Validity::Expired));
    server.add("/a", "x");
    let ws = Workspace::new();
    let out = fetch_one(&ws, entry(&server, "w", "a", "/a"), &["--insecure"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("NOT checked").count(), 1, "{stderr}");
    assert_eq!(head_result(&ws)["insecure"], true, "{}", head_result(&ws));
}

/// `/doc`: 240 KB trickling at about 40 KB/s, fetched with `flags`; the job
/// ends SUCCESS with the right bytes, each retry resuming with `Range`.
fn aborted_attempts_resume(flags: &[&str]) {
    const LEN: usize = 240_000;
    let server = TestServer::start();
    server.add("/doc", content(5, LEN));
    server.fault(
        "/doc",
        Fault::Throttle {
            chunk: 4_000,
            delay_ms: 100,
        },
    );
    let ws = Workspace::new();
    let mut args = vec!["--backoff", "10ms", "--max-attempts", "20"];
    args.extend_from_slice(flags);
    let out = fetch_one(&ws, entry(&server, "w", "a", "/doc"), &args, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(std::fs::read(ws.out().join("w").join("a")).unwrap(), content(5, LEN));
    let stats = server.path_stats("/doc");
    assert!(stats.gets >= 2, "aborted at least once: {stats:?}");
    assert_eq!(stats.ranged_gets, stats.gets - 1, "every retry resumed: {stats:?}");
    assert!(
        stats.bytes_served < LEN as u64 + 40_000,
        "nothing fetched twice: {stats:?}"
    );
}

#[test]
fn max_time_aborts_resume_with_range() {
    aborted_attempts_resume(&["--max-time", "1500ms"]);
}

#[test]
fn low_speed_aborts_resume_with_range() {
    aborted_attempts_resume(&["--low-speed", "100KB", "--low-speed-time", "1s"]);
}
