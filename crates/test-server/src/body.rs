//! The response body: a slice of a resource, chunked, optionally throttled or cut short.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::Sleep;

use crate::state::{BodyInFlight, Counters};

/// Chunk size when the body is not throttled.
const CHUNK: usize = 64 * 1024;

/// How long a cut body waits before failing, so that hyper flushes the bytes
/// already sent before it drops the connection.
const CUT_GRACE: Duration = Duration::from_millis(20);

/// A response body that counts the bytes it hands to hyper.
pub(crate) struct ServeBody {
    data: Bytes,
    pos: usize,
    end: usize,
    chunk: usize,
    delay: Option<Duration>,
    sleep: Option<Pin<Box<Sleep>>>,
    /// Fail (dropping the connection) once `end` is reached.
    cut: bool,
    /// Whether the grace pause before the cut has been taken.
    graced: bool,
    counters: Vec<Arc<Counters>>,
    /// Counts a GET body as in flight while it lives.
    _in_flight: Option<BodyInFlight>,
}

impl ServeBody {
    /// No body.
    pub(crate) fn empty() -> Self {
        Self::new(Bytes::new(), Vec::new())
    }

    /// All of `data`.
    pub(crate) fn new(data: Bytes, counters: Vec<Arc<Counters>>) -> Self {
        let end = data.len();
        Self {
            data,
            pos: 0,
            end,
            chunk: CHUNK,
            delay: None,
            sleep: None,
            cut: false,
            graced: false,
            counters,
            _in_flight: None,
        }
    }

    /// Counted in flight until dropped.
    pub(crate) fn in_flight(mut self, guard: BodyInFlight) -> Self {
        self._in_flight = Some(guard);
        self
    }

    /// Writes `chunk` bytes at a time with `delay` between chunks.
    pub(crate) fn throttle(mut self, chunk: usize, delay: Duration) -> Self {
        self.chunk = chunk.max(1);
        self.delay = Some(delay);
        self
    }

    /// Holds the first byte back for `delay`.
    pub(crate) fn hold(mut self, delay: Duration) -> Self {
        self.sleep = Some(Box::pin(tokio::time::sleep(delay)));
        self
    }

    /// Stops after `after` bytes and drops the connection.
    pub(crate) fn cut_after(mut self, after: u64) -> Self {
        let after = usize::try_from(after).unwrap_or(usize::MAX);
        if after < self.end {
            self.end = after;
            self.cut = true;
        }
        self
    }
}

impl Body for ServeBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        if let Some(sleep) = this.sleep.as_mut() {
            ready!(sleep.as_mut().poll(cx));
            this.sleep = None;
        }
        if this.pos >= this.end {
            if this.cut {
                if !this.graced {
                    this.graced = true;
                    let mut grace = Box::pin(tokio::time::sleep(CUT_GRACE));
                    if grace.as_mut().poll(cx).is_pending() {
                        this.sleep = Some(grace);
                        return Poll::Pending;
                    }
                }
                this.cut = false;
                return Poll::Ready(Some(Err(io::Error::other("body cut short by a Truncate fault"))));
            }
            return Poll::Ready(None);
        }
        let n = this.chunk.min(this.end - this.pos);
        let frame = this.data.slice(this.pos..this.pos + n);
        this.pos += n;
        for counters in &this.counters {
            counters.add_bytes(n as u64);
        }
        if let Some(delay) = this.delay.filter(|_| this.pos < this.end) {
            this.sleep = Some(Box::pin(tokio::time::sleep(delay)));
        }
        Poll::Ready(Some(Ok(Frame::data(frame))))
    }

    fn is_end_stream(&self) -> bool {
        self.pos >= self.end && !self.cut
    }

    fn size_hint(&self) -> SizeHint {
        if self.cut {
            // The Content-Length header announces the full length.
            SizeHint::default()
        } else {
            SizeHint::with_exact((self.end - self.pos) as u64)
        }
    }
}
