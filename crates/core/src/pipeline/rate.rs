//! Request rates per host: each host's requests are spaced evenly at its
//! [`Rate`], by a budget the store keeps for every process on the ledger.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Mutex as AsyncMutex;
use tokio::time::Instant;

use crate::job::Millis;
#[cfg(doc)]
use crate::ledger::LedgerStore;
use crate::store::Store;

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

/// How long a batch of claimed slots lasts: a host's rate costs about one
/// store round trip per this much time, whatever the rate.
const BATCH: Duration = Duration::from_secs(1);

/// Most slots to claim at once at `rate`: about [`BATCH`] of requests, at
/// least 1.
fn batch(rate: Rate) -> u32 {
    let per_batch = BATCH.as_millis() / rate.interval().as_millis().max(1);
    u32::try_from(per_batch).unwrap_or(u32::MAX).clamp(1, 1000)
}

/// One host's claimed slots not yet taken (by the store clock), and how many
/// requests wait for one.
#[derive(Debug, Default)]
struct HostSlots {
    queue: AsyncMutex<VecDeque<Millis>>,
    waiting: AtomicU32,
}

/// The request slots of each host with a rate, claimed from the store's
/// budget ([`LedgerStore::claim_request_slots`]) in batches, so that every
/// process sharing the ledger keeps one rate per host between them.
#[derive(Debug, Default)]
pub(crate) struct HostRates {
    hosts: Mutex<HashMap<String, Arc<HostSlots>>>,
    /// The store clock read once, with the local instant it stands for.
    clock: AsyncMutex<Option<(Instant, Millis)>>,
}

impl HostRates {
    /// Waits for `host`'s next request slot at `rate` and takes it. Slots
    /// come from `store`'s budget for the host: the first request of an idle
    /// host goes at once, each later one `rate.interval()` after the one
    /// before, across every process on the ledger. A claim takes a slot for
    /// each request of this process waiting for the host, up to about a
    /// second's worth, so that few slots go unused (an unused slot is a gap
    /// in the host's rate) and a busy host costs about one store round trip
    /// a second. A slot missed by more than half an interval is dropped, not
    /// sent late in a burst. When the store fails, the request waits one
    /// interval instead.
    pub(crate) async fn take(&self, store: &dyn Store, host: &str, rate: Rate) {
        let slots = {
            let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(hosts.entry(host.to_owned()).or_default())
        };
        slots.waiting.fetch_add(1, Ordering::SeqCst);
        let at = self.next_slot(store, host, rate, &slots).await;
        slots.waiting.fetch_sub(1, Ordering::SeqCst);
        match at {
            Some(at) => tokio::time::sleep_until(at).await,
            None => tokio::time::sleep(rate.interval()).await,
        }
    }

    /// The local instant of `host`'s next slot, claiming more when none is
    /// left; `None` when the store failed.
    async fn next_slot(&self, store: &dyn Store, host: &str, rate: Rate, slots: &HostSlots) -> Option<Instant> {
        let mut queue = slots.queue.lock().await;
        let (base, base_ms) = self.clock(store).await?;
        let local = |slot: Millis| {
            let ahead = Duration::from_millis(slot.abs_diff(base_ms));
            if slot >= base_ms {
                base + ahead
            } else {
                base.checked_sub(ahead).unwrap_or(base)
            }
        };
        let late = rate.interval() / 2;
        while let Some(slot) = queue.pop_front() {
            let at = local(slot);
            if at + late >= Instant::now() {
                return Some(at);
            }
        }
        let count = slots.waiting.load(Ordering::SeqCst).clamp(1, batch(rate));
        match store.claim_request_slots(host, rate.interval(), count).await {
            Ok(claimed) => {
                queue.extend(claimed.times().skip(1));
                Some(local(claimed.first))
            }
            Err(err) => {
                tracing::warn!(host, error = %err, "could not claim request slots; waiting one interval");
                None
            }
        }
    }

    /// The store clock and the local instant it was read at (the middle of
    /// the round trip), read once; `None` while the store cannot say.
    async fn clock(&self, store: &dyn Store) -> Option<(Instant, Millis)> {
        let mut clock = self.clock.lock().await;
        if clock.is_none() {
            let before = Instant::now();
            let now = store.now().await.ok()?;
            let after = Instant::now();
            *clock = Some((before + (after - before) / 2, now));
        }
        *clock
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

    use crate::memory::MemoryStore;

    /// Whether the k-th of `times` (sorted) is no earlier than k intervals
    /// after the first, which went at once. A request goes at its slot or
    /// later (a loaded machine wakes a task late, which narrows the gap after
    /// it, so gaps between neighbours prove nothing).
    fn spaced(times: &[Duration], interval: Duration) -> bool {
        (0u32..)
            .zip(times)
            .all(|(k, at)| *at + Duration::from_millis(15) >= interval * k)
    }

    #[tokio::test]
    async fn spaces_each_hosts_requests_evenly() {
        let (rates, store) = (HostRates::default(), MemoryStore::new());
        let rate: Rate = "20/s".parse().expect("rate");
        let start = Instant::now();
        let mut times = Vec::new();
        for _ in 0..12 {
            rates.take(&store, "a", rate).await;
            times.push(start.elapsed());
        }
        assert!(times[0] < Duration::from_millis(30), "the first goes at once");
        assert!(spaced(&times, rate.interval()), "{times:?}");
        assert!(times[11] < Duration::from_millis(50 * 11 + 100), "{times:?}");
        // Another host has a budget of its own.
        let before = start.elapsed();
        rates.take(&store, "b", rate).await;
        assert!(start.elapsed() - before < Duration::from_millis(30));
    }

    #[tokio::test]
    async fn takers_sharing_a_store_share_the_rate() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let rate: Rate = "20/s".parse().expect("rate");
        let start = Instant::now();
        // Two limiters stand for two processes on one ledger.
        let tasks: Vec<_> = (0..2)
            .map(|_| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    let rates = HostRates::default();
                    let mut times = Vec::new();
                    for _ in 0..5 {
                        rates.take(store.as_ref(), "h", rate).await;
                        times.push(start.elapsed());
                    }
                    times
                })
            })
            .collect();
        let mut times = Vec::new();
        for task in tasks {
            times.extend(task.await.expect("task"));
        }
        times.sort();
        // Two budgets would send two requests per slot.
        assert!(spaced(&times, rate.interval()), "{times:?}");
    }

    #[tokio::test]
    async fn an_idle_host_does_not_bank_a_burst() {
        let (rates, store) = (HostRates::default(), MemoryStore::new());
        let rate: Rate = "10/s".parse().expect("rate");
        rates.take(&store, "h", rate).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let start = Instant::now();
        rates.take(&store, "h", rate).await;
        rates.take(&store, "h", rate).await;
        let spent = start.elapsed();
        assert!(spent + Duration::from_millis(15) >= rate.interval(), "{spent:?}");
    }
}
