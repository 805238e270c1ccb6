use std::path::Path;
use std::time::{Duration, Instant};

use oncefetch_test_server::{content, Fault, TestServer};
use serde_json::json;

use crate::support::*;

/// A server holding `n` artifacts of `size` bytes at `/f0`, `/f1`, …, and
/// their manifest lines under work ids `{work}0`, `{work}1`, ….
fn serve(server: &TestServer, work: &str, n: usize, size: usize) -> Vec<serde_json::Value> {
    (0..n)
        .map(|i| {
            let path = format!("/{work}{i}");
            server.add(&path, content(i as u64 + 7, size));
            entry(server, &format!("{work}{i}"), "a", &path)
        })
        .collect()
}

/// `fetch MANIFEST` without fsync and with `extra`, which must exit within
/// `limit`: its exit code and standard error.
fn fetch_within(ws: &Workspace, manifest: &Path, extra: &[&str], limit: Duration) -> (Option<i32>, String) {
    let out = ws.out();
    let mut args = vec![
        "fetch",
        manifest.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--no-fsync",
    ];
    args.extend_from_slice(extra);
    let mut child = KillOnDrop::spawn(ws, &args);
    let status = child.wait_within(limit);
    (status.code(), child.stderr())
}

#[test]
fn rate_per_host_spaces_requests_at_the_rate() {
    let server = TestServer::start();
    let ws = Workspace::new();
    let manifest = ws.manifest(&serve(&server, "r", 14, 1000));
    let out = ws.fetch(&manifest, &["-j", "8", "--no-fsync", "--rate-per-host", "4/s"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let times = server.request_times();
    assert_eq!(times.len(), 14, "one request per job");
    let span = times[times.len() - 1] - times[0];
    let per_sec = (times.len() - 1) as f64 / span.as_secs_f64();
    assert!((per_sec - 4.0).abs() <= 0.4, "{per_sec:.2} requests/s, not 4/s ± 10 %");
    // No burst either: any four consecutive requests span three intervals.
    for window in times.windows(4) {
        let spread = window[3] - window[0];
        assert!(
            spread >= Duration::from_millis(675),
            "a burst: 4 requests in {spread:?}"
        );
    }
}

#[test]
fn three_runs_on_one_ledger_file_share_the_rate_per_host() {
    let server = TestServer::start();
    let ws = Workspace::new();
    let manifest = ws.manifest(&serve(&server, "s", 24, 1000));
    let planned = ws.run(&["plan", manifest.to_str().unwrap()]);
    assert_eq!(planned.status.code(), Some(0), "{}", describe(&planned));
    let out = ws.out();
    let args = [
        "run",
        "--out",
        out.to_str().unwrap(),
        "--no-fsync",
        "--concurrency",
        "2",
        "--rate-per-host",
        "4/s",
    ];
    // Three processes on one file: each alone would go at 4/s, 12/s together.
    let mut runs: Vec<KillOnDrop> = (0..3).map(|_| KillOnDrop::spawn(&ws, &args)).collect();
    for (i, run) in runs.iter_mut().enumerate() {
        let status = run.wait_within(Duration::from_secs(60));
        assert_eq!(status.code(), Some(0), "run {i}: {}", run.stderr());
    }
    let times = server.request_times();
    assert_eq!(times.len(), 24, "one request per job");
    assert_rate(&times, 4.0);
}

#[test]
fn limit_rate_caps_the_bytes_per_second_of_the_whole_run() {
    let server = TestServer::start();
    let ws = Workspace::new();
    let manifest = ws.manifest(&serve(&server, "b", 6, 1_000_000));
    let (code, stderr) = fetch_within(
        &ws,
        &manifest,
        &["-j", "3", "--limit-rate", "2M"],
        Duration::from_secs(30),
    );
    let ended = Instant::now();
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(server.stats().bytes_served, 6_000_000);
    let began = server.request_times()[0];
    let per_sec = 6_000_000.0 / (ended - began).as_secs_f64();
    assert!(
        (per_sec - 2_000_000.0).abs() <= 300_000.0,
        "{per_sec:.0} bytes/s, not 2 MB/s ± 15 %"
    );
}

#[test]
fn a_retry_after_past_the_cap_ends_the_run_and_leaves_the_job_due_then() {
    let server = TestServer::start();
    let ws = Workspace::new();
    let lines = serve(&server, "h", 1, 1000);
    server.fault(
        "/h0",
        Fault::RetryAfterSecs {
            status: 429,
            secs: 3600,
            times: 1,
        },
    );
    let manifest = ws.manifest(&lines);
    let (code, stderr) = fetch_within(&ws, &manifest, &["--max-retry-after", "5s"], Duration::from_secs(5));
    assert_eq!(code, Some(4), "{stderr}");
    assert!(stderr.contains("longer than --max-retry-after"), "{stderr}");
    let job = &ws.jobs()[0];
    assert_eq!(
        (&job["state"], &job["retryable"]),
        (&json!("FAILED"), &json!(true)),
        "{job}"
    );
    assert_eq!(job["attempts"], 1, "{job}");
    let due = humantime::parse_rfc3339(job["next_attempt_at"].as_str().expect("next_attempt_at")).unwrap();
    let due_in = due.duration_since(std::time::SystemTime::now()).expect("in the future");
    assert!(
        (Duration::from_secs(3590)..=Duration::from_secs(3600)).contains(&due_in),
        "due in {due_in:?}: {job}"
    );
}

#[test]
fn a_host_down_for_a_while_pauses_alone_and_its_jobs_keep_their_attempts() {
    let (down, up) = (TestServer::start(), TestServer::start());
    let ws = Workspace::new();
    let mut lines = serve(&down, "d", 50, 2000);
    lines.extend(serve(&up, "u", 50, 2000));
    let outage_ends = Instant::now() + Duration::from_secs(5);
    for i in 0..50 {
        let until = outage_ends;
        down.fault(&format!("/d{i}"), Fault::StatusUntil { status: 503, until });
    }
    let manifest = ws.manifest(&lines);
    let out = ws.fetch(&manifest, &["-j", "8", "--no-fsync", "--max-attempts", "3"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let jobs = ws.jobs();
    assert_eq!(jobs.len(), 100);
    for job in &jobs {
        assert_eq!(job["state"], "SUCCESS", "{job}");
    }
    let last_up = *up.request_times().last().expect("requests");
    assert!(
        last_up < outage_ends,
        "the other host's jobs finished during the outage"
    );
    // Paused, the host saw probes, not every job again and again.
    let during = down.request_times().iter().filter(|&&t| t < outage_ends).count();
    assert!(during < 50, "{during} requests during the outage");
}

#[test]
fn a_host_down_past_max_retry_after_is_left_for_a_later_run() {
    let server = TestServer::start();
    let ws = Workspace::new();
    let lines = serve(&server, "x", 10, 1000);
    let until = Instant::now() + Duration::from_secs(3600);
    for i in 0..10 {
        server.fault(&format!("/x{i}"), Fault::StatusUntil { status: 503, until });
    }
    let manifest = ws.manifest(&lines);
    let (code, stderr) = fetch_within(&ws, &manifest, &["--max-retry-after", "3s"], Duration::from_secs(20));
    assert_eq!(code, Some(4), "{stderr}");
    for job in ws.jobs() {
        assert_eq!(
            (&job["state"], &job["retryable"]),
            (&json!("FAILED"), &json!(true)),
            "{job}"
        );
        assert!(job["attempts"].as_u64().unwrap() < 5, "attempts left: {job}");
    }
    assert!(stderr.contains("longer than --max-retry-after"), "{stderr}");
    assert!(stderr.contains("put off while their host was paused"), "{stderr}");
}

#[test]
fn a_hosts_file_sets_each_hosts_rate_over_the_default() {
    let (slow, fast) = (TestServer::start(), TestServer::start());
    let ws = Workspace::new();
    let mut lines = serve(&slow, "s", 8, 1000);
    lines.extend(serve(&fast, "f", 8, 1000));
    let hosts = ws.path("hosts.toml");
    let policy = format!(
        "[default]\nrate = \"100/s\"\n\n[host.\"{}\"]\nrate = \"4/s\"\nconcurrency = 1\n",
        slow.addr()
    );
    std::fs::write(&hosts, policy).unwrap();
    let manifest = ws.manifest(&lines);
    let out = ws.fetch(&manifest, &["--no-fsync", "--hosts", hosts.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let spread = |times: Vec<Instant>| times[times.len() - 1] - times[0];
    let slow_span = spread(slow.request_times());
    assert!(
        (Duration::from_millis(1575)..Duration::from_millis(1925)).contains(&slow_span),
        "8 requests at 4/s span 1.75 s ± 10 %, not {slow_span:?}"
    );
    let fast_span = spread(fast.request_times());
    assert!(
        fast_span < Duration::from_millis(500),
        "the default's 100/s: {fast_span:?}"
    );
}

#[test]
fn a_bad_hosts_file_names_the_file_the_line_and_the_key() {
    let server = TestServer::start();
    let ws = Workspace::new();
    let manifest = ws.manifest(&serve(&server, "e", 1, 10));
    let hosts = ws.path("hosts.toml");
    std::fs::write(
        &hosts,
        "[default]\nconcurrency = 2\n\n[host.\"a.org\"]\nrate = \"fast\"\n",
    )
    .unwrap();
    let out = ws.fetch(&manifest, &["--hosts", hosts.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "a usage error: {}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for needle in [hosts.to_str().unwrap(), "line 5", "rate", "\"fast\" is not a rate"] {
        assert!(stderr.contains(needle), "{needle:?} missing: {stderr}");
    }
    assert_eq!(server.stats().gets, 0, "nothing fetched");
    assert!(!ws.path("ledger.db").exists(), "nothing planned either");
}

#[test]
fn a_hosts_files_headers_go_to_that_host_only_over_the_global_ones() {
    let (own, other) = (TestServer::start(), TestServer::start());
    let ws = Workspace::new();
    let mut lines = serve(&own, "o", 1, 100);
    lines.extend(serve(&other, "t", 1, 100));
    let hosts = ws.path("hosts.toml");
    let policy = format!(
        "[host.\"{}\"]\nheaders = {{ \"X-Token\" = \"per-host\", \"User-Agent\" = \"hostbot/1\", \"X-Only\" = \"here\" }}\n",
        own.addr()
    );
    std::fs::write(&hosts, policy).unwrap();
    let manifest = ws.manifest(&lines);
    let out = ws.fetch(
        &manifest,
        &[
            "--no-fsync",
            "--header",
            "X-Token: global",
            "--hosts",
            hosts.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let header = |server: &TestServer, path: &str, name: &str| {
        let headers = server.last_request_headers(path).expect("a request");
        let values: Vec<String> = headers.into_iter().filter(|(n, _)| n == name).map(|(_, v)| v).collect();
        values
    };
    assert_eq!(
        header(&own, "/o0", "x-token"),
        ["per-host"],
        "the host's header replaces the global one"
    );
    assert_eq!(header(&own, "/o0", "user-agent"), ["hostbot/1"]);
    assert_eq!(header(&own, "/o0", "x-only"), ["here"]);
    assert_eq!(
        header(&other, "/t0", "x-token"),
        ["global"],
        "another host gets the global one"
    );
    assert!(header(&other, "/t0", "x-only").is_empty());
    let agent = header(&other, "/t0", "user-agent");
    assert!(agent.len() == 1 && agent[0].starts_with("oncefetch/"), "{agent:?}");
}
