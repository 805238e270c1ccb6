//! Oracles for the fetcher's parsers of outside input — `Content-Range`,
//! `Retry-After` — and its classification of answers, as functions of raw
//! bytes that panic on any broken promise. The property tests in
//! `parsers.rs` run them on generated input; the fuzz targets in `fuzz/`
//! include this very file and run them on what libFuzzer makes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use oncefetch_core::url::redact;
use oncefetch_core::FailureKind;
use oncefetch_fetch_http::fuzzing::{self, ContentRange};

/// A little reader of fuzz bytes: each call takes the next byte (0 past the end).
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn next(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn u64(&mut self) -> u64 {
        let mut n = 0u64;
        for _ in 0..1 + self.next() % 8 {
            n = n << 8 | u64::from(self.next());
        }
        n
    }

    fn pick<'c>(&mut self, choices: &[&'c str]) -> &'c str {
        choices[usize::from(self.next()) % choices.len()]
    }
}

/// Any text as a `Content-Range`: a range parsed is well-formed (first ≤
/// last < complete) and reads back the same from its plain rendering.
pub(crate) fn content_range_any(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Some(range) = fuzzing::content_range(&text) else {
        return;
    };
    assert!(text.trim_start().starts_with("bytes"), "{text:?}");
    let plain = match range {
        ContentRange::Bytes { first, last, complete } => {
            assert!(first <= last, "{text:?}: {range:?}");
            if let Some(complete) = complete {
                assert!(last < complete, "{text:?}: {range:?}");
            }
            let complete = complete.map_or("*".to_owned(), |c| c.to_string());
            format!("bytes {first}-{last}/{complete}")
        }
        ContentRange::Unsatisfied { complete } => format!("bytes */{complete}"),
    };
    assert_eq!(fuzzing::content_range(&plain), Some(range), "{plain:?} from {text:?}");
}

/// A `Content-Range` built by RFC 9110 §14.4's grammar from `data` (numbers
/// up to and past `u64::MAX`, `*`, leading zeros, blanks around it) and the
/// parse the grammar and the contract's rules give: the parser agrees.
pub(crate) fn content_range_differential(data: &[u8]) {
    let mut bytes = Bytes(data);
    let number = |bytes: &mut Bytes<'_>| -> (String, Option<u64>) {
        match bytes.next() % 6 {
            0 => ("18446744073709551616".to_owned(), None),
            1 => {
                let n = bytes.u64() % 1000;
                (format!("00{n}"), Some(n))
            }
            _ => {
                let n = bytes.u64();
                (n.to_string(), Some(n))
            }
        }
    };
    let (first_text, first) = number(&mut bytes);
    let (last_text, last) = number(&mut bytes);
    let (complete_text, complete) = match bytes.next() % 4 {
        0 => ("*".to_owned(), Some(None)),
        _ => {
            let (text, n) = number(&mut bytes);
            (text, n.map(Some))
        }
    };
    let unsatisfied = bytes.next() % 5 == 0;
    let around = bytes.pick(&["", " ", "\t", "  "]);
    let (text, expected) = if unsatisfied {
        let expected = match complete {
            Some(Some(complete)) => Some(ContentRange::Unsatisfied { complete }),
            _ => None,
        };
        (format!("{around}bytes */{complete_text}{around}"), expected)
    } else {
        let expected = match (first, last, complete) {
            (Some(first), Some(last), Some(complete)) if first <= last && complete.is_none_or(|c| last < c) => {
                Some(ContentRange::Bytes { first, last, complete })
            }
            _ => None,
        };
        (
            format!("{around}bytes {first_text}-{last_text}/{complete_text}{around}"),
            expected,
        )
    };
    assert_eq!(fuzzing::content_range(&text), expected, "{text:?}");
}

/// The instant the `Retry-After` oracles judge against: Wed, 21 Oct 2015 07:28:00 GMT.
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_445_412_480)
}

/// Any text as `Retry-After`: digits alone are that many seconds (a number
/// too large saturates), an HTTP-date its distance from now (none past),
/// anything else no delay asked.
pub(crate) fn retry_after_any(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let parsed = fuzzing::retry_after(&text, now());
    let trimmed = text.trim();
    if !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit()) {
        let secs = trimmed.parse().unwrap_or(u64::MAX);
        assert_eq!(parsed, Some(Duration::from_secs(secs)), "{text:?}");
    } else if let Ok(date) = httpdate::parse_http_date(trimmed) {
        assert_eq!(
            parsed,
            Some(date.duration_since(now()).unwrap_or(Duration::ZERO)),
            "{text:?}"
        );
    } else {
        assert_eq!(parsed, None, "{text:?}");
    }
}

/// A `Retry-After` made from `data` — seconds, or a date before or after
/// now in the IMF-fixdate form — reads back as the delay it encodes.
pub(crate) fn retry_after_differential(data: &[u8]) {
    let mut bytes = Bytes(data);
    let secs = bytes.u64() % (400 * 365 * 86_400);
    let (text, expected) = match bytes.next() % 3 {
        0 => (secs.to_string(), Duration::from_secs(secs)),
        1 => (
            httpdate::fmt_http_date(now() + Duration::from_secs(secs)),
            Duration::from_secs(secs),
        ),
        _ => {
            let back = secs % 1_445_412_480;
            (
                httpdate::fmt_http_date(now() - Duration::from_secs(back)),
                Duration::ZERO,
            )
        }
    };
    assert_eq!(fuzzing::retry_after(&text, now()), Some(expected), "{text:?}");
}

const HEADER_NAMES: &[&str] = &[
    "retry-after",
    "location",
    "content-length",
    "etag",
    "content-range",
    "content-type",
    "x-junk",
];

/// An answer made from `data` — any status 100–999, headers among the ones
/// the fetcher reads with any bytes as values, a URL with or without
/// credentials, redirected or not — classified: transient exactly for 408,
/// 429 and 5xx (SPEC §8), the status recorded and named first, the
/// `Retry-After` delay-seconds read, and no password in the message.
pub(crate) fn classify(data: &[u8]) {
    let mut bytes = Bytes(data);
    let status = 100 + (u16::from(bytes.next()) << 8 | u16::from(bytes.next())) % 900;
    let mut raw = Vec::new();
    for _ in 0..bytes.next() % 5 {
        let name = bytes.pick(HEADER_NAMES).to_owned();
        let len = usize::from(bytes.next() % 24);
        let value: Vec<u8> = (0..len).map(|_| bytes.next()).collect();
        let value = match bytes.next() % 3 {
            0 => value,
            1 => (bytes.u64() % 100_000).to_string().into_bytes(),
            _ => bytes
                .pick(&[
                    "W/\"x\"",
                    "\"e\"",
                    "file:///etc/passwd",
                    "/next",
                    "https://user:hunter2@h/z",
                ])
                .into(),
        };
        raw.push((name, value));
    }
    let url = bytes.pick(&["http://h/x", "https://user:hunter2@h/x", "http://h:8080/x?q=1"]);
    let final_url = bytes.pick(&["", "http://h/y", "https://user:hunter2@h/y"]);
    let final_url = if final_url.is_empty() { url } else { final_url };
    let headers = fuzzing::header_map(&raw);
    let error = fuzzing::classify(status, &headers, url, final_url).expect("a status of 100–999 and valid URLs");
    let transient = matches!(status, 408 | 429 | 500..=599);
    assert_eq!(error.kind == FailureKind::Transient, transient, "{status}: {error:?}");
    assert_eq!(error.is_retryable(), transient);
    assert_eq!(error.status, Some(status));
    assert!(
        error.message.starts_with(&format!("server answered {status}")),
        "{error:?}"
    );
    // Every credential a URL in the message carries is already shown as `***`
    // (text such as `ht:hunter2@h`, with no authority, holds none).
    assert_eq!(
        redact(&error.message),
        error.message.as_str(),
        "a credential shown: {error:?}"
    );
    let retry_after = headers.get("retry-after").and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(secs) = retry_after.filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit())) {
        assert_eq!(
            error.retry_after,
            Some(Duration::from_secs(secs.parse().unwrap_or(u64::MAX)))
        );
    }
    if retry_after.is_none() {
        assert_eq!(error.retry_after, None);
    }
    let (length, etag) = fuzzing::length_and_etag(&headers);
    if let Some(length) = length {
        let value = headers
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .map(str::trim);
        assert_eq!(value.and_then(|v| v.parse().ok()), Some(length), "{value:?}");
        assert!(
            value.is_some_and(|v| v.bytes().all(|b| b.is_ascii_digit())),
            "{value:?}"
        );
    }
    if let Some(etag) = etag {
        assert!(
            !etag.is_empty() && !etag.starts_with("W/"),
            "a weak or empty ETag kept: {etag:?}"
        );
    }
}
