//! `cargo xtask bench`: the criterion micro-benchmarks (`cargo bench --workspace`) and an end-to-end
//! comparison of the release `oncefetch` with aria2c and curl, all downloading one deterministic
//! corpus from a private nginx on loopback, timed alternately in one run and verified file by file.
//!
//! The rules it follows come from `BENCHMARKING.md` (shared with the project): the corpus lives on
//! the same disk as the outputs (not tmpfs); one untimed warm-up run per client first; timed runs
//! alternate between clients, each round starting one client later (A B C, B C A, C A B …); every
//! run gets a fresh output folder and nothing is deleted until the end; a `sync` before each run
//! keeps one client's write-back off the next one's clock; every run's output is checked (file set
//! and SHA-256 of each file, and for oncefetch the ledger), so a fast wrong run fails the command.

mod access_log;
mod corpus;
mod nginx;
mod peers;
mod report;
pub(crate) mod s3;
mod split_crash;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use serde_json::json;

pub(crate) use self::corpus::splitmix64;
use self::corpus::{Corpus, Entry, Inputs};
use self::nginx::{Nginx, LIMITED};
use self::peers::{Client, Tools};
use self::report::{Report, Series, Workload};
use crate::cmd;

/// Help for `cargo xtask bench --help`.
const HELP: &str = "\
cargo xtask bench — criterion micro-benchmarks and the end-to-end comparison with aria2c and curl

USAGE:
    cargo xtask bench [OPTIONS]

Runs `cargo bench --workspace --bench '*'`, then the end-to-end harness: builds the release
oncefetch, writes a deterministic corpus (small files of 1–64 KiB and one large file) into a
folder on the target directory's disk, serves it from a private nginx on 127.0.0.1 (2 workers,
sendfile, keep-alive; installed with apt-get when missing, as are aria2 and GNU time), and times,
alternating, after one verified warm-up run each:
    small files  oncefetch fetch … --concurrency 16 --per-host 16     (fsync on, the default)
                 oncefetch fetch … --no-fsync
                 aria2c -i LIST -j 16 --file-allocation=none -d DIR
                 curl -Z --parallel-max 16 -K CONFIG --create-dirs
    large file   oncefetch fetch … (and --no-fsync)  vs  curl -o FILE URL
    split        one file that nginx serves at --split-rate per connection (limit_rate, below
                 /limited/; the large file itself when the sizes agree):
                 oncefetch fetch … --split 16  (skipped, with a note, when `oncefetch fetch
                                                --help` lists no --split)
                 aria2c -x16 -s16 --file-allocation=none -d DIR -o FILE URL
                 curl -o FILE URL               (one connection: SIZE/RATE seconds a run)
                 then once, crash-resume: the oncefetch --split command into a fresh folder and
                 ledger, SIGKILLed at 40 % of the file written, then run again to the end
                 (verified); the body bytes nginx sent both runs (its access log of /limited/)
                 over the file's size, with the requests and the second run's time
    planning     oncefetch plan of a generated manifest on a fresh ledger
Every run's output is verified (file set, SHA-256 of every file; oncefetch's ledger all SUCCESS);
a wrong output fails the command. Prints medians, ratios oncefetch/peer and the issue's targets
as PASS/MISS (a MISS does not fail the command), and writes the same as JSON.

OPTIONS:
    --micro-only         only the criterion benchmarks
    --e2e-only           only the end-to-end harness
    --quick              pass --quick to criterion
    --small N            number of small files, 0 to skip them (default 5000)
    --large-size SIZE    size of the large file, e.g. 1GiB, 64MiB, 0 to skip it (default 1GiB)
    --rounds N           timed runs per client (default 5; the split workload has its own)
    --split-size SIZE    size of the split workload's file, 0 to skip it (default 1GiB)
    --split-rate RATE    bytes per second nginx allows each connection of the split workload,
                         binary units as nginx's limit_rate, e.g. 20m, 512k, 0 for no limit
                         (default 20m, 20 MiB/s)
    --split-connections N
                         connections of oncefetch --split and aria2c -x -s, 1 to 16 (aria2c's
                         limit; default 16). Each wants at least 20 MiB per connection
                         (oncefetch's --split-min, aria2c's -k): a file smaller than N × 20 MiB
                         is fetched over fewer connections (or, by oncefetch, not split)
    --split-rounds N     timed split runs per client (default 3): curl's one connection takes
                         SIZE/RATE a run (51 s at the defaults, 4 runs with the warm-up)
    --plan-lines N       lines of the planning manifest, 0 to skip it (default 1000000)
    --plan-rounds N      timed planning runs (default 3)
    --json PATH          where to write the JSON (default TARGET_DIR/bench/e2e.json)
    --dir PATH           parent of the working folder (default TARGET_DIR/bench)
    --keep               keep the working folder (corpus, inputs, outputs, logs, nginx.conf)
";

/// What `cargo xtask bench` was asked to do.
#[derive(Debug, Clone)]
struct Options {
    micro: bool,
    e2e: bool,
    quick: bool,
    small: usize,
    large_size: u64,
    rounds: u32,
    split_size: u64,
    /// Bytes per second per connection below `/limited/`.
    split_rate: u64,
    split_connections: u32,
    split_rounds: u32,
    plan_lines: u64,
    plan_rounds: u32,
    json: Option<PathBuf>,
    dir: Option<PathBuf>,
    keep: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            micro: true,
            e2e: true,
            quick: false,
            small: 5000,
            large_size: 1 << 30,
            rounds: 5,
            split_size: 1 << 30,
            split_rate: 20 << 20,
            split_connections: 16,
            split_rounds: 3,
            plan_lines: 1_000_000,
            plan_rounds: 3,
            json: None,
            dir: None,
            keep: false,
        }
    }
}

impl Options {
    /// Parses the arguments after `bench`; `None` when help was asked for.
    fn parse(args: impl IntoIterator<Item = String>) -> Result<Option<Options>> {
        let mut options = Options::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let mut value = |what: &str| args.next().with_context(|| format!("{arg} needs {what}"));
            match arg.as_str() {
                "--micro-only" => options.e2e = false,
                "--e2e-only" => options.micro = false,
                "--quick" => options.quick = true,
                "--small" => options.small = number(&value("a count")?)?,
                "--large-size" => options.large_size = size(&value("a size")?)?,
                "--rounds" => options.rounds = number(&value("a count")?)?,
                "--split-size" => options.split_size = size(&value("a size")?)?,
                "--split-rate" => options.split_rate = size(&value("a rate")?)?,
                "--split-connections" => options.split_connections = number(&value("a count")?)?,
                "--split-rounds" => options.split_rounds = number(&value("a count")?)?,
                "--plan-lines" => options.plan_lines = number(&value("a count")?)?,
                "--plan-rounds" => options.plan_rounds = number(&value("a count")?)?,
                "--json" => options.json = Some(value("a path")?.into()),
                "--dir" => options.dir = Some(value("a path")?.into()),
                "--keep" => options.keep = true,
                "--help" | "-h" => return Ok(None),
                _ => bail!("unknown option `{arg}` for bench (see `cargo xtask bench --help`)"),
            }
        }
        if !options.micro && !options.e2e {
            bail!("--micro-only and --e2e-only exclude each other");
        }
        if options.rounds == 0 || options.plan_rounds == 0 || options.split_rounds == 0 {
            bail!("--rounds, --split-rounds and --plan-rounds need at least 1");
        }
        if !(1..=16).contains(&options.split_connections) {
            bail!("--split-connections takes 1 to 16 (aria2c allows at most -x16)");
        }
        Ok(Some(options))
    }
}

fn number<T: std::str::FromStr>(text: &str) -> Result<T> {
    text.replace('_', "")
        .parse()
        .map_err(|_| anyhow::anyhow!("`{text}` is not a count"))
}

/// `1GiB`, `64MiB`, `512KiB`, `4096` (binary units; `K`, `M`, `G` and `KB`… mean the same).
fn size(text: &str) -> Result<u64> {
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => bail!("`{text}` is not a size (e.g. 1GiB, 64MiB, 4096)"),
    };
    let n: u64 = digits.parse().with_context(|| format!("`{text}` is not a size"))?;
    n.checked_mul(1 << shift)
        .with_context(|| format!("`{text}` is too large"))
}

/// `cargo xtask bench ARGS…`.
pub(crate) fn run(args: impl IntoIterator<Item = String>, interrupted: &AtomicBool) -> Result<()> {
    let Some(options) = Options::parse(args)? else {
        print!("{HELP}");
        return Ok(());
    };
    if options.micro {
        let mut bench = cargo();
        // `--bench '*'`: only the bench targets (criterion); libtest in lib targets rejects --quick.
        bench.args(["bench", "--workspace", "--bench", "*"]);
        if options.quick {
            bench.args(["--", "--quick"]);
        }
        cmd::run(&mut bench)?;
    }
    if options.e2e {
        end_to_end(&options, interrupted)?;
    }
    Ok(())
}

/// The workspace root: commands run there whatever the caller's directory.
pub(crate) fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_owned()
}

/// `$CARGO_TARGET_DIR` (relative to the root) or the root's `target`.
pub(crate) fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root().join(dir),
        _ => root().join("target"),
    }
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

/// Builds the release `oncefetch` (`cargo build --release -p oncefetch`) and returns its path.
pub(crate) fn release_oncefetch() -> Result<PathBuf> {
    cmd::run(cargo().args(["build", "--release", "-p", "oncefetch"]))?;
    let binary = target_dir().join("release/oncefetch");
    if !binary.is_file() {
        bail!("`cargo build --release -p oncefetch` left no {}", binary.display());
    }
    Ok(binary)
}

/// The working folder of one benchmark, removed with everything in it on drop unless kept.
#[derive(Debug)]
struct WorkDir {
    path: PathBuf,
    keep: bool,
}

impl WorkDir {
    fn create(parent: &Path, keep: bool) -> Result<WorkDir> {
        fs::create_dir_all(parent).with_context(|| format!("could not create {}", parent.display()))?;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = parent.join(format!("run-{}-{nanos:08x}", std::process::id()));
        fs::create_dir(&path).with_context(|| format!("could not create {}", path.display()))?;
        Ok(WorkDir { path, keep })
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("bench: kept {}", self.path.display());
            return;
        }
        eprintln!("bench: removing {}", self.path.display());
        if let Err(e) = fs::remove_dir_all(&self.path) {
            eprintln!("warning: could not remove {}: {e}", self.path.display());
        }
    }
}

/// The end-to-end harness.
fn end_to_end(options: &Options, interrupted: &AtomicBool) -> Result<()> {
    let tools = Tools {
        time: ensure_program("/usr/bin/time", &["time"])?,
        aria2c: ensure_program("aria2c", &["aria2"])?,
        curl: ensure_program("curl", &["curl"])?,
        oncefetch: release_oncefetch()?,
    };
    let nginx_binary = ensure_program("nginx", &["nginx-light", "nginx"])?;
    let mut skipped = Vec::new();
    let split_clients = if options.split_size == 0 {
        Vec::new()
    } else {
        split_clients(&tools, options.split_connections, &mut skipped)?
    };

    let parent = options.dir.clone().unwrap_or_else(|| target_dir().join("bench"));
    let work = WorkDir::create(&parent, options.keep)?;
    let fs_type = cmd::quiet_ok(Command::new("stat").args(["-f", "-c", "%T"]).arg(&work.path))?
        .trim()
        .to_owned();
    if matches!(fs_type.as_str(), "tmpfs" | "ramfs") {
        eprintln!(
            "warning: {} is on {fs_type}: the timings will not show the disk (pass --dir)",
            work.path.display()
        );
    }
    check_space(&work.path, options)?;
    let fsync_before = fsync_latency_ms(&work.path)?;
    eprintln!("bench: fsync of a fresh 32 KiB file takes {fsync_before:.2} ms (median of {FSYNC_PROBES})");

    eprintln!(
        "bench: writing {} small files, a {}-byte large file and a {}-byte split file into {} ({fs_type})",
        options.small,
        options.large_size,
        options.split_size,
        work.path.display()
    );
    let started = Instant::now();
    let www = work.path.join("www");
    let corpus = Corpus::generate(&www, options.small, options.large_size)?;
    let split = match options.split_size {
        0 => None,
        size => Some(corpus.split_file(&www, size)?),
    };
    eprintln!(
        "bench: corpus ready in {:.1} s ({:.1} MiB of small files)",
        started.elapsed().as_secs_f64(),
        corpus.small_bytes() as f64 / f64::from(1 << 20)
    );

    let nginx = Nginx::start(
        &nginx_binary,
        &work.path.join("nginx"),
        &www,
        NGINX_WORKERS,
        options.split_rate,
    )?;
    let base = nginx.base_url();
    let inputs_dir = work.path.join("inputs");
    fs::create_dir_all(&inputs_dir)?;
    let mut bench = Bench {
        tools: &tools,
        nginx: &nginx,
        outputs: work.path.join("out"),
        logs: work.path.join("logs"),
        interrupted,
        series: Vec::new(),
    };
    fs::create_dir_all(&bench.outputs)?;
    fs::create_dir_all(&bench.logs)?;

    // `--small 0` skips the small-file workload (curl -Z refuses an empty config).
    if !corpus.small.is_empty() {
        let small_inputs = corpus::write_inputs(&inputs_dir, "small", &base, &corpus.small)?;
        let small_clients = [
            Client::Oncefetch { fsync: true },
            Client::Oncefetch { fsync: false },
            Client::Aria2c,
            Client::CurlParallel,
        ];
        bench.downloads(
            Workload::Small,
            &small_clients,
            &small_inputs,
            &corpus.small,
            options.rounds,
        )?;
    }
    if let Some(large) = &corpus.large {
        let large_inputs = corpus::write_inputs(&inputs_dir, "large", &base, std::slice::from_ref(large))?;
        // --no-fsync too: it shows what the final fsync of a GiB costs, which curl never pays.
        let large_clients = [
            Client::Oncefetch { fsync: true },
            Client::Oncefetch { fsync: false },
            Client::Curl,
        ];
        bench.downloads(
            Workload::Large,
            &large_clients,
            &large_inputs,
            std::slice::from_ref(large),
            options.rounds,
        )?;
    }
    let mut split_crash = None;
    if let Some(split) = &split {
        let limited = format!("{base}{LIMITED}");
        let split_inputs = corpus::write_inputs(&inputs_dir, "split", &limited, std::slice::from_ref(split))?;
        bench.downloads(
            Workload::Split,
            &split_clients,
            &split_inputs,
            std::slice::from_ref(split),
            options.split_rounds,
        )?;
        // Once, after the timed rounds: oncefetch --split killed mid-download, then resumed.
        let timed = bench
            .series
            .iter()
            .find(|s| s.workload == Workload::Split && matches!(s.client, Client::OncefetchSplit { .. }))
            .map(|s| (s.client, s.median_wall()));
        if let Some((client, expected_s)) = timed {
            split_crash = bench.split_crash(client, &split_inputs, split, expected_s, &mut skipped)?;
        }
    }
    if options.plan_lines > 0 {
        bench.planning(&inputs_dir, options.plan_lines, options.plan_rounds)?;
    }
    let server = nginx.base_url();
    let series = bench.series;
    drop(nginx);
    let fsync_after = fsync_latency_ms(&work.path)?;

    let report = Report {
        series,
        setup: json!({
            "small_files": corpus.small.len(),
            "small_bytes": corpus.small_bytes(),
            "large_bytes": corpus.large.as_ref().map_or(0, |e| e.size),
            "rounds": options.rounds,
            "split_file": split.as_ref().map(|e| &e.rel),
            "split_bytes": split.as_ref().map_or(0, |e| e.size),
            "split_rate_bytes_per_s": options.split_rate,
            "split_connections": options.split_connections,
            "split_rounds": options.split_rounds,
            "warmup_runs_per_client": 1,
            "plan_lines": options.plan_lines,
            "plan_rounds": options.plan_rounds,
            "concurrency": peers::CONCURRENCY,
            "nginx_workers": NGINX_WORKERS,
            "server": server,
            "work_dir": work.path,
            "filesystem": fs_type,
            "fsync_ms_before": fsync_before,
            "fsync_ms_after": fsync_after,
            "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
            "kernel": first_line(Command::new("uname").arg("-r")),
            "date": first_line(Command::new("date").arg("-Is")),
            "versions": {
                "oncefetch": first_line(Command::new(&tools.oncefetch).arg("--version")),
                "aria2c": first_line(Command::new(&tools.aria2c).arg("--version")),
                "curl": first_line(Command::new(&tools.curl).arg("--version")),
                "nginx": first_line(Command::new(&nginx_binary).arg("-v")),
            },
        }),
        split_crash,
        skipped,
    };
    let table = report.table();
    println!();
    print!("{table}");
    println!("disk: fsync of a fresh 32 KiB file {fsync_before:.2} ms before the runs, {fsync_after:.2} ms after");
    let json_path = options
        .json
        .clone()
        .unwrap_or_else(|| target_dir().join("bench/e2e.json"));
    if let Some(dir) = json_path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("could not create {}", dir.display()))?;
    }
    fs::write(&json_path, serde_json::to_string_pretty(&report.json())? + "\n")
        .with_context(|| format!("could not write {}", json_path.display()))?;
    println!("\nJSON: {}", json_path.display());
    Ok(())
}

/// nginx workers: the two cores are shared with the client.
const NGINX_WORKERS: u32 = 2;

/// The state of a running end-to-end benchmark.
struct Bench<'a> {
    tools: &'a Tools,
    nginx: &'a Nginx,
    /// Parent of every run's output folder.
    outputs: PathBuf,
    /// Each run's stdout and stderr, and GNU time's numbers.
    logs: PathBuf,
    interrupted: &'a AtomicBool,
    series: Vec<Series>,
}

impl Bench<'_> {
    /// One verified warm-up run per client, then `rounds` rounds of one timed, verified run each.
    fn downloads(
        &mut self,
        workload: Workload,
        clients: &[Client],
        inputs: &Inputs,
        expected: &[Entry],
        rounds: u32,
    ) -> Result<()> {
        let first = self.series.len();
        // curl -o (and aria2c -x -s) name the one file and its URL on the command line.
        let single = expected
            .first()
            .filter(|_| matches!(workload, Workload::Large | Workload::Split))
            .map(|e| e.rel.as_str());
        let prefix = if workload == Workload::Split { LIMITED } else { "" };
        let single_url = single.map(|rel| format!("{}{prefix}/{rel}", self.nginx.base_url()));
        for round in 0..=rounds {
            // Each round starts one client later (A B C, B C A, C A B …), so that no
            // client always runs after the same one and pays for what it left behind
            // (page cache to reclaim, disk write-back).
            let start = round as usize % clients.len();
            for &client in clients[start..].iter().chain(&clients[..start]) {
                if self.interrupted.load(Ordering::SeqCst) {
                    bail!("interrupted");
                }
                let name = format!("{}-{}-{round}", workload.name(), slug(&client.label()));
                let out = self.outputs.join(&name);
                fs::create_dir(&out).with_context(|| format!("could not create {}", out.display()))?;
                let inv = peers::invocation(client, self.tools, inputs, single_url.as_deref().zip(single), &out);
                let log = self.logs.join(format!("{name}.log"));
                let sample = peers::timed(&self.tools.time, &inv, &log, Some(self.nginx))?;
                let ignore: &[&str] = if client.is_oncefetch() { &[".oncefetch"] } else { &[] };
                corpus::verify(&out, expected, ignore)
                    .with_context(|| format!("the output of `{}` is wrong", inv.display()))?;
                if client.is_oncefetch() {
                    peers::check_ledger(&self.tools.oncefetch, &out, expected.len(), "SUCCESS")?;
                }
                eprintln!(
                    "bench: {workload:<5} {} {:<22} {:>8.3} s {:>7.1} MiB peak, {:.2} s CPU, load {:.1} (verified)",
                    if round == 0 { "warm-up " } else { "timed   " },
                    client.label(),
                    sample.wall_s,
                    sample.peak_rss_kib as f64 / 1024.0,
                    sample.user_s + sample.sys_s,
                    sample.load_before.unwrap_or(f64::NAN),
                    workload = workload.name(),
                );
                if round == 0 {
                    self.series.push(Series {
                        workload,
                        client,
                        command: inv.display(),
                        units: match workload {
                            Workload::Large | Workload::Split => expected.iter().map(|e| e.size).sum(),
                            _ => expected.len() as u64,
                        },
                        samples: Vec::new(),
                    });
                } else {
                    let index = first + clients.iter().position(|&c| c == client).expect("a listed client");
                    self.series[index].samples.push(sample);
                }
            }
        }
        Ok(())
    }

    /// `oncefetch plan` of a `lines`-line manifest into a fresh ledger, `rounds` times.
    fn planning(&mut self, inputs: &Path, lines: u64, rounds: u32) -> Result<()> {
        let manifest = inputs.join("plan.jsonl");
        eprintln!("bench: writing a {lines}-line manifest");
        corpus::write_plan_manifest(&manifest, lines)?;
        let mut series = Series {
            workload: Workload::Plan,
            client: Client::Oncefetch { fsync: true },
            command: String::new(),
            units: lines,
            samples: Vec::new(),
        };
        for round in 1..=rounds {
            if self.interrupted.load(Ordering::SeqCst) {
                bail!("interrupted");
            }
            let out = self.outputs.join(format!("plan-{round}"));
            let inv = peers::plan_invocation(&self.tools.oncefetch, &manifest, &out);
            let log = self.logs.join(format!("plan-{round}.log"));
            let sample = peers::timed(&self.tools.time, &inv, &log, None)?;
            peers::check_ledger(&self.tools.oncefetch, &out, usize::try_from(lines)?, "PLANNED")?;
            eprintln!(
                "bench: plan  timed    {lines} lines {:>8.3} s {:>7.1} MiB peak, {:.2} s CPU (verified)",
                sample.wall_s,
                sample.peak_rss_kib as f64 / 1024.0,
                sample.user_s + sample.sys_s,
            );
            series.command = inv.display();
            series.samples.push(sample);
        }
        self.series.push(series);
        Ok(())
    }
}

/// The split workload's clients: oncefetch `--split n` (when this build has the flag: it is left out
/// with a note in `skipped` otherwise), aria2c `-xn -sn` and single-connection curl.
fn split_clients(tools: &Tools, n: u32, skipped: &mut Vec<String>) -> Result<Vec<Client>> {
    let oncefetch = Client::OncefetchSplit { connections: n };
    let mut clients = vec![oncefetch, Client::Aria2cSplit { connections: n }, Client::Curl];
    if !peers::fetch_lists_flag(&tools.oncefetch, "--split")? {
        let note = format!(
            "split: {} — `{} fetch --help` lists no --split (not in this build yet)",
            oncefetch.label(),
            tools.oncefetch.display()
        );
        eprintln!("bench: skipping {note}");
        skipped.push(note);
        clients.remove(0);
    }
    Ok(clients)
}

/// `label` with every run of other characters than letters and digits turned into one `-`.
fn slug(label: &str) -> String {
    label
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

/// Files written and fsynced by [`fsync_latency_ms`].
const FSYNC_PROBES: u32 = 50;

/// The median time to create, write (32 KiB) and fsync a file in `dir`: what the clients that
/// fsync (aria2c three times per file, oncefetch twice) pay per call on this disk right now.
fn fsync_latency_ms(dir: &Path) -> Result<f64> {
    let probe = dir.join("fsync-probe");
    fs::create_dir_all(&probe)?;
    let data = vec![0x5Au8; 32 * 1024];
    let mut times = Vec::new();
    for i in 0..FSYNC_PROBES {
        let path = probe.join(i.to_string());
        let start = Instant::now();
        let mut file = fs::File::create(&path).with_context(|| format!("could not create {}", path.display()))?;
        std::io::Write::write_all(&mut file, &data)?;
        file.sync_all()?;
        times.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    fs::remove_dir_all(&probe)?;
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// Fails early when the disk cannot hold every run's output (nothing is deleted until the end).
fn check_space(dir: &Path, options: &Options) -> Result<()> {
    let avail: u64 = cmd::quiet_ok(Command::new("df").args(["--output=avail", "-B1"]).arg(dir))?
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .context("could not read the free space from df")?;
    let runs = u64::from(options.rounds) + 1;
    let small = options.small as u64 * 33 * 1024;
    // The split workload's file is the large file when their sizes agree.
    let split_copy = u64::from(options.split_size != options.large_size);
    let split_runs = u64::from(options.split_rounds) + 1;
    // The split runs of three clients, and the crash-resume run.
    let need = small * (1 + 4 * runs)
        + options.large_size * (1 + 3 * runs)
        + options.split_size * (split_copy + 3 * split_runs + 1)
        + options.plan_lines * 600 * u64::from(options.plan_rounds);
    if need > avail {
        bail!(
            "the benchmark needs about {} MiB in {} but only {} MiB are free (use --dir, --rounds, --large-size or --split-size)",
            need >> 20,
            dir.display(),
            avail >> 20
        );
    }
    Ok(())
}

/// The path of `program` (an absolute path, or a name looked up on `PATH` and in the sbin
/// folders), installing the first Debian package of `packages` that installs when it is missing.
fn ensure_program(program: &str, packages: &[&str]) -> Result<PathBuf> {
    if let Some(path) = find_program(program) {
        return Ok(path);
    }
    let mut updated = false;
    loop {
        for package in packages {
            let mut install = Command::new("apt-get");
            install
                .args(["install", "-y", "--no-install-recommends", package])
                .env("DEBIAN_FRONTEND", "noninteractive");
            if cmd::run(&mut install).is_ok() {
                if let Some(path) = find_program(program) {
                    return Ok(path);
                }
            }
        }
        if updated {
            bail!(
                "`{program}` is missing and could not be installed: install the Debian package {}",
                packages.join(" or ")
            );
        }
        updated = true;
        let _ = cmd::run(Command::new("apt-get").arg("update"));
    }
}

fn find_program(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let path = PathBuf::from(program);
        return path.is_file().then_some(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// The first line `command` printed on stdout or stderr, or `null`.
fn first_line(command: &mut Command) -> serde_json::Value {
    match cmd::quiet(command) {
        Ok(out) => {
            let text = if out.stdout.is_empty() { out.stderr } else { out.stdout };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .map_or(serde_json::Value::Null, |l| json!(l.trim()))
        }
        Err(_) => serde_json::Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Options>> {
        Options::parse(args.iter().map(|a| (*a).to_owned()))
    }

    #[test]
    fn options_parse() {
        let o = parse(&[
            "--e2e-only",
            "--small",
            "1_000",
            "--large-size",
            "64MiB",
            "--rounds",
            "3",
        ])
        .unwrap()
        .unwrap();
        assert!(!o.micro && o.e2e);
        assert_eq!((o.small, o.large_size, o.rounds), (1000, 64 << 20, 3));
        assert!(parse(&["--help"]).unwrap().is_none());
        assert!(parse(&["--micro-only", "--e2e-only"]).is_err());
        assert!(parse(&["--small"]).is_err());
        assert!(parse(&["--bogus"]).is_err());
    }

    #[test]
    fn split_options_parse() {
        let o = parse(&[]).unwrap().unwrap();
        assert_eq!(
            (o.split_size, o.split_rate, o.split_connections, o.split_rounds),
            (1 << 30, 20 << 20, 16, 3)
        );
        let o = parse(&[
            "--split-size",
            "256MiB",
            "--split-rate",
            "512k",
            "--split-connections",
            "8",
            "--split-rounds",
            "1",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            (o.split_size, o.split_rate, o.split_connections, o.split_rounds),
            (256 << 20, 512 << 10, 8, 1)
        );
        assert_eq!(parse(&["--split-size", "0"]).unwrap().unwrap().split_size, 0);
        assert!(parse(&["--split-connections", "17"]).is_err());
        assert!(parse(&["--split-connections", "0"]).is_err());
        assert!(parse(&["--split-rounds", "0"]).is_err());
        assert!(parse(&["--split-rate", "fast"]).is_err());
        assert!(HELP.contains("--split-rounds N"));
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(size("1GiB").unwrap(), 1 << 30);
        assert_eq!(size("512k").unwrap(), 512 << 10);
        assert_eq!(size("4096").unwrap(), 4096);
        assert_eq!(size("0").unwrap(), 0);
        assert!(size("1.5G").is_err());
        assert!(size("1T").is_err());
    }

    #[test]
    fn slugs_are_file_names() {
        assert_eq!(slug("oncefetch --no-fsync"), "oncefetch-no-fsync");
        assert_eq!(slug("aria2c -j16"), "aria2c-j16");
    }
}
