//! `cargo xtask`: the project's developer and CI tasks, as a small Rust program
//! (see `cargo xtask --help`).

mod bench;
mod cmd;
mod coverage;
mod demo;
#[cfg(test)]
mod links;
mod man;
mod postgres;
mod test_all;
mod torture;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{bail, Context, Result};

use crate::test_all::Step;

const HELP: &str = "\
cargo xtask — oncefetch's developer and CI tasks

USAGE:
    cargo xtask <TASK> [OPTIONS]

TASKS:
    test-all [--dry-run] [--only STEP[,STEP…]]
        Everything CI checks, in order, stopping at the first failure:
          fmt     cargo fmt --all -- --check
          deps    dependency direction with `cargo tree -e normal`: oncefetch-core names no
                  backend (rusqlite, diesel, diesel-async, tokio-postgres, reqwest), each
                  backend pulls no other backend, the CLI's features gate its stores
          clippy  cargo clippy --workspace --all-targets --all-features -- -D warnings
          test    start a throwaway PostgreSQL, then with its variables set:
                    cargo test --workspace --all-features
                    cargo test -p oncefetch-core --no-default-features
                    cargo test -p oncefetch --no-default-features --features postgres
                    cargo test -p oncefetch
                  and stop the server (by pid) and remove its directory, pass or fail
          torture cargo xtask torture --kills 30 --seed 1 (SQLite and PostgreSQL, below)
        --dry-run      print the commands instead of running them
        --only STEPS   run only these steps (comma-separated or repeated)
        Prints a one-line summary; exits non-zero on any failure.

    postgres
        Start a throwaway PostgreSQL (initdb into a temporary directory, a free port on
        127.0.0.1, database oncefetch_test), print its variables as `export K=V` lines on
        stdout, and keep it running until Ctrl-C (or SIGTERM) or end of standard input.
        Run it in a second terminal and paste the export lines, or in one shell:
            sleep infinity | cargo xtask postgres > pg.env &
            until grep -q RUN_AS pg.env; do sleep 1; done; . ./pg.env; cargo test …
            kill %1    # stops the server and removes its directory
        Variables (the tests read them):
          ONCEFETCH_TEST_POSTGRES_URL  postgres://postgres@127.0.0.1:PORT/oncefetch_test
          ONCEFETCH_REQUIRE_POSTGRES   1: a test missing the URL fails instead of skipping
          ONCEFETCH_TEST_PG_BINDIR     the server binaries (pg_ctl, postgres), for restart tests
          ONCEFETCH_TEST_PG_DATADIR    the data directory (pg_ctl -D)
          ONCEFETCH_TEST_PG_PORT       the port
          ONCEFETCH_TEST_PG_RUN_AS     `postgres` when running as root (use `runuser -u postgres --`),
                                       empty otherwise
        Needs the server binaries (`apt-get install -y postgresql-15` on Debian); as root the
        server runs as user postgres, since initdb refuses root.

    bench [--micro-only | --e2e-only] [--quick] [--small N] [--large-size SIZE] [--rounds N] …
        cargo bench --workspace --bench '*' (criterion; --quick passed through), then the
        end-to-end comparison of the release oncefetch with aria2c and curl against a private
        nginx on loopback: small files, one large file, and planning a 1,000,000-line manifest;
        every run verified; prints medians, ratios and the issue's targets (PASS/MISS) and writes
        target/bench/e2e.json. Installs nginx, aria2 and time with apt-get when missing.
        `cargo xtask bench --help` lists every option.

    bench-s3 [--small N] [--large-size SIZE] [--rounds N] [--dir PATH]
        The release oncefetch (built with --features s3) into a private SeaweedFS bucket against
        --out DIR and against `aws s3 cp` (where installed), 5,000 small files and one 1 GiB
        file by default; every run verified; prints medians and ratios.

    demo [--dir PATH] [--files N]
        Build the release oncefetch and run it against an in-process HTTP server on loopback with
        a generated corpus: fetch, status, the same fetch again (nothing downloaded), verify.

    man [--out DIR]
        Write the man pages of oncefetch and of each subcommand (oncefetch.1, oncefetch-plan.1, …)
        into DIR (default TARGET_DIR/man), from the CLI's clap command: options, exit status,
        manifest, environment, examples. Read one with `man -l target/man/oncefetch-fetch.1`.

    torture [--kills N] [--seed S] [--store sqlite|postgres|both] [--keep]
        Kill (SIGKILL), pause past the lease (SIGSTOP/SIGCONT) and restart several `oncefetch run`
        processes over a mixed corpus on loopback, and on PostgreSQL kill and restart the
        postmaster, at instants drawn from the seed; check the invariants after every restart and
        at the end; print a table per store and the seed of any failing episode.
        `cargo xtask torture --help` says more.

    coverage [--with-cli]
        Line coverage of oncefetch-core, the two stores and fetch-http: their tests built with
        `-C instrument-coverage` into target/coverage and run (with a throwaway PostgreSQL), the
        profiles merged with rustup's llvm-tools (llvm-profdata, llvm-cov); prints each crate's
        figure. `cargo xtask coverage --help` says more.

    help, --help, -h
        Print this help.
";

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Vec<String>) -> Result<()> {
    let mut args = args.into_iter();
    let Some(task) = args.next() else {
        eprint!("{HELP}");
        bail!("no task given");
    };
    match task.as_str() {
        "help" | "--help" | "-h" => {
            print!("{HELP}");
            Ok(())
        }
        "test-all" => {
            let mut options = test_all::Options::default();
            while let Some(arg) = args.next() {
                match arg.as_str() {
                    "--dry-run" | "-n" => options.dry_run = true,
                    "--only" => {
                        let steps = args.next().context("--only needs a step name")?;
                        for name in steps.split(',') {
                            options.only.insert(Step::parse(name)?);
                        }
                    }
                    "--help" | "-h" => {
                        print!("{HELP}");
                        return Ok(());
                    }
                    _ => bail!("unknown option `{arg}` for test-all (see `cargo xtask --help`)"),
                }
            }
            test_all::run(&options, &*on_signals()?)
        }
        "postgres" => {
            if let Some(arg) = args.next() {
                if arg == "--help" || arg == "-h" {
                    print!("{HELP}");
                    return Ok(());
                }
                bail!("unknown option `{arg}` for postgres (see `cargo xtask --help`)");
            }
            postgres::serve(&on_signals()?)
        }
        "bench" => bench::run(args, &*on_signals()?),
        "bench-s3" => bench::s3::run(args),
        "demo" => demo::run(args),
        "torture" => torture::run(args, &*on_signals()?),
        "coverage" => coverage::run(args),
        "man" => {
            let mut out = None;
            while let Some(arg) = args.next() {
                match arg.as_str() {
                    "--out" | "-o" => out = Some(PathBuf::from(args.next().context("--out needs a folder")?)),
                    "--help" | "-h" => {
                        print!("{HELP}");
                        return Ok(());
                    }
                    _ => bail!("unknown option `{arg}` for man (see `cargo xtask --help`)"),
                }
            }
            let out = out.unwrap_or_else(|| bench::target_dir().join("man"));
            for page in man::write_all(&out)? {
                println!("{}", page.display());
            }
            Ok(())
        }
        _ => bail!("unknown task `{task}` (see `cargo xtask --help`)"),
    }
}

/// A flag raised by SIGINT, SIGTERM or SIGHUP instead of ending the process, so the throwaway
/// server's guard still runs; the tasks check it between steps.
fn on_signals() -> Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for signal in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(signal, Arc::clone(&flag)).context("could not install a signal handler")?;
    }
    Ok(flag)
}
