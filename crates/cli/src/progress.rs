//! Progress: a bar on a terminal, log lines otherwise.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use oncefetch_core::pipeline::{JobOutcome, Progress};
use oncefetch_core::url::redact;
use tracing_subscriber::EnvFilter;

use crate::cli::Cli;

/// Sets up logging to stderr; returns whether stderr is a terminal (then a
/// progress bar replaces the per-job log lines).
pub(crate) fn init_logging(cli: &Cli) -> bool {
    let interactive = std::io::stderr().is_terminal();
    let default = match (cli.verbose, interactive) {
        (0, true) => "warn",
        (0, false) => "info",
        (1, _) => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_env("ONCEFETCH_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| RedactingStderr)
        .with_target(false)
        .try_init();
    interactive
}

/// Standard error for log lines, with the credentials of every URL in a
/// line shown as `***` ([`redact`]), whichever crate logged it.
struct RedactingStderr;

impl std::io::Write for RedactingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // The formatter writes each event with one call of a whole line.
        let text = String::from_utf8_lossy(buf);
        std::io::stderr().lock().write_all(redact(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Files and bytes of a run, shown as a bar or logged.
#[derive(Debug)]
pub(crate) struct RunProgress {
    bar: Option<ProgressBar>,
    bytes: AtomicU64,
    started: Instant,
}

impl RunProgress {
    /// A bar over `total` jobs (`done` already settled) when `interactive`.
    pub(crate) fn new(interactive: bool, total: u64, done: u64) -> Self {
        let bar = interactive.then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} files {msg} ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_position(done);
            bar
        });
        Self {
            bar,
            bytes: AtomicU64::new(0),
            started: Instant::now(),
        }
    }

    /// Clears the bar.
    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    fn bytes_message(&self) -> String {
        let bytes = self.bytes.load(Ordering::Relaxed);
        let rate = bytes as f64 / self.started.elapsed().as_secs_f64().max(0.001);
        format!(
            "{} ({}/s)",
            indicatif::HumanBytes(bytes),
            indicatif::HumanBytes(rate as u64)
        )
    }
}

impl Progress for RunProgress {
    fn bytes(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }

    fn job_done(&self, job_key: &str, outcome: &JobOutcome) {
        match &self.bar {
            Some(bar) => {
                if matches!(outcome, JobOutcome::Succeeded | JobOutcome::Skipped)
                    || matches!(outcome, JobOutcome::Failed { retryable: false, .. })
                {
                    bar.inc(1);
                }
                bar.set_message(self.bytes_message());
            }
            None => match outcome {
                JobOutcome::Succeeded => tracing::info!(job = job_key, "done"),
                JobOutcome::Skipped => tracing::info!(job = job_key, "skipped: same URL already downloaded"),
                JobOutcome::Failed { retryable, message } => {
                    tracing::warn!(job = job_key, retryable, error = %message, "failed")
                }
                JobOutcome::LeaseLost => tracing::warn!(job = job_key, "lease lost; stopped"),
                JobOutcome::StoreFailed(err) => tracing::warn!(job = job_key, error = %err, "ledger error; stopped"),
                JobOutcome::Interrupted => tracing::info!(job = job_key, "interrupted; lease given back"),
            },
        }
    }
}
