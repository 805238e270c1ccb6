//! The figures of a run at one moment, as the bar and the heartbeat line
//! show them.

use std::fmt;
use std::time::Duration;

use indicatif::HumanBytes;

/// One moment of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Figures {
    /// Jobs settled by this run.
    pub(super) done: u64,
    /// Jobs the run had to settle when it started.
    pub(super) total: u64,
    /// Body bytes received.
    pub(super) bytes: u64,
    /// Bytes the downloads begun so far bring, as far as known: the lengths
    /// announced (or declared) of those in flight, what ended ones received.
    pub(super) expected: u64,
    /// Bytes per second over the last few seconds.
    pub(super) rate: f64,
    /// Time left at `rate`, when there is a rate.
    pub(super) eta: Option<Duration>,
    /// Downloads streaming now.
    pub(super) in_flight: usize,
    /// Jobs whose last attempt failed.
    pub(super) failed: usize,
    /// Of those, the ones a later lease retries.
    pub(super) retrying: usize,
}

impl Figures {
    /// The bytes, rate, ETA, in-flight and failure figures (the bar draws
    /// the files itself).
    pub(super) fn bytes_line(&self) -> String {
        let mut line = format!(
            "{} / {}  {}  ETA {}  {} in flight",
            HumanBytes(self.bytes),
            HumanBytes(self.expected.max(self.bytes)),
            per_sec(self.rate),
            self.eta.map_or_else(|| "-".to_owned(), short_duration),
            self.in_flight,
        );
        if self.failed > 0 {
            line.push_str(&format!("  {} failed", self.failed));
            if self.retrying > 0 {
                line.push_str(&format!(" ({} to retry)", self.retrying));
            }
        }
        line
    }
}

/// `12/30 files  1.20 GiB / 3.40 GiB  12.30 MiB/s  ETA 3m 12s  4 in flight  2 failed`.
impl fmt::Display for Figures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} files  {}", self.done, self.total, self.bytes_line())
    }
}

/// `12.30 MiB/s`.
pub(crate) fn per_sec(rate: f64) -> String {
    format!("{}/s", HumanBytes(rate as u64))
}

/// Whole seconds: `3m 12s`, `1h 2m 5s`, `0s`.
pub(crate) fn short_duration(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

/// Milliseconds under a second (`840ms`), seconds with a tenth under a
/// minute (`4.2s`), else [`short_duration`].
pub(crate) fn took(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else if d < Duration::from_secs(60) {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        short_duration(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_names_every_figure() {
        let figures = Figures {
            done: 12,
            total: 30,
            bytes: 3 << 20,
            expected: 8 << 20,
            rate: f64::from(1 << 20),
            eta: Some(Duration::from_millis(192_400)),
            in_flight: 4,
            failed: 2,
            retrying: 1,
        };
        assert_eq!(
            figures.to_string(),
            "12/30 files  3.00 MiB / 8.00 MiB  1.00 MiB/s  ETA 3m 12s  4 in flight  2 failed (1 to retry)"
        );
        let quiet = Figures {
            failed: 0,
            retrying: 0,
            eta: None,
            ..figures
        };
        assert_eq!(
            quiet.bytes_line(),
            "3.00 MiB / 8.00 MiB  1.00 MiB/s  ETA -  4 in flight"
        );
        assert_eq!(took(Duration::from_millis(840)), "840ms");
        assert_eq!(took(Duration::from_millis(4_240)), "4.2s");
        assert_eq!(took(Duration::from_secs(62)), "1m 2s");
    }
}
