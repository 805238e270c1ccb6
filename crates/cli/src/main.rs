//! The `oncefetch` binary: parse, run, exit with the SPEC §7 status.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = oncefetch::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(oncefetch::exit::FATAL);
        }
    };
    match runtime.block_on(oncefetch::run(cli)) {
        Ok(code) => code,
        Err(err) => {
            let message = format!("{err:#}");
            eprintln!("error: {}", oncefetch_core::url::redact(&message));
            ExitCode::from(oncefetch::exit::FATAL)
        }
    }
}
