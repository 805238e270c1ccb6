//! SPEC §6's batched finalize on a real `oncefetch run` under strace: the
//! run is held (a delay injected on entry) at each of the four steps —
//! the shared `syncfs` of the files' bytes, their placement (`linkat`), the
//! directory `fsync`, the ledger's writes (`pwrite64`) — and killed there
//! with SIGKILL. Whatever the step, no job has a FINALIZE OK without its
//! complete file, and a rerun finishes every job. A `syncfs` that fails
//! (EIO injected) makes every file fsynced on its own, and the run still
//! reports only what happened.

use std::collections::HashMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use oncefetch_test_server::{content, TestServer};
use serde_json::Value;

use crate::support::*;

/// Small files, as many as the batches need to be several.
const FILES: u64 = 48;

/// `strace … oncefetch run` in a process group of its own, killed with the
/// tracer (SIGKILL to the group) when dropped.
struct Traced {
    run: KillOnDrop,
    log: PathBuf,
}

impl Traced {
    /// `oncefetch run --out OUT` (as [`Workspace::command`] makes it) under
    /// `strace -f` with `STRACE…` (`-e` options), its trace written to
    /// [`Traced::log`].
    fn spawn(ws: &Workspace, strace: &[&str]) -> Self {
        let out = ws.out();
        let mut args = vec!["run", "--out", out.to_str().unwrap()];
        args.extend_from_slice(FAST);
        args.extend_from_slice(&["--backoff", "50ms"]);
        let run = ws.command(&args);
        let log = ws.path("strace.log");
        let mut command = Command::new("strace");
        command
            .args(["-f", "-qq", "-o"])
            .arg(&log)
            .args(strace)
            .arg("--")
            .arg(run.get_program())
            .args(run.get_args());
        for (key, value) in run.get_envs() {
            match value {
                Some(value) => command.env(key, value),
                None => command.env_remove(key),
            };
        }
        command.stdout(Stdio::null()).stderr(Stdio::piped()).process_group(0);
        let child = command.spawn().expect("strace is installed (.ci/run installs it)");
        Self {
            run: KillOnDrop(child),
            log,
        }
    }

    /// The file its trace is written to.
    fn log(&self) -> &Path {
        &self.log
    }

    /// Whether the tracer has exited (the run with it: `strace -f` waits
    /// for every traced process).
    fn exited(&mut self) -> bool {
        self.run.0.try_wait().expect("wait").is_some()
    }

    /// SIGKILL to the tracer and the traced run at once.
    fn kill(&mut self) {
        let group = format!("-{}", self.run.0.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.run.0.wait();
    }

    /// Its exit status, waiting at most `limit` (and failing past it).
    fn wait_within(&mut self, limit: Duration) -> ExitStatus {
        self.run.wait_within(limit)
    }

    /// All the run wrote to its piped stderr (once it has exited).
    fn stderr(&mut self) -> String {
        self.run.stderr()
    }
}

impl Drop for Traced {
    /// The whole group first: [`KillOnDrop`] alone would kill only the
    /// tracer and leave the traced run going.
    fn drop(&mut self) {
        if self.run.0.try_wait().ok().flatten().is_none() {
            self.kill();
        }
    }
}

/// A planned ledger of [`FILES`] small files; their bodies by work id.
fn planned(server: &TestServer, ws: &Workspace) -> HashMap<String, Vec<u8>> {
    let mut lines = Vec::new();
    let mut bodies = HashMap::new();
    for i in 0..FILES {
        let path = format!("/f{i}");
        let body = content(700 + i, 4096 + 1024 * i as usize);
        server.add(&path, body.clone());
        lines.push(entry(server, &format!("w{i}"), "a", &path));
        bodies.insert(format!("w{i}"), body);
    }
    let manifest = ws.manifest(&lines);
    let plan = ws.run(&["plan", manifest.to_str().unwrap()]);
    assert_eq!(plan.status.code(), Some(0), "{}", describe(&plan));
    bodies
}

/// The jobs with a FINALIZE OK row in the ledger.
fn finalized(ws: &Workspace) -> Vec<String> {
    ws.ledger()
        .into_iter()
        .filter(|r| r["kind"] == "FINALIZE" && r["result_code"] == "OK")
        .map(|r| r["job_key"].as_str().unwrap().to_owned())
        .collect()
}

/// Every job the ledger calls finalized has its complete file.
fn assert_finalized_files_complete(ws: &Workspace, bodies: &HashMap<String, Vec<u8>>, step: &str) {
    let finalized = finalized(ws);
    let jobs: Vec<Value> = ws.jobs();
    for job in jobs
        .iter()
        .filter(|j| finalized.iter().any(|k| j["job_key"] == k.as_str()))
    {
        let work = job["work_id"].as_str().unwrap();
        let file = ws.out().join(work).join("a");
        let bytes = std::fs::read(&file).unwrap_or_else(|e| {
            panic!(
                "killed at {step}: {work} has a FINALIZE OK but no file {}: {e}",
                file.display()
            )
        });
        assert_eq!(
            sha256_hex(&bytes),
            sha256_hex(&bodies[work]),
            "killed at {step}: {work} has a FINALIZE OK and an incomplete file"
        );
    }
}

/// Every one of `jobs` is SUCCESS, its file holding its bytes.
fn assert_every_job_succeeded(ws: &Workspace, jobs: &[Value], bodies: &HashMap<String, Vec<u8>>) {
    let out = ws.out();
    for job in jobs {
        let work = job["work_id"].as_str().unwrap();
        assert_eq!(job["state"], "SUCCESS", "{job}");
        assert_eq!(std::fs::read(out.join(work).join("a")).unwrap(), bodies[work], "{work}");
    }
}

/// A run to the end, untraced: every job SUCCESS with its bytes, exactly one
/// FINALIZE OK each.
fn assert_rerun_finishes(ws: &Workspace, bodies: &HashMap<String, Vec<u8>>) {
    let out = ws.out();
    let run = ws.run(&["run", "--out", out.to_str().unwrap(), "--backoff", "50ms"]);
    assert_eq!(run.status.code(), Some(0), "{}", describe(&run));
    let jobs = ws.jobs();
    assert_eq!(jobs.len() as u64, FILES);
    assert_every_job_succeeded(ws, &jobs, bodies);
    let finalized = finalized(ws);
    assert_eq!(finalized.len() as u64, FILES, "one FINALIZE OK per job");
}

/// Kills the run while it is held at `syscall`, once a few jobs are
/// finalized (so the kill lands mid-run), and checks the ledger.
fn killed_while_held_at(syscall: &str, step: &str) {
    let server = TestServer::start();
    let ws = Workspace::new();
    let bodies = planned(&server, &ws);
    let inject = format!("inject={syscall}:delay_enter=150000");
    for round in 1..=3usize {
        let mut run = Traced::spawn(&ws, &["-e", &format!("trace={syscall}"), "-e", &inject]);
        let what = format!("{} jobs finalized while held at {step}", 4 * round);
        // Done early when the run has exited (it finished everything).
        wait_until(Duration::from_secs(60), &what, || {
            finalized(&ws).len() >= 4 * round || run.exited()
        });
        run.kill();
        assert_finalized_files_complete(&ws, &bodies, step);
    }
    let done = finalized(&ws).len() as u64;
    assert!(
        done < FILES,
        "the kills landed before the end ({done} of {FILES} finalized)"
    );
    assert_rerun_finishes(&ws, &bodies);
}

#[test]
fn killed_before_the_shared_sync_of_the_bytes() {
    killed_while_held_at("syncfs", "the shared syncfs");
}

#[test]
fn killed_before_the_placement() {
    killed_while_held_at("linkat", "the placement");
}

#[test]
fn killed_before_the_directory_sync() {
    killed_while_held_at("fsync", "the directory fsync");
}

#[test]
fn killed_before_the_ledger_commit() {
    killed_while_held_at("pwrite64", "the ledger's writes");
}

#[test]
fn a_failed_syncfs_makes_every_file_fsynced_on_its_own() {
    let server = TestServer::start();
    let ws = Workspace::new();
    let bodies = planned(&server, &ws);
    let mut run = Traced::spawn(&ws, &["-e", "trace=syncfs,fsync", "-e", "inject=syncfs:error=EIO"]);
    let status = run.wait_within(Duration::from_secs(120));
    let stderr = run.stderr();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("syncfs failed"), "the fallback is reported: {stderr}");
    let trace = std::fs::read_to_string(run.log()).unwrap();
    let fsyncs = trace.lines().filter(|l| l.contains(" fsync(")).count() as u64;
    assert!(
        fsyncs >= FILES,
        "after a failed syncfs each file is fsynced: {fsyncs} fsyncs for {FILES} files"
    );
    assert_every_job_succeeded(&ws, &ws.jobs(), &bodies);
}
