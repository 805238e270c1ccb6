//! A transfer rate over a moving window of the last few seconds, not the
//! average since the start: a stall shows as a falling rate at once.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How far back a rate looks.
pub(super) const WINDOW: Duration = Duration::from_secs(5);

/// Samples of a growing byte count.
#[derive(Debug)]
pub(super) struct Rate {
    /// `(when, bytes so far)`, oldest first: the newest sample at least
    /// [`WINDOW`] old (where the window starts), then every later one.
    samples: VecDeque<(Instant, u64)>,
}

impl Rate {
    /// A count of `bytes` at `now`.
    pub(super) fn new(now: Instant, bytes: u64) -> Self {
        Self {
            samples: VecDeque::from([(now, bytes)]),
        }
    }

    /// Records the count `bytes` at `now`.
    pub(super) fn sample(&mut self, now: Instant, bytes: u64) {
        self.samples.push_back((now, bytes));
        while self
            .samples
            .get(1)
            .is_some_and(|&(at, _)| now.saturating_duration_since(at) >= WINDOW)
        {
            self.samples.pop_front();
        }
    }

    /// Bytes per second over the window (0 until two samples apart in time).
    pub(super) fn per_sec(&self) -> f64 {
        match (self.samples.front(), self.samples.back()) {
            (Some(&(first, from)), Some(&(last, to))) if last > first => {
                to.saturating_sub(from) as f64 / last.duration_since(first).as_secs_f64()
            }
            _ => 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_is_that_of_the_last_seconds() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut rate = Rate::new(start, 0);
        assert_eq!(rate.per_sec(), 0.0, "one sample is no rate");
        // 1 MB/s for ten seconds.
        for tick in 1..=40 {
            rate.sample(at(tick * 250), tick * 250_000);
        }
        assert!((rate.per_sec() - 1_000_000.0).abs() < 1.0, "{}", rate.per_sec());
        // Then a stall: the average since the start would still say 0.67 MB/s.
        for tick in 41..=64 {
            rate.sample(at(tick * 250), 10_000_000);
        }
        assert_eq!(rate.per_sec(), 0.0);
        // A burst right after the stall shows within the window.
        rate.sample(at(16_250), 11_000_000);
        assert!((rate.per_sec() - 200_000.0).abs() < 1.0, "{}", rate.per_sec());
    }
}
