//! The split workload's crash-resume measurement (issue 18: "a SIGKILL mid-split resumes every
//! segment"), run once after its timed rounds: the split workload's `oncefetch fetch … --split N`
//! into a fresh folder and ledger, SIGKILLed once [`KILL_AT`] of the file is written, then the same
//! command again to the end, verified. What nginx served both runs (its access log below
//! [`LIMITED`](super::nginx::LIMITED)) over the file's size says how much the crash cost: a client
//! that restarts from byte 0 is near 1.4 (aria2c, `BENCHMARKING.md`), one that resumes every piece
//! near 1.0.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::access_log::{self, Request};
use super::corpus::{self, Entry, Inputs};
use super::peers::{self, Client, Sample};
use super::Bench;
use crate::cmd;

/// The share of the file written to the split partial when the first run gets SIGKILL.
pub(crate) const KILL_AT: f64 = 0.4;
/// How often the split partial's size is looked at (16 connections at 20 MiB/s write 3.2 MiB
/// in that time).
const POLL: Duration = Duration::from_millis(10);
/// nginx logs a request cut by the kill when its next write fails: after a run, the access log
/// must stay unchanged this long before it is read.
const SETTLE: Duration = Duration::from_secs(1);
/// … and it is read anyway after this long.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(15);
/// Where oncefetch keeps its partial files below the output folder.
const PARTIAL_DIR: &str = ".oncefetch/partial";

/// What the measurement found.
#[derive(Debug, Clone)]
pub(crate) struct CrashResume {
    /// The client killed and run again (`oncefetch --split N`).
    pub(crate) client: Client,
    /// Its command line (both runs).
    pub(crate) command: String,
    /// The file's size.
    pub(crate) file_bytes: u64,
    /// Bytes of the split partial on disk (its allocated blocks) when the first run was killed.
    pub(crate) written_at_kill: u64,
    /// Seconds from the first run's start to its kill.
    pub(crate) killed_after_s: f64,
    /// The requests of the killed run, as nginx logged them.
    pub(crate) killed: Vec<Request>,
    /// The requests of the run that resumed it.
    pub(crate) resumed: Vec<Request>,
    /// The resuming run, timed.
    pub(crate) resumed_run: Sample,
    /// Seconds from the resuming run's start to its first request (most of its time when it
    /// waits for the killed run's lease to expire: `--lease-ttl`, 60 s by default).
    pub(crate) resumed_idle_s: Option<f64>,
}

impl CrashResume {
    /// Body bytes nginx sent over both runs.
    pub(crate) fn served_bytes(&self) -> u64 {
        body_bytes(&self.killed) + body_bytes(&self.resumed)
    }

    /// [`CrashResume::served_bytes`] over the file's size: 1.0 is a perfect resume.
    pub(crate) fn served_ratio(&self) -> f64 {
        self.served_bytes() as f64 / self.file_bytes as f64
    }

    /// Body bytes that more than one request of the two runs sent.
    fn sent_twice(&self) -> u64 {
        access_log::sent_twice(self.killed.iter().chain(&self.resumed))
    }

    /// The lines of the table (before the targets).
    pub(crate) fn lines(&self) -> Vec<String> {
        let killed_note = format!(
            "{}: SIGKILL after {:.2} s at {:.1} % of the file written",
            self.client.label(),
            self.killed_after_s,
            100.0 * self.written_at_kill as f64 / self.file_bytes as f64
        );
        vec![
            format!("crash    {killed_note}; {}", self.run_note(&self.killed)),
            format!(
                "crash    the same command again: SUCCESS (verified) in {:.2} s (first request after {}), \
                 {:.2} s CPU; {}",
                self.resumed_run.wall_s,
                self.resumed_idle_s
                    .map_or_else(|| "-".to_owned(), |s| format!("{s:.2} s")),
                self.resumed_run.user_s + self.resumed_run.sys_s,
                self.run_note(&self.resumed)
            ),
            format!(
                "crash    served {:.3} × the file ({:.1} of {:.1} MiB), {:.1} MiB of it sent twice",
                self.served_ratio(),
                mib(self.served_bytes()),
                mib(self.file_bytes),
                mib(self.sent_twice())
            ),
        ]
    }

    /// `17 requests (1 × 200, 16 × 206; 16 cut short), 108.3 MiB served`.
    fn run_note(&self, requests: &[Request]) -> String {
        let statuses: Vec<String> = statuses(requests)
            .iter()
            .map(|(status, n)| format!("{n} × {status}"))
            .collect();
        format!(
            "{} requests ({}; {} cut short), {:.1} MiB served",
            requests.len(),
            statuses.join(", "),
            cut_short(requests, self.file_bytes),
            mib(body_bytes(requests))
        )
    }

    /// The same as [`CrashResume::lines`], with every request, for the JSON.
    pub(crate) fn json(&self) -> Value {
        let run = |requests: &[Request]| {
            json!({
                "requests": requests.len(),
                "statuses": statuses(requests),
                "cut_short": cut_short(requests, self.file_bytes),
                "body_bytes": body_bytes(requests),
                "bytes_with_headers": requests.iter().map(|r| r.bytes).sum::<u64>(),
                "log": requests.iter().map(|r| json!({
                    "start_ms": r.start_ms,
                    "status": r.status,
                    "range": r.range,
                    "body_bytes": r.body_bytes,
                    "bytes": r.bytes,
                })).collect::<Vec<_>>(),
            })
        };
        let mut resumed = run(&self.resumed);
        resumed["wall_s"] = json!(self.resumed_run.wall_s);
        resumed["user_s"] = json!(self.resumed_run.user_s);
        resumed["sys_s"] = json!(self.resumed_run.sys_s);
        resumed["peak_rss_kib"] = json!(self.resumed_run.peak_rss_kib);
        resumed["server_cpu_s"] = json!(self.resumed_run.server_cpu_s);
        resumed["first_request_after_s"] = json!(self.resumed_idle_s);
        let mut killed = run(&self.killed);
        killed["killed_after_s"] = json!(self.killed_after_s);
        killed["written_at_kill"] = json!(self.written_at_kill);
        json!({
            "client": self.client.label(),
            "command": self.command,
            "file_bytes": self.file_bytes,
            "kill_at_share": KILL_AT,
            "killed": killed,
            "resumed": resumed,
            "served_body_bytes": self.served_bytes(),
            "served_ratio": self.served_ratio(),
            "sent_twice_bytes": self.sent_twice(),
        })
    }
}

impl Bench<'_> {
    /// The crash-resume measurement of `client` (the split workload's oncefetch) downloading
    /// `expected` as `inputs` lists it, whose timed runs took `expected_s` (median). `None`, with
    /// the reason in `skipped`, when the kill did not land mid-download (the run ended first).
    pub(crate) fn split_crash(
        &mut self,
        client: Client,
        inputs: &Inputs,
        expected: &Entry,
        expected_s: f64,
        skipped: &mut Vec<String>,
    ) -> Result<Option<CrashResume>> {
        let out = self.outputs.join("split-crash");
        fs::create_dir(&out).with_context(|| format!("could not create {}", out.display()))?;
        let inv = peers::invocation(client, self.tools, inputs, None, &out);
        let kill_at = (KILL_AT * expected.size as f64) as u64;
        let access_log = self.nginx.limited_log();

        // 1. The first run, killed once `kill_at` bytes are on disk.
        cmd::quiet_ok(&mut Command::new("sync"))?;
        let log = self.logs.join("split-crash-killed.log");
        let log_file = File::create(&log).with_context(|| format!("could not create {}", log.display()))?;
        let mut command = inv.command();
        command
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file);
        eprintln!(
            "bench: split crash: {}, SIGKILL at {:.0} % of the file written",
            inv.display(),
            KILL_AT * 100.0
        );
        let killed_from = now_ms();
        let started = Instant::now();
        let mut child = command
            .spawn()
            .with_context(|| format!("could not start `{}`", inv.display()))?;
        // A run that never gets there (a stall, no split partial) is killed after this long.
        let deadline = Duration::from_secs_f64(3.0 * expected_s + 30.0);
        let written_at_kill = loop {
            if let Some(status) = child.try_wait()? {
                if !status.success() {
                    bail!(
                        "`{}` failed: {status}; end of {}:\n{}",
                        inv.display(),
                        log.display(),
                        peers::tail(&log, 15)
                    );
                }
                let note = format!(
                    "split crash: `{}` finished in {:.2} s, before {:.0} % of the file was written \
                     (a faster --split-rate than the poll every {POLL:?}?)",
                    inv.display(),
                    started.elapsed().as_secs_f64(),
                    KILL_AT * 100.0
                );
                eprintln!("bench: skipping {note}");
                skipped.push(note);
                return Ok(None);
            }
            let written = partial_bytes(&out.join(PARTIAL_DIR))?;
            let late = started.elapsed() > deadline;
            if written >= kill_at || late || self.interrupted.load(Ordering::SeqCst) {
                // SIGKILL, as a crash.
                child.kill().context("could not kill the first run")?;
                child.wait()?;
                if self.interrupted.load(Ordering::SeqCst) {
                    bail!("interrupted");
                }
                if late {
                    bail!(
                        "`{}` had written {written} of {} bytes after {deadline:?}; killed it (see {})",
                        inv.display(),
                        expected.size,
                        log.display()
                    );
                }
                break written;
            }
            thread::sleep(POLL);
        };
        let killed_after_s = started.elapsed().as_secs_f64();
        let status = peers::ledger_status(&self.tools.oncefetch, &out)?;
        eprintln!(
            "bench: split crash: killed after {killed_after_s:.2} s with {written_at_kill} bytes written; \
             ledger {}",
            status["states"]
        );
        if status["states"]["SUCCESS"].as_u64().unwrap_or(0) > 0 {
            let note = format!(
                "split crash: the kill after {killed_after_s:.2} s landed after the download had finished \
                 (ledger {})",
                status["states"]
            );
            eprintln!("bench: skipping {note}");
            skipped.push(note);
            return Ok(None);
        }

        // 2. The same command again, to the end, verified.
        let resumed_from = now_ms();
        let log = self.logs.join("split-crash-resumed.log");
        let resumed_run = peers::timed(&self.tools.time, &inv, &log, Some(self.nginx))?;
        corpus::verify(&out, std::slice::from_ref(expected), &[".oncefetch"])
            .with_context(|| format!("the output of `{}` after the crash is wrong", inv.display()))?;
        peers::check_ledger(&self.tools.oncefetch, &out, 1, "SUCCESS")?;
        eprintln!(
            "bench: split crash: the same command again took {:.2} s (verified)",
            resumed_run.wall_s
        );

        // 3. What nginx served each run: requests by start time.
        let requests = settled(access_log)?;
        let of_run = |from: u64, to: u64| -> Vec<Request> {
            requests
                .iter()
                .filter(|r| (from..to).contains(&r.start_ms))
                .cloned()
                .collect()
        };
        let resumed = of_run(resumed_from, u64::MAX);
        let resumed_idle_s = resumed
            .iter()
            .map(|r| r.start_ms)
            .min()
            .map(|first| first.saturating_sub(resumed_from) as f64 / 1000.0);
        Ok(Some(CrashResume {
            client,
            command: inv.display(),
            file_bytes: expected.size,
            written_at_kill,
            killed_after_s,
            killed: of_run(killed_from, resumed_from),
            resumed,
            resumed_run,
            resumed_idle_s,
        }))
    }
}

/// The bytes on disk (allocated blocks) of the files in `dir` (0 while it does not exist): the
/// split partial is written at the pieces' offsets without preallocation, so this grows with
/// what is written, whatever the order.
fn partial_bytes(dir: &Path) -> Result<u64> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(|| format!("could not list {}", dir.display())),
    };
    let mut bytes = 0;
    for entry in entries {
        // A partial renamed away between the listing and the stat is no longer there to count.
        if let Ok(meta) = entry?.metadata() {
            bytes += meta.blocks() * 512;
        }
    }
    Ok(bytes)
}

/// The requests of the access log at `path`, once it has stopped growing for [`SETTLE`] (a
/// request cut by a client's death is logged when nginx next writes to it).
fn settled(path: &Path) -> Result<Vec<Request>> {
    let started = Instant::now();
    let mut last = (fs::metadata(path).map_or(0, |m| m.len()), Instant::now());
    while last.1.elapsed() < SETTLE && started.elapsed() < SETTLE_TIMEOUT {
        thread::sleep(SETTLE / 10);
        let len = fs::metadata(path).map_or(0, |m| m.len());
        if len != last.0 {
            last = (len, Instant::now());
        }
    }
    access_log::read(path)
}

/// Milliseconds since the Unix epoch, as nginx's `$msec`.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn body_bytes(requests: &[Request]) -> u64 {
    requests.iter().map(|r| r.body_bytes).sum()
}

/// How many requests got each status.
fn statuses(requests: &[Request]) -> BTreeMap<u16, usize> {
    let mut counts = BTreeMap::new();
    for r in requests {
        *counts.entry(r.status).or_default() += 1;
    }
    counts
}

/// How many requests of a file of `file_bytes` got less body than they asked for (a `200` less
/// than the file, a `206` less than its range): cut by the kill, or dropped by the client.
fn cut_short(requests: &[Request], file_bytes: u64) -> usize {
    requests
        .iter()
        .filter(|r| r.asked(file_bytes).is_some_and(|asked| r.body_bytes < asked))
        .count()
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(status: u16, range: Option<&str>, body_bytes: u64) -> Request {
        Request {
            start_ms: 0,
            status,
            body_bytes,
            bytes: body_bytes + 300,
            range: range.map(str::to_owned),
            request: "GET /limited/split/file.bin HTTP/1.1".to_owned(),
        }
    }

    fn sample() -> Sample {
        Sample {
            wall_s: 4.0,
            peak_rss_kib: 10_240,
            user_s: 0.5,
            sys_s: 0.25,
            server_cpu_s: Some(0.1),
            load_before: None,
        }
    }

    #[test]
    fn the_ratio_counts_both_runs_and_the_lines_say_what_each_did() {
        let crash = CrashResume {
            client: Client::OncefetchSplit { connections: 2 },
            command: "oncefetch fetch m --split 2".to_owned(),
            file_bytes: 100,
            written_at_kill: 40,
            killed_after_s: 1.5,
            // The first answer cut after its piece, a piece cut by the kill.
            killed: vec![request(200, None, 25), request(206, Some("bytes=25-49"), 20)],
            // The rest of the second piece (from what was recorded), the other two.
            resumed: vec![
                request(206, Some("bytes=40-49"), 10),
                request(206, Some("bytes=50-74"), 25),
                request(206, Some("bytes=75-99"), 25),
            ],
            resumed_run: sample(),
            resumed_idle_s: Some(3.5),
        };
        assert_eq!(crash.served_bytes(), 105);
        assert!((crash.served_ratio() - 1.05).abs() < 1e-9);
        assert_eq!(crash.sent_twice(), 5);
        let lines = crash.lines();
        assert_eq!(
            lines[0],
            "crash    oncefetch --split 2: SIGKILL after 1.50 s at 40.0 % of the file written; \
             2 requests (1 × 200, 1 × 206; 2 cut short), 0.0 MiB served"
        );
        assert!(lines[1].contains(
            "again: SUCCESS (verified) in 4.00 s (first request after 3.50 s), 0.75 s CPU; \
             3 requests (3 × 206; 0 cut short)"
        ));
        assert!(lines[2].starts_with("crash    served 1.050 × the file"), "{}", lines[2]);
        let json = crash.json();
        assert_eq!(json["served_ratio"], json!(1.05));
        assert_eq!(json["killed"]["requests"], json!(2));
        assert_eq!(json["killed"]["statuses"]["206"], json!(1));
        assert_eq!(json["resumed"]["wall_s"], json!(4.0));
        assert_eq!(json["resumed"]["first_request_after_s"], json!(3.5));
        assert_eq!(json["resumed"]["log"][0]["range"], json!("bytes=40-49"));
        assert_eq!(json["killed"]["bytes_with_headers"], json!(645));
    }

    #[test]
    fn the_partial_area_counts_allocated_blocks() {
        let dir = std::env::temp_dir().join(format!("xtask-split-crash-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        assert_eq!(partial_bytes(&dir).unwrap(), 0, "not created yet");
        fs::create_dir_all(&dir).unwrap();
        let file = File::create(dir.join("k.1.t.split.part")).unwrap();
        // Sparse: a length without blocks.
        file.set_len(64 << 20).unwrap();
        assert!(partial_bytes(&dir).unwrap() < 1 << 20);
        std::os::unix::fs::FileExt::write_all_at(&file, &vec![7u8; 1 << 20], 8 << 20).unwrap();
        let bytes = partial_bytes(&dir).unwrap();
        assert!((1 << 20..=2 << 20).contains(&bytes), "{bytes}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
