//! Standard error: whether it is a terminal, colour, verbosity, and the log
//! lines, which print above any progress bars rather than through them.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex, MutexGuard};

use indicatif::MultiProgress;
use oncefetch_core::url::redact;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, ColorChoice};

/// What standard error is and how to write to it; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Terminal {
    /// Progress bars are drawn: standard error is a terminal and `--quiet`
    /// was not given. Otherwise a run logs a line per job and a heartbeat.
    pub(crate) bars: bool,
    /// The bars log lines print above, while some are drawn.
    drawn: Arc<Mutex<Option<MultiProgress>>>,
}

impl Terminal {
    /// Sets up logging to standard error (the level from `-q`/`-v`, or
    /// `ONCEFETCH_LOG`; colour from `--color` and `NO_COLOR`).
    pub(crate) fn init(cli: &Cli) -> Self {
        let interactive = std::io::stderr().is_terminal();
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let color = match cli.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => interactive && !no_color,
        };
        // indicatif styles its bars as for standard output, whatever they
        // draw on: both switches follow the choice (nothing else is styled).
        console::set_colors_enabled(color);
        console::set_colors_enabled_stderr(color);
        let default = match (cli.quiet, cli.verbose, interactive) {
            (true, _, _) => "error",
            // On a terminal the bars show what per-job lines would say.
            (false, 0, true) => "warn",
            (false, 0, false) => "info",
            (false, 1, _) => "debug",
            _ => "trace",
        };
        let terminal = Self {
            bars: interactive && !cli.quiet,
            drawn: Arc::default(),
        };
        let filter = EnvFilter::try_from_env("ONCEFETCH_LOG").unwrap_or_else(|_| EnvFilter::new(default));
        let writer = terminal.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(color)
            .with_writer(move || LogLine(writer.clone()))
            .with_target(false)
            .try_init();
        terminal
    }

    /// Prints log lines above `bars` until [`detach`](Self::detach).
    pub(crate) fn attach(&self, bars: &MultiProgress) {
        *self.lock() = Some(bars.clone());
    }

    /// Log lines print straight to standard error again.
    pub(crate) fn detach(&self) {
        self.lock().take();
    }

    /// Writes `text` (whole lines) to standard error above any bars, with
    /// the credentials of every URL in it shown as `***` ([`redact`]).
    pub(crate) fn write_lines(&self, text: &str) -> std::io::Result<()> {
        let text = redact(text);
        let write = || std::io::stderr().lock().write_all(text.as_bytes());
        match self.lock().as_ref() {
            Some(bars) => bars.suspend(write),
            None => write(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<MultiProgress>> {
        self.drawn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One log line on its way to [`Terminal::write_lines`].
struct LogLine(Terminal);

impl Write for LogLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // The formatter writes each event with one call of a whole line.
        self.0.write_lines(&String::from_utf8_lossy(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
