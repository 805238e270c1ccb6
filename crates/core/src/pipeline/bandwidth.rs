//! A bandwidth cap shared by every download of a run: a byte bucket the
//! body streams wait on after each chunk.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Bytes per second shared by the downloads it is given to.
#[derive(Debug)]
pub(crate) struct Bandwidth {
    bytes_per_sec: u64,
    /// When the bytes taken so far are paid for at the cap.
    paid_until: Mutex<Option<Instant>>,
}

impl Bandwidth {
    /// A cap of `bytes_per_sec` (at least 1).
    pub(crate) fn new(bytes_per_sec: u64) -> Self {
        Self {
            bytes_per_sec: bytes_per_sec.max(1),
            paid_until: Mutex::new(None),
        }
    }

    /// Accounts `bytes` just received and waits until the run's bytes so
    /// far fit the cap (an idle spell banks no burst).
    pub(crate) async fn consume(&self, bytes: u64) {
        let cost = Duration::from_secs_f64(bytes as f64 / self.bytes_per_sec as f64);
        let until = {
            let mut paid = self.paid_until.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let until = paid.map_or(now, |t| t.max(now)) + cost;
            *paid = Some(until);
            until
        };
        tokio::time::sleep_until(until).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn bytes_take_their_time_at_the_cap() {
        let cap = Bandwidth::new(1000);
        let start = Instant::now();
        for _ in 0..10 {
            cap.consume(500).await;
        }
        assert_eq!(start.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_streams_share_the_cap() {
        let cap = std::sync::Arc::new(Bandwidth::new(2000));
        let start = Instant::now();
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let cap = std::sync::Arc::clone(&cap);
                tokio::spawn(async move {
                    for _ in 0..5 {
                        cap.consume(100).await;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task");
        }
        // 2000 bytes at 2000 bytes/s.
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn idle_time_banks_no_burst() {
        let cap = Bandwidth::new(100);
        cap.consume(100).await;
        tokio::time::sleep(Duration::from_secs(60)).await;
        let start = Instant::now();
        cap.consume(100).await;
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }
}
