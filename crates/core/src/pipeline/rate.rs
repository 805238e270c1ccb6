//! Request rates per host: a token bucket of one token per host, so that a
//! host's requests are spaced evenly at its [`Rate`].

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// A request rate: `count` requests per `per` (`5/s`, `1/3s`, `100/min`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests per period, at least 1.
    pub count: u32,
    /// The period, longer than zero.
    pub per: Duration,
}

impl Rate {
    /// The spacing between two requests at this rate.
    pub fn interval(&self) -> Duration {
        self.per / self.count.max(1)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.per.subsec_millis() {
            0 => write!(f, "{}/{}s", self.count, self.per.as_secs()),
            _ => write!(f, "{}/{}ms", self.count, self.per.as_millis()),
        }
    }
}

/// Why a rate does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a rate (expected COUNT/PERIOD, e.g. 5/s, 1/3s, 100/min)")]
pub struct BadRate(String);

impl FromStr for Rate {
    type Err = BadRate;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadRate(s.to_owned());
        let (count, period) = s.trim().split_once('/').ok_or_else(bad)?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        let period = period.trim();
        let split = period.find(|c: char| !c.is_ascii_digit()).unwrap_or(period.len());
        let (n, unit) = period.split_at(split);
        let n: u32 = if n.is_empty() { 1 } else { n.parse().map_err(|_| bad())? };
        let unit = match unit {
            "ms" => Duration::from_millis(1),
            "s" | "sec" => Duration::from_secs(1),
            "m" | "min" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            _ => return Err(bad()),
        };
        let per = unit.checked_mul(n).ok_or_else(bad)?;
        if count == 0 || per.is_zero() {
            return Err(bad());
        }
        Ok(Self { count, per })
    }
}

/// The next free request time of each host, for hosts with a rate.
#[derive(Debug, Default)]
pub(crate) struct HostRates {
    next: Mutex<HashMap<String, Instant>>,
}

impl HostRates {
    /// Waits for `host`'s next request slot at `rate` and takes it: the
    /// first request goes at once, each later one `rate.interval()` after
    /// the one before.
    pub(crate) async fn take(&self, host: &str, rate: Rate) {
        let slot = {
            let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let entry = next.entry(host.to_owned()).or_insert(now);
            let slot = (*entry).max(now);
            *entry = slot + rate.interval();
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_counts_per_period() {
        let rate = |s: &str| s.parse::<Rate>().expect(s);
        assert_eq!(rate("5/s").interval(), Duration::from_millis(200));
        assert_eq!(rate("1/3s").interval(), Duration::from_secs(3));
        assert_eq!(rate("100/min").interval(), Duration::from_millis(600));
        assert_eq!(rate(" 2 / 500ms ").interval(), Duration::from_millis(250));
        assert_eq!(rate("100/min").to_string(), "100/60s");
        for bad in ["", "5", "0/s", "5/0s", "5/x", "x/s", "-1/s", "5/s/s"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn spaces_each_hosts_requests_evenly() {
        let rates = HostRates::default();
        let rate: Rate = "4/s".parse().expect("rate");
        let start = Instant::now();
        for n in 0..12u32 {
            rates.take("a", rate).await;
            assert_eq!(start.elapsed(), Duration::from_millis(250) * n);
        }
        // Another host has a bucket of its own.
        rates.take("b", rate).await;
        assert_eq!(start.elapsed(), Duration::from_millis(250) * 11);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_takers_queue_up() {
        let rates = std::sync::Arc::new(HostRates::default());
        let rate: Rate = "10/s".parse().expect("rate");
        let start = Instant::now();
        let tasks: Vec<_> = (0..5)
            .map(|_| {
                let rates = std::sync::Arc::clone(&rates);
                tokio::spawn(async move {
                    rates.take("h", rate).await;
                    start.elapsed()
                })
            })
            .collect();
        let mut times = Vec::new();
        for task in tasks {
            times.push(task.await.expect("task"));
        }
        times.sort();
        let expected: Vec<_> = (0..5).map(|n| Duration::from_millis(100) * n).collect();
        assert_eq!(times, expected);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_host_does_not_bank_a_burst() {
        let rates = HostRates::default();
        let rate: Rate = "1/s".parse().expect("rate");
        rates.take("h", rate).await;
        tokio::time::sleep(Duration::from_secs(10)).await;
        let start = Instant::now();
        rates.take("h", rate).await;
        rates.take("h", rate).await;
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }
}
