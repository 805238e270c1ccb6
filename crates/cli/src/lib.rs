#![doc = include_str!("../README.md")]

pub mod cli;
mod commands;
pub mod exit;
mod output;
mod progress;
mod signals;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
pub use cli::Cli;
use cli::Command;
use oncefetch_core::Store;

// Name each linked backend so the linker keeps its `inventory` registration.
use oncefetch_fetch_http as _;
#[cfg(feature = "postgres")]
use oncefetch_store_postgres as _;
#[cfg(feature = "sqlite")]
use oncefetch_store_sqlite as _;

/// Runs one parsed command line; returns the exit status.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let interactive = progress::init_logging(&cli);
    let signals = signals::Signals::install().context("cannot install the signal handlers")?;
    let code = match cli.command {
        Command::Plan(args) => commands::plan::run(&open(&cli.db).await?, &args.manifest, args.update_expected).await?,
        Command::Run(args) => commands::run::run(open(&cli.db).await?, &args, interactive, &signals).await?,
        Command::Fetch(args) => commands::fetch(open(&cli.db).await?, &args, interactive, &signals).await?,
        Command::Status(args) => commands::status::run(&open(&cli.db).await?, &args).await?,
        Command::Jobs(args) => commands::jobs::run(&open(&cli.db).await?, &args).await?,
        Command::Ledger(args) => commands::ledger::run(&open(&cli.db).await?, &args).await?,
        Command::Recover(args) => commands::recover::run(&open(&cli.db).await?, &args).await?,
        Command::Verify(args) => commands::verify::run(&open(&cli.db).await?, &args).await?,
        Command::Retry(args) => commands::retry::run(&open(&cli.db).await?, &args).await?,
    };
    Ok(ExitCode::from(code))
}

/// Opens the ledger a `--db` URL names.
async fn open(url: &str) -> anyhow::Result<Arc<dyn Store>> {
    oncefetch_core::open_store(url)
        .await
        .with_context(|| format!("cannot open the ledger {url:?}"))
}

/// The schemes of every store compiled into this binary.
pub fn store_schemes() -> Vec<&'static str> {
    oncefetch_core::registry::store_schemes()
}
