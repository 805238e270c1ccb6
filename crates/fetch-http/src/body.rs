//! The body stream handed to the pipeline: reqwest's chunks, with errors
//! classified, truncation detected by counting, and the size cap enforced
//! when no length was announced.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::stream::{BoxStream, Stream, StreamExt};
use oncefetch_core::{BodyStream, FetchError, FetcherConfig};

use crate::classify;
use crate::speed::SpeedCheck;

/// Wraps `response`'s body. `expected` is the announced body length (the
/// range's length for a 206), `start` the offset of its first byte; the
/// size cap and the low-speed limit are `config`'s.
pub(crate) fn checked(
    response: reqwest::Response,
    url: &str,
    expected: Option<u64>,
    start: u64,
    config: &FetcherConfig,
) -> BodyStream {
    CheckedBody {
        inner: response.bytes_stream().boxed(),
        url: url.to_owned(),
        got: 0,
        expected,
        start,
        max_size: config.max_size,
        speed: config.low_speed.map(SpeedCheck::new),
        done: false,
    }
    .boxed()
}

struct CheckedBody {
    inner: BoxStream<'static, reqwest::Result<Bytes>>,
    url: String,
    got: u64,
    expected: Option<u64>,
    start: u64,
    max_size: u64,
    speed: Option<SpeedCheck>,
    /// After the end or the first error nothing more is yielded.
    done: bool,
}

impl Stream for CheckedBody {
    type Item = Result<Bytes, FetchError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if let Some(speed) = this.speed.as_mut() {
            if let Poll::Ready(rate) = speed.poll_slow(cx) {
                this.done = true;
                let limit = speed.limit();
                return Poll::Ready(Some(Err(FetchError::transient(format!(
                    "too slow: {rate} bytes/s over {:?} from {} after {} bytes (low-speed limit {} bytes/s)",
                    limit.time,
                    classify::shown(&this.url),
                    this.got,
                    limit.bytes_per_sec
                )))));
            }
        }
        let item = match this.inner.poll_next_unpin(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(item) => item,
        };
        let result = match item {
            Some(Ok(chunk)) => {
                this.got += chunk.len() as u64;
                if let Some(speed) = this.speed.as_mut() {
                    speed.add(chunk.len() as u64);
                }
                let size = this.start.saturating_add(this.got);
                if size > this.max_size {
                    Err(FetchError::permanent(format!(
                        "size exceeds cap {}: got {size} bytes from {}",
                        this.max_size,
                        classify::shown(&this.url)
                    )))
                } else {
                    Ok(chunk)
                }
            }
            Some(Err(error)) => Err(classify::body_error(&error, &this.url, this.got, this.expected)),
            None => match this.expected {
                Some(expected) if this.got < expected => Err(FetchError::transient(format!(
                    "truncated body: got {} of {expected} bytes from {}",
                    this.got,
                    classify::shown(&this.url)
                ))),
                _ => {
                    this.done = true;
                    return Poll::Ready(None);
                }
            },
        };
        this.done = result.is_err();
        Poll::Ready(Some(result))
    }
}
