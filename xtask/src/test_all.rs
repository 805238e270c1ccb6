//! `cargo xtask test-all`: everything CI checks, in order, failing fast.
//!
//! 1. `fmt`: `cargo fmt --all -- --check`
//! 2. `deps`: the dependency direction (house style item 1) with `cargo tree`
//! 3. `clippy`: `cargo clippy --workspace --all-targets --all-features -- -D warnings`
//! 4. `test`: a throwaway PostgreSQL, then `cargo test` under each feature set that ships
//! 5. `torture`: `cargo xtask torture --kills 30 --seed 1` on SQLite and PostgreSQL

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::cmd;
use crate::postgres::TempPostgres;

/// One step of `test-all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Step {
    /// `cargo fmt --all -- --check`
    Fmt,
    /// Backends and core do not pull each other's dependencies.
    Deps,
    /// Clippy with warnings denied.
    Clippy,
    /// The tests, against a throwaway PostgreSQL.
    Test,
    /// The seeded crash slice: 30 kills on each store.
    Torture,
}

impl Step {
    /// Every step, in the order they run.
    pub(crate) const ALL: [Step; 5] = [Step::Fmt, Step::Deps, Step::Clippy, Step::Test, Step::Torture];

    /// The name used on the command line.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Step::Fmt => "fmt",
            Step::Deps => "deps",
            Step::Clippy => "clippy",
            Step::Test => "test",
            Step::Torture => "torture",
        }
    }

    /// The step called `name`.
    pub(crate) fn parse(name: &str) -> Result<Step> {
        Step::ALL.into_iter().find(|s| s.name() == name).with_context(|| {
            let known: Vec<_> = Step::ALL.iter().map(|s| s.name()).collect();
            format!("unknown step `{name}` (known: {})", known.join(", "))
        })
    }
}

/// What `test-all` was asked to do.
#[derive(Debug, Default)]
pub(crate) struct Options {
    /// Print the commands instead of running them.
    pub(crate) dry_run: bool,
    /// Run only these steps (still in their usual order); all when empty.
    pub(crate) only: BTreeSet<Step>,
}

/// The feature sets the tests run under (arguments after `cargo test`), in order.
const TEST_RUNS: &[&[&str]] = &[
    &["--workspace", "--all-features"],
    &["-p", "oncefetch-core", "--no-default-features"],
    &["-p", "oncefetch", "--no-default-features", "--features", "postgres"],
    &["-p", "oncefetch"],
];

/// A dependency-direction rule: `cargo tree -p PACKAGE -e normal FEATURES` names none of `forbidden`.
struct DepRule {
    package: &'static str,
    features: &'static [&'static str],
    forbidden: &'static [&'static str],
}

const SQLITE: &[&str] = &["rusqlite", "libsqlite3-sys"];
const POSTGRES: &[&str] = &["diesel", "diesel-async", "diesel_migrations", "tokio-postgres"];

/// Core names no backend; each backend depends on core only; the CLI's features gate its stores.
/// Features are additive, so `--all-features` also covers the default set.
const DEP_RULES: &[DepRule] = &[
    DepRule {
        package: "oncefetch-core",
        features: &["--all-features"],
        forbidden: &[
            "rusqlite",
            "libsqlite3-sys",
            "diesel",
            "diesel-async",
            "diesel_migrations",
            "tokio-postgres",
            "reqwest",
            "oncefetch-store-sqlite",
            "oncefetch-store-postgres",
            "oncefetch-fetch-http",
        ],
    },
    DepRule {
        package: "oncefetch-store-sqlite",
        features: &["--all-features"],
        forbidden: &[
            "diesel",
            "diesel-async",
            "diesel_migrations",
            "tokio-postgres",
            "reqwest",
            "oncefetch-store-postgres",
            "oncefetch-fetch-http",
        ],
    },
    DepRule {
        package: "oncefetch-store-postgres",
        features: &["--all-features"],
        forbidden: &[
            "rusqlite",
            "libsqlite3-sys",
            "reqwest",
            "oncefetch-store-sqlite",
            "oncefetch-fetch-http",
        ],
    },
    DepRule {
        package: "oncefetch-fetch-http",
        features: &["--all-features"],
        forbidden: &[
            "rusqlite",
            "libsqlite3-sys",
            "diesel",
            "diesel-async",
            "diesel_migrations",
            "tokio-postgres",
            "oncefetch-store-sqlite",
            "oncefetch-store-postgres",
        ],
    },
    DepRule {
        package: "oncefetch",
        features: &[],
        forbidden: POSTGRES,
    },
    DepRule {
        package: "oncefetch",
        features: &["--no-default-features", "--features", "postgres"],
        forbidden: SQLITE,
    },
    // The default build stays lean: the object-store destination only with `--features s3`.
    DepRule {
        package: "oncefetch",
        features: &[],
        forbidden: &["object_store", "oncefetch-dest-object-store"],
    },
];

/// Runs the steps; on failure the error names the step and how long the run took.
pub(crate) fn run(options: &Options, interrupted: &AtomicBool) -> Result<()> {
    let started = Instant::now();
    let steps: Vec<Step> = Step::ALL
        .into_iter()
        .filter(|s| options.only.is_empty() || options.only.contains(s))
        .collect();
    for &step in &steps {
        eprintln!("\n==> test-all: {}", step.name());
        let step_started = Instant::now();
        let result = match step {
            Step::Fmt => run_cargo(options, &["fmt", "--all", "--", "--check"]),
            Step::Deps => check_deps(options),
            Step::Clippy => run_cargo(
                options,
                &[
                    "clippy",
                    "--workspace",
                    "--all-targets",
                    "--all-features",
                    "--",
                    "-D",
                    "warnings",
                ],
            ),
            Step::Test => run_tests(options, interrupted),
            Step::Torture => run_torture(options, interrupted),
        };
        let result = result.and_then(|()| match interrupted.load(Ordering::SeqCst) {
            true => bail!("interrupted"),
            false => Ok(()),
        });
        if let Err(e) = result {
            return Err(e.context(format!(
                "test-all failed at step {} after {}",
                step.name(),
                human(started.elapsed())
            )));
        }
        eprintln!("<== test-all: {} ok in {}", step.name(), human(step_started.elapsed()));
    }
    let names: Vec<_> = steps.iter().map(|s| s.name()).collect();
    let dry = if options.dry_run { " (dry run)" } else { "" };
    println!(
        "test-all: ok{dry}: {} in {}",
        names.join(", "),
        human(started.elapsed())
    );
    Ok(())
}

/// The workspace root: commands run there whatever the caller's directory.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), PathBuf::from)
}

fn cargo() -> Command {
    // Plain `cargo`: rustup's proxy keeps the toolchain that runs xtask (it sets RUSTUP_TOOLCHAIN).
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root());
    cmd
}

fn run_cargo(options: &Options, args: &[&str]) -> Result<()> {
    run_or_show(options, cargo().args(args))
}

fn run_or_show(options: &Options, cmd: &mut Command) -> Result<()> {
    if options.dry_run {
        eprintln!("$ {}  # dry run", cmd::cmdline(cmd));
        Ok(())
    } else {
        cmd::run(cmd)
    }
}

fn check_deps(options: &Options) -> Result<()> {
    let mut violations = Vec::new();
    for rule in DEP_RULES {
        let mut tree = cargo();
        tree.args(["tree", "-p", rule.package, "-e", "normal", "--prefix", "depth"])
            .args(rule.features);
        if options.dry_run {
            eprintln!(
                "$ {}  # dry run; must not name {}",
                cmd::cmdline(&tree),
                rule.forbidden.join(", ")
            );
            continue;
        }
        let output = cmd::read(&mut tree)?;
        for path in forbidden_paths(&output, rule.forbidden) {
            let features = if rule.features.is_empty() {
                "default features".to_owned()
            } else {
                rule.features.join(" ")
            };
            let culprit = path.last().map_or("", String::as_str);
            violations.push(format!(
                "{} ({features}) pulls in {culprit}: {}",
                rule.package,
                path.join(" -> ")
            ));
        }
    }
    if !violations.is_empty() {
        bail!(
            "dependency direction violated (core names no backend; each backend depends on core only):\n  {}",
            violations.join("\n  ")
        );
    }
    if !options.dry_run {
        eprintln!("dependency direction ok ({} rules)", DEP_RULES.len());
    }
    Ok(())
}

/// For each line of `cargo tree --prefix depth` output naming a forbidden package, the chain of
/// packages from the root down to it (cargo expands every package fully where it first appears).
/// A forbidden package found under another one is left out: the first names the culprit.
fn forbidden_paths(tree: &str, forbidden: &[&str]) -> Vec<Vec<String>> {
    let mut stack: Vec<String> = Vec::new();
    let mut found = Vec::new();
    for line in tree.lines() {
        let digits = line.bytes().take_while(u8::is_ascii_digit).count();
        let Ok(depth) = line[..digits].parse::<usize>() else {
            continue;
        };
        let Some(name) = line[digits..].split_whitespace().next() else {
            continue;
        };
        stack.truncate(depth);
        stack.push(name.to_owned());
        if forbidden.contains(&name) && !stack[..stack.len() - 1].iter().any(|p| forbidden.contains(&p.as_str())) {
            found.push(stack.clone());
        }
    }
    found.sort();
    found.dedup();
    found
}

fn run_tests(options: &Options, interrupted: &AtomicBool) -> Result<()> {
    if options.dry_run {
        eprintln!("(dry run) would start a throwaway PostgreSQL and export ONCEFETCH_TEST_POSTGRES_URL, ONCEFETCH_REQUIRE_POSTGRES=1, ONCEFETCH_TEST_PG_{{BINDIR,DATADIR,PORT,RUN_AS}}");
        for args in TEST_RUNS {
            run_or_show(options, cargo().arg("test").args(*args))?;
        }
        return Ok(());
    }
    let server = TempPostgres::start()?;
    let env = server.env();
    for (key, value) in &env {
        eprintln!("{key}={}", cmd::quote(value));
    }
    for args in TEST_RUNS {
        if interrupted.load(Ordering::SeqCst) {
            bail!("interrupted");
        }
        // The S3 destination's tests start SeaweedFS themselves; `.ci/run` installs `weed`.
        let seaweed = ("ONCEFETCH_REQUIRE_SEAWEEDFS", "1");
        cmd::run(
            cargo()
                .arg("test")
                .args(*args)
                .envs(env.iter().map(|(k, v)| (k, v)))
                .envs([seaweed]),
        )?;
    }
    drop(server);
    Ok(())
}

/// The arguments of the torture slice CI runs.
const TORTURE_SLICE: [&str; 4] = ["--kills", "30", "--seed", "1"];

fn run_torture(options: &Options, interrupted: &AtomicBool) -> Result<()> {
    if options.dry_run {
        eprintln!("$ cargo xtask torture {}  # dry run", TORTURE_SLICE.join(" "));
        return Ok(());
    }
    crate::torture::run(TORTURE_SLICE.map(String::from), interrupted)
}

fn human(elapsed: Duration) -> String {
    match elapsed.as_secs() {
        s if s >= 60 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{:.1}s", elapsed.as_secs_f64()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_paths_name_the_chain() {
        let tree = "0oncefetch-core v0.1.0 (/w/crates/core)\n1serde v1.0.0\n1oops v0.1.0\n2mid v1.0.0\n3rusqlite v0.37.0\n4libsqlite3-sys v0.35.0\n1rusqlite v0.37.0 (*)\n";
        let paths = forbidden_paths(tree, &["rusqlite", "libsqlite3-sys", "reqwest"]);
        assert_eq!(
            paths,
            vec![
                vec!["oncefetch-core", "oops", "mid", "rusqlite"],
                vec!["oncefetch-core", "rusqlite"]
            ]
        );
        assert!(forbidden_paths(tree, &["reqwest"]).is_empty());
    }

    #[test]
    fn steps_parse_by_name() {
        assert_eq!(Step::parse("clippy").unwrap(), Step::Clippy);
        assert!(Step::parse("lint").is_err());
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human(Duration::from_millis(2500)), "2.5s");
        assert_eq!(human(Duration::from_secs(754)), "12m34s");
    }
}
