//! The bars on a terminal: one for the run, one per large download in
//! flight; log lines print above them ([`Terminal::attach`]).

use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::figures::{per_sec, Figures};
use crate::terminal::Terminal;

/// A download gets a bar of its own once it is known to bring more bytes
/// than this.
pub(super) const LARGE: u64 = 4 << 20;

/// The run's bar: files on the first line, the other figures on the second.
const RUN: &str = "{spinner:.green} [{elapsed_precise}] {wide_bar:.cyan/blue} {pos}/{len} files\n  {wide_msg}";
/// A download whose length is known.
const SIZED_DOWNLOAD: &str = "  {prefix:40!} {bar:20.cyan/blue} {bytes:>10}/{total_bytes:<10} {msg}";
/// A download of unknown length.
const UNSIZED_DOWNLOAD: &str = "  {prefix:40!} {bytes:>10} {msg}";

/// How often the bars redraw even when nothing moves (the spinner, the
/// elapsed time).
const STEADY_TICK: Duration = Duration::from_millis(500);

/// The run's bars.
#[derive(Debug)]
pub(super) struct Bars {
    multi: MultiProgress,
    run: ProgressBar,
    terminal: Terminal,
}

impl Bars {
    /// The run's bar over `total` jobs, drawn on standard error.
    pub(super) fn new(terminal: &Terminal, total: u64) -> Self {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
        let run = multi.add(ProgressBar::new(total));
        run.set_style(style(RUN));
        run.enable_steady_tick(STEADY_TICK);
        terminal.attach(&multi);
        Self {
            multi,
            run,
            terminal: terminal.clone(),
        }
    }

    /// Shows `figures` on the run's bar.
    pub(super) fn show(&self, figures: &Figures) {
        self.run.set_position(figures.done);
        self.run.set_message(figures.bytes_line());
    }

    /// A bar for the download `name` of `expected` bytes (when known), under
    /// the run's bar.
    pub(super) fn download(&self, name: &str, expected: Option<u64>) -> ProgressBar {
        let bar = match expected {
            Some(len) => {
                let bar = ProgressBar::new(len);
                bar.set_style(style(SIZED_DOWNLOAD));
                bar
            }
            None => {
                let bar = ProgressBar::no_length();
                bar.set_style(style(UNSIZED_DOWNLOAD));
                bar
            }
        };
        bar.set_prefix(name.to_owned());
        self.multi.add(bar)
    }

    /// Shows a download's bytes so far and its rate.
    pub(super) fn show_download(bar: &ProgressBar, bytes: u64, rate: f64) {
        bar.set_position(bytes);
        bar.set_message(per_sec(rate));
    }

    /// Takes a download's bar away.
    pub(super) fn remove(&self, bar: &ProgressBar) {
        bar.finish_and_clear();
        self.multi.remove(bar);
    }

    /// Clears every bar; log lines print straight to standard error again.
    pub(super) fn finish(&self) {
        self.run.finish_and_clear();
        let _ = self.multi.clear();
        self.terminal.detach();
    }
}

/// `template`, or the default style should it not parse (they all do, as a
/// test checks).
fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses() {
        for template in [RUN, SIZED_DOWNLOAD, UNSIZED_DOWNLOAD] {
            assert!(ProgressStyle::with_template(template).is_ok(), "{template}");
        }
    }
}
