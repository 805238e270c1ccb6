//! The access log nginx writes for [`LIMITED`](super::nginx::LIMITED): one line per request, written
//! when the request ends (a request cut by a client's death too, with the bytes nginx had sent),
//! and its parser.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};

/// The `log_format` of the access log: when the request ended and how long it took (so when it
/// started), its status, the body bytes and all bytes (headers included) nginx sent, its `Range`
/// header and its request line.
pub(crate) const FORMAT: &str = r#"$msec $request_time $status $body_bytes_sent $bytes_sent "$http_range" "$request""#;

/// One line of the access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    /// When nginx read the request, in milliseconds since the Unix epoch (`$msec` minus
    /// `$request_time`).
    pub(crate) start_ms: u64,
    /// `$status` (`200`, `206`…).
    pub(crate) status: u16,
    /// `$body_bytes_sent`: bytes of the body nginx wrote to the socket.
    pub(crate) body_bytes: u64,
    /// `$bytes_sent`: the same with the response headers.
    pub(crate) bytes: u64,
    /// The `Range` header as sent (`bytes=A-B`), if any.
    pub(crate) range: Option<String>,
    /// The request line, e.g. `GET /limited/split/file.bin HTTP/1.1`.
    pub(crate) request: String,
}

impl Request {
    /// Parses one line written in [`FORMAT`]; `None` for anything else.
    pub(crate) fn parse(line: &str) -> Option<Request> {
        let mut words = line.splitn(6, ' ');
        let end_ms = millis(words.next()?)?;
        let took_ms = millis(words.next()?)?;
        let status = words.next()?.parse().ok()?;
        let body_bytes = words.next()?.parse().ok()?;
        let bytes = words.next()?.parse().ok()?;
        let (range, request) = quoted(words.next()?)?;
        let (request, rest) = quoted(request.strip_prefix(' ')?)?;
        if !rest.is_empty() {
            return None;
        }
        Some(Request {
            start_ms: end_ms.checked_sub(took_ms)?,
            status,
            body_bytes,
            bytes,
            // nginx writes `-` for a header that was not sent.
            range: (range != "-").then(|| range.to_owned()),
            request: request.to_owned(),
        })
    }

    /// Where the body sent started in the file: the first byte of the `Range` (`bytes=A-B`,
    /// `bytes=A-`) of a `206`, 0 for any other answer; `None` for a range of another form.
    pub(crate) fn body_offset(&self) -> Option<u64> {
        match (self.status, &self.range) {
            (206, Some(range)) => {
                let (first, _) = range.strip_prefix("bytes=")?.split_once('-')?;
                first.parse().ok()
            }
            _ => Some(0),
        }
    }

    /// The body bytes asked for from a file of `file_bytes`: the file for a `200`, the range for a
    /// `206` (`bytes=A-B`, `bytes=A-`); `None` for other answers or another form of range.
    pub(crate) fn asked(&self, file_bytes: u64) -> Option<u64> {
        match (self.status, &self.range) {
            (200, _) => Some(file_bytes),
            (206, Some(range)) => {
                let (first, last) = range.strip_prefix("bytes=")?.split_once('-')?;
                let first: u64 = first.parse().ok()?;
                let end = match last {
                    "" => file_bytes,
                    last => last.parse::<u64>().ok()?.checked_add(1)?.min(file_bytes),
                };
                end.checked_sub(first)
            }
            _ => None,
        }
    }
}

/// Every request of the log at `path` (none when nginx has not created it yet); lines that do not
/// parse are skipped.
pub(crate) fn read(path: &Path) -> Result<Vec<Request>> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(text.lines().filter_map(Request::parse).collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("could not read {}", path.display())),
    }
}

/// The bytes of the body that more than one request sent: the sum of the bodies minus the size of
/// their union (each body is `[offset, offset + body_bytes)`, see [`Request::body_offset`]); a
/// request whose range does not parse counts as starting at 0.
pub(crate) fn sent_twice<'a>(requests: impl IntoIterator<Item = &'a Request>) -> u64 {
    let mut spans: Vec<(u64, u64)> = requests
        .into_iter()
        .filter(|r| r.body_bytes > 0)
        .map(|r| {
            let start = r.body_offset().unwrap_or(0);
            (start, start + r.body_bytes)
        })
        .collect();
    let total: u64 = spans.iter().map(|(a, b)| b - a).sum();
    spans.sort_unstable();
    let mut union = 0;
    let mut reached = 0;
    for (start, end) in spans {
        if end > reached {
            union += end - start.max(reached);
            reached = end;
        }
    }
    total - union
}

/// `1712345678.123` (seconds with a fraction of up to 3 digits, as nginx writes `$msec` and
/// `$request_time`) in milliseconds.
fn millis(text: &str) -> Option<u64> {
    let (seconds, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let fraction: u64 = format!("{fraction:0<3}").parse().ok()?;
    seconds.parse::<u64>().ok()?.checked_mul(1000)?.checked_add(fraction)
}

/// The text between the leading `"` of `text` and the next `"`, and what follows that. nginx
/// escapes a `"` inside a value as `\x22`, so the next one closes it.
fn quoted(text: &str) -> Option<(&str, &str)> {
    text.strip_prefix('"')?.split_once('"')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(status: u16, range: Option<&str>, body_bytes: u64) -> Request {
        Request {
            start_ms: 0,
            status,
            body_bytes,
            bytes: body_bytes + 200,
            range: range.map(str::to_owned),
            request: "GET /limited/f HTTP/1.1".to_owned(),
        }
    }

    #[test]
    fn lines_in_the_format_parse() {
        let line = r#"1712345678.123 2.500 206 2097152 2097420 "bytes=4194304-6291455" "GET /limited/split/file.bin HTTP/1.1""#;
        let r = Request::parse(line).unwrap();
        assert_eq!(
            r,
            Request {
                start_ms: 1_712_345_675_623,
                status: 206,
                body_bytes: 2_097_152,
                bytes: 2_097_420,
                range: Some("bytes=4194304-6291455".to_owned()),
                request: "GET /limited/split/file.bin HTTP/1.1".to_owned(),
            }
        );
        assert_eq!(r.body_offset(), Some(4_194_304));

        // No Range header: nginx writes `-`; a 200 starts at byte 0.
        let r = Request::parse(r#"1712345678.000 0.041 200 1048576 1048832 "-" "GET /limited/f HTTP/1.1""#).unwrap();
        assert_eq!((r.range, r.status, r.start_ms), (None, 200, 1_712_345_677_959));
        assert_eq!(
            request(200, Some("bytes=5-9"), 1).body_offset(),
            Some(0),
            "a 200 ignored the range"
        );
        assert_eq!(request(206, Some("bytes=5-"), 1).body_offset(), Some(5));
        assert_eq!(request(206, Some("bytes=-5"), 1).body_offset(), None);
    }

    #[test]
    fn what_a_request_asked_for() {
        assert_eq!(request(200, None, 1).asked(100), Some(100));
        assert_eq!(request(200, Some("bytes=5-9"), 1).asked(100), Some(100));
        assert_eq!(request(206, Some("bytes=10-19"), 1).asked(100), Some(10));
        assert_eq!(request(206, Some("bytes=90-"), 1).asked(100), Some(10));
        assert_eq!(
            request(206, Some("bytes=90-199"), 1).asked(100),
            Some(10),
            "nginx stops at the end"
        );
        assert_eq!(request(206, Some("bytes=-5"), 1).asked(100), None);
        assert_eq!(request(206, None, 1).asked(100), None);
        assert_eq!(request(416, None, 1).asked(100), None);
    }

    #[test]
    fn other_lines_do_not_parse() {
        for line in [
            "",
            "garbage",
            r#"1712345678.123 2.500 206 10 20 "-""#,
            r#"1712345678.123 2.500 206 x 20 "-" "GET / HTTP/1.1""#,
            r#"1712345678.1234 2.5 206 10 20 "-" "GET / HTTP/1.1""#,
            r#"1712345678.123 2.500 206 10 20 "-" "GET / HTTP/1.1" extra"#,
            r#"127.0.0.1 - - [01/Jan/2024:00:00:00 +0000] "GET / HTTP/1.1" 200 10"#,
        ] {
            assert_eq!(Request::parse(line), None, "{line:?}");
        }
        assert_eq!(millis("7"), Some(7000));
        assert_eq!(millis("7.5"), Some(7500));
        assert_eq!(millis("7.-5"), None);
    }

    #[test]
    fn bytes_sent_twice_are_the_overlaps_of_the_bodies() {
        let none: [Request; 0] = [];
        assert_eq!(sent_twice(&none), 0);
        // A 200 cut after 10 bytes, pieces 10-19 and 20-29, then 15-24 again after a crash.
        let requests = [
            request(200, None, 10),
            request(206, Some("bytes=10-19"), 10),
            request(206, Some("bytes=20-29"), 10),
            request(206, Some("bytes=15-24"), 10),
        ];
        assert_eq!(sent_twice(&requests), 10);
        // A 200 that read on past the first piece overlaps it; a span inside another counts whole.
        let requests = [
            request(200, None, 15),
            request(206, Some("bytes=10-19"), 10),
            request(206, Some("bytes=12-13"), 2),
        ];
        assert_eq!(sent_twice(&requests), 7);
    }

    #[test]
    fn a_missing_log_has_no_requests() {
        assert!(read(Path::new("/nonexistent/access.log")).unwrap().is_empty());
    }
}
