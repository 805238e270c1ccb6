//! Resource errors (SPEC §7): a full disk, a read-only filesystem or an
//! output folder gone mid-run stop the run at once (exit 1, naming the
//! folder), cost no job an attempt, leave at most one partial file per job,
//! and a rerun once the machine is fixed finishes every job.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use oncefetch_test_server::{content, Fault, TestServer};
use serde_json::Value;

use crate::support::*;

const JOBS: usize = 4;
const SIZE: usize = 1 << 20;

/// `JOBS` bodies of `SIZE` bytes, each sent at ~64 KiB every 20 ms (a third
/// of a second apiece), planned in `ws`.
fn plan_slow_jobs(server: &TestServer, ws: &Workspace) -> Vec<Vec<u8>> {
    let mut bodies = Vec::new();
    let mut lines = Vec::new();
    for i in 0..JOBS {
        let path = format!("/r{i}");
        let body = content(40 + i as u64, SIZE);
        server.add(&path, body.clone());
        server.fault(
            &path,
            Fault::Throttle {
                chunk: 64 << 10,
                delay_ms: 20,
            },
        );
        lines.push(entry(server, &format!("w{i}"), "a", &path));
        bodies.push(body);
    }
    let manifest = ws.manifest(&lines);
    assert_eq!(ws.run(&["plan", manifest.to_str().unwrap()]).status.code(), Some(0));
    bodies
}

/// Runs `oncefetch run --out OUT`, calls `mid_run` once bytes flow, and
/// waits (bounded) for the run to exit; returns its status, how long after
/// `mid_run` it exited, and its stderr.
fn run_disturbed(
    ws: &Workspace,
    server: &TestServer,
    out: &Path,
    mid_run: impl FnOnce(),
) -> (ExitStatus, Duration, String) {
    let args = [
        "run",
        "--out",
        out.to_str().unwrap(),
        "--concurrency",
        "4",
        "--backoff",
        "50ms",
    ];
    let mut child = KillOnDrop::spawn(ws, &args);
    await_bytes_served(server, 256 << 10);
    mid_run();
    let disturbed = Instant::now();
    let status = child.wait_within(Duration::from_secs(30));
    let took = disturbed.elapsed();
    (status, took, child.stderr())
}

/// The run stopped for the machine: exit 1 within seconds, naming the
/// folder and `what`; no job FAILED or charged an attempt it did not
/// finish; no op left running; at most one partial file per job.
fn assert_stopped_cleanly(ws: &Workspace, out: &Path, ran: &(ExitStatus, Duration, String), what: &str) {
    let (status, took, stderr) = ran;
    assert_eq!(status.code(), Some(1), "stderr:\n{stderr}");
    assert!(*took < Duration::from_secs(10), "exited {took:?} after the disturbance");
    let folder = std::fs::canonicalize(out.parent().unwrap())
        .unwrap()
        .join(out.file_name().unwrap());
    assert!(
        stderr.contains(&folder.display().to_string()) && stderr.contains(what),
        "one clear message naming {} and '{what}':\n{stderr}",
        folder.display()
    );
    for job in ws.jobs() {
        assert_ne!(job["state"], "FAILED", "no job fails for the machine: {job}");
        if job["state"] != "SUCCESS" {
            assert_eq!(job["attempts"], 0, "no job loses an attempt: {job}");
        }
    }
    let running: Vec<Value> = ws
        .ledger()
        .into_iter()
        .filter(|op| op["result_code"].is_null())
        .collect();
    assert!(running.is_empty(), "no op is left running: {running:?}");
    for (job, files) in partials_by_job(out) {
        assert!(files.len() <= 1, "one partial file per job, {job} has {files:?}");
    }
}

/// After the machine is fixed, a rerun finishes every job with the right
/// bytes, each job charged exactly its one successful attempt.
fn assert_rerun_finishes(ws: &Workspace, out: &Path, bodies: &[Vec<u8>]) {
    let rerun = ws.run(&["run", "--out", out.to_str().unwrap()]);
    assert_eq!(rerun.status.code(), Some(0), "{}", describe(&rerun));
    let jobs = ws.jobs();
    for (i, body) in bodies.iter().enumerate() {
        let job = job_of(&jobs, &format!("w{i}"));
        assert_eq!(job["state"], "SUCCESS", "{job}");
        assert_eq!(job["attempts"], 1, "only the attempt that finished counts: {job}");
        assert_eq!(&std::fs::read(job["path"].as_str().unwrap()).unwrap(), body);
    }
    assert!(partials_by_job(out).is_empty(), "no partial file is left");
}

/// The partial files under `out`, by job key.
fn partials_by_job(out: &Path) -> HashMap<String, Vec<PathBuf>> {
    let mut by_job: HashMap<String, Vec<PathBuf>> = HashMap::new();
    let Ok(entries) = std::fs::read_dir(out.join(".oncefetch").join("partial")) else {
        return by_job;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".part") {
            let job = stem.split('.').next().unwrap().to_owned();
            by_job.entry(job).or_default().push(path);
        }
    }
    by_job
}

/// Writes `path` until the filesystem is full.
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).expect("create the filler");
    let chunk = vec![0u8; 64 << 10];
    // A bounded loop: the tmpfs is a few MiB.
    for _ in 0..100_000 {
        if file.write_all(&chunk).is_err() {
            return;
        }
    }
    panic!("the filesystem never filled up");
}

#[test]
fn a_full_disk_stops_the_run_and_a_rerun_after_freeing_space_finishes() {
    let Some(mount) = Tmpfs::mount_sized("8m") else {
        return;
    };
    let server = TestServer::start();
    let ws = Workspace::new();
    let bodies = plan_slow_jobs(&server, &ws);
    let out = mount.path("out");
    let filler = mount.path("filler");
    let ran = run_disturbed(&ws, &server, &out, || fill(&filler));
    assert_stopped_cleanly(&ws, &out, &ran, "no space left");
    let gets_before = server.stats().gets;
    assert!(
        ws.jobs().iter().any(|job| job["state"] != "SUCCESS"),
        "the disk filled before the jobs were done"
    );

    // Still full: the next run stops again at once, still charging nothing,
    // keeping the one partial per job.
    let again = ws.run(&["run", "--out", out.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&again.stderr).into_owned();
    assert_stopped_cleanly(&ws, &out, &(again.status, Duration::ZERO, stderr), "no space left");
    assert!(
        server.stats().gets - gets_before <= JOBS as u64,
        "a full disk is not retried job after job"
    );

    std::fs::remove_file(&filler).unwrap();
    assert_rerun_finishes(&ws, &out, &bodies);
}

#[test]
fn a_filesystem_turned_read_only_stops_the_run_and_a_rerun_finishes() {
    let Some(mount) = Tmpfs::mount() else {
        return;
    };
    let server = TestServer::start();
    let ws = Workspace::new();
    let bodies = plan_slow_jobs(&server, &ws);
    let out = mount.path("out");
    let ran = run_disturbed(&ws, &server, &out, || mount.make_read_only());
    assert_stopped_cleanly(&ws, &out, &ran, "read-only");
    mount.make_writable();
    assert_rerun_finishes(&ws, &out, &bodies);
}

#[test]
fn an_output_folder_deleted_mid_run_stops_the_run_and_a_rerun_finishes() {
    let server = TestServer::start();
    let ws = Workspace::new();
    let bodies = plan_slow_jobs(&server, &ws);
    let out = ws.out();
    let ran = run_disturbed(&ws, &server, &out, || std::fs::remove_dir_all(&out).unwrap());
    assert_stopped_cleanly(&ws, &out, &ran, "gone");
    assert_rerun_finishes(&ws, &out, &bodies);
}
