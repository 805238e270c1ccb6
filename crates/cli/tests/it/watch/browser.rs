//! A real browser on the status page of a running fetch: headless Chromium
//! (Debian's `chromium`) renders it, the test reads the DOM it dumps for the
//! totals and the row of the job in flight, and keeps a screenshot under the
//! target folder (`target/tmp/oncefetch-status.png`). Skipped when no
//! `chromium` is installed, unless `ONCEFETCH_REQUIRE_BROWSER=1` (set by
//! `.ci/run`, which installs it).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oncefetch_test_server::{content, Fault, TestServer};

use super::http::{address_in_log, get};
use crate::support::*;

/// The browser, or `None` to skip.
fn chromium() -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("chromium"))
        .find(|path| path.is_file());
    if found.is_none() {
        assert!(
            std::env::var("ONCEFETCH_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "ONCEFETCH_REQUIRE_BROWSER=1 but no chromium on PATH (apt-get install chromium)"
        );
        eprintln!("skipped: no chromium on PATH");
    }
    found
}

/// Runs headless Chromium on `url` with `what` (`--dump-dom`, or
/// `--screenshot=…`), a fresh profile, and at most 90 s; its stdout.
fn browse(browser: &Path, profile: &Path, url: &str, what: &[&str]) -> String {
    let output = Command::new("timeout")
        .arg("90")
        .arg(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1200,1600",
            // Lets the page's script run its first refresh before the dump.
            "--virtual-time-budget=6000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(what)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .expect("run chromium");
    assert!(output.status.success(), "chromium failed: {}", describe(&output));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn a_browser_renders_the_status_page_of_a_running_fetch() {
    let Some(browser) = chromium() else { return };
    let server = TestServer::start();
    let ws = Workspace::new();
    let mut lines = Vec::new();
    for i in 0..4u64 {
        server.add(&format!("/b{i}"), content(i, 5_000));
        lines.push(entry(&server, &format!("w{i}"), "pdf", &format!("/b{i}")));
    }
    // Streams for about 30 s: in flight while the browser looks.
    server.add("/slow", content(7, 30_000));
    server.fault(
        "/slow",
        Fault::Throttle {
            chunk: 100,
            delay_ms: 100,
        },
    );
    lines.push(entry(&server, "slow", "pdf", "/slow"));
    let manifest = ws.manifest(&lines);
    let log = ws.path("fetch.log");
    let out = ws.out();
    let _fetch = KillOnDrop(
        ws.command(&["fetch", manifest.to_str().unwrap(), "--out", out.to_str().unwrap()])
            .args(["--metrics-addr", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn oncefetch fetch"),
    );
    let addr = address_in_log(&log);
    let started = Instant::now();
    let slow_key = loop {
        let status = get(addr, "/api/status", &[]).json();
        if status["states"]["SUCCESS"] == 4 && status["in_flight"].as_array().is_some_and(|a| a.len() == 1) {
            break status["in_flight"][0]["job_key"].as_str().unwrap().to_owned();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the fast jobs never finished: {status}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };

    let profile = tempfile::tempdir().expect("browser profile");
    let url = format!("http://{addr}/");
    let dom = browse(&browser, profile.path(), &url, &["--dump-dom"]);
    for needle in [
        "id=\"total\">5</td>",
        "id=\"succeeded\">4</td>",
        &format!("<tr class=\"job\" data-job=\"{slow_key}\">"),
        "STREAMING",
        "data-live=\"js\"",
    ] {
        assert!(dom.contains(needle), "the rendered page has {needle}:\n{dom}");
    }
    let row = dom.split(&format!("data-job=\"{slow_key}\"")).nth(1).unwrap();
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(
        row.contains("slow/pdf") && row.contains(" until "),
        "the job row: {row}"
    );

    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("oncefetch-status.png");
    let _ = std::fs::remove_file(&shot);
    browse(
        &browser,
        profile.path(),
        &url,
        &[&format!("--screenshot={}", shot.display())],
    );
    let png = std::fs::read(&shot).expect("the screenshot was written");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
}
