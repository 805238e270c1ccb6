//! `cargo xtask torture --kills N --seed S`: oncefetch's crash claims measured over many faults.
//!
//! Episode after episode (each a fresh ledger and a fresh corpus drawn from its seed, see
//! [`episode`]), several `oncefetch run` processes are killed with SIGKILL, paused past their
//! lease (SIGSTOP … SIGCONT) and restarted at seeded instants — on PostgreSQL the postmaster is
//! killed and restarted too — and the invariants of [`check::INVARIANTS`] are checked after every
//! restart and at the end. The run stops once N kills were delivered on each store, prints a
//! table of what it did and found, and the seed of each failing episode, which replays it alone:
//! `cargo xtask torture --kills K --seed EPISODE_SEED --store STORE`.

mod check;
mod corpus;
mod episode;
mod rng;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::bench::{root, target_dir};
use crate::cmd;
use crate::postgres::TempPostgres;

/// Help for `cargo xtask torture --help`.
pub(crate) const HELP: &str = "\
cargo xtask torture — kill, pause and restart oncefetch runs (and the database) and check the invariants

USAGE:
    cargo xtask torture [--kills N] [--seed S] [--store sqlite|postgres|both] [--keep]

Builds the debug oncefetch with every store, then runs episodes until N kills were delivered on
each store. An episode plans a fresh corpus (small files, large throttled ones, duplicates, a
flaky host, a host ignoring Range; three loopback servers) into a fresh ledger, keeps 3
`oncefetch run` processes going, and at instants drawn from the seed kills one (SIGKILL), pauses
one past its 1 s lease (SIGSTOP, SIGCONT later) or, on PostgreSQL, kills the postmaster (SIGKILL)
and restarts it; each killed run is restarted. The safety invariants are checked after every
restart, all of them once every run has finished. Prints a table per store and the seed of every
failing episode (its folder is kept under target/torture); exits non-zero on any violation.

OPTIONS:
    --kills N     kills per store (default 30)
    --seed S      the seed (default 1); episode 0 uses S itself, so an episode's seed replays it
    --store WHAT  sqlite, postgres or both (default both; postgres starts a throwaway server)
    --keep        keep every episode's folder, not only the failing ones'
";

/// What `torture` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Options {
    kills: u64,
    seed: u64,
    sqlite: bool,
    postgres: bool,
    keep: bool,
}

impl Options {
    /// `None` for `--help`.
    fn parse(args: impl IntoIterator<Item = String>) -> Result<Option<Options>> {
        let mut options = Options {
            kills: 30,
            seed: 1,
            sqlite: true,
            postgres: true,
            keep: false,
        };
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value"));
            match arg.as_str() {
                "--kills" => options.kills = value("--kills")?.parse().context("--kills takes a number")?,
                "--seed" => options.seed = value("--seed")?.parse().context("--seed takes a number")?,
                "--store" => match value("--store")?.as_str() {
                    "sqlite" => (options.sqlite, options.postgres) = (true, false),
                    "postgres" => (options.sqlite, options.postgres) = (false, true),
                    "both" => (options.sqlite, options.postgres) = (true, true),
                    other => bail!("unknown store `{other}` for --store (sqlite, postgres or both)"),
                },
                "--keep" => options.keep = true,
                "--help" | "-h" => return Ok(None),
                _ => bail!("unknown option `{arg}` for torture (see `cargo xtask torture --help`)"),
            }
        }
        if options.kills == 0 {
            bail!("--kills must be at least 1");
        }
        Ok(Some(options))
    }
}

/// The totals of one store.
#[derive(Debug, Default)]
struct Totals {
    episodes: u64,
    run_kills: u64,
    pauses: u64,
    server_kills: u64,
    starts: u64,
    outage_exits: u64,
    checks: u64,
    jobs: u64,
    corpus_bytes: u64,
    served_bytes: u64,
    worst_ratio: f64,
    violations: u64,
    failing: Vec<(u64, String)>,
    elapsed: Duration,
}

/// `cargo xtask torture ARGS…`.
pub(crate) fn run(args: impl IntoIterator<Item = String>, interrupted: &AtomicBool) -> Result<()> {
    let Some(options) = Options::parse(args)? else {
        print!("{HELP}");
        return Ok(());
    };
    let binary = build()?;
    let base = target_dir().join("torture");
    let mut results = Vec::new();
    if options.sqlite {
        results.push(("sqlite", store_run(&options, &binary, &base, None, interrupted)?));
    }
    if options.postgres {
        let mut server = TempPostgres::start_for_crashes()?;
        results.push((
            "postgres",
            store_run(&options, &binary, &base, Some(&mut server), interrupted)?,
        ));
    }
    print_table(&options, &results);
    let failed: u64 = results.iter().map(|(_, t)| t.violations).sum();
    if failed > 0 {
        bail!("torture: {failed} invariant violation(s); replay each failing episode with the command printed above");
    }
    if interrupted.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    Ok(())
}

/// Builds the debug `oncefetch` with every store and returns its path.
fn build() -> Result<PathBuf> {
    let mut cargo = std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cargo
        .current_dir(root())
        .args(["build", "-p", "oncefetch", "--features", "all-stores"]);
    cmd::run(&mut cargo)?;
    let binary = target_dir().join("debug/oncefetch");
    if !binary.is_file() {
        bail!("`cargo build -p oncefetch` left no {}", binary.display());
    }
    Ok(binary)
}

/// Episodes on one store until `options.kills` kills were delivered.
fn store_run(
    options: &Options,
    binary: &Path,
    base: &Path,
    mut server: Option<&mut TempPostgres>,
    interrupted: &AtomicBool,
) -> Result<Totals> {
    let name = if server.is_some() { "postgres" } else { "sqlite" };
    let started = Instant::now();
    let mut totals = Totals::default();
    let mut n = 0;
    while totals.run_kills + totals.server_kills < options.kills && !interrupted.load(Ordering::SeqCst) {
        let seed = rng::episode_seed(options.seed, n);
        let mut schedule = rng::Rng::new(seed ^ 0x5EED);
        let left = options.kills - totals.run_kills - totals.server_kills;
        let kills = schedule.range(4, 8).min(left);
        let dir = base.join(format!("{name}-{seed}"));
        let _ = fs::remove_dir_all(&dir);
        let store = match server.as_deref_mut() {
            Some(server) => episode::Store::Postgres(server),
            None => episode::Store::Sqlite,
        };
        let episode_started = Instant::now();
        let outcome = episode::run(binary, &dir, seed, kills, store)
            .with_context(|| format!("torture: episode {n} on {name} (seed {seed}) could not run"))?;
        let ratio = outcome.served_bytes as f64 / outcome.corpus_bytes as f64;
        eprintln!(
            "torture: {name} episode {n} (seed {seed}): {} kills ({} runs, {} server), {} pauses, {} starts, {} checks, served {ratio:.2}× the corpus, {} violations, {:.1}s",
            outcome.kills(),
            outcome.run_kills,
            outcome.server_kills,
            outcome.pauses,
            outcome.starts,
            outcome.checks,
            outcome.violations.len(),
            episode_started.elapsed().as_secs_f64()
        );
        totals.episodes += 1;
        totals.run_kills += outcome.run_kills;
        totals.pauses += outcome.pauses;
        totals.server_kills += outcome.server_kills;
        totals.starts += outcome.starts;
        totals.outage_exits += outcome.outage_exits;
        totals.checks += outcome.checks;
        totals.jobs += outcome.jobs;
        totals.corpus_bytes += outcome.corpus_bytes;
        totals.served_bytes += outcome.served_bytes;
        totals.worst_ratio = totals.worst_ratio.max(ratio);
        if outcome.violations.is_empty() {
            if !options.keep {
                let _ = fs::remove_dir_all(&dir);
            }
        } else {
            totals.violations += outcome.violations.len() as u64;
            let replay = format!(
                "cargo xtask torture --kills {} --seed {seed} --store {name}",
                outcome.kills().max(1)
            );
            eprintln!(
                "torture: FAILED: {name} episode {n}, seed {seed}; folder kept: {}",
                dir.display()
            );
            for violation in &outcome.violations {
                eprintln!("torture:   {}: {}", violation.invariant, violation.detail);
            }
            eprintln!("torture:   replay: {replay}");
            totals.failing.push((seed, replay));
        }
        n += 1;
    }
    totals.elapsed = started.elapsed();
    let ratio = totals.served_bytes as f64 / totals.corpus_bytes.max(1) as f64;
    if ratio > episode::SERVED_RATIO_LIMIT {
        let violation = check::Violation::new(
            "bytes-served",
            format!(
                "{} bytes served for corpora of {} over {} episodes ({ratio:.2}×)",
                totals.served_bytes, totals.corpus_bytes, totals.episodes
            ),
        );
        eprintln!("torture: VIOLATION {}: {}", violation.invariant, violation.detail);
        totals.violations += 1;
        totals.failing.push((
            options.seed,
            format!(
                "cargo xtask torture --kills {} --seed {} --store {name}",
                options.kills, options.seed
            ),
        ));
    }
    Ok(totals)
}

fn print_table(options: &Options, results: &[(&str, Totals)]) {
    println!("torture: --kills {} --seed {}", options.kills, options.seed);
    println!(
        "{:<9} {:>8} {:>6} {:>7} {:>7} {:>6} {:>7} {:>7} {:>7} {:>10} {:>10} {:>10} {:>9}",
        "store",
        "episodes",
        "kills",
        "server",
        "pauses",
        "starts",
        "outage",
        "checks",
        "jobs",
        "served/all",
        "worst",
        "violations",
        "time"
    );
    for (name, t) in results {
        println!(
            "{:<9} {:>8} {:>6} {:>7} {:>7} {:>6} {:>7} {:>7} {:>7} {:>10.3} {:>10.3} {:>10} {:>8.0}s",
            name,
            t.episodes,
            t.run_kills + t.server_kills,
            t.server_kills,
            t.pauses,
            t.starts,
            t.outage_exits,
            t.checks,
            t.jobs,
            t.served_bytes as f64 / t.corpus_bytes.max(1) as f64,
            t.worst_ratio,
            t.violations,
            t.elapsed.as_secs_f64()
        );
    }
    println!("kills: SIGKILLs of runs and of the postmaster (server); outage: runs that exited 1 while the database was down");
    println!("invariants checked:");
    for (name, what) in check::INVARIANTS {
        println!("  {name}: {what}");
    }
    for (name, t) in results {
        for (seed, replay) in &t.failing {
            println!("FAILED {name} seed {seed}: {replay}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Options>> {
        Options::parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn options_parse() {
        let o = parse(&["--kills", "30", "--seed", "7", "--store", "sqlite"])
            .unwrap()
            .unwrap();
        assert_eq!((o.kills, o.seed, o.sqlite, o.postgres), (30, 7, true, false));
        let o = parse(&[]).unwrap().unwrap();
        assert_eq!((o.kills, o.seed, o.sqlite, o.postgres), (30, 1, true, true));
        assert!(parse(&["--help"]).unwrap().is_none());
        assert!(parse(&["--kills", "x"]).is_err());
        assert!(parse(&["--kills", "0"]).is_err());
        assert!(parse(&["--store", "mysql"]).is_err());
        assert!(parse(&["--bogus"]).is_err());
    }
}
