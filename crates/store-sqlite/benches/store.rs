//! Benchmarks of the SQLite store's hot paths (issue targets in brackets):
//!
//! - `round_trip/now`: the store clock, the cheapest call (the floor);
//! - `lease_acquire/single_job`: one `acquire` of one PLANNED job [p50 ≤ 100 µs];
//! - `state_transition/one_step`: one fenced `commit` of one step [≤ 50 µs];
//! - `plan/100k_jobs`: planning 100,000 jobs in one call [≥ 200,000 jobs/s];
//!   `…_streamed` streams them through `plan_stream` in batches of 2048, as
//!   `oncefetch plan` does;
//! - `reconcile/1M_expired_leases`: reconcile of 1,000,000 in-flight jobs whose
//!   leases expired [≤ 3 s]; `…_1M_running_ops` gives each of them one
//!   unfinished op attempt to abandon as well.
//!
//! Besides criterion's estimates, the per-call benches print their own p50
//! and p99 over every call they timed, and the CPU time the whole process
//! (caller, connection thread, checkpoint thread) spent per call, read from
//! `/proc/self/task/*/schedstat` on Linux: on a shared, loaded machine the
//! wall-clock numbers include time spent waiting for a CPU, the CPU time
//! does not.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use oncefetch_core::{
    job_key, AcquireRequest, Commit, JobState, Lease, LeaseManager, LedgerStore, NewJob, ReconcileReport,
};
use oncefetch_store_sqlite::SqliteStore;
use tokio::runtime::Runtime;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
}

fn scratch() -> PathBuf {
    tempfile::Builder::new()
        .prefix("store-sqlite-bench-")
        .tempdir()
        .expect("temp dir")
        .keep()
}

fn jobs(prefix: &str, n: usize) -> Vec<NewJob> {
    (0..n)
        .map(|i| {
            let (work_id, artifact_id) = (format!("{prefix}-work-{i}"), format!("artifact-{i}"));
            let canonical_url = format!("https://example.org/{prefix}/{i}/paper.pdf");
            NewJob {
                job_key: job_key(&work_id, &artifact_id, &canonical_url),
                work_id,
                artifact_id,
                url: canonical_url.clone(),
                canonical_url,
                expected_sha256: None,
                expected_size: Some(1024),
                expected_content_type: None,
            }
        })
        .collect()
}

fn request(limit: usize) -> AcquireRequest {
    AcquireRequest {
        owner: "bench".into(),
        ttl: Duration::from_secs(3600),
        limit,
        max_attempts: 5,
    }
}

/// CPU time used by every live thread of this process so far (Linux; zero
/// elsewhere).
fn process_cpu() -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    let nanos: u64 = tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok())
        .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(nanos)
}

/// Per-call latencies, and the CPU time of whole batches of calls (reading
/// `/proc` costs more than a call, so it is read once per batch).
#[derive(Default)]
struct Calls {
    latencies: Vec<Duration>,
    cpu: Duration,
    batch_start: Duration,
}

impl Calls {
    /// Starts a batch of timed calls (setup done before it is not counted).
    fn begin_batch(&mut self) {
        self.batch_start = process_cpu();
    }

    /// Ends the batch started last.
    fn end_batch(&mut self) {
        self.cpu += process_cpu().saturating_sub(self.batch_start);
    }

    /// Times `call` (wall clock).
    fn time<T>(&mut self, call: impl FnOnce() -> T) -> (T, Duration) {
        let started = Instant::now();
        let out = call();
        let took = started.elapsed();
        self.latencies.push(took);
        (out, took)
    }

    /// Prints p50/p99 of the latencies and the mean CPU time per call.
    fn report(mut self, name: &str) {
        if self.latencies.is_empty() {
            return;
        }
        let calls = self.latencies.len();
        self.latencies.sort_unstable();
        let at = |q: f64| self.latencies[((calls - 1) as f64 * q) as usize];
        eprintln!(
            "{name}: {calls} calls, p50 {:?}, p99 {:?}, process CPU per call {:?}",
            at(0.50),
            at(0.99),
            self.cpu / u32::try_from(calls).unwrap_or(u32::MAX)
        );
    }
}

/// The floor under every call: one trip to the connection thread and back
/// with the cheapest query (the store clock).
fn round_trip(c: &mut Criterion) {
    let rt = runtime();
    let dir = scratch();
    let store = rt
        .block_on(SqliteStore::open(dir.join("now.db").to_str().unwrap()))
        .unwrap();
    let mut calls = Calls::default();
    c.bench_function("round_trip/now", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            calls.begin_batch();
            for _ in 0..iters {
                let (now, took) = calls.time(|| rt.block_on(store.now()));
                now.unwrap();
                total += took;
            }
            calls.end_batch();
            total
        })
    });
    calls.report("round_trip/now");
}

fn lease_acquire(c: &mut Criterion) {
    let rt = runtime();
    let dir = scratch();
    let store = Arc::new(
        rt.block_on(SqliteStore::open(dir.join("acquire.db").to_str().unwrap()))
            .unwrap(),
    );
    let mut planned = 0usize;
    let mut calls = Calls::default();
    let mut group = c.benchmark_group("lease_acquire");
    group.bench_function("single_job", |b| {
        b.iter_custom(|iters| {
            let n = usize::try_from(iters).unwrap();
            rt.block_on(store.plan(&jobs(&format!("acq{planned}"), n))).unwrap();
            planned += n;
            let mut total = Duration::ZERO;
            calls.begin_batch();
            for _ in 0..n {
                let (leases, took) = calls.time(|| rt.block_on(store.acquire(&request(1))));
                assert_eq!(leases.unwrap().len(), 1);
                total += took;
            }
            calls.end_batch();
            total
        })
    });
    group.finish();
    calls.report("lease_acquire/single_job");
}

fn state_transition(c: &mut Criterion) {
    let rt = runtime();
    let dir = scratch();
    let store = Arc::new(
        rt.block_on(SqliteStore::open(dir.join("step.db").to_str().unwrap()))
            .unwrap(),
    );
    let mut planned = 0usize;
    let mut calls = Calls::default();
    let mut group = c.benchmark_group("state_transition");
    group.bench_function("one_step", |b| {
        b.iter_custom(|iters| {
            let n = usize::try_from(iters).unwrap();
            rt.block_on(store.plan(&jobs(&format!("step{planned}"), n))).unwrap();
            planned += n;
            let mut leases: Vec<Lease> = Vec::with_capacity(n);
            while leases.len() < n {
                leases.extend(rt.block_on(store.acquire(&request(500))).unwrap());
            }
            let commit = Commit {
                steps: vec![JobState::HeadDone],
                ..Commit::default()
            };
            let mut total = Duration::ZERO;
            calls.begin_batch();
            for lease in &leases {
                let (outcome, took) = calls.time(|| rt.block_on(store.commit(&lease.fence, &commit)));
                outcome.unwrap();
                total += took;
            }
            calls.end_batch();
            total
        })
    });
    group.finish();
    calls.report("state_transition/one_step");
}

fn plan(c: &mut Criterion) {
    const JOBS: usize = 100_000;
    let rt = runtime();
    let dir = scratch();
    let batch = jobs("plan", JOBS);
    let mut round = 0;
    let mut calls = Calls::default();
    let mut group = c.benchmark_group("plan");
    group.sample_size(10).throughput(Throughput::Elements(JOBS as u64));
    group.bench_function("100k_jobs", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                round += 1;
                let path = dir.join(format!("plan-{round}.db"));
                let store = rt.block_on(SqliteStore::open(path.to_str().unwrap())).unwrap();
                calls.begin_batch();
                let (counts, took) = calls.time(|| rt.block_on(store.plan(&batch)));
                calls.end_batch();
                total += took;
                assert_eq!(counts.unwrap().new, JOBS as u64);
                drop(store);
                remove_db(&path);
            }
            total
        })
    });
    // What `oncefetch plan` does: batches of 2048 streamed through a channel
    // of 2 while the store writes (the batches are cloned before timing).
    let mut streamed = Calls::default();
    group.bench_function("100k_jobs_streamed", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                round += 1;
                let path = dir.join(format!("plan-{round}.db"));
                let store = rt.block_on(SqliteStore::open(path.to_str().unwrap())).unwrap();
                let batches: Vec<Vec<NewJob>> = batch.chunks(2048).map(<[NewJob]>::to_vec).collect();
                streamed.begin_batch();
                let (counts, took) = streamed.time(|| {
                    rt.block_on(async {
                        let (sender, received) = tokio::sync::mpsc::channel(2);
                        tokio::spawn(async move {
                            for batch in batches {
                                sender.send(batch).await.unwrap();
                            }
                        });
                        store.plan_stream(received).await
                    })
                });
                streamed.end_batch();
                total += took;
                assert_eq!(counts.unwrap().new, JOBS as u64);
                drop(store);
                remove_db(&path);
            }
            total
        })
    });
    group.finish();
    calls.report("plan/100k_jobs");
    streamed.report("plan/100k_jobs_streamed");
}

fn remove_db(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let _ = std::fs::remove_file(name);
    }
}

/// A ledger of `n` in-flight jobs whose leases expired long ago, each with a
/// running STREAM attempt when `with_ops`, built with `INSERT … SELECT`s.
fn expired_ledger(path: &Path, n: i64, with_ops: bool, rt: &Runtime) {
    drop(rt.block_on(SqliteStore::open(path.to_str().unwrap())).unwrap());
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF; PRAGMA cache_size = -262144;")
        .unwrap();
    conn.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
         INSERT INTO jobs (job_key, work_id, artifact_id, url, canonical_url_if_other, state, epoch, lease_owner,
                           lease_expires_at, attempts)
         SELECT printf('%064x', i), 'w' || i, 'a', 'https://example.org/' || i, x'',
                'STREAMING', 1, 'crashed-worker', 1000 + i, 1
         FROM n",
        [n],
    )
    .unwrap();
    if with_ops {
        conn.execute(
            "INSERT INTO ops (op_key, job_key, kind, epoch, started_at)
             SELECT 'op-' || job_key, job_key, 'STREAM', 1, 1000 FROM jobs",
            [],
        )
        .unwrap();
    }
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
}

fn reconcile(c: &mut Criterion) {
    // ONCEFETCH_BENCH_RECONCILE_JOBS scales it down while tuning.
    let count: i64 = std::env::var("ONCEFETCH_BENCH_RECONCILE_JOBS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let rt = runtime();
    let dir = scratch();
    let mut group = c.benchmark_group("reconcile");
    group.sample_size(10);
    for (name, with_ops) in [("1M_expired_leases", false), ("1M_expired_leases_1M_running_ops", true)] {
        let base = dir.join(format!("{name}-base.db"));
        let mut built = false;
        let mut calls = Calls::default();
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                if !built {
                    let started = Instant::now();
                    expired_ledger(&base, count, with_ops, &rt);
                    eprintln!(
                        "reconcile/{name}: built {count} expired leases in {:?}",
                        started.elapsed()
                    );
                    built = true;
                }
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let path = dir.join("expired-run.db");
                    remove_db(&path);
                    std::fs::copy(&base, &path).unwrap();
                    let store = rt.block_on(SqliteStore::open(path.to_str().unwrap())).unwrap();
                    calls.begin_batch();
                    let (report, took) = calls.time(|| rt.block_on(store.reconcile(Duration::ZERO)));
                    calls.end_batch();
                    let report: ReconcileReport = report.unwrap();
                    total += took;
                    assert_eq!(report.expired_leases, count as u64);
                    assert_eq!(report.abandoned_ops, if with_ops { count as u64 } else { 0 });
                    drop(store);
                }
                total
            })
        });
        calls.report(&format!("reconcile/{name}"));
        remove_db(&base);
    }
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, round_trip, lease_acquire, state_transition, plan, reconcile);
criterion_main!(benches);
