#![doc = include_str!("../README.md")]

pub mod cli;
mod commands;
pub mod exit;
pub mod help;
mod hosts;
mod output;
mod progress;
mod reason;
mod serve;
mod signals;
mod summary;
mod table;
mod terminal;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::CommandFactory;
pub use cli::Cli;
use cli::Command;
use oncefetch_core::{OpenMode, StoreError};

// Name each linked backend so the linker keeps its `inventory` registration.
#[cfg(feature = "s3")]
use oncefetch_dest_object_store as _;
use oncefetch_fetch_http as _;
#[cfg(feature = "postgres")]
use oncefetch_store_postgres as _;
#[cfg(feature = "sqlite")]
use oncefetch_store_sqlite as _;

/// Runs one parsed command line; returns the exit status.
///
/// A binary of your own, with your store linked in (`docs/writing-a-store.md`
/// §5), is five lines:
///
/// ```no_run
/// # mod my_store {}
/// use my_store as _; // keeps the store's `inventory` registration linked
///
/// fn main() -> std::process::ExitCode {
///     let cli = <oncefetch::Cli as clap::Parser>::parse();
///     let runtime = tokio::runtime::Runtime::new().expect("runtime");
///     runtime.block_on(oncefetch::run(cli)).unwrap_or(std::process::ExitCode::FAILURE)
/// }
/// ```
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let Some(mode) = open_mode(&cli.command) else {
        if let Command::Completions(args) = &cli.command {
            completions(args.shell)?;
        }
        return Ok(ExitCode::from(exit::OK));
    };
    let terminal = terminal::Terminal::init(&cli);
    let store = match oncefetch_core::open_store_with(&cli.db, mode).await {
        Ok(store) => store,
        // One line naming the file, and the way out (SPEC §7).
        Err(StoreError::NoLedger { location }) => {
            anyhow::bail!("no ledger at {location}; `oncefetch plan` creates one")
        }
        Err(err) => return Err(anyhow::Error::new(err).context(format!("cannot open the ledger {:?}", cli.db))),
    };
    let signals = signals::Signals::install(&terminal).context("cannot install the signal handlers")?;
    let code = match cli.command {
        Command::Plan(args) => {
            commands::plan::command(&store, &args.manifest, args.update_expected, args.json, &terminal).await?
        }
        Command::Run(args) => commands::run::run(Arc::clone(&store), &args, &terminal, &signals, None).await?,
        Command::Fetch(args) => commands::fetch(Arc::clone(&store), &args, &terminal, &signals).await?,
        Command::Status(args) => commands::status::run(&store, &args).await?,
        Command::Jobs(args) => commands::jobs::run(&store, &args).await?,
        Command::Ledger(args) => commands::ledger::run(&store, &args).await?,
        Command::Recover(args) => commands::recover::run(&store, &args).await?,
        Command::Verify(args) => commands::verify::run(&store, &args).await?,
        Command::Retry(args) => commands::retry::run(&store, &args).await?,
        Command::Serve(args) => commands::serve::run(Arc::clone(&store), &args, &cli.db).await?,
        Command::Completions(_) => unreachable!("completions open no ledger"),
    };
    // A clean exit leaves the ledger whole in its main file (SQLite: the WAL
    // checkpointed); an error above skips this, which is always safe.
    store.close().await.context("cannot close the ledger")?;
    Ok(ExitCode::from(code))
}

/// How `command` opens the ledger: only `plan` and `fetch` create a missing
/// one; the read-only commands write nothing; the others need it to exist.
/// `None`: the command opens no ledger (`completions`).
fn open_mode(command: &Command) -> Option<OpenMode> {
    match command {
        Command::Plan(_) | Command::Fetch(_) => Some(OpenMode::Create),
        Command::Run(_) | Command::Recover(_) | Command::Retry(_) => Some(OpenMode::Existing),
        Command::Status(_) | Command::Jobs(_) | Command::Ledger(_) | Command::Verify(_) | Command::Serve(_) => {
            Some(OpenMode::ReadOnly)
        }
        Command::Completions(_) => None,
    }
}

/// `completions SHELL`: the script, written whole to standard output.
fn completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "oncefetch", &mut script);
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(&script)
        .and_then(|()| stdout.flush())
        .context("cannot write the completion script to standard output")
}

/// The schemes of every store compiled into this binary.
pub fn store_schemes() -> Vec<&'static str> {
    oncefetch_core::registry::store_schemes()
}
