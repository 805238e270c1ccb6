//! `--out s3://bucket/prefix` against a real S3-compatible server (SeaweedFS
//! `weed mini`, started by each test on loopback ports; skipped without
//! `weed` unless `ONCEFETCH_REQUIRE_SEAWEEDFS=1`).

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use oncefetch_test_seaweedfs::Seaweed;
use oncefetch_test_server::{content, Fault, TestServer};

use crate::support::*;

const BUCKET: &str = "art";
const PREFIX: &str = "runs/one";

fn out_url() -> String {
    format!("s3://{BUCKET}/{PREFIX}")
}

/// The S3 arguments of every command (SeaweedFS takes any signature).
fn s3_args(server: &Seaweed) -> Vec<String> {
    vec![
        "--out".into(),
        out_url(),
        "--s3-endpoint".into(),
        server.endpoint(),
        "--s3-path-style".into(),
    ]
}

fn with_credentials(cmd: &mut std::process::Command) -> &mut std::process::Command {
    cmd.env("AWS_ACCESS_KEY_ID", "oncefetch-test")
        .env("AWS_SECRET_ACCESS_KEY", "oncefetch-test")
        .env("AWS_REGION", "us-east-1")
}

/// `oncefetch --db DB ARGS… <s3 args> EXTRA…`.
fn oncefetch(db: &str, server: &Seaweed, args: &[&str], extra: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_oncefetch"));
    cmd.args(["--db", db]).args(args).args(s3_args(server)).args(extra);
    with_credentials(&mut cmd);
    cmd.env_remove("ONCEFETCH_DB");
    cmd
}

fn fetch(ws: &Workspace, server: &Seaweed, manifest: &std::path::Path, extra: &[&str]) -> std::process::Output {
    oncefetch(&ws.db(), server, &["fetch", manifest.to_str().unwrap()], extra)
        .output()
        .expect("run oncefetch fetch")
}

fn spawn_run(db: &str, server: &Seaweed, extra: &[&str]) -> KillOnDrop {
    let log = tempfile::tempfile().expect("log file");
    KillOnDrop(
        oncefetch(db, server, &["run", "--backoff", "50ms"], extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn oncefetch run"),
    )
}

/// The key of an artifact (ids without characters to encode).
fn key(work: &str, artifact: &str) -> String {
    format!("{PREFIX}/{work}/{artifact}")
}

/// The artifacts' keys in the bucket (the staging folder left out).
fn artifact_keys(server: &Seaweed) -> Vec<String> {
    let mut keys: Vec<_> = server
        .keys(BUCKET, &format!("{PREFIX}/"))
        .into_iter()
        .filter(|k| !k.contains("/.oncefetch/"))
        .collect();
    keys.sort();
    keys
}

#[test]
fn a_thousand_files_with_duplicates_are_one_get_per_url_and_copies_in_the_bucket() {
    let Some(s3) = Seaweed::start("cli-thousand", &[BUCKET]) else {
        return;
    };
    let http = TestServer::start();
    let ws = Workspace::new();
    let mut lines = Vec::new();
    let mut bodies = HashMap::new();
    // 800 URLs (every tenth body the same as another URL's), 200 lines more
    // naming URLs already listed: SKIPPED_DUPLICATE, placed by copy.
    for i in 0..800u64 {
        let seed = if i % 10 == 9 { i - 1 } else { i };
        let body = content(seed, 500 + (seed as usize * 37) % 3000);
        http.add(&format!("/f{i}"), body.clone());
        lines.push(entry(&http, &format!("w{i}"), "a", &format!("/f{i}")));
        bodies.insert(key(&format!("w{i}"), "a"), body);
    }
    for i in 0..200u64 {
        let original = i * 3;
        lines.push(entry(&http, &format!("d{i}"), "a", &format!("/f{original}")));
        bodies.insert(
            key(&format!("d{i}"), "a"),
            bodies[&key(&format!("w{original}"), "a")].clone(),
        );
    }
    let manifest = ws.manifest(&lines);
    let output = fetch(&ws, &s3, &manifest, &["--concurrency", "16"]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    for i in 0..800 {
        assert_eq!(http.path_stats(&format!("/f{i}")).gets, 1, "one GET of /f{i}");
    }
    let jobs = ws.jobs();
    assert_eq!(jobs.len(), 1000);
    let skipped = jobs.iter().filter(|j| j["state"] == "SKIPPED_DUPLICATE").count();
    assert_eq!(skipped, 200, "every duplicate URL is placed by copy");
    assert!(jobs
        .iter()
        .all(|j| j["state"] == "SUCCESS" || j["state"] == "SKIPPED_DUPLICATE"));
    let keys = artifact_keys(&s3);
    assert_eq!(keys.len(), 1000, "one object per artifact");
    for (key, body) in &bodies {
        let object = s3.object(BUCKET, key).unwrap_or_else(|| panic!("no object at {key}"));
        assert_eq!(sha256_hex(&object), sha256_hex(body), "{key}");
    }
    let job = job_of(&jobs, "w5");
    assert_eq!(job["path"], format!("{}/w5/a", out_url()));
    assert!(s3.multipart_uploads(BUCKET).is_empty());
}

#[test]
fn a_200_mb_upload_killed_three_times_resumes_its_parts_and_leaves_no_upload() {
    const SIZE: usize = 200 << 20;
    let Some(s3) = Seaweed::start("cli-kill", &[BUCKET]) else {
        return;
    };
    let http = TestServer::start();
    let ws = Workspace::new();
    let body = content(77, SIZE);
    http.add("/big", body.clone());
    // 1 MiB every 20 ms: about 4 s for the whole file.
    http.fault(
        "/big",
        Fault::Throttle {
            chunk: 1 << 20,
            delay_ms: 20,
        },
    );
    let manifest = ws.manifest(&[entry(&http, "w", "big", "/big")]);
    assert_eq!(ws.run(&["plan", manifest.to_str().unwrap()]).status.code(), Some(0));
    let mut kills = 0;
    for round in 1..=3u64 {
        let mut child = spawn_run(&ws.db(), &s3, &["--lease-ttl", "1s"]);
        let target = round * (SIZE as u64) / 4;
        wait_until(Duration::from_secs(120), "bytes to flow", || {
            http.stats().bytes_served > target || child.0.try_wait().unwrap().is_some()
        });
        if child.0.try_wait().unwrap().is_none() {
            child.0.kill().unwrap();
            kills += 1;
        }
        child.0.wait().unwrap();
    }
    assert_eq!(kills, 3, "killed mid-upload three times");
    let mut last = spawn_run(&ws.db(), &s3, &["--lease-ttl", "1s"]);
    assert_eq!(last.wait_within(Duration::from_secs(240)).code(), Some(0));
    let served = http.stats().bytes_served;
    assert!(
        (served as f64) < 1.3 * SIZE as f64,
        "{served} bytes served for a {SIZE}-byte file"
    );
    let object = s3.object(BUCKET, &key("w", "big")).expect("the object");
    assert_eq!(object.len(), SIZE);
    assert_eq!(sha256_hex(&object), sha256_hex(&body));
    let uploads = s3.multipart_uploads(BUCKET);
    assert!(uploads.is_empty(), "no orphan multipart upload: {uploads:?}");
    assert!(
        http.path_stats("/big").ranged_gets >= 3,
        "each rerun resumed with a Range"
    );
    assert_eq!(artifact_keys(&s3), vec![key("w", "big")], "the staging object is gone");
}

#[test]
fn an_occupied_key_is_left_untouched_and_the_job_fails() {
    let Some(s3) = Seaweed::start("cli-occupied", &[BUCKET]) else {
        return;
    };
    let http = TestServer::start();
    let ws = Workspace::new();
    // One small body (a conditional PUT), one past a part (a conditional copy).
    let small = content(1, 1000);
    let large = content(2, 6 << 20);
    http.add("/small", small);
    http.add("/large", large);
    s3.put(BUCKET, &key("w1", "a"), b"someone else's");
    s3.put(BUCKET, &key("w2", "a"), b"someone else's too");
    let manifest = ws.manifest(&[entry(&http, "w1", "a", "/small"), entry(&http, "w2", "a", "/large")]);
    let output = fetch(&ws, &s3, &manifest, &[]);
    assert_eq!(output.status.code(), Some(4), "{}", describe(&output));
    let jobs = ws.jobs();
    for work in ["w1", "w2"] {
        let job = job_of(&jobs, work);
        assert_eq!(job["state"], "FAILED", "{job}");
        let error = job["last_error"].as_str().unwrap_or_default();
        assert!(error.contains("already occupies"), "{job}");
    }
    assert_eq!(s3.object(BUCKET, &key("w1", "a")).unwrap(), b"someone else's");
    assert_eq!(s3.object(BUCKET, &key("w2", "a")).unwrap(), b"someone else's too");
    assert_eq!(http.path_stats("/small").gets, 1, "no retry");
    assert!(s3.multipart_uploads(BUCKET).is_empty());
}

#[test]
fn the_object_server_restarted_mid_run_and_the_workers_finish() {
    let Some(mut s3) = Seaweed::start("cli-restart", &[BUCKET]) else {
        return;
    };
    let http = TestServer::start();
    let ws = Workspace::new();
    let mut lines = Vec::new();
    let mut bodies = HashMap::new();
    for i in 0..24u64 {
        let body = content(300 + i, if i % 4 == 0 { 6 << 20 } else { 200_000 });
        let path = format!("/r{i}");
        http.add(&path, body.clone());
        http.fault(
            &path,
            Fault::Throttle {
                chunk: 256 << 10,
                delay_ms: 40,
            },
        );
        lines.push(entry(&http, &format!("w{i}"), "a", &path));
        bodies.insert(key(&format!("w{i}"), "a"), body);
    }
    let manifest = ws.manifest(&lines);
    assert_eq!(ws.run(&["plan", manifest.to_str().unwrap()]).status.code(), Some(0));
    let mut run = spawn_run(&ws.db(), &s3, &["--concurrency", "4", "--max-attempts", "10"]);
    wait_until(Duration::from_secs(60), "a few artifacts", || {
        artifact_keys(&s3).len() >= 3
    });
    s3.restart();
    assert_eq!(run.wait_within(Duration::from_secs(300)).code(), Some(0));
    let jobs = ws.jobs();
    assert!(jobs.iter().all(|j| j["state"] == "SUCCESS"), "{jobs:?}");
    for (key, body) in &bodies {
        let object = s3.object(BUCKET, key).unwrap_or_else(|| panic!("no object at {key}"));
        assert_eq!(sha256_hex(&object), sha256_hex(body), "{key}");
    }
}

#[test]
fn a_bucket_that_cannot_take_artifacts_stops_the_run_before_any_request() {
    let Some(s3) = Seaweed::start("cli-probe", &[BUCKET]) else {
        return;
    };
    let http = TestServer::start();
    let ws = Workspace::new();
    http.add("/x", content(5, 100));
    let manifest = ws.manifest(&[entry(&http, "w", "a", "/x")]);
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_oncefetch"));
    cmd.args(["--db", &ws.db(), "fetch", manifest.to_str().unwrap()]).args([
        "--out",
        "s3://no-such-bucket/p",
        "--s3-endpoint",
        &s3.endpoint(),
        "--s3-path-style",
    ]);
    let output = with_credentials(&mut cmd).output().expect("fetch");
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("s3://no-such-bucket/p"), "{stderr}");
    assert_eq!(http.stats().gets, 0, "no job ran");
}

#[test]
fn verify_reads_objects_back_and_recover_requeues_a_missing_one() {
    let Some(s3) = Seaweed::start("cli-verify", &[BUCKET]) else {
        return;
    };
    let http = TestServer::start();
    let ws = Workspace::new();
    let mut lines = Vec::new();
    for i in 0..5u64 {
        let size = if i == 0 { 6 << 20 } else { 3000 };
        http.add(&format!("/v{i}"), content(900 + i, size));
        lines.push(entry(&http, &format!("w{i}"), "a", &format!("/v{i}")));
    }
    let manifest = ws.manifest(&lines);
    let output = fetch(&ws, &s3, &manifest, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let verify = |extra: &[&str]| {
        oncefetch(&ws.db(), &s3, &["verify", "--json"], extra)
            .output()
            .expect("verify")
    };
    let clean = verify(&[]);
    assert_eq!(clean.status.code(), Some(0), "{}", describe(&clean));
    let counts: serde_json::Value = serde_json::from_slice(&clean.stdout).expect("JSON");
    assert_eq!(
        (counts["looked"].as_u64(), counts["ok"].as_u64()),
        (Some(5), Some(5)),
        "{counts}"
    );
    s3.put(BUCKET, &key("w0", "a"), b"changed behind our back");
    s3.delete(BUCKET, &key("w1", "a"));
    let dirty = verify(&["--verify-concurrency", "2"]);
    assert_eq!(dirty.status.code(), Some(5), "{}", describe(&dirty));
    let counts: serde_json::Value = serde_json::from_slice(&dirty.stdout).expect("JSON");
    assert_eq!(
        (counts["different"].as_u64(), counts["missing"].as_u64()),
        (Some(1), Some(1)),
        "{counts}"
    );
    let recover = oncefetch(&ws.db(), &s3, &["recover", "--json"], &[])
        .output()
        .expect("recover");
    assert_eq!(recover.status.code(), Some(0), "{}", describe(&recover));
    let report: serde_json::Value = serde_json::from_slice(&recover.stdout).expect("JSON");
    assert_eq!(report["requeued_missing"], 1, "{report}");
    let again = fetch(&ws, &s3, &manifest, &[]);
    assert_eq!(again.status.code(), Some(0), "{}", describe(&again));
    assert_eq!(http.path_stats("/v1").gets, 2, "the missing object is downloaded again");
    assert!(s3.object(BUCKET, &key("w1", "a")).is_some());
}

#[cfg(feature = "postgres")]
#[test]
fn three_runs_on_one_postgres_ledger_fill_one_bucket_once() {
    let Ok(url) = std::env::var("ONCEFETCH_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var("ONCEFETCH_REQUIRE_POSTGRES").as_deref() != Ok("1"),
            "ONCEFETCH_REQUIRE_POSTGRES=1 but ONCEFETCH_TEST_POSTGRES_URL is not set"
        );
        eprintln!("skipped: set ONCEFETCH_TEST_POSTGRES_URL to run the PostgreSQL tests");
        return;
    };
    let Some(s3) = Seaweed::start("cli-three", &[BUCKET]) else {
        return;
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    let db = format!("{url}{sep}schema=cli_s3_three_{}", std::process::id());
    let http = TestServer::start();
    let ws = Workspace::new();
    let mut lines = Vec::new();
    let mut bodies = HashMap::new();
    for i in 0..300u64 {
        let body = content(500 + i, if i % 50 == 0 { 6 << 20 } else { 2000 + i as usize });
        let path = format!("/p{i}");
        http.add(&path, body.clone());
        http.fault(
            &path,
            Fault::Throttle {
                chunk: 64 << 10,
                delay_ms: 5,
            },
        );
        lines.push(entry(&http, &format!("w{i}"), "a", &path));
        bodies.insert(key(&format!("w{i}"), "a"), body);
    }
    let manifest = ws.manifest(&lines);
    let plan = std::process::Command::new(env!("CARGO_BIN_EXE_oncefetch"))
        .args(["--db", &db, "plan", manifest.to_str().unwrap()])
        .output()
        .expect("plan");
    assert_eq!(plan.status.code(), Some(0), "{}", describe(&plan));
    let mut runs: Vec<_> = (0..3)
        .map(|_| spawn_run(&db, &s3, &["--concurrency", "4", "--lease-ttl", "5s"]))
        .collect();
    for run in &mut runs {
        assert_eq!(run.wait_within(Duration::from_secs(300)).code(), Some(0));
    }
    for i in 0..300 {
        assert_eq!(http.path_stats(&format!("/p{i}")).gets, 1, "one GET of /p{i}");
    }
    let jobs = json_lines(
        &std::process::Command::new(env!("CARGO_BIN_EXE_oncefetch"))
            .args(["--db", &db, "jobs", "--json"])
            .output()
            .expect("jobs"),
    );
    assert_eq!(jobs.len(), 300);
    assert!(jobs.iter().all(|j| j["state"] == "SUCCESS"), "every job SUCCESS");
    assert_eq!(artifact_keys(&s3).len(), 300, "one object per artifact");
    for (key, body) in &bodies {
        let object = s3.object(BUCKET, key).unwrap_or_else(|| panic!("no object at {key}"));
        assert_eq!(sha256_hex(&object), sha256_hex(body), "{key}");
    }
    assert!(s3.multipart_uploads(BUCKET).is_empty());
}

#[test]
fn verify_quick_checks_sizes_and_stored_hashes_without_reading() {
    let Some(s3) = Seaweed::start("cli-quick", &[BUCKET]) else {
        return;
    };
    let http = TestServer::start();
    let ws = Workspace::new();
    let mut lines = Vec::new();
    for i in 0..5u64 {
        let size = if i == 0 { 6 << 20 } else { 3000 };
        http.add(&format!("/q{i}"), content(700 + i, size));
        lines.push(entry(&http, &format!("w{i}"), "a", &format!("/q{i}")));
    }
    let manifest = ws.manifest(&lines);
    let output = fetch(&ws, &s3, &manifest, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let quick = || {
        oncefetch(&ws.db(), &s3, &["verify", "--quick", "--json"], &[])
            .output()
            .expect("verify --quick")
    };
    let clean = quick();
    assert_eq!(clean.status.code(), Some(0), "{}", describe(&clean));
    let counts: serde_json::Value = serde_json::from_slice(&clean.stdout).expect("JSON");
    assert_eq!(
        (counts["looked"].as_u64(), counts["ok"].as_u64()),
        (Some(5), Some(5)),
        "{counts}"
    );
    // Same size, other bytes: the large one by its recorded ETag, the small one by its hash.
    s3.put(BUCKET, &key("w0", "a"), &content(1, 6 << 20));
    s3.put(BUCKET, &key("w1", "a"), &content(2, 3000));
    s3.put(BUCKET, &key("w2", "a"), b"another size");
    s3.delete(BUCKET, &key("w3", "a"));
    let dirty = quick();
    assert_eq!(dirty.status.code(), Some(5), "{}", describe(&dirty));
    let counts: serde_json::Value = serde_json::from_slice(&dirty.stdout).expect("JSON");
    assert_eq!(
        (
            counts["ok"].as_u64(),
            counts["different"].as_u64(),
            counts["missing"].as_u64()
        ),
        (Some(1), Some(3), Some(1)),
        "{counts}"
    );
    let problems = String::from_utf8_lossy(&dirty.stderr);
    assert!(problems.contains("ETag"), "the large object by its ETag: {problems}");
    assert!(problems.contains("12 bytes, ledger 3000"), "{problems}");
}

#[test]
fn recover_aborts_the_upload_of_a_job_that_ended_without_it() {
    const SIZE: usize = 40 << 20;
    let Some(s3) = Seaweed::start("cli-dead-upload", &[BUCKET]) else {
        return;
    };
    let http = TestServer::start();
    let ws = Workspace::new();
    http.add("/big", content(78, SIZE));
    http.fault(
        "/big",
        Fault::Throttle {
            chunk: 1 << 20,
            delay_ms: 20,
        },
    );
    let manifest = ws.manifest(&[entry(&http, "w", "big", "/big")]);
    assert_eq!(ws.run(&["plan", manifest.to_str().unwrap()]).status.code(), Some(0));
    let mut child = spawn_run(&ws.db(), &s3, &["--lease-ttl", "1s", "--max-attempts", "1"]);
    wait_until(Duration::from_secs(120), "parts to be uploaded", || {
        http.stats().bytes_served > (SIZE as u64) / 2
    });
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    assert_eq!(s3.multipart_uploads(BUCKET).len(), 1, "the killed run left its upload");
    std::thread::sleep(Duration::from_millis(1100));
    // Out of attempts with its lease expired: the next grant ends the job
    // FAILED without running it, so nothing aborts its upload.
    let mut again = spawn_run(&ws.db(), &s3, &["--lease-ttl", "1s", "--max-attempts", "1"]);
    assert_eq!(
        again.wait_within(Duration::from_secs(60)).code(),
        Some(4),
        "the job ended FAILED"
    );
    assert_eq!(s3.multipart_uploads(BUCKET).len(), 1, "the upload outlived its job");
    let recover = oncefetch(&ws.db(), &s3, &["recover", "--json"], &[])
        .output()
        .expect("recover");
    assert_eq!(recover.status.code(), Some(0), "{}", describe(&recover));
    let report: serde_json::Value = serde_json::from_slice(&recover.stdout).expect("JSON");
    assert_eq!(report["uploads_aborted"], 1, "{report} {}", describe(&recover));
    let uploads = s3.multipart_uploads(BUCKET);
    assert!(uploads.is_empty(), "no multipart upload left: {uploads:?}");
    let twice = oncefetch(&ws.db(), &s3, &["recover", "--json"], &[])
        .output()
        .expect("recover");
    let report: serde_json::Value = serde_json::from_slice(&twice.stdout).expect("JSON");
    assert_eq!(
        report["uploads_aborted"], 0,
        "an aborted upload is not counted again: {report}"
    );
}
