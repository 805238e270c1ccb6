//! One torture episode: a fresh ledger and corpus, several `oncefetch run` processes killed,
//! paused past their lease and restarted at instants drawn from the episode's seed (and, on
//! PostgreSQL, the postmaster killed and restarted), the safety invariants checked after every
//! restart, then every process left to finish and the invariants at rest checked.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::check::{self, Violation};
use super::corpus::{Corpus, Shape};
use super::rng::Rng;
use crate::cmd;
use crate::postgres::TempPostgres;

/// `oncefetch run` processes kept running at once.
const PROCESSES: usize = 3;
/// The lease of every run: short, so a pause outlives it and a killed run's jobs come back soon.
const LEASE_TTL: Duration = Duration::from_secs(1);
/// How long the processes may take to finish once the faults stop.
const SETTLE_LIMIT: Duration = Duration::from_secs(300);
/// Bytes served may be at most this many times the corpus, over a store's run.
pub(crate) const SERVED_RATIO_LIMIT: f64 = 1.5;

/// The ledger an episode runs on.
#[derive(Debug)]
pub(crate) enum Store<'a> {
    /// A SQLite file in the episode's folder.
    Sqlite,
    /// A fresh database on this server, whose postmaster the episode may kill.
    Postgres(&'a mut TempPostgres),
}

/// What one episode did and found.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// SIGKILLs of `oncefetch run` processes.
    pub(crate) run_kills: u64,
    /// SIGSTOP … SIGCONT pauses longer than the lease.
    pub(crate) pauses: u64,
    /// SIGKILLs of the postmaster (each followed by a restart).
    pub(crate) server_kills: u64,
    /// `oncefetch run` processes started (the first ones and every restart).
    pub(crate) starts: u64,
    /// Runs that exited 1 while the database server was down or restarting.
    pub(crate) outage_exits: u64,
    /// Invariant checks made (each runs every invariant of its kind).
    pub(crate) checks: u64,
    /// Jobs in the manifest.
    pub(crate) jobs: u64,
    /// Bytes of the corpus (each distinct URL once).
    pub(crate) corpus_bytes: u64,
    /// Body bytes the servers sent.
    pub(crate) served_bytes: u64,
    /// Every broken invariant.
    pub(crate) violations: Vec<Violation>,
}

impl Outcome {
    /// Kills delivered: of runs and of the database server.
    pub(crate) fn kills(&self) -> u64 {
        self.run_kills + self.server_kills
    }
}

/// One `oncefetch run` process of the episode.
#[derive(Debug)]
struct Run {
    child: Child,
    log: PathBuf,
    /// Set once the driver sent SIGKILL.
    killed: bool,
    /// When a paused process gets SIGCONT.
    paused_until: Option<Instant>,
    /// Server kills so far when it started: a later one may make it exit 1.
    server_kills_at_start: u64,
}

/// The episode's folder, ledger and binary.
struct Episode<'a, 'b> {
    binary: &'a Path,
    dir: PathBuf,
    out: PathBuf,
    db: String,
    store: Store<'b>,
    corpus: Corpus,
    rng: Rng,
    runs: Vec<Run>,
    outcome: Outcome,
}

/// Runs an episode with `kills` kills in `dir` (made, left for the caller to remove).
pub(crate) fn run(binary: &Path, dir: &Path, seed: u64, kills: u64, store: Store<'_>) -> Result<Outcome> {
    let mut rng = Rng::new(seed);
    let corpus = Corpus::new(Shape::TORTURE, &mut rng);
    fs::create_dir_all(dir.join("logs")).with_context(|| format!("could not create {}", dir.display()))?;
    let db = match &store {
        Store::Sqlite => format!("sqlite:{}", dir.join("ledger.db").display()),
        Store::Postgres(server) => server.create_database(&format!("torture_{seed:016x}"))?,
    };
    let mut episode = Episode {
        binary,
        dir: dir.to_owned(),
        out: dir.join("out"),
        db,
        store,
        corpus,
        rng,
        runs: Vec::new(),
        outcome: Outcome::default(),
    };
    episode.outcome.jobs = episode.corpus.lines.len() as u64;
    episode.outcome.corpus_bytes = episode.corpus.size();
    episode.plan()?;
    episode.faults(kills)?;
    episode.settle()?;
    episode.at_rest()?;
    Ok(std::mem::take(&mut episode.outcome))
}

impl Episode<'_, '_> {
    fn oncefetch(&self, args: &[&str]) -> Command {
        let mut command = Command::new(self.binary);
        command.arg("--db").arg(&self.db).args(args).env_remove("ONCEFETCH_DB");
        command
    }

    /// Runs `oncefetch ARGS` to its end (retrying while the database server is down) and returns
    /// its output.
    fn read(&self, args: &[&str]) -> Result<String> {
        let mut tries = 0;
        loop {
            match cmd::quiet_ok(&mut self.oncefetch(args)) {
                Ok(out) => return Ok(out),
                Err(e) if matches!(self.store, Store::Postgres(_)) && tries < 50 => {
                    tries += 1;
                    eprintln!("torture: retrying `oncefetch {}`: {e:#}", args.join(" "));
                    thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn json_lines(&self, args: &[&str]) -> Result<Vec<Value>> {
        self.read(args)?
            .lines()
            .map(|line| serde_json::from_str(line).with_context(|| format!("bad JSON line {line:?}")))
            .collect()
    }

    fn plan(&self) -> Result<()> {
        let manifest = self.dir.join("manifest.jsonl");
        fs::write(&manifest, self.corpus.manifest())?;
        self.read(&["plan", &manifest.display().to_string()])?;
        Ok(())
    }

    fn spawn(&mut self) -> Result<()> {
        let n = self.outcome.starts;
        let log = self.dir.join("logs").join(format!("run-{n}.log"));
        let out = self.out.display().to_string();
        let mut command = self.oncefetch(&[
            "run",
            "--out",
            &out,
            "--lease-ttl",
            "1s",
            "--backoff",
            "50ms",
            "--concurrency",
            "4",
            "--max-attempts",
            "1000",
        ]);
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log)?)
            .spawn()
            .with_context(|| format!("could not start `{}`", cmd::cmdline(&command)))?;
        self.runs.push(Run {
            child,
            log,
            killed: false,
            paused_until: None,
            server_kills_at_start: self.outcome.server_kills,
        });
        self.outcome.starts += 1;
        Ok(())
    }

    /// Reaps the runs that ended and judges how; returns how many ended other than by exit 0.
    fn reap(&mut self) -> Result<usize> {
        let mut ended = Vec::new();
        let mut i = 0;
        while i < self.runs.len() {
            match self.runs[i].child.try_wait()? {
                Some(status) => ended.push((self.runs.remove(i), status)),
                None => i += 1,
            }
        }
        let mut to_restart = 0;
        for (run, status) in ended {
            to_restart += usize::from(!self.judge_exit(&run, status)?);
        }
        Ok(to_restart)
    }

    /// Whether `run` ended with exit 0 (after checking that it left every job terminal); a run
    /// ended otherwise than by the driver's kill or a database outage is a violation.
    fn judge_exit(&mut self, run: &Run, status: ExitStatus) -> Result<bool> {
        if run.killed {
            return Ok(false);
        }
        if status.success() {
            self.outcome.checks += 1;
            let jobs = self.json_lines(&["jobs", "--json"])?;
            let open: Vec<String> = jobs
                .iter()
                .filter(|j| !matches!(j["state"].as_str(), Some("SUCCESS" | "SKIPPED_DUPLICATE")))
                .map(|j| format!("{} {}", j["job_key"], j["state"]))
                .collect();
            if !open.is_empty() {
                self.violate(Violation::new(
                    "exit-0-means-done",
                    format!(
                        "{} exited 0 with jobs not terminal: {}",
                        run.log.display(),
                        open.join(", ")
                    ),
                ));
            }
            return Ok(true);
        }
        let outage = self.outcome.server_kills > run.server_kills_at_start;
        if outage && status.code() == Some(1) {
            self.outcome.outage_exits += 1;
            return Ok(false);
        }
        let log = fs::read_to_string(&run.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        self.violate(Violation::new(
            "unexpected-exit",
            format!(
                "{} ended {status}: {}",
                run.log.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            ),
        ));
        Ok(false)
    }

    fn violate(&mut self, violation: Violation) {
        eprintln!("torture: VIOLATION {}: {}", violation.invariant, violation.detail);
        self.outcome.violations.push(violation);
    }

    /// Sleeps `span`, waking paused runs whose time came and restarting runs that ended other
    /// than by exit 0.
    fn advance(&mut self, span: Duration) -> Result<()> {
        let until = Instant::now() + span;
        loop {
            let now = Instant::now();
            for run in &mut self.runs {
                if run.paused_until.is_some_and(|t| t <= now) {
                    signal("CONT", &run.child);
                    run.paused_until = None;
                }
            }
            for _ in 0..self.reap()? {
                self.restart()?;
            }
            if now >= until {
                return Ok(());
            }
            thread::sleep((until - now).min(Duration::from_millis(20)));
        }
    }

    /// Starts a run in place of one that ended, then checks the safety invariants.
    fn restart(&mut self) -> Result<()> {
        self.spawn()?;
        self.check_safety()
    }

    fn check_safety(&mut self) -> Result<()> {
        let jobs = self.json_lines(&["jobs", "--json"])?;
        let ledger = self.json_lines(&["ledger", "--json"])?;
        self.outcome.checks += 1;
        for violation in check::safety(&self.corpus, &jobs, &ledger) {
            self.violate(violation);
        }
        Ok(())
    }

    /// The fault phase: `kills` kills at seeded instants, with pauses among them, until the
    /// kills are delivered or every run has finished its work.
    fn faults(&mut self, kills: u64) -> Result<()> {
        for _ in 0..PROCESSES {
            self.spawn()?;
        }
        while self.outcome.kills() < kills {
            let wait = Duration::from_millis(self.rng.range(30, 600));
            self.advance(wait)?;
            if self.runs.is_empty() {
                // Every run exited 0: the work is done before the kills are.
                return Ok(());
            }
            let server_kill = matches!(self.store, Store::Postgres(_)) && self.rng.percent(15);
            if server_kill {
                self.kill_server()?;
                continue;
            }
            let awake: Vec<usize> = (0..self.runs.len())
                .filter(|&i| self.runs[i].paused_until.is_none())
                .collect();
            if awake.is_empty() {
                continue;
            }
            let target = awake[self.rng.index(awake.len())];
            if self.rng.percent(25) {
                let pause = LEASE_TTL + Duration::from_millis(self.rng.range(300, 1500));
                let run = &mut self.runs[target];
                signal("STOP", &run.child);
                run.paused_until = Some(Instant::now() + pause);
                self.outcome.pauses += 1;
            } else {
                let run = &mut self.runs[target];
                signal("KILL", &run.child);
                run.killed = true;
                run.child.wait()?;
                self.outcome.run_kills += 1;
                let delay = Duration::from_millis(self.rng.range(0, 300));
                self.advance(delay)?;
            }
        }
        Ok(())
    }

    /// SIGKILL of the postmaster, a seeded outage, and a restart; then the safety check.
    fn kill_server(&mut self) -> Result<()> {
        let outage = Duration::from_millis(self.rng.range(0, 1000));
        let Store::Postgres(server) = &mut self.store else {
            bail!("no database server to kill");
        };
        server.kill_postmaster()?;
        self.outcome.server_kills += 1;
        thread::sleep(outage);
        let Store::Postgres(server) = &mut self.store else {
            bail!("no database server to restart");
        };
        server.restart()?;
        self.check_safety()
    }

    /// Wakes every paused run and waits until every run has ended (restarting those that end
    /// other than by exit 0, as after a database outage).
    fn settle(&mut self) -> Result<()> {
        for run in &mut self.runs {
            if run.paused_until.take().is_some() {
                signal("CONT", &run.child);
            }
        }
        let started = Instant::now();
        while !self.runs.is_empty() {
            if started.elapsed() > SETTLE_LIMIT {
                let pids: Vec<u32> = self.runs.iter().map(|r| r.child.id()).collect();
                self.violate(Violation::new(
                    "terminal",
                    format!("runs {pids:?} did not finish within {SETTLE_LIMIT:?} of the last fault"),
                ));
                for run in &mut self.runs {
                    let _ = run.child.kill();
                    let _ = run.child.wait();
                }
                self.runs.clear();
                break;
            }
            self.advance(Duration::from_millis(50))?;
        }
        Ok(())
    }

    /// The invariants at rest, `recover --out`, no partial file left, the bytes served, `verify`.
    fn at_rest(&mut self) -> Result<()> {
        let jobs = self.json_lines(&["jobs", "--json"])?;
        let ledger = self.json_lines(&["ledger", "--json"])?;
        self.outcome.checks += 1;
        let mut found = check::safety(&self.corpus, &jobs, &ledger);
        found.extend(check::at_rest(&jobs, &ledger));
        found.extend(check::stray_files(&self.dir, &self.out, &jobs));
        let out = self.out.display().to_string();
        self.read(&["recover", "--out", &out, "--json"])?;
        let partials = check::partial_files(&self.out);
        if !partials.is_empty() {
            found.push(Violation::new(
                "no-orphan-partial",
                format!("after recover: {partials:?}"),
            ));
        }
        self.outcome.served_bytes = self.corpus.bytes_served();
        let ratio = self.outcome.served_bytes as f64 / self.outcome.corpus_bytes as f64;
        if ratio > SERVED_RATIO_LIMIT {
            // Judged over the store's whole run (see `torture::store_run`): one episode whose
            // faults hit its large downloads may pass the ratio by itself.
            eprintln!(
                "torture: note: {} bytes served for a corpus of {} ({ratio:.2}×); most re-sent (URL, served, size): {:?}",
                self.outcome.served_bytes,
                self.outcome.corpus_bytes,
                self.corpus.most_resent(3)
            );
        }
        let verify = cmd::quiet(&mut self.oncefetch(&["verify", "--out", &out]))?;
        if !verify.status.success() {
            found.push(Violation::new(
                "verify",
                format!("{}: {}", verify.status, String::from_utf8_lossy(&verify.stderr).trim()),
            ));
        }
        for violation in found {
            self.violate(violation);
        }
        Ok(())
    }
}

impl Drop for Episode<'_, '_> {
    fn drop(&mut self) {
        for run in &mut self.runs {
            if run.paused_until.is_some() {
                signal("CONT", &run.child);
            }
            let _ = run.child.kill();
            let _ = run.child.wait();
        }
    }
}

/// Sends `SIGname` to `child` with kill(1).
fn signal(name: &str, child: &Child) {
    let sent = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status();
    if !sent.is_ok_and(|s| s.success()) {
        eprintln!("torture: kill -{name} {} failed (it may have ended)", child.id());
    }
}
