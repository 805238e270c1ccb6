//! Stopping a run on request (SIGINT, SIGTERM): no new jobs are taken, the
//! jobs in hand stop at their next wait — for a permit, for the server's
//! answer, for the next chunk of a body — record their running op and give
//! their lease back, so that another run resumes them at once.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// A handle that interrupts a [`Pipeline`](super::Pipeline)'s run; cheap to
/// clone, usable from any task (a signal handler's, say).
#[derive(Debug, Clone, Default)]
pub struct Interrupt {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    set: AtomicBool,
    notify: Notify,
}

impl Interrupt {
    /// Asks the run to stop; idempotent.
    pub fn interrupt(&self) {
        self.inner.set.store(true, Ordering::SeqCst);
        self.inner.notify.notify_waiters();
    }

    /// Whether [`interrupt`](Self::interrupt) was called.
    pub fn is_set(&self) -> bool {
        self.inner.set.load(Ordering::SeqCst)
    }

    /// Resolves once the run is interrupted.
    pub(crate) async fn wait(&self) {
        loop {
            let notified = self.inner.notify.notified();
            if self.is_set() {
                return;
            }
            notified.await;
        }
    }

    /// `fut`'s output, or `None` when the run is interrupted first (`fut` is
    /// then dropped: use it only for futures that are safe to cancel, never
    /// for a ledger write).
    pub(crate) async fn or_stop<T>(&self, fut: impl Future<Output = T>) -> Option<T> {
        tokio::select! {
            biased;
            () = self.wait() => None,
            out = fut => Some(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Interrupt;

    #[tokio::test]
    async fn waiters_wake_and_later_calls_see_it() {
        let interrupt = Interrupt::default();
        let waiting = tokio::spawn({
            let interrupt = interrupt.clone();
            async move { interrupt.or_stop(tokio::time::sleep(Duration::from_secs(60))).await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        interrupt.interrupt();
        assert_eq!(waiting.await.unwrap(), None);
        assert!(interrupt.is_set());
        assert_eq!(
            interrupt.or_stop(async { 1 }).await,
            None,
            "once set, nothing more runs"
        );
    }

    #[tokio::test]
    async fn without_interrupt_the_future_runs() {
        assert_eq!(Interrupt::default().or_stop(async { 7 }).await, Some(7));
    }
}
