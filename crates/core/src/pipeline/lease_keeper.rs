//! Renews a job's lease on a timer while the job runs, and notices when the
//! lease is lost.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::lease::Fence;
use crate::store::Store;

/// Keeps one lease alive; dropping it stops renewing. A renewal in flight is
/// never cancelled halfway (a store call dropped mid-query can leave a pooled
/// connection in an unknown state): the renewer stops at its next wait.
#[derive(Debug)]
pub(crate) struct LeaseKeeper {
    lost: Arc<AtomicBool>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _task: JoinHandle<()>,
}

impl LeaseKeeper {
    /// Renews every third of `ttl` until dropped or the lease is lost: two
    /// renewals may fail or run late before the lease expires.
    pub(crate) fn start(store: Arc<dyn Store>, fence: Fence, ttl: Duration) -> Self {
        let lost = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&lost);
        let period = renewal_period(ttl);
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        // The renewer logs under the job's span, as the job does.
        let span = tracing::Span::current();
        let task = tokio::spawn(
            async move {
                let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
                loop {
                    tokio::select! {
                        _ = ticker.tick() => {}
                        _ = &mut stopped => return,
                    }
                    match store.renew(&fence, ttl).await {
                        Ok(_) => {}
                        Err(err) if err.is_lease_lost() => {
                            tracing::warn!(job = %fence.job_key, epoch = fence.epoch, "lease lost; stopping the job");
                            flag.store(true, Ordering::SeqCst);
                            return;
                        }
                        Err(err) => {
                            tracing::warn!(job = %fence.job_key, error = %err, "lease renewal failed; retrying")
                        }
                    }
                }
            }
            .instrument(span),
        );
        Self {
            lost,
            stop: Some(stop),
            _task: task,
        }
    }

    /// Whether a renewal found the lease gone.
    pub(crate) fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// The flag [`is_lost`](Self::is_lost) reads, for a destination's
    /// [`PartLog`](crate::destination::PartLog).
    pub(crate) fn lost_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.lost)
    }
}

/// A third of `ttl`, always inside it (a timer needs a period above zero).
fn renewal_period(ttl: Duration) -> Duration {
    (ttl / 3).max(Duration::from_micros(1))
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewals_run_well_inside_the_lease() {
        for ttl in [
            super::super::MIN_LEASE_TTL,
            Duration::from_secs(2),
            Duration::from_secs(60),
        ] {
            assert_eq!(renewal_period(ttl), ttl / 3, "{ttl:?}");
        }
        // Below the floor the CLI refuses, renewal still comes before expiry.
        assert!(renewal_period(Duration::from_millis(30)) < Duration::from_millis(30));
        assert!(renewal_period(Duration::ZERO) > Duration::ZERO);
    }
}
