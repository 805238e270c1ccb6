//! Faults a [`TestServer`](crate::TestServer) can inject per path.

/// A misbehaviour of one path. Faults stack: one-shot faults (`Status`,
/// `RetryAfterSecs`, `RetryAfterDate`) are used up in the order they were
/// added, the others stay until [`TestServer::clear_faults`](crate::TestServer::clear_faults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The next `times` requests (GET or HEAD) answer `status` with an empty body (e.g. 503, 500, 404, 410, 408).
    Status {
        /// Status to answer.
        status: u16,
        /// How many requests get it.
        times: u32,
    },
    /// The next `times` requests answer 429 (or 503) with `Retry-After: <secs>`.
    RetryAfterSecs {
        /// Status to answer.
        status: u16,
        /// Delay-seconds sent in `Retry-After`.
        secs: u64,
        /// How many requests get it.
        times: u32,
    },
    /// Every request (GET or HEAD) answers `status` with an empty body until
    /// `until`, then the path works again (an outage of a set length).
    StatusUntil {
        /// Status to answer.
        status: u16,
        /// When the outage ends.
        until: std::time::Instant,
    },
    /// Same with Retry-After as an HTTP-date `secs` seconds in the future.
    RetryAfterDate {
        /// Status to answer.
        status: u16,
        /// How far in the future the date lies.
        secs: u64,
        /// How many requests get it.
        times: u32,
    },
    /// The next `times` GETs announce the full Content-Length but close the connection after `after` body bytes.
    Truncate {
        /// Body bytes sent before the connection closes.
        after: u64,
        /// How many GETs are cut.
        times: u32,
    },
    /// Range headers are ignored (always 200 with the whole body).
    IgnoreRange,
    /// HEAD answers `status` (405 or 501); GET works.
    RefuseHead {
        /// Status HEAD answers.
        status: u16,
    },
    /// Every request answers a redirect (302) to `location` (e.g. "file:///etc/passwd" or another server path).
    RedirectTo {
        /// The `Location` header, verbatim.
        location: String,
    },
    /// Redirect loop: /x → /x?1 → /x?2 … forever.
    RedirectLoop,
    /// Body is written in chunks of `chunk` bytes with `delay_ms` between chunks (for crash tests that must kill mid-stream).
    Throttle {
        /// Bytes per chunk (0 counts as 1).
        chunk: usize,
        /// Pause between chunks, in milliseconds.
        delay_ms: u64,
    },
    /// Every GET's headers go out at once, its first body byte only after
    /// `ms` milliseconds (a run stopped in between has a response and no
    /// byte of its body).
    HoldBody {
        /// How long the body waits, in milliseconds.
        ms: u64,
    },
    /// After the body has been requested `after_gets` times, the content changes (new bytes, new ETag) — validator change between requests.
    ///
    /// "Requested" counts GETs answered with a body (200 or 206) while the
    /// fault is in place; the change happens when the next request (GET or
    /// HEAD) arrives, and only once. The new bytes have the same length.
    ChangeAfter {
        /// Bodies served before the change.
        after_gets: u32,
    },
    /// `If-Range` is ignored: a `Range` is always honoured with a 206 of
    /// the current bytes, whatever validator the client sent (a server or
    /// cache that breaks RFC 9110 §13.1.5).
    IgnoreIfRange,
    /// A ranged GET not starting at 0 gets a 206 that starts one byte
    /// before the requested offset (`Content-Range: bytes FIRST-1-LAST/LEN`,
    /// with those bytes).
    WrongContentRange,
    /// A 206 says `Content-Range: bytes FIRST-LAST/*`: no total length.
    UnknownCompleteLength,
    /// Every answer (GET or HEAD) carries `bytes` bytes of extra header
    /// lines (`X-Filler-N`), e.g. 1 MiB to go past a client's header limit.
    HugeHeaders {
        /// Total size of the extra header lines, about.
        bytes: usize,
    },
    /// Every answer carries `Content-Encoding: <value>` (e.g. `gzip`), sent
    /// whether the client asked for it or not; the body is the stored bytes
    /// as they are (store already-encoded bytes to serve a real encoding).
    ContentEncoding {
        /// The header's value.
        value: String,
    },
    /// Every answer carries `Content-Type: <value>` instead of
    /// `application/octet-stream`, or no `Content-Type` at all for `None`.
    ContentType {
        /// The header's value; `None` leaves the header out.
        value: Option<String>,
    },
}
