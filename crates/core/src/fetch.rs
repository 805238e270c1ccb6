//! The [`Fetcher`] trait: how the pipeline talks to a remote server.

use std::fmt::{self, Debug};
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

/// Whether a failed request is worth retrying (SPEC §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Connect error, timeout, reset, truncated body, 408, 429, 5xx.
    Transient,
    /// 404, 410, other 4xx, bad redirect, size cap, checksum mismatch.
    Permanent,
}

/// A failed fetch, classified.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct FetchError {
    /// Transient or permanent.
    pub kind: FailureKind,
    /// Human-readable reason, naming the status or cause.
    pub message: String,
    /// HTTP status, when the failure was an HTTP answer.
    pub status: Option<u16>,
    /// Delay the server asked for (`Retry-After`).
    pub retry_after: Option<Duration>,
}

impl FetchError {
    /// A transient failure.
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            kind: FailureKind::Transient,
            message: message.into(),
            status: None,
            retry_after: None,
        }
    }

    /// A permanent failure.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            kind: FailureKind::Permanent,
            message: message.into(),
            status: None,
            retry_after: None,
        }
    }

    /// Sets the HTTP status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// Sets the server's requested delay.
    pub fn with_retry_after(mut self, delay: Option<Duration>) -> Self {
        self.retry_after = delay;
        self
    }

    /// Whether the job may be tried again.
    pub fn is_retryable(&self) -> bool {
        self.kind == FailureKind::Transient
    }
}

/// What a server said about a resource: status, length and validators.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ResourceMeta {
    /// HTTP status of the answer the metadata came from.
    pub status: u16,
    /// Full length of the resource, when known.
    pub content_length: Option<u64>,
    /// Strong ETag (weak ones are dropped: they cannot validate a range).
    pub etag: Option<String>,
    /// `Last-Modified`, verbatim.
    pub last_modified: Option<String>,
    /// The URL after redirects.
    pub final_url: String,
    /// The answer came over TLS whose certificate was not checked
    /// ([`FetcherConfig::insecure`]); serialized only when set.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
    /// `Content-Type`, verbatim, for the content check (SPEC §8). Not
    /// recorded with the STREAM op: the check runs on the live answer.
    #[serde(skip)]
    pub content_type: Option<String>,
    /// The answer said `Accept-Ranges: bytes`, or was itself a `206`: the
    /// server serves ranges (a split download needs it). Not recorded.
    #[serde(skip)]
    pub accepts_ranges: bool,
}

impl ResourceMeta {
    /// The validator to send in `If-Range`: strong ETag, else Last-Modified.
    pub fn validator(&self) -> Option<&str> {
        self.etag.as_deref().or(self.last_modified.as_deref())
    }
}

/// A GET, possibly ranged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetRequest {
    /// URL to fetch.
    pub url: String,
    /// First byte wanted; 0 asks for the whole resource (unless
    /// `range_end` is given).
    pub range_start: u64,
    /// Last byte wanted (inclusive), for a closed range `bytes=N-M` (a
    /// piece of a split download); `None` asks for everything from
    /// `range_start` on.
    pub range_end: Option<u64>,
    /// Validator for `If-Range` when a range is asked for.
    pub if_range: Option<String>,
    /// Headers (name, value) for this request only — the job's host policy
    /// ([`HostPolicy::headers`](crate::pipeline::HostPolicy::headers)); they
    /// replace [`FetcherConfig::headers`] and the `User-Agent` of the same
    /// name (see the [`Fetcher`] contract).
    pub headers: Vec<(String, String)>,
}

/// A body stream of chunks.
pub type BodyStream = BoxStream<'static, Result<Bytes, FetchError>>;

/// The answer to a [`GetRequest`].
pub enum GetResponse {
    /// A body. `start` is where it begins in the resource: `range_start` for a
    /// `206` that honoured the range, 0 when the server sent the whole
    /// resource (it ignored `Range`, or the validator changed).
    Body {
        /// Metadata from the response headers (the full length in
        /// `content_length`, derived from `Content-Range` for a 206).
        meta: ResourceMeta,
        /// Offset of the first body byte.
        start: u64,
        /// The bytes.
        body: BodyStream,
    },
    /// `416`: the range starts at or past the end. `complete_len` is the
    /// length from `Content-Range: bytes */LEN`, when given.
    RangeNotSatisfiable {
        /// Metadata from the response headers.
        meta: ResourceMeta,
        /// Resource length the server reported.
        complete_len: Option<u64>,
    },
    /// A `206` whose `Content-Range` is missing or malformed: nobody can
    /// tell where its bytes belong, so its body was dropped unread.
    UnusableRange {
        /// Metadata from the response headers.
        meta: ResourceMeta,
        /// What was wrong, for the log.
        reason: String,
    },
}

impl Debug for GetResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Body { meta, start, .. } => f
                .debug_struct("Body")
                .field("meta", meta)
                .field("start", start)
                .finish_non_exhaustive(),
            Self::RangeNotSatisfiable { meta, complete_len } => f
                .debug_struct("RangeNotSatisfiable")
                .field("meta", meta)
                .field("complete_len", complete_len)
                .finish(),
            Self::UnusableRange { meta, reason } => f
                .debug_struct("UnusableRange")
                .field("meta", meta)
                .field("reason", reason)
                .finish(),
        }
    }
}

/// Settings shared by every fetcher of a run. Its `Debug` shows no secret:
/// the proxy's credentials are redacted and header values hidden.
#[derive(Clone, PartialEq, Eq)]
pub struct FetcherConfig {
    /// TCP/TLS connect timeout.
    pub connect_timeout: Duration,
    /// Longest silence while reading a response.
    pub read_timeout: Duration,
    /// Redirects followed at most.
    pub max_redirects: usize,
    /// Largest body accepted, in bytes.
    pub max_size: u64,
    /// `User-Agent` header.
    pub user_agent: String,
    /// Extra headers (name, value) sent with every request.
    pub headers: Vec<(String, String)>,
    /// PEM files of certificates trusted in addition to the built-in and the
    /// system's roots.
    pub ca_certs: Vec<PathBuf>,
    /// Accept any TLS certificate (no checks at all).
    pub insecure: bool,
    /// Proxy for every request (`http://[user:pass@]host:port`); `None`
    /// leaves the `*_PROXY` variables in charge.
    pub proxy: Option<String>,
    /// Longest time one request may take, body included.
    pub max_time: Option<Duration>,
    /// Abort a body that flows slower than this for this long.
    pub low_speed: Option<LowSpeed>,
}

impl fmt::Debug for FetcherConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self.headers.iter().map(|(name, _)| (name.as_str(), "***")).collect();
        f.debug_struct("FetcherConfig")
            .field("connect_timeout", &self.connect_timeout)
            .field("read_timeout", &self.read_timeout)
            .field("max_redirects", &self.max_redirects)
            .field("max_size", &self.max_size)
            .field("user_agent", &self.user_agent)
            .field("headers", &headers)
            .field("ca_certs", &self.ca_certs)
            .field("insecure", &self.insecure)
            .field("proxy", &self.proxy.as_deref().map(crate::url::redact))
            .field("max_time", &self.max_time)
            .field("low_speed", &self.low_speed)
            .finish()
    }
}

/// The low-speed limit (curl's `--speed-limit` and `--speed-time`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LowSpeed {
    /// Bytes per second a body must average…
    pub bytes_per_sec: u64,
    /// …over every span of this length.
    pub time: Duration,
}

impl Default for FetcherConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            max_redirects: 10,
            max_size: 4 << 30,
            user_agent: concat!("oncefetch/", env!("CARGO_PKG_VERSION")).to_owned(),
            headers: Vec::new(),
            ca_certs: Vec::new(),
            insecure: false,
            proxy: None,
            max_time: None,
            low_speed: None,
        }
    }
}

/// Reads remote resources: (ranged) bodies and their metadata. The pipeline
/// learns a resource's metadata from its GET's headers (SPEC §5, HEAD_DONE);
/// no separate HEAD request is sent.
///
/// # Contract
///
/// - `get` with `range_start > 0` sends `Range: bytes=N-`, with
///   `range_end: Some(M)` it sends `Range: bytes=N-M` (also for `N == 0`);
///   either way with `If-Range` when given. A server that answers 200
///   yields `start == 0`. `meta.accepts_ranges` reports `Accept-Ranges:
///   bytes` (or a `206`). A `206` is
///   reported as it came: `start` is the first byte its `Content-Range`
///   names, `meta.content_length` its total length (`None` for `*`), and
///   `meta`'s validators those of the response — the pipeline, not the
///   fetcher, decides whether the body may extend a partial file (SPEC §6).
///   A `206` without a well-formed `Content-Range` is
///   [`GetResponse::UnusableRange`].
/// - Redirects are followed only to `http`/`https`, at most
///   [`FetcherConfig::max_redirects`] times.
/// - Errors are classified [`FailureKind::Transient`] or
///   [`FailureKind::Permanent`] as SPEC §8 says; a body that ends before its
///   announced length yields a transient error from the stream.
/// - `get` sends [`GetRequest::headers`] on top of
///   [`FetcherConfig::headers`] and [`FetcherConfig::user_agent`]: a request
///   header replaces a configured one of the same name (compared
///   case-insensitively), and a later request header of a name replaces an
///   earlier one. `Range` and `If-Range` among them are ignored: those
///   come from `range_start` and `if_range` alone. A request header
///   that cannot be sent is a [`FailureKind::Permanent`] error.
#[async_trait]
pub trait Fetcher: Send + Sync + Debug + 'static {
    /// Starts a GET and returns once the headers are in.
    async fn get(&self, request: &GetRequest) -> Result<GetResponse, FetchError>;
}

#[cfg(test)]
mod tests {
    use super::FetcherConfig;

    #[test]
    fn debug_shows_no_secret() {
        let config = FetcherConfig {
            headers: vec![("Authorization".into(), "Bearer s3cret-token".into())],
            proxy: Some("http://user:pr0xy-pass@proxy.example:3128".into()),
            ..FetcherConfig::default()
        };
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("s3cret-token") && !shown.contains("pr0xy-pass"),
            "{shown}"
        );
        assert!(
            shown.contains("Authorization") && shown.contains("proxy.example"),
            "{shown}"
        );
    }
}
