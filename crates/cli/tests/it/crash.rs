use std::collections::HashMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use oncefetch_test_server::{content, Fault, TestServer};
use serde_json::json;

use crate::support::*;

fn signal(child: &std::process::Child, name: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name}");
}

fn spawn_run(ws: &Workspace, extra: &[&str]) -> KillOnDrop {
    let out = ws.out();
    let mut args = vec!["run", "--out", out.to_str().unwrap(), "--backoff", "50ms"];
    args.extend_from_slice(extra);
    KillOnDrop(
        ws.command(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn oncefetch run"),
    )
}

#[test]
fn sigkill_mid_stream_loses_nothing_and_resumes() {
    const FILES: u64 = 12;
    const SIZE: usize = 3 << 20;
    let server = TestServer::start();
    let ws = Workspace::new();
    let mut lines = Vec::new();
    let mut bodies = HashMap::new();
    for i in 0..FILES {
        let path = format!("/big{i}");
        let body = content(100 + i, SIZE);
        server.add(&path, body.clone());
        // ~64 KiB every 10 ms: a file takes about half a second.
        server.fault(
            &path,
            Fault::Throttle {
                chunk: 64 << 10,
                delay_ms: 10,
            },
        );
        lines.push(entry(&server, &format!("w{i}"), "data", &path));
        bodies.insert(format!("w{i}"), body);
    }
    let manifest = ws.manifest(&lines);
    assert_eq!(ws.run(&["plan", manifest.to_str().unwrap()]).status.code(), Some(0));
    let mut kills = 0;
    for round in 0..4u64 {
        let mut child = spawn_run(&ws, &["--concurrency", "4", "--lease-ttl", "2s"]);
        // Wait until bytes flow, then a little more, then kill -9.
        let before = server.stats().bytes_served;
        wait_until(Duration::from_secs(20), "bytes to flow", || {
            server.stats().bytes_served > before + (512 << 10)
        });
        std::thread::sleep(Duration::from_millis(150 + 70 * round));
        if child.0.try_wait().unwrap().is_none() {
            signal(&child.0, "KILL");
            kills += 1;
        }
        child.0.wait().unwrap();
    }
    assert!(kills >= 3, "the run was killed mid-stream");
    let mut last = spawn_run(&ws, &["--concurrency", "4"]);
    let status = last.0.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let jobs = ws.jobs();
    assert_eq!(jobs.len() as u64, FILES);
    for job in &jobs {
        let body = &bodies[job["work_id"].as_str().unwrap()];
        assert_eq!(job["state"], "SUCCESS", "{job}");
        assert_eq!(job["sha256"], sha256_hex(body));
        assert_eq!(std::fs::read(job["path"].as_str().unwrap()).unwrap(), *body);
    }
    assert!(
        ws.partial_files().is_empty(),
        "no partial file remains: {:?}",
        ws.partial_files()
    );
    let ledger = ws.ledger();
    for job in &jobs {
        let finalize_ok = ledger
            .iter()
            .filter(|r| r["job_key"] == job["job_key"] && r["kind"] == "FINALIZE" && r["result_code"] == "OK")
            .count();
        assert_eq!(finalize_ok, 1, "exactly one successful FINALIZE for {}", job["job_key"]);
    }
    assert!(
        ledger.iter().any(|r| r["result_code"] == "ABANDONED"),
        "killed attempts are marked ABANDONED"
    );
    let corpus = FILES * SIZE as u64;
    let served = server.stats().bytes_served;
    assert!(
        (served as f64) < 1.5 * corpus as f64,
        "resume keeps re-sent bytes low: served {served} for a corpus of {corpus}"
    );
    let verify = ws.run(&["verify", "--out", ws.out().to_str().unwrap()]);
    assert_eq!(verify.status.code(), Some(0), "{}", describe(&verify));
}

#[test]
fn worker_paused_past_its_lease_writes_nothing() {
    let server = TestServer::start();
    let ws = Workspace::new();
    let body = content(9, 2 << 20);
    server.add("/slow", body.clone());
    server.fault(
        "/slow",
        Fault::Throttle {
            chunk: 32 << 10,
            delay_ms: 20,
        },
    );
    let manifest = ws.manifest(&[entry(&server, "w", "a", "/slow")]);
    assert_eq!(ws.run(&["plan", manifest.to_str().unwrap()]).status.code(), Some(0));
    let paused = spawn_run(&ws, &["--lease-ttl", "1s"]);
    wait_until(Duration::from_secs(20), "the first worker to stream", || {
        server.stats().bytes_served > 256 << 10
    });
    signal(&paused.0, "STOP");
    // Past its lease: another worker takes the job over and finishes it.
    std::thread::sleep(Duration::from_millis(1500));
    let mut taker = spawn_run(&ws, &["--lease-ttl", "60s"]);
    assert_eq!(taker.0.wait().unwrap().code(), Some(0));
    let job = ws.jobs().remove(0);
    assert_eq!(job["state"], "SUCCESS");
    let ledger_before = ws.ledger();
    let final_path = job["path"].as_str().unwrap().to_owned();
    let inode = std::fs::metadata(&final_path).unwrap();
    // Wake the paused worker: it must notice the lost lease and write nothing.
    signal(&paused.0, "CONT");
    let mut paused = paused;
    let woke = Instant::now();
    loop {
        if paused.0.try_wait().unwrap().is_some() {
            break;
        }
        assert!(
            woke.elapsed() < Duration::from_secs(30),
            "the paused worker did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let ledger_after = ws.ledger();
    assert_eq!(
        ledger_after.len(),
        ledger_before.len(),
        "the stale worker added no ledger row: {:?}",
        &ledger_after[ledger_before.len().min(ledger_after.len())..]
    );
    assert_eq!(ledger_after, ledger_before, "the stale worker changed no ledger row");
    assert_eq!(ws.jobs().remove(0), job, "the stale worker changed no state");
    use std::os::unix::fs::MetadataExt;
    let after = std::fs::metadata(&final_path).unwrap();
    assert_eq!(
        (after.ino(), after.len()),
        (inode.ino(), inode.len()),
        "the placed file is untouched"
    );
    assert_eq!(std::fs::read(&final_path).unwrap(), body);
    let stale_rows: Vec<_> = ledger_after.iter().filter(|r| r["epoch"] == 1).collect();
    assert!(
        stale_rows
            .iter()
            .all(|r| r["result_code"] != "OK" || r["kind"] == "HEAD"),
        "epoch 1 finished nothing but its HEAD: {stale_rows:?}"
    );
}

/// `plan` killed with SIGKILL while it streams a large manifest loses none
/// of the jobs planned before and keeps every transaction it committed, all
/// PLANNED; planning again adds exactly the rest, so every job is there once.
#[test]
fn sigkill_mid_plan_keeps_what_was_planned() {
    const LINES: usize = 400_000;
    const BEFORE: usize = 1000;
    let ws = Workspace::new();
    let lines: Vec<String> = (0..LINES)
        .map(|i| {
            format!(
                "{{\"work_id\":\"work-{i}\",\"artifact_id\":\"file.pdf\",\"url\":\"https://h{}.example.org/r/{i}.pdf\"}}\n",
                i % 16
            )
        })
        .collect();
    let first = ws.path("first.jsonl");
    std::fs::write(&first, lines[..BEFORE].concat()).unwrap();
    let manifest = ws.path("big.jsonl");
    std::fs::write(&manifest, lines.concat()).unwrap();
    let total = || -> usize {
        let out = ws.run(&["status", "--json"]);
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        assert_eq!(status["total"], status["states"]["PLANNED"], "{status}");
        usize::try_from(status["total"].as_u64().unwrap_or(0)).unwrap()
    };
    assert_eq!(ws.run(&["plan", first.to_str().unwrap()]).status.code(), Some(0));
    assert_eq!(total(), BEFORE);
    let mut child = KillOnDrop(
        ws.command(&["plan", manifest.to_str().unwrap()])
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn oncefetch plan"),
    );
    // Kill once it committed a transaction, while it writes the next (a
    // fast machine may finish first: the checks below hold either way).
    wait_until(Duration::from_secs(120), "a committed plan transaction", || {
        total() > BEFORE || child.0.try_wait().unwrap().is_some()
    });
    if child.0.try_wait().unwrap().is_none() {
        signal(&child.0, "KILL");
    }
    let _ = child.0.wait();
    let kept = total();
    eprintln!("{kept} of {LINES} jobs planned when plan was killed");
    assert!((BEFORE..=LINES).contains(&kept), "{kept} jobs after the kill");
    let again = ws.run(&["plan", manifest.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(0), "{}", describe(&again));
    let said = String::from_utf8_lossy(&again.stdout);
    assert!(
        said.contains(&format!(
            "planned: {} new, {kept} already planned, 0 rejected",
            LINES - kept
        )),
        "{said}"
    );
    assert_eq!(total(), LINES, "every job once");
}

/// A file whose worker is SIGKILLed mid-stream on every attempt: each attempt
/// that ends by lease expiry counts, and once `--max-attempts` are used up
/// the job ends FAILED naming the expiry, and `run` exits 4 instead of
/// leasing it a fourth time.
#[test]
fn worker_killed_on_every_attempt_runs_out_of_attempts() {
    let server = TestServer::start();
    let ws = Workspace::new();
    // ~32 KiB every 20 ms: an attempt takes about 2.5 s.
    server.add("/crashy", content(11, 4 << 20));
    server.fault(
        "/crashy",
        Fault::Throttle {
            chunk: 32 << 10,
            delay_ms: 20,
        },
    );
    let manifest = ws.manifest(&[entry(&server, "w", "a", "/crashy")]);
    assert_eq!(ws.run(&["plan", manifest.to_str().unwrap()]).status.code(), Some(0));
    let flags = ["--max-attempts", "3", "--lease-ttl", "1s"];
    for attempt in 1..=3u64 {
        let mut child = spawn_run(&ws, &flags);
        wait_until(Duration::from_secs(30), &format!("attempt {attempt} to stream"), || {
            let job = ws.jobs().remove(0);
            job["state"] == "STREAMING" && job["attempts"] == attempt
        });
        signal(&child.0, "KILL");
        child.0.wait().unwrap();
    }
    let gets = server.stats().gets;
    let mut last = spawn_run(&ws, &flags);
    wait_until(Duration::from_secs(30), "the last run to end", || {
        last.0.try_wait().unwrap().is_some()
    });
    assert_eq!(last.0.wait().unwrap().code(), Some(4), "a job ended FAILED: exit 4");
    assert_eq!(server.stats().gets, gets, "no fourth attempt was made");
    let job = ws.jobs().remove(0);
    assert_eq!(
        (&job["state"], &job["attempts"]),
        (&json!("FAILED"), &json!(3)),
        "{job}"
    );
    let error = job["last_error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("lease expired in STREAMING with 3 of 3 attempts used (worker died or stalled)"),
        "{job}"
    );
    let ledger = ws.ledger();
    assert!(
        ledger
            .iter()
            .any(|r| r["kind"] == "RELET" && r["epoch"] == 4 && r["result"]["to"] == "FAILED"),
        "the step to FAILED is in the ledger: {ledger:?}"
    );
}
