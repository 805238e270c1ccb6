//! Human tables on a terminal and JSON for scripts: `jobs` and `ledger` on a
//! pseudo-terminal and off it, the `jobs` filters, the new `status` counts,
//! and the `--json` summaries of `plan`, `recover`, `verify` and `retry`.

use std::collections::BTreeSet;
use std::process::{Command, Output};

use oncefetch_test_server::{content, Fault, TestServer};
use serde_json::{json, Value};

use crate::support::*;

/// One attempt each, so a failure ends the job at once.
const ONE_ATTEMPT: &[&str] = &["--max-attempts", "1", "--backoff", "1ms"];

/// The keys of a `jobs` line, as SPEC §7 lists them.
const JOB_KEYS: &[&str] = &[
    "job_key",
    "work_id",
    "artifact_id",
    "url",
    "canonical_url",
    "state",
    "attempts",
    "path",
    "sha256",
    "size",
    "duplicate_of",
    "last_error",
    "expected_sha256",
    "expected_size",
    "expected_content_type",
    "lease_owner",
    "lease_expires_at",
    "retryable",
    "next_attempt_at",
];

/// Two servers: on the first `ok` (1000 bytes) and `big` (2000 bytes)
/// succeed, `gone` answers 404 (final) and `busy` 503 with `Retry-After:
/// 3600` (retryable, waiting out its backoff); on the second `flaky` answers
/// 500 (retryable, its short backoff over). Fetched with one attempt each.
struct Ledger {
    first: TestServer,
    second: TestServer,
    ws: Workspace,
}

impl Ledger {
    fn new() -> Self {
        let (first, second, ws) = (TestServer::start(), TestServer::start(), Workspace::new());
        first.add("/ok", content(1, 1000));
        first.add("/big", content(2, 2000));
        first.add("/gone", content(3, 10));
        first.fault(
            "/gone",
            Fault::Status {
                status: 404,
                times: 1000,
            },
        );
        first.add("/busy", content(4, 10));
        first.fault(
            "/busy",
            Fault::RetryAfterSecs {
                status: 503,
                secs: 3600,
                times: 1000,
            },
        );
        second.add("/flaky", content(5, 10));
        second.fault(
            "/flaky",
            Fault::Status {
                status: 500,
                times: 1000,
            },
        );
        let manifest = ws.manifest(&[
            entry(&first, "ok", "pdf", "/ok"),
            entry(&first, "big", "pdf", "/big"),
            entry(&first, "gone", "pdf", "/gone"),
            entry(&first, "busy", "pdf", "/busy"),
            entry(&second, "flaky", "pdf", "/flaky"),
        ]);
        let out = ws.fetch(&manifest, ONE_ATTEMPT);
        assert_eq!(out.status.code(), Some(4), "{}", describe(&out));
        // The 500's backoff (a millisecond at most) is over.
        std::thread::sleep(std::time::Duration::from_millis(50));
        Self { first, second, ws }
    }

    /// The work ids `jobs ARGS` lists (off a terminal: JSON Lines).
    fn works(&self, args: &[&str]) -> Vec<String> {
        let mut all = vec!["jobs"];
        all.extend_from_slice(args);
        json_lines(&self.ws.run(&all))
            .iter()
            .map(|j| j["work_id"].as_str().unwrap().to_owned())
            .collect()
    }

    /// `status --json ARGS`.
    fn status(&self, args: &[&str]) -> Value {
        let mut all = vec!["status", "--json"];
        all.extend_from_slice(args);
        json_lines(&self.ws.run(&all)).remove(0)
    }
}

fn set(works: &[&str]) -> BTreeSet<String> {
    works.iter().map(|w| (*w).to_owned()).collect()
}

/// `oncefetch --db … ARGS` with its standard output on a pseudo-terminal
/// (util-linux `script`); `None` (the test skips) where `script` is missing.
fn on_terminal(ws: &Workspace, args: &[&str]) -> Option<Output> {
    let found = Command::new("sh").args(["-c", "command -v script"]).output().ok()?;
    if !found.status.success() {
        eprintln!("skipped: util-linux `script` not found (no pseudo-terminal to test on)");
        return None;
    }
    let mut words = vec![env!("CARGO_BIN_EXE_oncefetch").to_owned(), "--db".into(), ws.db()];
    words.extend(args.iter().map(|a| (*a).to_owned()));
    let line = words.iter().map(|w| shell_quoted(w)).collect::<Vec<_>>().join(" ");
    let out = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env_remove("ONCEFETCH_DB")
        .output()
        .expect("run script");
    assert!(out.status.success(), "{}", describe(&out));
    Some(out)
}

fn shell_quoted(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// The lines a terminal showed, without carriage returns.
fn screen(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim_end_matches('\r').to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn jobs_and_ledger_print_tables_on_a_terminal_and_json_lines_off_it() {
    let l = Ledger::new();
    // Off a terminal: JSON Lines, the same bytes with or without --json,
    // every job with exactly the keys SPEC §7 lists.
    let plain = l.ws.run(&["jobs"]);
    let json = l.ws.run(&["jobs", "--json"]);
    assert_eq!(plain.stdout, json.stdout, "{}", describe(&plain));
    let lines = json_lines(&plain);
    assert_eq!(lines.len(), 5);
    for line in &lines {
        let keys: BTreeSet<&str> = line.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, JOB_KEYS.iter().copied().collect(), "{line}");
    }
    assert_eq!(l.ws.run(&["ledger"]).stdout, l.ws.run(&["ledger", "--json"]).stdout);
    assert!(!json_lines(&l.ws.run(&["ledger"])).is_empty());

    let Some(table) = on_terminal(&l.ws, &["jobs"]) else {
        return;
    };
    let rows = screen(&table);
    assert_eq!(rows.len(), 6, "a header and one row per job:\n{rows:#?}");
    for title in ["KEY", "STATE", "WORK/ARTIFACT", "SIZE", "ATTEMPTS", "LAST ERROR"] {
        assert!(rows[0].contains(title), "{rows:#?}");
    }
    assert!(
        !rows.iter().any(|r| r.starts_with('{')),
        "no JSON on a terminal:\n{rows:#?}"
    );
    let row_of = |work: &str| {
        let key = &job_of(&lines, work)["job_key"].as_str().unwrap()[..12];
        rows.iter()
            .find(|r| r.starts_with(key))
            .unwrap_or_else(|| panic!("no row for {work}:\n{rows:#?}"))
            .clone()
    };
    let big = row_of("big");
    assert!(
        big.contains("SUCCESS") && big.contains("big/pdf") && big.contains("2.0 KiB"),
        "{big}"
    );
    let gone = row_of("gone");
    assert!(gone.contains("FAILED") && gone.contains("answered 404"), "{gone}");
    // Aligned: every row's state starts in the header's STATE column.
    let column = rows[0].find("STATE").unwrap();
    for row in &rows[1..] {
        let state = row[column..].split_whitespace().next().unwrap();
        assert!(["SUCCESS", "FAILED"].contains(&state), "{row}");
    }
    // --json keeps JSON Lines on a terminal.
    let forced = on_terminal(&l.ws, &["jobs", "--json"]).unwrap();
    for line in screen(&forced) {
        let job: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        assert!(job["job_key"].is_string(), "{job}");
    }

    let ledger = screen(&on_terminal(&l.ws, &["ledger"]).unwrap());
    for title in ["JOB", "KIND", "EPOCH", "CODE", "STARTED", "FINISHED", "RESULT"] {
        assert!(ledger[0].contains(title), "{ledger:#?}");
    }
    assert!(
        ledger.iter().any(|r| r.contains("FINALIZE") && r.contains("OK")),
        "{ledger:#?}"
    );
    assert!(ledger.iter().any(|r| r.contains("ERROR")), "{ledger:#?}");
}

#[test]
fn jobs_filters_narrow_the_listing() {
    let l = Ledger::new();
    let as_set = |args: &[&str]| l.works(args).into_iter().collect::<BTreeSet<_>>();
    assert_eq!(as_set(&[]), set(&["ok", "big", "gone", "busy", "flaky"]));
    assert_eq!(as_set(&["--work", "gone"]), set(&["gone"]), "--work");
    assert_eq!(as_set(&["--work", "nobody"]), set(&[]), "--work without a match");
    let second = l.second.addr().to_string();
    assert_eq!(as_set(&["--host", &second]), set(&["flaky"]), "--host HOST:PORT");
    let first = l.first.addr().to_string();
    assert_eq!(
        as_set(&["--host", &first]),
        set(&["ok", "big", "gone", "busy"]),
        "--host HOST:PORT"
    );
    assert_eq!(as_set(&["--host", "127.0.0.1"]).len(), 5, "--host HOST, any port");
    assert_eq!(as_set(&["--host", "127.0.0.2"]), set(&[]), "--host elsewhere");
    // Error texts name the URL, whose port may hold any digits.
    assert_eq!(as_set(&["--error", "answered 404"]), set(&["gone"]), "--error");
    assert_eq!(
        as_set(&["--error", "answered 50"]),
        set(&["busy", "flaky"]),
        "--error substring"
    );
    assert_eq!(
        as_set(&["--state", "FAILED", "--host", &first]),
        set(&["gone", "busy"]),
        "--state with --host"
    );
    // --limit: the first N in job-key order, filtered or not.
    let all = l.works(&[]);
    assert_eq!(l.works(&["--limit", "2"]), all[..2].to_vec(), "--limit");
    let failed = l.works(&["--state", "FAILED"]);
    assert_eq!(failed.len(), 3);
    assert_eq!(l.works(&["--state", "FAILED", "--limit", "2"]), failed[..2].to_vec());
    assert_eq!(l.works(&["--error", "answered 50", "--limit", "1"]).len(), 1);
    assert_eq!(l.works(&["--limit", "100"]), all, "--limit past the end");
    let zero = l.ws.run(&["jobs", "--limit", "0"]);
    assert_eq!(zero.status.code(), Some(2), "{}", describe(&zero));
}

#[test]
fn status_counts_bytes_failures_and_backoffs() {
    let l = Ledger::new();
    let status = l.status(&[]);
    assert_eq!(status["bytes_done"], 3000, "{status}");
    assert_eq!(
        status["failed"],
        json!({ "retryable": 2, "final": 1 }),
        "by default (5 attempts) the 503 and the 500 have attempts left: {status}"
    );
    assert_eq!(status["backoff_waiting"], 1, "the 503's Retry-After: {status}");
    assert_eq!(status["leases"], json!({ "live": 0, "expired": 0 }), "{status}");
    assert_eq!(status["states"]["FAILED"], 3, "{status}");
    assert_eq!(status["total"], 5, "{status}");
    let one = l.status(&["--max-attempts", "1"]);
    assert_eq!(
        (&one["failed"], &one["backoff_waiting"]),
        (&json!({ "retryable": 0, "final": 3 }), &json!(0)),
        "out of attempts under --max-attempts 1: {one}"
    );
    let table = String::from_utf8_lossy(&l.ws.run(&["status"]).stdout).into_owned();
    for (label, value) in [
        ("bytes done", "3000 (2.9 KiB)"),
        ("failed retryable", "2"),
        ("failed final", "1"),
        ("backoff waiting", "1"),
        ("live leases", "0"),
    ] {
        assert!(
            table.lines().any(|l| l.starts_with(label) && l.ends_with(value)),
            "{label} {value}:\n{table}"
        );
    }
    let bad = l.ws.run(&["status", "--max-attempts", "0"]);
    assert_eq!(bad.status.code(), Some(2), "{}", describe(&bad));
}

/// The one JSON object a command printed on stdout.
fn summary(out: &Output, code: i32) -> Value {
    assert_eq!(out.status.code(), Some(code), "{}", describe(out));
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON object: {}", describe(out));
    serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("{:?}: {e}", lines[0]))
}

#[test]
fn plan_recover_verify_and_retry_print_json_summaries() {
    let server = TestServer::start();
    let ws = Workspace::new();
    server.add("/a", content(1, 1000));
    server.add("/b", content(2, 1000));
    let mut lines = vec![entry(&server, "a", "pdf", "/a"), entry(&server, "b", "pdf", "/b")];
    lines.push(json!({ "work_id": "bad", "artifact_id": "x", "url": "ftp://example.org/x" }));
    let manifest = ws.manifest(&lines);
    let manifest = manifest.to_str().unwrap();

    let plan = summary(&ws.run(&["plan", "--json", manifest]), 3);
    assert_eq!(plan, json!({ "new": 2, "already_planned": 0, "rejected": 1 }));
    let again = summary(&ws.run(&["plan", "--json", manifest]), 3);
    assert_eq!(again, json!({ "new": 0, "already_planned": 2, "rejected": 1 }));
    let updated = summary(&ws.run(&["plan", "--json", "--update-expected", manifest]), 3);
    assert_eq!(
        updated,
        json!({ "new": 0, "already_planned": 2, "rejected": 1, "expectations_updated": 0, "requeued": 0 })
    );

    let out = ws.out();
    let out = out.to_str().unwrap();
    let run = ws.run(&["run", "--out", out]);
    assert_eq!(run.status.code(), Some(0), "{}", describe(&run));

    let verify = summary(&ws.run(&["verify", "--json", "--out", out]), 0);
    assert_eq!(verify["looked"], 2, "{verify}");
    assert_eq!(
        (
            &verify["ok"],
            &verify["missing"],
            &verify["different"],
            &verify["outside"]
        ),
        (&json!(2), &json!(0), &json!(0), &json!(0)),
        "{verify}"
    );
    assert!(verify["out"].as_str().is_some_and(|o| o.ends_with("out")), "{verify}");
    let gone = job_of(&ws.jobs(), "a")["path"].as_str().unwrap().to_owned();
    std::fs::remove_file(&gone).unwrap();
    let missing = ws.run(&["verify", "--json"]);
    let verify = summary(&missing, 5);
    assert_eq!(
        (&verify["looked"], &verify["ok"], &verify["missing"], &verify["out"]),
        (&json!(2), &json!(1), &json!(1), &Value::Null),
        "{verify}"
    );
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains(&gone),
        "the problem goes to stderr: {}",
        describe(&missing)
    );

    let recover = summary(&ws.run(&["recover", "--json", "--out", out]), 0);
    assert_eq!(
        recover,
        json!({
            "expired_leases": 0,
            "abandoned_ops": 0,
            "partials_removed": 0,
            "partials_kept": 0,
            "requeued_missing": 1
        })
    );
    let unchecked = summary(&ws.run(&["recover", "--json"]), 0);
    assert_eq!(
        (&unchecked["partials_removed"], &unchecked["partials_kept"]),
        (&Value::Null, &Value::Null),
        "{unchecked}"
    );

    // `a` fails for good (404) on its rerun: retry takes it with --permanent.
    server.fault(
        "/a",
        Fault::Status {
            status: 404,
            times: 1000,
        },
    );
    let run = ws.run(&["run", "--out", out, "--max-attempts", "1"]);
    assert_eq!(run.status.code(), Some(4), "{}", describe(&run));
    let kept = summary(&ws.run(&["retry", "--json"]), 0);
    assert_eq!(
        kept,
        json!({ "state": "FAILED", "requeued": 0, "retryable": 0, "permanent": 0 })
    );
    let retry = summary(&ws.run(&["retry", "--json", "--permanent"]), 0);
    assert_eq!(
        retry,
        json!({ "state": "FAILED", "requeued": 1, "retryable": 0, "permanent": 1 })
    );
    let dups = summary(&ws.run(&["retry", "--json", "--state", "SKIPPED_DUPLICATE"]), 0);
    assert_eq!(
        dups,
        json!({ "state": "SKIPPED_DUPLICATE", "requeued": 0, "retryable": 0, "permanent": 0 })
    );
}
