//! Planning on a terminal: a spinner with the lines read and their rate.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::terminal::Terminal;

/// The spinner's line.
const TEMPLATE: &str = "{spinner:.green} [{elapsed_precise}] planning: {human_pos} lines read ({per_sec})";

/// How often the spinner redraws when no line arrives.
const STEADY_TICK: std::time::Duration = std::time::Duration::from_millis(500);

/// The lines a plan has read, shown while it reads them.
#[derive(Debug, Clone)]
pub(crate) struct PlanProgress {
    spinner: Option<(MultiProgress, ProgressBar)>,
    terminal: Terminal,
}

impl PlanProgress {
    /// A spinner when `terminal` draws bars; nothing otherwise.
    pub(crate) fn start(terminal: &Terminal) -> Self {
        let spinner = terminal.bars.then(|| {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
            let bar = multi.add(ProgressBar::new_spinner());
            bar.set_style(ProgressStyle::with_template(TEMPLATE).unwrap_or_else(|_| ProgressStyle::default_spinner()));
            bar.enable_steady_tick(STEADY_TICK);
            terminal.attach(&multi);
            // Drawn at once: a plan shorter than a tick still shows it ran.
            bar.tick();
            (multi, bar)
        });
        Self {
            spinner,
            terminal: terminal.clone(),
        }
    }

    /// `lines` lines read so far.
    pub(crate) fn lines(&self, lines: u64) {
        if let Some((_, bar)) = &self.spinner {
            bar.set_position(lines);
        }
    }

    /// Prints `line` on standard error, above the spinner.
    pub(crate) fn write_line(&self, line: &str) -> std::io::Result<()> {
        self.terminal.write_lines(&format!("{line}\n"))
    }

    /// Clears the spinner.
    pub(crate) fn finish(&self) {
        if let Some((multi, bar)) = &self.spinner {
            bar.finish_and_clear();
            let _ = multi.clear();
            self.terminal.detach();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_parses() {
        assert!(ProgressStyle::with_template(TEMPLATE).is_ok());
    }
}
