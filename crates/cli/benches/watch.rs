//! What watching costs (SPEC §11), with the release binary:
//!
//! 1. `/api/status` (and the status page) over a ledger of 10,000,000
//!    planned jobs, planned by `oncefetch plan` itself: the time of each
//!    answer against the 100 ms budget.
//! 2. Ten watchers polling `/api/status` and the status page every second
//!    from a `serve` process on the same ledger while `oncefetch run`
//!    downloads from the test server: the run's throughput with them over
//!    its throughput without.
//!
//! SQLite always; PostgreSQL too when `ONCEFETCH_TEST_POSTGRES_URL` is set.
//! `cargo bench -p oncefetch --bench watch [--features postgres]`; sizes by
//! `ONCEFETCH_BENCH_STATUS_JOBS` (default 10,000,000) and
//! `ONCEFETCH_BENCH_RUN_JOBS` (default 30,000: a run of about 20 s). Prints one line per figure.

use std::io::{BufWriter, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use oncefetch_test_server::{content, TestServer};

const BUDGET: Duration = Duration::from_millis(100);
const WATCHERS: usize = 10;
const POLL: Duration = Duration::from_secs(1);
const ANSWERS: usize = 30;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn oncefetch(db: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_oncefetch"));
    cmd.arg("--db").arg(db).arg("-q").env_remove("ONCEFETCH_DB");
    cmd
}

fn ok(cmd: &mut Command, what: &str) {
    let out = cmd.stdout(Stdio::null()).output().expect(what);
    assert!(out.status.success(), "{what}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A process killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `serve` on a free loopback port; its address.
fn serve(db: &str, log: &Path) -> (Running, SocketAddr) {
    let child = oncefetch(db)
        .args(["serve", "--addr", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("spawn serve");
    let running = Running(child);
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(addr) = text.lines().find_map(|l| {
            l.split_once(" at http://")
                .map(|(_, a)| a.trim_end_matches('/').to_owned())
        }) {
            return (running, addr.parse().unwrap());
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "serve did not start: {text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One GET; its status and body.
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("read");
    let status = raw.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (
        status,
        raw.split_once("\r\n\r\n").map_or(String::new(), |(_, b)| b.to_owned()),
    )
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Median and largest answer time of `path`, after one warm-up.
fn answer_times(addr: SocketAddr, path: &str) -> (Duration, Duration) {
    let (status, _) = get(addr, path);
    assert_eq!(status, 200, "{path}");
    let mut times: Vec<Duration> = (0..ANSWERS)
        .map(|_| {
            let started = Instant::now();
            let (status, _) = get(addr, path);
            assert_eq!(status, 200, "{path}");
            started.elapsed()
        })
        .collect();
    times.sort();
    (times[times.len() / 2], times[times.len() - 1])
}

/// A manifest of `jobs` lines over 100 hosts.
fn write_manifest(path: &Path, jobs: u64, base: &str) {
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    for i in 0..jobs {
        writeln!(
            out,
            "{{\"work_id\":\"w{i}\",\"artifact_id\":\"a\",\"url\":\"{base}/h{}/{i}\"}}",
            i % 100
        )
        .unwrap();
    }
    out.flush().unwrap();
}

fn status_figure(store: &str, db: &str, dir: &Path, jobs: u64) {
    let manifest = dir.join("status-manifest.jsonl");
    if !manifest.exists() {
        write_manifest(&manifest, jobs, "http://files.example");
    }
    let started = Instant::now();
    ok(oncefetch(db).arg("plan").arg(&manifest), "plan");
    let planned = started.elapsed();
    let (_serve, addr) = serve(db, &dir.join(format!("serve-{store}.log")));
    let (_, body) = get(addr, "/api/status");
    assert!(body.contains(&format!("\"PLANNED\":{jobs}")), "{body}");
    for path in ["/api/status", "/api/hosts", "/"] {
        let (median, max) = answer_times(addr, path);
        println!(
            "{store}: {path} over {jobs} planned jobs: median {:.1} ms, max {:.1} ms; median / 100 ms budget = {:.3} \
             (planned in {:.0} s)",
            millis(median),
            millis(max),
            median.as_secs_f64() / BUDGET.as_secs_f64(),
            planned.as_secs_f64()
        );
    }
}

/// Polls the status API and page every second until `stop`; counts answers.
fn watchers(addr: SocketAddr, stop: &Arc<AtomicBool>, answered: &Arc<AtomicU64>) -> Vec<std::thread::JoinHandle<()>> {
    (0..WATCHERS)
        .map(|_| {
            let (stop, answered) = (Arc::clone(stop), Arc::clone(answered));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let tick = Instant::now();
                    for path in ["/api/status", "/"] {
                        if get(addr, path).0 == 200 {
                            answered.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    std::thread::sleep(POLL.saturating_sub(tick.elapsed()));
                }
            })
        })
        .collect()
}

/// Jobs per second of one `run` over a fresh ledger, with or without
/// watchers.
fn run_throughput(db: &str, dir: &Path, manifest: &Path, watched: bool) -> (f64, u64) {
    ok(oncefetch(db).arg("plan").arg(manifest), "plan");
    let out = dir.join(format!("out-{watched}"));
    let _ = std::fs::remove_dir_all(&out);
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let (serve, threads) = if watched {
        let (serve, addr) = serve(db, &dir.join("serve-watched.log"));
        (Some(serve), watchers(addr, &stop, &answered))
    } else {
        (None, Vec::new())
    };
    let started = Instant::now();
    ok(oncefetch(db).arg("run").arg("--out").arg(&out), "run");
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    drop(serve);
    let jobs = std::fs::read_to_string(manifest).unwrap().lines().count();
    (jobs as f64 / took.as_secs_f64(), answered.load(Ordering::Relaxed))
}

fn watcher_cost(store: &str, fresh_db: &dyn Fn(&str) -> String, dir: &Path, server: &TestServer, jobs: u64) {
    let manifest = dir.join("run-manifest.jsonl");
    let base = server.url("");
    let base = base.trim_end_matches('/');
    let mut out = BufWriter::new(std::fs::File::create(&manifest).unwrap());
    for i in 0..jobs {
        writeln!(
            out,
            "{{\"work_id\":\"w{i}\",\"artifact_id\":\"a\",\"url\":\"{base}/f{i}\"}}"
        )
        .unwrap();
    }
    out.flush().unwrap();
    drop(out);
    // ABBA order (alone, watched, watched, alone): a warming cache or a
    // neighbour's load that drifts over the runs weighs on both sides alike.
    let (mut alone, mut watched, mut answers) = (Vec::new(), Vec::new(), 0);
    for (round, is_watched) in [false, true, true, false].into_iter().enumerate() {
        let name = format!("{}-{round}", if is_watched { "watched" } else { "alone" });
        let (rate, answered) = run_throughput(&fresh_db(&name), dir, &manifest, is_watched);
        if is_watched {
            watched.push(rate);
            answers += answered;
        } else {
            alone.push(rate);
        }
    }
    let mean = |rates: &[f64]| rates.iter().sum::<f64>() / rates.len() as f64;
    let (alone, watched) = (mean(&alone), mean(&watched));
    println!(
        "{store}: run of {jobs} jobs, twice each in ABBA order: {alone:.0} jobs/s alone, {watched:.0} jobs/s with \
         {WATCHERS} watchers polling every {POLL:?} ({answers} answers); watched / alone = {:.3} (cost {:.1} %)",
        watched / alone,
        (1.0 - watched / alone) * 100.0
    );
}

fn main() {
    let status_jobs = env_number("ONCEFETCH_BENCH_STATUS_JOBS", 10_000_000);
    let run_jobs = env_number("ONCEFETCH_BENCH_RUN_JOBS", 30_000);
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("watch-bench");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let postgres = std::env::var("ONCEFETCH_TEST_POSTGRES_URL").ok();
    let pg_db = |url: &str, name: &str| {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}schema=bench_watch_{name}_{}", std::process::id())
    };

    status_figure(
        "sqlite",
        &format!("sqlite:{}", root.join("status.db").display()),
        &root,
        status_jobs,
    );
    if let Some(url) = &postgres {
        status_figure("postgres", &pg_db(url, "status"), &root, status_jobs);
    }
    let _ = std::fs::remove_file(root.join("status-manifest.jsonl"));
    let _ = std::fs::remove_file(root.join("status.db"));

    let server = TestServer::start();
    for i in 0..run_jobs {
        server.add(&format!("/f{i}"), content(i, 4096));
    }
    let sqlite_dir = root.clone();
    watcher_cost(
        "sqlite",
        &|name| format!("sqlite:{}", sqlite_dir.join(format!("run-{name}.db")).display()),
        &root,
        &server,
        run_jobs,
    );
    if let Some(url) = &postgres {
        watcher_cost("postgres", &|name| pg_db(url, name), &root, &server, run_jobs);
    }
}
