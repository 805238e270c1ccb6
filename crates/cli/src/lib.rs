#![doc = include_str!("../README.md")]

pub mod cli;
mod commands;
pub mod exit;
mod output;
mod progress;
mod reason;
mod signals;
mod summary;
mod terminal;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
pub use cli::Cli;
use cli::Command;

// Name each linked backend so the linker keeps its `inventory` registration.
use oncefetch_fetch_http as _;
#[cfg(feature = "postgres")]
use oncefetch_store_postgres as _;
#[cfg(feature = "sqlite")]
use oncefetch_store_sqlite as _;

/// Runs one parsed command line; returns the exit status.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let terminal = terminal::Terminal::init(&cli);
    let read_only = matches!(
        cli.command,
        Command::Status(_) | Command::Jobs(_) | Command::Ledger(_) | Command::Verify(_)
    );
    let store = if read_only {
        oncefetch_core::open_store_read_only(&cli.db).await
    } else {
        oncefetch_core::open_store(&cli.db).await
    }
    .with_context(|| format!("cannot open the ledger {:?}", cli.db))?;
    let signals = signals::Signals::install(&terminal).context("cannot install the signal handlers")?;
    let code = match cli.command {
        Command::Plan(args) => commands::plan::command(&store, &args.manifest, args.update_expected, &terminal).await?,
        Command::Run(args) => commands::run::run(Arc::clone(&store), &args, &terminal, &signals, None).await?,
        Command::Fetch(args) => commands::fetch(Arc::clone(&store), &args, &terminal, &signals).await?,
        Command::Status(args) => commands::status::run(&store, &args).await?,
        Command::Jobs(args) => commands::jobs::run(&store, &args).await?,
        Command::Ledger(args) => commands::ledger::run(&store, &args).await?,
        Command::Recover(args) => commands::recover::run(&store, &args).await?,
        Command::Verify(args) => commands::verify::run(&store, &args).await?,
        Command::Retry(args) => commands::retry::run(&store, &args).await?,
    };
    // A clean exit leaves the ledger whole in its main file (SQLite: the WAL
    // checkpointed); an error above skips this, which is always safe.
    store.close().await.context("cannot close the ledger")?;
    Ok(ExitCode::from(code))
}

/// The schemes of every store compiled into this binary.
pub fn store_schemes() -> Vec<&'static str> {
    oncefetch_core::registry::store_schemes()
}
