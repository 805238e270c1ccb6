//! Turning answers and failures into [`ResourceMeta`] and classified
//! [`FetchError`]s (SPEC §8): connect error, timeout, reset, truncated body,
//! 408, 429 and 5xx are transient; 404, 410, other 4xx, bad redirects, the
//! size cap, a URL too long to send and an answer whose header block cannot
//! be read (over the client's limit, malformed) are permanent. Messages show
//! URLs with their credentials redacted and a very long URL cut short; a
//! request that failed at a redirect target names the target, then the
//! original URL.

use std::borrow::Cow;
use std::error::Error as _;
use std::time::SystemTime;

use oncefetch_core::url::redact;
use oncefetch_core::{FetchError, ResourceMeta};
use reqwest::header::{HeaderMap, HeaderName, ACCEPT_RANGES, CONTENT_LENGTH, ETAG, LAST_MODIFIED, LOCATION};
use reqwest::{Response, StatusCode};

use crate::redirect::RedirectError;
use crate::retry_after;

/// The metadata in `response`'s headers; `content_length` is the full length
/// of the resource as the caller worked it out.
pub(crate) fn meta(response: &Response, content_length: Option<u64>) -> ResourceMeta {
    // `insecure` is the fetcher's to set.
    let headers = response.headers();
    ResourceMeta {
        status: response.status().as_u16(),
        content_length,
        etag: strong_etag(headers),
        last_modified: header_str(headers, &LAST_MODIFIED).map(str::to_owned),
        content_type: header_str(headers, &reqwest::header::CONTENT_TYPE).map(str::to_owned),
        final_url: response.url().to_string(),
        insecure: false,
        accepts_ranges: response.status() == StatusCode::PARTIAL_CONTENT || accepts_byte_ranges(headers),
    }
}

/// Whether `Accept-Ranges` lists the unit `bytes` (RFC 9110 §14.3).
fn accepts_byte_ranges(headers: &HeaderMap) -> bool {
    header_str(headers, &ACCEPT_RANGES)
        .is_some_and(|units| units.split(',').any(|unit| unit.trim().eq_ignore_ascii_case("bytes")))
}

/// The `Content-Length` header. (reqwest's `content_length()` reports the
/// body it will read, which is 0 for a HEAD.)
pub(crate) fn content_length(headers: &HeaderMap) -> Option<u64> {
    let value = header_str(headers, &CONTENT_LENGTH)?;
    value.bytes().all(|b| b.is_ascii_digit()).then(|| value.parse().ok())?
}

/// The ETag when it is strong: a weak one (`W/"…"`) cannot validate a range.
pub(crate) fn strong_etag(headers: &HeaderMap) -> Option<String> {
    let value = header_str(headers, &ETAG)?;
    (!value.is_empty() && !value.starts_with("W/")).then(|| value.to_owned())
}

pub(crate) fn header_str<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Option<&'h str> {
    Some(headers.get(name)?.to_str().ok()?.trim())
}

/// The error for an answer that carries no usable body: an error status, or a
/// redirect that was not followed.
pub(crate) fn status_error(response: &Response, url: &str) -> FetchError {
    answer_error(response.status(), response.headers(), url, response.url())
}

/// [`status_error`] of an answer with `status` and `headers`, for a request
/// of `url` that ended at `final_url`; judged as of now (`Retry-After`).
pub(crate) fn answer_error(status: StatusCode, headers: &HeaderMap, url: &str, final_url: &reqwest::Url) -> FetchError {
    let code = status.as_u16();
    let mut message = format!("server answered {}", describe(status));
    message.push_str(&format!(" for {}", shown(url)));
    if final_url.as_str() != url {
        message.push_str(&format!(" (redirected to {})", shown(final_url.as_str())));
    }
    if status.is_redirection() {
        // reqwest hands back the redirects it cannot even resolve (`file:` among them).
        let location = header_str(headers, &LOCATION);
        let target = location.and_then(|location| final_url.join(location).ok());
        match (location, target) {
            (_, Some(target)) if !matches!(target.scheme(), "http" | "https") => {
                let refused = RedirectError::Scheme {
                    location: shown(target.as_str()).into_owned(),
                };
                message.push_str(&format!(": {refused}"));
            }
            // The resolved target, not the header as sent: `shown` redacts the credentials of
            // an absolute URL, and a scheme-relative `//user:pass@host/` is one only once resolved.
            (Some(_), Some(target)) => {
                message.push_str(&format!(": redirect to {} not followed", shown(target.as_str())))
            }
            (Some(location), None) => message.push_str(&format!(": redirect to {} not followed", shown(location))),
            (None, _) => message.push_str(": redirect without a location"),
        }
    }
    let transient =
        matches!(status, StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_MANY_REQUESTS) || status.is_server_error();
    let error = if transient {
        FetchError::transient(message)
    } else {
        FetchError::permanent(message)
    };
    error
        .with_status(code)
        .with_retry_after(retry_after::from_headers(headers, SystemTime::now()))
}

/// `503 service unavailable`.
fn describe(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {}", status.as_u16(), reason.to_lowercase()),
        None => status.as_u16().to_string(),
    }
}

/// The error for a request that got no answer. `followed` is the last
/// redirect target followed: the request that failed was the one to it
/// (reqwest's error still names `url`), so the message names it first.
pub(crate) fn request_error(error: &reqwest::Error, url: &str, followed: Option<&reqwest::Url>) -> FetchError {
    let asked = match followed {
        Some(target) => Cow::Owned(format!("{} (redirected from {})", shown(target.as_str()), shown(url))),
        None => shown(url),
    };
    if let Some(refused) = find_source::<RedirectError>(error) {
        return FetchError::permanent(format!("{refused} (from {})", shown(url)));
    }
    let cause = causes(error);
    if find_source::<hyper::Error>(error).is_some_and(hyper::Error::is_parse) {
        // A header block over the client's limit, a malformed status line or
        // header: asking again gets the same answer (curl does not retry a
        // weird server reply either).
        FetchError::permanent(format!(
            "cannot read the answer from {asked} (response header block too large or malformed): {cause}"
        ))
    } else if error.is_redirect() {
        FetchError::permanent(format!("bad redirect from {asked}: {cause}"))
    } else if error.is_builder() {
        FetchError::permanent(format!("cannot request {asked}: {}", builder_cause(error, url, &cause)))
    } else if let Some(problem) = crate::trust::certificate_problem(error) {
        // Asking again meets the same certificate.
        FetchError::permanent(format!("TLS certificate of {asked} refused: {problem}: {cause}"))
    } else if error.is_timeout() {
        FetchError::transient(format!("timed out requesting {asked}: {cause}"))
    } else if error.is_connect() {
        FetchError::transient(format!("cannot connect to {asked}: {cause}"))
    } else {
        // Resets, a connection closed before the answer, protocol errors.
        FetchError::transient(format!("request to {asked} failed: {cause}"))
    }
}

/// Longest URL an HTTP request can carry here (the `http` crate's limit for a
/// request target).
const MAX_URL_LEN: usize = u16::MAX as usize - 1;

/// Why a request could not even be built, in words.
fn builder_cause(error: &reqwest::Error, url: &str, cause: &str) -> String {
    let url = error.url().map_or(url, reqwest::Url::as_str);
    if url.len() > MAX_URL_LEN {
        format!("URL too long ({} bytes, at most {MAX_URL_LEN})", url.len())
    } else {
        cause.to_owned()
    }
}

/// Longest URL an error message quotes whole.
const SHOWN_URL_LEN: usize = 300;

/// `url` as an error message shows it: credentials redacted, and a very long
/// URL cut after its first [`SHOWN_URL_LEN`] bytes.
pub(crate) fn shown(url: &str) -> Cow<'_, str> {
    let url = redact(url);
    if url.len() <= SHOWN_URL_LEN {
        return url;
    }
    let mut cut = SHOWN_URL_LEN;
    while !url.is_char_boundary(cut) {
        cut -= 1;
    }
    Cow::Owned(format!("{}… ({} bytes)", &url[..cut], url.len()))
}

/// The error for a body that failed after `got` bytes (`expected` announced).
pub(crate) fn body_error(error: &reqwest::Error, url: &str, got: u64, expected: Option<u64>) -> FetchError {
    let cause = causes(error);
    let url = shown(url);
    let message = match expected {
        _ if error.is_timeout() => format!("timed out reading the body of {url} after {got} bytes: {cause}"),
        Some(expected) if got < expected => {
            format!("truncated body: got {got} of {expected} bytes from {url}: {cause}")
        }
        _ => format!("reading the body of {url} failed after {got} bytes: {cause}"),
    };
    FetchError::transient(message)
}

/// The size cap, checked before any body byte is read.
pub(crate) fn check_size(meta: &ResourceMeta, max_size: u64, url: &str) -> Result<(), FetchError> {
    match meta.content_length {
        Some(size) if size > max_size => Err(FetchError::permanent(format!(
            "size {size} exceeds cap {max_size} for {}",
            shown(url)
        ))),
        _ => Ok(()),
    }
}

/// `error`'s own message and its sources', credentials redacted.
pub(crate) fn chain(error: &reqwest::Error) -> String {
    let own = redact(&error.to_string()).into_owned();
    match causes(error) {
        cause if cause == own => own,
        cause => format!("{own}: {cause}"),
    }
}

/// The messages of `error`'s sources, innermost last, without repeats.
fn causes(error: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|part| part.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    if parts.is_empty() {
        // The error's own text names the URL, maybe with credentials.
        parts.push(error.to_string());
    }
    redact(&parts.join(": ")).into_owned()
}

fn find_source<E: std::error::Error + 'static>(error: &reqwest::Error) -> Option<&E> {
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(found) = cause.downcast_ref::<E>() {
            return Some(found);
        }
        source = cause.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use reqwest::header::{HeaderMap, HeaderValue, CONTENT_LENGTH, ETAG};

    use super::{content_length, strong_etag};

    #[test]
    fn weak_etags_are_dropped() {
        let mut headers = HeaderMap::new();
        assert_eq!(strong_etag(&headers), None);
        headers.insert(ETAG, HeaderValue::from_static("\"abc\""));
        assert_eq!(strong_etag(&headers).as_deref(), Some("\"abc\""));
        headers.insert(ETAG, HeaderValue::from_static("W/\"abc\""));
        assert_eq!(strong_etag(&headers), None);
    }

    #[test]
    fn content_length_is_digits_only() {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("1234"));
        assert_eq!(content_length(&headers), Some(1234));
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("+12"));
        assert_eq!(content_length(&headers), None);
    }
}
