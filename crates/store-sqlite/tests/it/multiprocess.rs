//! Four OS processes lease from one ledger file at once.
//!
//! The children are this test binary run again with `--exact
//! multiprocess::worker_entry`: [`worker_entry`] does nothing unless
//! `ONCEFETCH_SQLITE_WORKER` names a database, in which case it leases
//! batches until none remain, walks each job to SUCCESS, and prints one
//! `GOT <job key>` line per grant (or `ERROR <message>` and a failure).

use std::collections::HashSet;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use oncefetch_core::conformance::sample_jobs;
use oncefetch_core::{AcquireRequest, JobPatch, JobState, LeaseManager, LedgerExt, LedgerStore, OpKeys, OpKind};
use oncefetch_store_sqlite::SqliteStore;
use serde_json::json;

const WORKER_ENV: &str = "ONCEFETCH_SQLITE_WORKER";
const PROCESSES: usize = 4;
const JOBS: usize = 10_000;

#[test]
fn worker_entry() {
    let Ok(path) = std::env::var(WORKER_ENV) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let owner = format!("proc-{}", std::process::id());
    let mut out = std::io::stdout().lock();
    // libtest has printed `test … ` without a newline: start a fresh line.
    writeln!(out).expect("stdout");
    if let Err(e) = runtime.block_on(work(&path, &owner, &mut out)) {
        writeln!(out, "ERROR {e}").expect("stdout");
        out.flush().expect("stdout");
        panic!("worker failed: {e}");
    }
    out.flush().expect("stdout");
}

async fn work(path: &str, owner: &str, out: &mut impl Write) -> Result<(), Box<dyn std::error::Error>> {
    let store = SqliteStore::open(path).await?;
    let request = AcquireRequest {
        owner: owner.to_owned(),
        ttl: Duration::from_secs(600),
        limit: 50,
        max_attempts: 3,
    };
    loop {
        let leases = store.acquire(&request).await?;
        if leases.is_empty() {
            return Ok(());
        }
        for lease in &leases {
            writeln!(out, "GOT {}", lease.fence.job_key)?;
        }
        for lease in leases {
            let keys = OpKeys {
                job_key: &lease.fence.job_key,
            };
            let head = keys.head(&lease.job.canonical_url);
            oncefetch_core::run_effect(&store, &lease.fence, &head, OpKind::Head, || async {
                Ok::<_, String>(json!({"status": 200}))
            })
            .await?;
            store
                .advance(&lease.fence, &JobState::PIPELINE[2..], JobPatch::default())
                .await?;
        }
    }
}

#[test]
fn four_processes_share_one_ledger() {
    if std::env::var_os(WORKER_ENV).is_some() {
        return; // a child runs only worker_entry
    }
    let path = crate::fresh_db_path();
    let jobs = sample_jobs("multi", JOBS);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let store = SqliteStore::open(path.to_str().expect("utf-8")).await.expect("open");
        assert_eq!(store.plan(&jobs).await.expect("plan").new, JOBS as u64);
    });
    let exe = std::env::current_exe().expect("test binary");
    let children: Vec<_> = (0..PROCESSES)
        .map(|_| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "multiprocess::worker_entry",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(WORKER_ENV, &path)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn worker")
        })
        .collect();
    let mut seen = HashSet::new();
    let mut per_process = Vec::new();
    for child in children {
        let output = child.wait_with_output().expect("worker output");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "worker failed: {}\nstdout tail: {}\nstderr: {stderr}",
            output.status,
            stdout.lines().rev().take(5).collect::<Vec<_>>().join("\n")
        );
        assert!(!stdout.contains("ERROR"), "worker reported an error: {stdout}");
        assert!(!stderr.to_lowercase().contains("locked"), "lock error: {stderr}");
        let mut got = 0;
        for key in stdout
            .lines()
            .filter_map(|l| l.split_once("GOT ").map(|(_, key)| key.trim()))
        {
            assert!(seen.insert(key.to_owned()), "job {key} handed out twice");
            got += 1;
        }
        per_process.push(got);
    }
    let expected: HashSet<_> = jobs.iter().map(|j| j.job_key.clone()).collect();
    assert_eq!(seen.len(), JOBS, "every job handed out (per process: {per_process:?})");
    assert_eq!(seen, expected);
    assert!(
        per_process.iter().filter(|&&n| n > 0).count() >= 2,
        "the processes did run concurrently: {per_process:?}"
    );
    runtime.block_on(async {
        let store = SqliteStore::open(path.to_str().expect("utf-8")).await.expect("open");
        let status = store.status().await.expect("status");
        assert_eq!(status.get(JobState::Success), JOBS as u64, "{status:?}");
    });
}
