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

/// The spinner, drawn on `target` before it returns: a plan shorter than a
/// tick still shows that it ran. (Once a steady tick is enabled,
/// `ProgressBar::tick` does nothing and the first draw waits for the ticker
/// thread, which a loaded machine may not schedule before the plan ends.)
fn spinner(target: ProgressDrawTarget) -> (MultiProgress, ProgressBar) {
    let multi = MultiProgress::with_draw_target(target);
    let bar = multi.add(ProgressBar::new_spinner());
    bar.set_style(ProgressStyle::with_template(TEMPLATE).unwrap_or_else(|_| ProgressStyle::default_spinner()));
    bar.tick();
    bar.enable_steady_tick(STEADY_TICK);
    (multi, bar)
}

impl PlanProgress {
    /// A spinner when `terminal` draws bars; nothing otherwise.
    pub(crate) fn start(terminal: &Terminal) -> Self {
        let spinner = terminal.bars.then(|| {
            let (multi, bar) = spinner(ProgressDrawTarget::stderr_with_hz(10));
            terminal.attach(&multi);
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

    /// A terminal that keeps what is written to it.
    #[derive(Debug, Clone, Default)]
    struct Screen(std::sync::Arc<std::sync::Mutex<String>>);

    impl indicatif::TermLike for Screen {
        fn width(&self) -> u16 {
            120
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.write_str(&format!("{s}\n"))
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            self.0.lock().unwrap().push_str(s);
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_spinner_is_drawn_before_the_first_tick() {
        let screen = Screen::default();
        let (_multi, bar) = spinner(ProgressDrawTarget::term_like(Box::new(screen.clone())));
        let drawn = screen.0.lock().unwrap().clone();
        bar.finish_and_clear();
        assert!(drawn.contains("planning: 0 lines read"), "drawn: {drawn:?}");
    }
}
