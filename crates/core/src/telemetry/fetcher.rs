//! [`MeteredFetcher`]: a [`Fetcher`] that counts requests by status class
//! and outcome, body bytes, resumes by outcome, the time to the first byte
//! and of each download, and the requests in flight per host.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use futures::StreamExt;

use crate::fetch::{FailureKind, FetchError, Fetcher, GetRequest, GetResponse, ResourceMeta};

use super::{names, status_class, HostLabels};

/// Wraps a fetcher; every call goes through to it unchanged.
#[derive(Debug)]
pub struct MeteredFetcher {
    inner: Arc<dyn Fetcher>,
    hosts: HostLabels,
}

impl MeteredFetcher {
    /// Counts the requests of `inner`, labelling hosts with `hosts`.
    pub fn new(inner: Arc<dyn Fetcher>, hosts: HostLabels) -> Self {
        Self { inner, hosts }
    }
}

/// Counts one answered (or failed) request.
fn request(status: Option<u16>, outcome: &'static str) {
    metrics::counter!(names::REQUESTS, "class" => status_class(status), "outcome" => outcome).increment(1);
}

fn failed(err: &FetchError) {
    let outcome = match err.kind {
        FailureKind::Transient => "transient",
        FailureKind::Permanent => "permanent",
    };
    request(err.status, outcome);
}

/// How a GET that asked to resume at `request.range_start` was answered:
/// the range honoured, ignored (a whole body), or the version changed (a
/// whole body whose validator is not the one sent in `If-Range`).
fn resume_outcome(request: &GetRequest, start: u64, meta: &ResourceMeta) -> &'static str {
    if start == request.range_start {
        "range_ok"
    } else if request
        .if_range
        .as_deref()
        .is_some_and(|sent| meta.validator().is_some_and(|now| now != sent))
    {
        "validator_changed"
    } else {
        "range_ignored"
    }
}

/// Decrements a host's in-flight gauge when dropped (the body ended, failed
/// or was dropped).
struct InFlight {
    host: String,
    started: Instant,
}

impl InFlight {
    fn start(host: String) -> Self {
        metrics::gauge!(names::HOST_IN_FLIGHT, "host" => host.clone()).increment(1.0);
        Self {
            host,
            started: Instant::now(),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!(names::HOST_IN_FLIGHT, "host" => self.host.clone()).decrement(1.0);
        metrics::histogram!(names::DOWNLOAD_DURATION).record(self.started.elapsed().as_secs_f64());
    }
}

#[async_trait]
impl Fetcher for MeteredFetcher {
    async fn get(&self, get: &GetRequest) -> Result<GetResponse, FetchError> {
        let flight = InFlight::start(self.hosts.label(&get.url));
        let result = self.inner.get(get).await;
        metrics::histogram!(names::TIME_TO_FIRST_BYTE).record(flight.started.elapsed().as_secs_f64());
        match result {
            Err(err) => {
                failed(&err);
                Err(err)
            }
            Ok(GetResponse::Body { meta, start, body }) => {
                request(Some(meta.status), "ok");
                if get.range_start > 0 {
                    let outcome = resume_outcome(get, start, &meta);
                    metrics::counter!(names::RESUMES, "outcome" => outcome).increment(1);
                }
                let body = body
                    .inspect(move |chunk| {
                        let _held = &flight;
                        if let Ok(bytes) = chunk {
                            metrics::counter!(names::RECEIVED_BYTES).increment(bytes.len() as u64);
                        }
                    })
                    .boxed();
                Ok(GetResponse::Body { meta, start, body })
            }
            Ok(other) => {
                let meta = match &other {
                    GetResponse::RangeNotSatisfiable { meta, .. } | GetResponse::UnusableRange { meta, .. } => meta,
                    GetResponse::Body { meta, .. } => meta,
                };
                request(Some(meta.status), "ok");
                Ok(other)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(range_start: u64, if_range: Option<&str>) -> GetRequest {
        GetRequest {
            url: "http://h/a".into(),
            range_start,
            range_end: None,
            if_range: if_range.map(str::to_owned),
            headers: Vec::new(),
        }
    }

    #[test]
    fn resumes_are_told_apart() {
        let meta = |etag: &str| ResourceMeta {
            status: 200,
            etag: Some(etag.into()),
            ..ResourceMeta::default()
        };
        assert_eq!(resume_outcome(&get(10, Some("\"a\"")), 10, &meta("\"a\"")), "range_ok");
        assert_eq!(
            resume_outcome(&get(10, Some("\"a\"")), 0, &meta("\"b\"")),
            "validator_changed"
        );
        assert_eq!(
            resume_outcome(&get(10, Some("\"a\"")), 0, &meta("\"a\"")),
            "range_ignored"
        );
        assert_eq!(resume_outcome(&get(10, None), 0, &meta("\"a\"")), "range_ignored");
    }
}
