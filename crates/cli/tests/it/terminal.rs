//! What a run shows (SPEC §7): bars that redraw on a terminal (a PTY from
//! `script(1)`), plain log lines into a file — one per failure, naming the
//! job, no escape codes —, a heartbeat, and the end-of-run summary on stderr
//! and as JSON.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oncefetch_test_server::{content, Fault, TestServer};
use serde_json::{json, Value};

use crate::support::*;

/// Longest any run here may take.
const DEADLINE: Duration = Duration::from_secs(90);

/// A sha256 no content has.
const WRONG_SHA256: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// A large file served at about 3 MiB/s: 64 KiB every 20 ms.
fn serve_throttled(server: &TestServer, path: &str, len: usize) {
    server.add(path, content(7, len));
    server.fault(
        path,
        Fault::Throttle {
            chunk: 64 << 10,
            delay_ms: 20,
        },
    );
}

/// Runs `command` with stdout and stderr into files, waiting at most
/// [`DEADLINE`]; returns (exit code, stdout, stderr).
fn run_into_files(ws: &Workspace, mut command: Command) -> (Option<i32>, Vec<u8>, Vec<u8>) {
    let (stdout, stderr) = (ws.path("run.stdout"), ws.path("run.stderr"));
    let mut child = KillOnDrop(
        command
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .env_remove("NO_COLOR")
            .env_remove("ONCEFETCH_LOG")
            .spawn()
            .expect("spawn oncefetch"),
    );
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "oncefetch did not return within {DEADLINE:?}; stderr so far:\n{}",
            std::fs::read_to_string(&stderr).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    (
        status.code(),
        std::fs::read(stdout).unwrap(),
        std::fs::read(stderr).unwrap(),
    )
}

/// `fetch MANIFEST --out OUT EXTRA…` (global flags in `extra` too).
fn fetch_command(ws: &Workspace, manifest: &std::path::Path, extra: &[&str]) -> Command {
    let out = ws.out();
    let mut args = vec!["fetch", manifest.to_str().unwrap(), "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    ws.command(&args)
}

/// The log lines of `stderr` (a timestamp, then a level).
fn log_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| {
            [" INFO ", " WARN ", " ERROR ", " DEBUG "]
                .iter()
                .any(|level| l.contains(level))
        })
        .collect()
}

/// Text with its escape sequences (CSI `ESC [ … final`, other `ESC x`)
/// turned into line breaks, as a terminal would show its frames apart.
fn strip_escapes(raw: &str) -> String {
    let mut text = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                if chars.next_if_eq(&'[').is_some() {
                    while chars.next().is_some_and(|c| !('\u{40}'..='\u{7e}').contains(&c)) {}
                } else {
                    chars.next();
                }
                text.push('\n');
            }
            '\r' => text.push('\n'),
            c => text.push(c),
        }
    }
    text
}

/// The byte figure before `marker` in `line`: `3.25 MiB` of `3.25 MiB / 12.00 MiB`.
fn bytes_before<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    let head = line[..line.find(marker)?].trim_end();
    let mut words = head.rsplitn(3, ' ');
    let unit = words.next()?;
    let number = words.next()?;
    (number.parse::<f64>().is_ok() && unit.ends_with('B')).then(|| &head[head.len() - number.len() - unit.len() - 1..])
}

#[test]
fn on_a_terminal_the_bar_redraws_every_second_and_its_bytes_move() {
    if !Command::new("script")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        eprintln!("skipped: script(1) from util-linux is not installed");
        return;
    }
    let server = TestServer::start();
    let ws = Workspace::new();
    // About four seconds at the throttled rate.
    serve_throttled(&server, "/big", 12 << 20);
    let manifest = ws.manifest(&[entry(&server, "w", "big", "/big")]);
    let out = ws.out();
    let line = format!(
        "stty cols 120 rows 40; exec '{}' --db '{}' fetch '{}' --out '{}'",
        env!("CARGO_BIN_EXE_oncefetch"),
        ws.db(),
        manifest.display(),
        out.display()
    );
    let mut child = KillOnDrop(
        Command::new("script")
            .args(["-qfec", &line, "/dev/null"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .env_remove("ONCEFETCH_LOG")
            .spawn()
            .expect("spawn script"),
    );
    // What the terminal received, and when.
    let mut pty = child.0.stdout.take().unwrap();
    let (sender, received) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 1 << 16];
        while let Ok(n @ 1..) = pty.read(&mut buf) {
            let _ = sender.send((Instant::now(), buf[..n].to_vec()));
        }
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < DEADLINE, "the run did not end within {DEADLINE:?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    reader.join().unwrap();
    let chunks: Vec<(Instant, String)> = received
        .try_iter()
        .map(|(at, bytes)| (at, String::from_utf8_lossy(&bytes).into_owned()))
        .collect();
    let all: String = chunks.iter().map(|(_, text)| text.as_str()).collect();
    assert_eq!(status.code(), Some(0), "terminal output:\n{}", strip_escapes(&all));
    assert!(all.contains('\u{1b}'), "a terminal gets a drawn bar");
    let shown = strip_escapes(&all);

    // When the run's bar was drawn, and the bytes it showed each time.
    let mut draws = Vec::new();
    let mut figures = Vec::new();
    for (at, text) in &chunks {
        let text = strip_escapes(text);
        if text.contains(" files") {
            draws.push(*at);
        }
        for line in text.lines() {
            if let Some(done) = line.find(" in flight").and_then(|_| bytes_before(line, " / ")) {
                figures.push(done.to_owned());
            }
        }
    }
    let (first, last) = (draws.first().copied(), draws.last().copied());
    let (Some(first), Some(last)) = (first, last) else {
        panic!("no bar drawn:\n{shown}");
    };
    assert!(
        last - first >= Duration::from_secs(2),
        "the download took a while:\n{shown}"
    );
    // Redrawn at least once a second: the typical gap shows it; the longest
    // allows for a loaded machine's scheduling (CI runs tests in parallel).
    let mut gaps: Vec<Duration> = draws.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort();
    let (median_gap, longest_gap) = (gaps[gaps.len() / 2], gaps.last().copied().unwrap_or_default());
    assert!(
        median_gap <= Duration::from_secs(1) && longest_gap <= Duration::from_millis(2500),
        "the bar went {longest_gap:?} without a redraw (median gap {median_gap:?}, {} draws):\n{shown}",
        draws.len()
    );
    figures.dedup();
    assert!(
        figures.len() >= 3,
        "the byte figures moved during the one download: {figures:?}\n{shown}"
    );
    assert!(
        shown.contains("w/big"),
        "the large download has a line of its own:\n{shown}"
    );
    assert!(shown.contains("MiB/s"), "a rate is shown:\n{shown}");
    assert!(shown.contains("ETA"), "an ETA is shown:\n{shown}");
    assert!(shown.contains("lines read"), "planning shows the lines read:\n{shown}");
    assert!(
        shown.contains("fetched 1 file"),
        "the summary follows the bars:\n{shown}"
    );
}

#[test]
fn logs_into_a_file_name_each_job_without_escapes_and_say_each_failure_once() {
    let server = TestServer::start();
    let ws = Workspace::new();
    server.add("/ok", content(1, 300_000));
    server.add("/other", content(2, 1000));
    let manifest = ws.manifest(&[
        entry(&server, "w-ok", "a", "/ok"),
        entry(&server, "w-404", "a", "/missing"),
        json!({ "work_id": "w-sha", "artifact_id": "a", "url": server.url("/other"), "sha256": WRONG_SHA256 }),
    ]);
    let (code, _, stderr) = run_into_files(&ws, fetch_command(&ws, &manifest, &[]));
    let text = String::from_utf8_lossy(&stderr);
    assert_eq!(code, Some(4), "{text}");
    assert!(!stderr.contains(&0x1b), "no escape codes into a file:\n{text}");
    let logs = log_lines(&text);
    let done: Vec<_> = logs.iter().filter(|l| l.contains("w-ok/a")).collect();
    assert_eq!(done.len(), 1, "one line for the job that succeeded: {done:?}\n{text}");
    assert!(
        done[0].contains("done") && done[0].contains("292.97 KiB") && done[0].contains(&server.addr().to_string()),
        "it names the host, and says how many bytes: {}",
        done[0]
    );
    assert!(
        done[0].split(" in ").nth(1).is_some_and(|d| d.contains('s')),
        "and how long it took: {}",
        done[0]
    );
    for (job, needle) in [("w-404/a", "404"), ("w-sha/a", "sha256 mismatch")] {
        let failed: Vec<_> = logs.iter().filter(|l| l.contains(needle)).collect();
        assert_eq!(
            failed.len(),
            1,
            "one log line for the failure of {job}: {failed:?}\n{text}"
        );
        assert!(failed[0].contains(job), "it names the job: {}", failed[0]);
    }

    // Colour when asked, even into a file.
    let again = Workspace::new();
    let manifest = again.manifest(&[entry(&server, "w-404", "a", "/missing")]);
    let (_, _, stderr) = run_into_files(&again, fetch_command(&again, &manifest, &["--color", "always"]));
    assert!(stderr.contains(&0x1b), "--color always colours a file");
}

#[test]
fn quiet_prints_only_errors_and_the_summary() {
    let server = TestServer::start();
    let ws = Workspace::new();
    server.add("/ok", content(1, 1000));
    let manifest = ws.manifest(&[
        entry(&server, "w-ok", "a", "/ok"),
        entry(&server, "w-404", "a", "/missing"),
    ]);
    let (code, _, stderr) = run_into_files(&ws, fetch_command(&ws, &manifest, &["-q"]));
    let text = String::from_utf8_lossy(&stderr);
    assert_eq!(code, Some(4), "{text}");
    assert!(log_lines(&text).is_empty(), "no per-job lines: {text}");
    assert!(text.contains("fetched 1 file"), "the summary: {text}");
    assert!(text.contains("1 × HTTP 404 not found"), "the summary: {text}");
}

#[test]
fn without_a_terminal_a_heartbeat_line_shows_the_figures() {
    let server = TestServer::start();
    let ws = Workspace::new();
    // About two seconds at the throttled rate.
    serve_throttled(&server, "/big", 6 << 20);
    let manifest = ws.manifest(&[entry(&server, "w", "big", "/big")]);
    let (code, _, stderr) = run_into_files(&ws, fetch_command(&ws, &manifest, &["--progress-interval", "500ms"]));
    let text = String::from_utf8_lossy(&stderr);
    assert_eq!(code, Some(0), "{text}");
    let beats: Vec<_> = log_lines(&text)
        .into_iter()
        .filter(|l| l.contains("progress: "))
        .collect();
    assert!(beats.len() >= 2, "a heartbeat every 500ms: {beats:?}\n{text}");
    // The beats while the download streamed show every figure.
    let beats: Vec<_> = beats.into_iter().filter(|b| b.contains("1 in flight")).collect();
    assert!(beats.len() >= 2, "beats during the download: {beats:?}\n{text}");
    for beat in &beats {
        for figure in ["0/1 files", "MiB / 6.00 MiB", "MiB/s", "ETA "] {
            assert!(beat.contains(figure), "{figure:?} in {beat}");
        }
    }
    let moved: std::collections::BTreeSet<_> = beats.iter().filter_map(|b| bytes_before(b, " / ")).collect();
    assert!(moved.len() >= 2, "the bytes moved between beats: {beats:?}");
}

#[test]
fn the_json_summary_is_one_object_on_stdout() {
    let server = TestServer::start();
    let ws = Workspace::new();
    let body = content(3, 100_000);
    server.add("/doc", body.clone());
    let manifest = ws.manifest(&[
        entry(&server, "w1", "a", "/doc"),
        entry(&server, "w2", "a", "/doc"),
        entry(&server, "w3", "a", "/missing"),
    ]);
    // One at a time, so the second line finds the first one's file.
    let (code, stdout, stderr) = run_into_files(&ws, fetch_command(&ws, &manifest, &["--json", "--concurrency", "1"]));
    let (stdout, stderr) = (String::from_utf8_lossy(&stdout), String::from_utf8_lossy(&stderr));
    assert_eq!(code, Some(4), "{stderr}");
    assert_eq!(stdout.lines().count(), 1, "one line: {stdout}");
    let summary: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"));
    assert!(
        stderr.contains("planned: 3 new"),
        "the plan's line goes to stderr: {stderr}"
    );
    assert!(summary["elapsed_secs"].as_f64().is_some_and(|s| s > 0.0), "{summary}");
    assert_eq!(
        summary["files"],
        json!({ "succeeded": 1, "linked": 1, "failed": 1, "to_retry": 0 })
    );
    assert_eq!(summary["bytes"]["fetched"], body.len());
    assert_eq!(summary["bytes"]["saved"], body.len());
    assert!(
        summary["bytes"]["per_sec"].as_f64().is_some_and(|r| r > 0.0),
        "{summary}"
    );
    assert_eq!(summary["failed_attempts"], 1);
    let groups = &summary["failures"]["groups"];
    assert_eq!(groups.as_array().map(Vec::len), Some(1), "{summary}");
    assert_eq!(groups[0]["reason"], "HTTP 404 not found");
    assert_eq!(groups[0]["count"], 1);
    assert_eq!(groups[0]["example"]["job"], "w3/a");
    assert!(
        groups[0]["example"]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("/missing"),
        "{summary}"
    );
    assert_eq!(summary["failures"]["more_groups"], 0);
    assert_eq!(summary["failures"]["all_failed_to_connect"], false);
    assert_eq!(summary["stopped"], Value::Null);
    assert_eq!(summary["ledger"]["states"]["SUCCESS"], 1);
    assert_eq!(summary["ledger"]["states"]["FAILED"], 1);
    assert_eq!(
        summary["planned"],
        json!({ "new": 3, "already_planned": 0, "rejected": 0 })
    );
    assert_eq!(
        summary["next"],
        json!(["oncefetch jobs --state FAILED", "oncefetch retry"])
    );
}

#[test]
fn the_summary_groups_failures_by_reason_with_counts() {
    let server = TestServer::start();
    let ws = Workspace::new();
    server.add("/gone", content(4, 10));
    server.fault("/gone", Fault::Status { status: 410, times: 5 });
    let mut lines = Vec::new();
    for i in 0..3 {
        lines.push(entry(&server, &format!("w404-{i}"), "a", &format!("/missing/{i}")));
    }
    for i in 0..2 {
        let path = format!("/doc/{i}");
        server.add(&path, content(10 + i, 1000));
        lines.push(json!({
            "work_id": format!("wsha-{i}"), "artifact_id": "a", "url": server.url(&path), "sha256": WRONG_SHA256,
        }));
    }
    lines.push(entry(&server, "w410", "a", "/gone"));
    let manifest = ws.manifest(&lines);
    let (code, stdout, stderr) = run_into_files(&ws, fetch_command(&ws, &manifest, &["--json"]));
    let text = String::from_utf8_lossy(&stderr);
    assert_eq!(code, Some(4), "{text}");
    let reasons: Vec<&str> = text.lines().filter(|l| l.contains(" × ")).collect();
    assert_eq!(reasons.len(), 3, "one line per reason: {reasons:?}\n{text}");
    assert!(
        reasons[0].contains("3 × HTTP 404 not found, e.g. w404-"),
        "{}",
        reasons[0]
    );
    assert!(reasons[1].contains("2 × sha256 mismatch, e.g. wsha-"), "{}", reasons[1]);
    assert!(reasons[2].contains("1 × HTTP 410 gone, e.g. w410/a"), "{}", reasons[2]);
    assert!(text.contains("6 jobs failed"), "{text}");
    assert!(
        text.contains("oncefetch jobs --state FAILED") && text.contains("oncefetch retry"),
        "{text}"
    );
    let summary: Value = serde_json::from_slice(&stdout).unwrap();
    let counts: Vec<(String, u64)> = summary["failures"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["reason"].as_str().unwrap().to_owned(), g["count"].as_u64().unwrap()))
        .collect();
    let expected = [("HTTP 404 not found", 3), ("sha256 mismatch", 2), ("HTTP 410 gone", 1)];
    assert_eq!(counts, expected.map(|(r, n)| (r.to_owned(), n)));
}

#[test]
fn a_run_that_could_not_connect_at_all_points_to_the_demo() {
    // A loopback port nobody listens on: every connection is refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ws = Workspace::new();
    let manifest = ws.manifest(&[
        json!({ "work_id": "w1", "artifact_id": "a", "url": format!("http://127.0.0.1:{port}/a") }),
        json!({ "work_id": "w2", "artifact_id": "a", "url": format!("http://127.0.0.1:{port}/b") }),
    ]);
    let (code, _, stderr) = run_into_files(&ws, fetch_command(&ws, &manifest, &["--max-attempts", "1"]));
    let text = String::from_utf8_lossy(&stderr);
    assert_eq!(code, Some(4), "{text}");
    assert!(text.contains("2 × cannot connect"), "{text}");
    assert!(
        text.contains("every job failed to connect") && text.contains("cargo xtask demo"),
        "{text}"
    );
}

#[test]
fn a_retried_failure_is_logged_per_attempt_and_only_a_final_one_is_summarized() {
    let server = TestServer::start();
    let ws = Workspace::new();
    server.add("/flaky", content(5, 1000));
    server.fault("/flaky", Fault::Status { status: 503, times: 1 });
    server.add("/down", content(6, 1000));
    server.fault("/down", Fault::Status { status: 503, times: 10 });
    let manifest = ws.manifest(&[
        entry(&server, "w-flaky", "a", "/flaky"),
        entry(&server, "w-down", "a", "/down"),
    ]);
    let extra = ["--json", "--backoff", "50ms", "--max-attempts", "2"];
    let (code, stdout, stderr) = run_into_files(&ws, fetch_command(&ws, &manifest, &extra));
    let text = String::from_utf8_lossy(&stderr);
    assert_eq!(code, Some(4), "{text}");
    let logs = log_lines(&text);
    let lines_of = |job: &str| -> Vec<&str> { logs.iter().copied().filter(|l| l.contains(job)).collect() };
    let flaky = lines_of("w-flaky/a");
    assert_eq!(flaky.len(), 2, "{flaky:?}");
    assert!(
        flaky[0].contains("failed, will retry: server answered 503"),
        "{}",
        flaky[0]
    );
    assert!(flaky[1].contains("done"), "{}", flaky[1]);
    let down = lines_of("w-down/a");
    assert_eq!(down.len(), 2, "{down:?}");
    assert!(down[0].contains("failed, will retry"), "{}", down[0]);
    assert!(down[1].contains("failed, out of attempts"), "{}", down[1]);
    let summary: Value = serde_json::from_slice(&stdout).unwrap();
    assert_eq!(
        summary["files"],
        json!({ "succeeded": 1, "linked": 0, "failed": 1, "to_retry": 0 })
    );
    assert_eq!(summary["failed_attempts"], 3);
    assert_eq!(
        summary["failures"]["groups"][0]["reason"],
        "HTTP 503 service unavailable"
    );
    assert_eq!(summary["failures"]["groups"][0]["example"]["job"], "w-down/a");
}
