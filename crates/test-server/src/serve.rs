//! Answering one request: faults first, then the resource with Range / If-Range semantics.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use hyper::header::{
    HeaderName, HeaderValue, ACCEPT_RANGES, ALLOW, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG,
    IF_RANGE, LAST_MODIFIED, LOCATION, RANGE, RETRY_AFTER,
};
use hyper::{Method, Request, Response, StatusCode};

use crate::body::ServeBody;
use crate::content::content;
use crate::state::{BodyInFlight, Resource, Shared};
use crate::Fault;

/// Answers `req`, counting it in `shared`'s stats.
pub(crate) fn respond<B>(shared: &Shared, req: &Request<B>) -> Response<ServeBody> {
    let headers = req
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    shared.record_headers(req.uri().path(), headers);
    let mut response = answer(shared, req);
    add_header_faults(shared, req.uri().path(), &mut response);
    response
}

/// The extra headers of `HugeHeaders` and `ContentEncoding` faults, on every
/// answer of `path`.
fn add_header_faults(shared: &Shared, path: &str, response: &mut Response<ServeBody>) {
    let guard = shared.content();
    let Some(faults) = guard.faults.get(path) else {
        return;
    };
    let headers = response.headers_mut();
    for fault in faults {
        match fault {
            Fault::HugeHeaders { bytes } => {
                const LINE: usize = 1024;
                let filler = "x".repeat(LINE);
                for n in 0..bytes.div_ceil(LINE) {
                    if let Ok(name) = HeaderName::try_from(format!("x-filler-{n}")) {
                        headers.insert(name, header_value(&filler));
                    }
                }
            }
            Fault::ContentEncoding { value } => {
                headers.insert(CONTENT_ENCODING, header_value(value));
            }
            _ => {}
        }
    }
}

/// Answers `req` (without the header faults).
fn answer<B>(shared: &Shared, req: &Request<B>) -> Response<ServeBody> {
    let method = req.method();
    let is_get = method == Method::GET;
    let is_head = method == Method::HEAD;
    let path = req.uri().path();
    let counters = shared.count(path, is_get, is_head, req.headers().contains_key(RANGE));
    if !is_get && !is_head {
        let mut response = empty(StatusCode::METHOD_NOT_ALLOWED);
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }

    let mut guard = shared.content();
    let state = &mut *guard;
    let change_now = state.faults.get_mut(path).is_some_and(|faults| {
        let due = faults
            .iter()
            .position(|f| matches!(f, Fault::ChangeAfter { after_gets: 0 }));
        due.map(|i| faults.remove(i)).is_some()
    });
    if let Some(old) = state.resources.get(path).filter(|_| change_now) {
        let seed = old.fingerprint.wrapping_add(old.generation + 1);
        let body = Bytes::from(content(seed, old.body.len()));
        state.install(path, body);
    }
    let faults = state.faults.entry(path.to_owned()).or_default();

    if let Some(response) = one_shot_status(faults) {
        return response;
    }

    for fault in faults.iter() {
        match fault {
            Fault::RedirectTo { location } => return redirect(location),
            Fault::RedirectLoop => {
                let hop = req.uri().query().and_then(|q| q.parse::<u64>().ok()).unwrap_or(0);
                return redirect(&format!("{path}?{}", hop + 1));
            }
            Fault::RefuseHead { status } if is_head => return empty(status_code(*status)),
            Fault::StatusUntil { status, until } if std::time::Instant::now() < *until => {
                return empty(status_code(*status))
            }
            _ => {}
        }
    }

    let Some(resource) = state.resources.get(path).cloned() else {
        return empty(StatusCode::NOT_FOUND);
    };
    let ignore_range = faults.iter().any(|f| matches!(f, Fault::IgnoreRange));
    let ignore_if_range = faults.iter().any(|f| matches!(f, Fault::IgnoreIfRange));
    let len = resource.body.len() as u64;
    let mut range = match req.headers().get(RANGE).and_then(|v| v.to_str().ok()) {
        Some(_) if ignore_range => RangeAnswer::Full,
        Some(_) if !ignore_if_range && !if_range_matches(req.headers().get(IF_RANGE), &resource) => RangeAnswer::Full,
        Some(header) => parse_range(header, len),
        None => RangeAnswer::Full,
    };
    let wrong_range = faults.iter().any(|f| matches!(f, Fault::WrongContentRange));
    if let (true, RangeAnswer::Part { first, last }) = (wrong_range, &range) {
        if *first > 0 {
            range = RangeAnswer::Part {
                first: first - 1,
                last: *last,
            };
        }
    }
    let unknown_total = faults.iter().any(|f| matches!(f, Fault::UnknownCompleteLength));

    let mut response = Response::new(ServeBody::empty());
    let headers = response.headers_mut();
    headers.insert(ETAG, header_value(&resource.etag));
    headers.insert(LAST_MODIFIED, header_value(&resource.last_modified));
    headers.insert(
        ACCEPT_RANGES,
        HeaderValue::from_static(if ignore_range { "none" } else { "bytes" }),
    );
    let (first, last) = match range {
        RangeAnswer::Unsatisfiable => {
            *response.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
            let headers = response.headers_mut();
            headers.insert(CONTENT_RANGE, header_value(&format!("bytes */{len}")));
            headers.insert(CONTENT_LENGTH, HeaderValue::from(0));
            return response;
        }
        RangeAnswer::Full => (0, len),
        RangeAnswer::Part { first, last } => {
            *response.status_mut() = StatusCode::PARTIAL_CONTENT;
            let total = if unknown_total { "*".to_owned() } else { len.to_string() };
            let range = format!("bytes {first}-{last}/{total}");
            response.headers_mut().insert(CONTENT_RANGE, header_value(&range));
            (first, last + 1)
        }
    };
    let headers = response.headers_mut();
    let content_type = faults.iter().find_map(|f| match f {
        Fault::ContentType { value } => Some(value.clone()),
        _ => None,
    });
    match content_type {
        None => {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
        }
        Some(Some(value)) => {
            headers.insert(CONTENT_TYPE, header_value(&value));
        }
        Some(None) => {}
    }
    headers.insert(CONTENT_LENGTH, HeaderValue::from(last - first));
    if is_head {
        return response;
    }

    let data = resource.body.slice(first as usize..last as usize);
    let mut body = ServeBody::new(data, counters.to_vec()).in_flight(BodyInFlight::new(&shared.bodies));
    let mut cut = None;
    faults.retain_mut(|fault| match fault {
        Fault::ChangeAfter { after_gets } => {
            *after_gets = after_gets.saturating_sub(1);
            true
        }
        Fault::Truncate { after, times } if cut.is_none() && *times > 0 => {
            cut = Some(*after);
            *times -= 1;
            *times > 0
        }
        _ => true,
    });
    if let Some(after) = cut {
        body = body.cut_after(after);
    }
    if let Some((chunk, delay_ms)) = faults.iter().find_map(|f| match f {
        Fault::Throttle { chunk, delay_ms } => Some((*chunk, *delay_ms)),
        _ => None,
    }) {
        body = body.throttle(chunk, Duration::from_millis(delay_ms));
    }
    if let Some(ms) = faults.iter().find_map(|f| match f {
        Fault::HoldBody { ms } => Some(*ms),
        _ => None,
    }) {
        body = body.hold(Duration::from_millis(ms));
    }
    *response.body_mut() = body;
    response
}

/// Uses up the first pending `Status` / `RetryAfter*` fault, if any.
fn one_shot_status(faults: &mut Vec<Fault>) -> Option<Response<ServeBody>> {
    let i = faults.iter().position(|f| {
        matches!(
            f,
            Fault::Status { .. } | Fault::RetryAfterSecs { .. } | Fault::RetryAfterDate { .. }
        )
    })?;
    let (status, retry_after, times) = match &mut faults[i] {
        Fault::Status { status, times } => (*status, None, times),
        Fault::RetryAfterSecs { status, secs, times } => (*status, Some(secs.to_string()), times),
        Fault::RetryAfterDate { status, secs, times } => {
            let date = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(*secs));
            (*status, Some(date), times)
        }
        _ => unreachable!("position matched a one-shot fault"),
    };
    let used_up = *times <= 1;
    let pending = *times > 0;
    if used_up {
        faults.remove(i);
    } else {
        *times -= 1;
    }
    if !pending {
        return one_shot_status(faults);
    }
    let mut response = empty(status_code(status));
    if let Some(value) = retry_after {
        response.headers_mut().insert(RETRY_AFTER, header_value(&value));
    }
    Some(response)
}

/// What to send for a `Range` header.
#[derive(Debug, PartialEq, Eq)]
enum RangeAnswer {
    /// 200 with everything (no usable range).
    Full,
    /// 206 with bytes `first..=last`.
    Part { first: u64, last: u64 },
    /// 416.
    Unsatisfiable,
}

/// Parses a single `bytes=` range against a resource of `len` bytes
/// (RFC 9110 §14.1.2); anything else is ignored, as RFC 9110 allows.
fn parse_range(header: &str, len: u64) -> RangeAnswer {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return RangeAnswer::Full;
    };
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeAnswer::Full;
    };
    let parse = |s: &str| s.trim().parse::<u64>().ok();
    match (
        first.trim().is_empty(),
        parse(first),
        last.trim().is_empty(),
        parse(last),
    ) {
        // bytes=-SUFFIX
        (true, _, false, Some(suffix)) if suffix == 0 || len == 0 => RangeAnswer::Unsatisfiable,
        (true, _, false, Some(suffix)) => RangeAnswer::Part {
            first: len.saturating_sub(suffix),
            last: len - 1,
        },
        (false, Some(first), true, _) if first >= len => RangeAnswer::Unsatisfiable,
        (false, Some(first), true, _) => RangeAnswer::Part { first, last: len - 1 },
        (false, Some(first), false, Some(last)) if last < first => RangeAnswer::Full,
        (false, Some(first), false, Some(_)) if first >= len => RangeAnswer::Unsatisfiable,
        (false, Some(first), false, Some(last)) => RangeAnswer::Part {
            first,
            last: last.min(len - 1),
        },
        _ => RangeAnswer::Full,
    }
}

/// Whether `If-Range` (absent, the current strong ETag, or the current
/// Last-Modified) lets the range through.
fn if_range_matches(if_range: Option<&HeaderValue>, resource: &Resource) -> bool {
    match if_range.map(|v| v.to_str().map(str::trim)) {
        None => true,
        Some(Ok(value)) => value == resource.etag || value == resource.last_modified,
        Some(Err(_)) => false,
    }
}

fn empty(status: StatusCode) -> Response<ServeBody> {
    let mut response = Response::new(ServeBody::empty());
    *response.status_mut() = status;
    response
}

fn redirect(location: &str) -> Response<ServeBody> {
    let mut response = empty(StatusCode::FOUND);
    response.headers_mut().insert(LOCATION, header_value(location));
    response
}

fn status_code(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn header_value(value: &str) -> HeaderValue {
    HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

#[cfg(test)]
mod tests {
    use super::{parse_range, RangeAnswer};

    #[test]
    fn ranges() {
        use RangeAnswer::*;
        assert_eq!(parse_range("bytes=10-", 100), Part { first: 10, last: 99 });
        assert_eq!(parse_range("bytes=10-19", 100), Part { first: 10, last: 19 });
        assert_eq!(parse_range("bytes=10-500", 100), Part { first: 10, last: 99 });
        assert_eq!(parse_range("bytes=-30", 100), Part { first: 70, last: 99 });
        assert_eq!(parse_range("bytes=-300", 100), Part { first: 0, last: 99 });
        assert_eq!(parse_range("bytes=100-", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=20-10", 100), Full);
        assert_eq!(parse_range("bytes=1-2,5-6", 100), Full);
        assert_eq!(parse_range("items=1-", 100), Full);
    }
}
