use std::process::Command;

use oncefetch_test_server::{content, TestServer};
use serde_json::json;

use crate::support::*;

#[test]
fn bad_manifest_lines_are_named_and_good_ones_still_fetched() {
    let server = TestServer::start();
    let ws = Workspace::new();
    server.add("/ok", content(1, 1000));
    let text = format!(
        "\u{feff}{}\r\n\nnot json\n{}\n{}\n{}\n   \n",
        entry(&server, "w1", "a", "/ok"),
        json!({ "work_id": "w2", "url": server.url("/ok") }),
        json!({ "work_id": "w3", "artifact_id": "a", "url": "ftp://example.org/x" }),
        json!({ "work_id": 5, "artifact_id": "a", "url": server.url("/ok") }),
    );
    let manifest = ws.path("m.jsonl");
    std::fs::write(&manifest, text).unwrap();
    let out = ws.fetch(&manifest, FAST);
    assert_eq!(out.status.code(), Some(3), "rejected lines exit 3: {}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 3: not valid JSON"), "{stderr}");
    assert!(stderr.contains("line 4: missing artifact_id"), "{stderr}");
    assert!(stderr.contains("line 5: url: scheme \"ftp\""), "{stderr}");
    assert!(stderr.contains("line 6: work_id must be a JSON string"), "{stderr}");
    let jobs = ws.jobs();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["state"], "SUCCESS");
    let replan = ws.run(&["plan", manifest.to_str().unwrap()]);
    assert_eq!(replan.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&replan.stdout).contains("0 new, 1 already planned, 4 rejected"));
}

#[test]
fn csv_manifests_and_stdin() {
    let server = TestServer::start();
    let ws = Workspace::new();
    server.add("/c", content(2, 2000));
    let csv = ws.path("m.csv");
    std::fs::write(
        &csv,
        format!(
            "work_id,artifact_id,url,sha256,size\nw,\"a,b\",{},,2000\n",
            server.url("/c")
        ),
    )
    .unwrap();
    let out = ws.run(&["plan", csv.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let mut child = ws
        .command(&["plan", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    writeln!(child.stdin.take().unwrap(), "{}", entry(&server, "w2", "x", "/c")).unwrap();
    let piped = child.wait_with_output().unwrap();
    assert!(
        String::from_utf8_lossy(&piped.stdout).contains("1 new"),
        "{}",
        describe(&piped)
    );
    let run = ws.run(&["run", "--out", ws.out().to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(0), "{}", describe(&run));
    assert!(ws.out().join("w").join("a,b").is_file());
}

#[test]
fn usage_errors_exit_2() {
    let ws = Workspace::new();
    assert_eq!(ws.run(&["run"]).status.code(), Some(2), "missing --out");
    assert_eq!(ws.run(&["status", "--bogus"]).status.code(), Some(2));
    assert_eq!(
        ws.run(&["run", "--out", "x", "--lease-ttl", "soon"]).status.code(),
        Some(2)
    );
    assert_eq!(
        ws.run(&["run", "--out", "x", "--max-size", "lots"]).status.code(),
        Some(2)
    );
    assert_eq!(ws.run(&["jobs", "--state", "DONE"]).status.code(), Some(2));
}

/// A lease shorter than a second expires before it can be renewed: every
/// grant would be lost at once (a livelock), so it is a usage error.
#[test]
fn lease_ttl_below_a_second_is_a_usage_error() {
    let ws = Workspace::new();
    let out = ws.out();
    for ttl in ["0s", "1ms", "999ms"] {
        let run = ws.run(&["run", "--out", out.to_str().unwrap(), "--lease-ttl", ttl]);
        assert_eq!(run.status.code(), Some(2), "--lease-ttl {ttl}: {}", describe(&run));
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(
            stderr.contains("--lease-ttl") && stderr.contains("at least 1s"),
            "{stderr}"
        );
    }
    // `run` needs a ledger to exist: an empty plan creates one.
    let empty = ws.manifest(&[]);
    assert_eq!(ws.run(&["plan", empty.to_str().unwrap()]).status.code(), Some(0));
    let run = ws.run(&["run", "--out", out.to_str().unwrap(), "--lease-ttl", "1s"]);
    assert_eq!(run.status.code(), Some(0), "{}", describe(&run));
}

#[test]
fn fatal_errors_exit_1_with_a_clear_message() {
    let ws = Workspace::new();
    let out = Command::new(env!("CARGO_BIN_EXE_oncefetch"))
        .args(["--db", "nosuch://x", "status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("known schemes are") && stderr.contains("sqlite"),
        "{stderr}"
    );
    let missing = ws.run(&["plan", "/no/such/manifest.jsonl"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/no/such/manifest.jsonl"));
}

#[test]
fn db_from_env_and_after_the_subcommand() {
    let ws = Workspace::new();
    let with_env = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_oncefetch"))
            .args(args)
            .env("ONCEFETCH_DB", ws.db())
            .output()
            .unwrap()
    };
    // The env names the ledger: before a plan, `status` refuses it by name.
    let missing = with_env(&["status", "--json"]);
    assert_eq!(missing.status.code(), Some(1), "{}", describe(&missing));
    let ledger = ws.path("ledger.db");
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains(&format!("no ledger at {}", ledger.display())),
        "{}",
        describe(&missing)
    );
    let empty = ws.manifest(&[]);
    let planned = with_env(&["plan", empty.to_str().unwrap()]);
    assert_eq!(planned.status.code(), Some(0), "{}", describe(&planned));
    assert!(ledger.exists(), "plan created the ledger the env names");
    let by_env = with_env(&["status", "--json"]);
    assert_eq!(by_env.status.code(), Some(0), "{}", describe(&by_env));
    let after = Command::new(env!("CARGO_BIN_EXE_oncefetch"))
        .args(["status", "--db", &ws.db()])
        .env_remove("ONCEFETCH_DB")
        .output()
        .unwrap();
    assert_eq!(after.status.code(), Some(0), "{}", describe(&after));
}

#[test]
fn help_explains_every_command() {
    let top = Command::new(env!("CARGO_BIN_EXE_oncefetch"))
        .arg("--help")
        .output()
        .unwrap();
    assert_eq!(top.status.code(), Some(0));
    let text = String::from_utf8_lossy(&top.stdout);
    for command in [
        "plan", "run", "fetch", "status", "jobs", "ledger", "recover", "verify", "retry",
    ] {
        assert!(text.contains(command), "--help lists {command}");
        let sub = Command::new(env!("CARGO_BIN_EXE_oncefetch"))
            .args([command, "--help"])
            .output()
            .unwrap();
        assert_eq!(sub.status.code(), Some(0));
        assert!(
            String::from_utf8_lossy(&sub.stdout).contains("--db"),
            "{command} --help shows --db"
        );
    }
    let run = Command::new(env!("CARGO_BIN_EXE_oncefetch"))
        .args(["run", "--help"])
        .output()
        .unwrap();
    let run = String::from_utf8_lossy(&run.stdout);
    for flag in [
        "--concurrency",
        "--per-host",
        "--lease-ttl",
        "--max-attempts",
        "--max-size",
        "--connect-timeout",
        "--read-timeout",
    ] {
        assert!(run.contains(flag), "run --help documents {flag}");
    }
}

#[test]
fn verify_reports_missing_and_changed_files_and_recover_requeues_them() {
    let server = TestServer::start();
    let ws = Workspace::new();
    server.add("/1", content(1, 4000));
    server.add("/2", content(2, 4000));
    let manifest = ws.manifest(&[entry(&server, "w1", "a", "/1"), entry(&server, "w2", "a", "/2")]);
    assert_eq!(ws.fetch(&manifest, FAST).status.code(), Some(0));
    std::fs::remove_file(ws.out().join("w1").join("a")).unwrap();
    std::fs::write(ws.out().join("w2").join("a"), b"tampered").unwrap();
    let verify = ws.run(&["verify", "--out", ws.out().to_str().unwrap()]);
    assert_eq!(verify.status.code(), Some(5), "{}", describe(&verify));
    let report = String::from_utf8_lossy(&verify.stdout);
    assert!(report.contains("missing") && report.contains("differs"), "{report}");
    let recover = ws.run(&["recover", "--out", ws.out().to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&recover.stdout).contains("requeued: 1"),
        "{}",
        describe(&recover)
    );
    assert_eq!(job_of(&ws.jobs(), "w1")["state"], "PLANNED");
    let ledger = ws.ledger();
    assert!(
        ledger.iter().any(|r| r["kind"] == "REQUEUE"),
        "recovery is written to the ledger"
    );
    let run = ws.run(&["run", "--out", ws.out().to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(0), "{}", describe(&run));
    assert_eq!(std::fs::read(ws.out().join("w1").join("a")).unwrap(), content(1, 4000));
}

#[test]
fn size_values_get_clear_reasons() {
    let server = TestServer::start();
    let ws = Workspace::new();
    server.add("/zero", Vec::new());
    let line = |artifact: &str, size: &str| {
        format!(
            r#"{{"work_id":"w","artifact_id":"{artifact}","url":"{}","size":{size}}}"#,
            server.url("/zero")
        )
    };
    let text = [
        line("a", "1000.0"),
        line("b", "1e3"),
        line("c", "-1"),
        line("d", "-0.0"),
        line("e", "-0"),
        line("f", "18446744073709551616"),
    ]
    .join("\n");
    let manifest = ws.path("m.jsonl");
    std::fs::write(&manifest, text).unwrap();
    let out = ws.run(&["plan", manifest.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "line 1: size must be a non-negative integer, got 1000.0",
        "line 2: size must be a non-negative integer, got 1000.0",
        "line 3: size must be a non-negative integer, got -1",
        "line 6: size must be at most 18446744073709551615 bytes, got 1.8446744073709552e+19",
    ] {
        assert!(stderr.contains(expected), "{expected:?} not in:\n{stderr}");
    }
    assert!(!stderr.contains("line 4"), "-0.0 is zero: {stderr}");
    assert!(!stderr.contains("line 5"), "-0 is zero: {stderr}");
    let jobs = ws.jobs();
    let mut planned: Vec<_> = jobs
        .iter()
        .map(|j| j["artifact_id"].as_str().unwrap().to_owned())
        .collect();
    planned.sort();
    assert_eq!(planned, ["d", "e"], "negative zero is planned as zero");
    let csv = ws.path("m.csv");
    std::fs::write(
        &csv,
        format!("work_id,artifact_id,url,size\nw,g,{},7.5\n", server.url("/zero")),
    )
    .unwrap();
    let out = ws.run(&["plan", csv.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 2: size must be a non-negative integer, got 7.5"),
        "{stderr}"
    );
}

#[test]
fn non_utf8_out_is_refused_at_start() {
    use std::os::unix::ffi::OsStrExt;
    let server = TestServer::start();
    let ws = Workspace::new();
    server.add("/a", content(5, 100));
    let manifest = ws.manifest(&[entry(&server, "w", "a", "/a")]);
    let out_dir = ws.dir.path().join(std::ffi::OsStr::from_bytes(b"out-\xff"));
    let out = ws
        .command(&["fetch", manifest.to_str().unwrap(), "--out"])
        .arg(&out_dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not valid UTF-8"), "{stderr}");
    assert_eq!(ws.jobs()[0]["state"], "PLANNED", "nothing was fetched");
}

#[test]
fn read_only_out_with_a_partial_folder_fails_at_start() {
    let Some(mount) = Tmpfs::mount() else {
        return;
    };
    let server = TestServer::start();
    let ws = Workspace::new();
    server.add("/a", content(6, 100));
    let out_dir = mount.path("out");
    std::fs::create_dir_all(out_dir.join(".oncefetch").join("partial")).unwrap();
    mount.make_read_only();
    let manifest = ws.manifest(&[entry(&server, "w", "a", "/a")]);
    let out = ws
        .command(&["fetch", manifest.to_str().unwrap(), "--out", out_dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let partial = out_dir.join(".oncefetch").join("partial");
    assert!(stderr.contains(partial.to_str().unwrap()), "names the folder: {stderr}");
    assert_eq!(
        server.stats().gets + server.stats().heads,
        0,
        "fails before any request"
    );
}
