//! The low-speed abort (curl's `--speed-limit` / `--speed-time`): a body
//! that averages less than the limit over a whole span is given up on.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use oncefetch_core::LowSpeed;
use tokio::time::{Instant, Sleep};

/// Counts the bytes of the current span and watches its end.
pub(crate) struct SpeedCheck {
    limit: LowSpeed,
    span_bytes: u64,
    span_end: Pin<Box<Sleep>>,
}

impl SpeedCheck {
    /// Starts the first span now.
    pub(crate) fn new(limit: LowSpeed) -> Self {
        Self {
            limit,
            span_bytes: 0,
            span_end: Box::pin(tokio::time::sleep(limit.time)),
        }
    }

    /// Counts `n` bytes received.
    pub(crate) fn add(&mut self, n: u64) {
        self.span_bytes = self.span_bytes.saturating_add(n);
    }

    /// Ready with the span's average, in bytes per second, once a whole span
    /// ran under the limit; a span that kept up starts the next one.
    pub(crate) fn poll_slow(&mut self, cx: &mut Context<'_>) -> Poll<u64> {
        while self.span_end.as_mut().poll(cx).is_ready() {
            let secs = self.limit.time.as_secs_f64();
            let rate = (self.span_bytes as f64 / secs) as u64;
            if (self.span_bytes as f64) < self.limit.bytes_per_sec as f64 * secs {
                return Poll::Ready(rate);
            }
            self.span_bytes = 0;
            self.span_end.as_mut().reset(Instant::now() + self.limit.time);
        }
        Poll::Pending
    }

    /// The limit, for messages.
    pub(crate) fn limit(&self) -> LowSpeed {
        self.limit
    }
}
