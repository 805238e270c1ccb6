//! Each host's `robots.txt`, fetched once per run (SPEC §8, `--robots
//! respect`): jobs of a host wait for the one request and share its answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use tokio::sync::OnceCell;

use crate::fetch::{FetchError, Fetcher, GetRequest, GetResponse};
use crate::robots::{Robots, Verdict, MAX_ROBOTS_BYTES, PRODUCT_TOKEN};

/// What a host's `robots.txt` request gave.
#[derive(Debug)]
enum Answer {
    /// Rules (a 4xx answer counts as a file with none).
    Rules(Robots),
    /// No usable answer (5xx, 408, 429, a network error): the host is
    /// treated as disallowing everything for the run.
    Unreachable(String),
}

/// Whether a job may be fetched under its host's `robots.txt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Permit {
    /// Go ahead.
    Allowed,
    /// A rule forbids it: fail the job for good.
    Disallowed(String),
    /// The host's `robots.txt` could not be read: fail the job, retryable,
    /// so that a later run asks again.
    Unreachable(String),
}

/// The run's `robots.txt` answers, by origin.
#[derive(Debug, Default)]
pub(crate) struct RobotsCache {
    hosts: Mutex<HashMap<String, Arc<OnceCell<Answer>>>>,
}

impl RobotsCache {
    /// Whether `url` may be fetched: fetches its origin's `robots.txt`
    /// through `fetcher` on the first call for that origin (concurrent
    /// callers wait for that one request).
    pub(crate) async fn check(&self, fetcher: &dyn Fetcher, url: &str) -> Permit {
        let Ok(parsed) = url::Url::parse(url) else {
            return Permit::Allowed;
        };
        let origin = parsed.origin().ascii_serialization();
        let robots_url = format!("{origin}/robots.txt");
        let mut path = parsed.path().to_owned();
        if let Some(query) = parsed.query() {
            path.push('?');
            path.push_str(query);
        }
        let cell = {
            let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(hosts.entry(origin).or_default())
        };
        match cell.get_or_init(|| fetch(fetcher, &robots_url)).await {
            Answer::Rules(robots) => match robots.check(PRODUCT_TOKEN, &path) {
                Verdict::Allowed => Permit::Allowed,
                Verdict::Disallowed { rule, agent } => {
                    Permit::Disallowed(format!("disallowed by {robots_url}: \"{rule}\" for user-agent {agent}"))
                }
            },
            Answer::Unreachable(why) => Permit::Unreachable(format!(
                "{robots_url} could not be read ({why}): the host is treated as disallowing everything for this run"
            )),
        }
    }
}

/// GETs `robots_url` and reads at most [`MAX_ROBOTS_BYTES`] of it.
async fn fetch(fetcher: &dyn Fetcher, robots_url: &str) -> Answer {
    tracing::debug!(url = %robots_url, "fetching robots.txt");
    let request = GetRequest {
        url: robots_url.to_owned(),
        range_start: 0,
        range_end: None,
        if_range: None,
        // The run's own headers (`--header`, the user agent) only: a host
        // policy's headers are for its artifacts.
        headers: Vec::new(),
    };
    let mut body = match fetcher.get(&request).await {
        Ok(GetResponse::Body { body, .. }) => body,
        Ok(other) => return Answer::Unreachable(format!("unexpected answer {other:?}")),
        Err(err) if unavailable(&err) => return Answer::Rules(Robots::allow_all()),
        Err(err) => return Answer::Unreachable(err.message),
    };
    let mut bytes = Vec::new();
    while bytes.len() < MAX_ROBOTS_BYTES {
        match body.next().await {
            Some(Ok(chunk)) => bytes.extend_from_slice(&chunk),
            Some(Err(err)) => return Answer::Unreachable(err.message),
            None => break,
        }
    }
    bytes.truncate(MAX_ROBOTS_BYTES);
    Answer::Rules(Robots::parse(&String::from_utf8_lossy(&bytes)))
}

/// A 4xx other than 408 and 429: "unavailable" (RFC 9309 §2.3.1.3), so
/// every path is allowed.
fn unavailable(err: &FetchError) -> bool {
    matches!(err.status, Some(s) if (400..500).contains(&s) && s != 408 && s != 429)
}
