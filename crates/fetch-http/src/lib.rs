#![doc = include_str!("../README.md")]

mod body;
mod classify;
mod client;
mod range;
mod redirect;
mod retry_after;
mod speed;
mod trust;

use std::sync::Arc;

use async_trait::async_trait;
use oncefetch_core::{BoxError, FetchError, Fetcher, FetcherConfig, GetRequest, GetResponse, ResourceMeta};
use reqwest::header::{HeaderValue, CONTENT_RANGE, IF_RANGE, RANGE};
use reqwest::{RequestBuilder, Response, StatusCode};

pub use client::BuildError;

/// The parsers of outside input and the answer classification, public for the
/// fuzz targets (`fuzz/`) and the property tests only: not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    use std::time::{Duration, SystemTime};

    use oncefetch_core::{FetchError, ResourceMeta};
    use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
    use reqwest::StatusCode;

    pub use crate::range::{parse as content_range, ContentRange};

    /// `Retry-After` as the fetcher reads it, judged against `now`.
    pub fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
        crate::retry_after::parse(value, now)
    }

    /// The headers of `raw` that are valid HTTP (the others dropped, as a
    /// client never sees them).
    pub fn header_map(raw: &[(String, Vec<u8>)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in raw {
            if let (Ok(name), Ok(value)) = (HeaderName::try_from(name.as_str()), HeaderValue::from_bytes(value)) {
                headers.append(name, value);
            }
        }
        headers
    }

    /// How an answer of `status` with `headers` to a request of `url` (that
    /// ended at `final_url`) is classified when it is no usable body: its
    /// error; `None` when the status or a URL is not valid.
    pub fn classify(status: u16, headers: &HeaderMap, url: &str, final_url: &str) -> Option<FetchError> {
        let status = StatusCode::from_u16(status).ok()?;
        let final_url = reqwest::Url::parse(final_url).ok()?;
        Some(crate::classify::answer_error(status, headers, url, &final_url))
    }

    /// The `Content-Length` and strong `ETag` the fetcher reads from `headers`.
    pub fn length_and_etag(headers: &HeaderMap) -> (Option<u64>, Option<String>) {
        (
            crate::classify::content_length(headers),
            crate::classify::strong_etag(headers),
        )
    }

    /// Whether `meta` passes the size cap `max_size`.
    pub fn within_size(meta: &ResourceMeta, max_size: u64) -> bool {
        crate::classify::check_size(meta, max_size, &meta.final_url).is_ok()
    }
}

use range::ContentRange;

/// Fetches `http` and `https` URLs (SPEC §8); one pooled client per fetcher.
#[derive(Debug, Clone)]
pub struct HttpFetcher {
    client: reqwest::Client,
    config: FetcherConfig,
}

impl HttpFetcher {
    /// Builds the client `config` describes.
    pub fn new(config: &FetcherConfig) -> Result<Self, BuildError> {
        Ok(Self {
            client: client::build(config)?,
            config: config.clone(),
        })
    }

    /// The settings this fetcher was built with.
    pub fn config(&self) -> &FetcherConfig {
        &self.config
    }

    /// The metadata of `response` ([`classify::meta`]), marked insecure when
    /// certificates go unchecked.
    fn meta(&self, response: &Response, content_length: Option<u64>) -> ResourceMeta {
        ResourceMeta {
            insecure: self.config.insecure,
            ..classify::meta(response, content_length)
        }
    }

    /// Sends `request` (for `url`); a failure names the redirect target it
    /// happened at, when there was one.
    async fn send(&self, request: RequestBuilder, url: &str) -> Result<Response, FetchError> {
        let (result, followed) = redirect::tracked(request.send()).await;
        result.map_err(|error| classify::request_error(&error, url, followed.as_ref()))
    }
}

/// The registry's constructor ([`oncefetch_core::FetcherFactory::open`]).
pub fn open(config: &FetcherConfig) -> Result<Arc<dyn Fetcher>, BoxError> {
    Ok(Arc::new(HttpFetcher::new(config)?))
}

oncefetch_core::inventory::submit! {
    oncefetch_core::FetcherFactory::new("http", &["http", "https"], open)
}

#[async_trait]
impl Fetcher for HttpFetcher {
    async fn get(&self, request: &GetRequest) -> Result<GetResponse, FetchError> {
        let url = request.url.as_str();
        // The request's own headers replace the client's defaults (the
        // configured headers and `User-Agent`) of the same name. `Range` and
        // `If-Range` are the fetcher's alone: any the request carries are
        // dropped, then set from `range_start`, `range_end` and `if_range`.
        let mut headers = client::headers(&request.headers)
            .map_err(|error| FetchError::permanent(format!("{error} (for {})", classify::shown(url))))?;
        headers.remove(RANGE);
        headers.remove(IF_RANGE);
        let range = match request.range_end {
            Some(last) => Some(format!("bytes={}-{last}", request.range_start)),
            None if request.range_start > 0 => Some(format!("bytes={}-", request.range_start)),
            None => None,
        };
        if let Some(range) = range {
            let range = HeaderValue::from_str(&range).expect("a byte range is a valid header value");
            headers.insert(RANGE, range);
            if let Some(validator) = &request.if_range {
                let validator = HeaderValue::from_str(validator).map_err(|_| {
                    FetchError::permanent(format!(
                        "the If-Range validator for {} cannot be sent",
                        classify::shown(url)
                    ))
                })?;
                headers.insert(IF_RANGE, validator);
            }
        }
        let builder = self.client.get(url).headers(headers);
        let response = self.send(builder, url).await?;
        let status = response.status();
        let announced = classify::content_length(response.headers());
        let content_range = classify::header_str(response.headers(), &CONTENT_RANGE).map(range::parse);

        if status == StatusCode::RANGE_NOT_SATISFIABLE {
            let complete_len = match content_range {
                Some(Some(ContentRange::Unsatisfied { complete })) => Some(complete),
                _ => None,
            };
            let meta = self.meta(&response, complete_len);
            return Ok(GetResponse::RangeNotSatisfiable { meta, complete_len });
        }
        if status == StatusCode::PARTIAL_CONTENT {
            // Reported as it came; the pipeline decides whether the body may
            // extend its partial file (the `Fetcher` contract).
            let Some(Some(ContentRange::Bytes { first, last, complete })) = content_range else {
                let meta = self.meta(&response, None);
                let reason = format!("206 without a usable Content-Range from {url}");
                return Ok(GetResponse::UnusableRange { meta, reason });
            };
            let part_len = last - first + 1;
            let meta = self.meta(&response, complete);
            classify::check_size(&meta, self.config.max_size, url)?;
            let body = body::checked(response, url, announced.or(Some(part_len)), first, &self.config);
            return Ok(GetResponse::Body {
                meta,
                start: first,
                body,
            });
        }
        if status.is_success() {
            // The whole resource: no range asked, Range ignored, or If-Range failed.
            let meta = self.meta(&response, announced);
            classify::check_size(&meta, self.config.max_size, url)?;
            let body = body::checked(response, url, announced, 0, &self.config);
            return Ok(GetResponse::Body { meta, start: 0, body });
        }
        Err(classify::status_error(&response, url))
    }
}
