//! The watch server (SPEC §11): Prometheus text at `/metrics` while a run
//! lasts (`run --metrics-addr`), and the read-only status pages and JSON API
//! over the ledger (`serve`, and `run --metrics-addr` too).
//!
//! It binds loopback unless told otherwise; any other address needs an
//! access token ([`check_bind`]), which every request must then carry
//! ([`auth`]).

mod auth;
mod html;
mod metrics;
mod report;
mod run_watch;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use oncefetch_core::{JobPages, JobQuery, JobState, OpQuery, Store, StoreError};
use serde_json::json;
use tokio::net::TcpListener;

use crate::output::{job_json, op_json};

pub(crate) use auth::check_bind;
pub(crate) use metrics::Exporter;
pub(crate) use run_watch::RunWatch;

/// An answer of the server.
pub(crate) type Answer = Response<Full<Bytes>>;

/// What the server serves from.
#[derive(Debug)]
pub(crate) struct Site {
    /// The ledger the pages read.
    pub(crate) store: Arc<dyn Store>,
    /// The run's metrics (`run --metrics-addr`); `None` for `serve`.
    pub(crate) exporter: Option<Exporter>,
    /// The token every request must carry, when one is set.
    pub(crate) token: Option<String>,
    /// Attempts per job, as given to `run` (judges FAILED jobs final).
    pub(crate) max_attempts: u32,
    /// Seconds between two refreshes of a page.
    pub(crate) refresh: u64,
    /// The ledger, as the pages name it (credentials redacted).
    pub(crate) source: String,
}

/// A running server; stops when dropped.
#[derive(Debug)]
pub(crate) struct Server {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Binds `addr` (checked with [`check_bind`] by the caller) and serves
    /// `site` until dropped.
    pub(crate) async fn start(addr: SocketAddr, site: Site) -> anyhow::Result<Server> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let addr = listener.local_addr().context("the address listened on")?;
        let task = tokio::spawn(accept(listener, Arc::new(site)));
        Ok(Server { addr, task })
    }

    /// The address listened on (its port chosen when `:0` was asked).
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until the task ends (it never does by itself).
    pub(crate) async fn wait(self) {
        let _ = (&mut { self }.task).await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Seconds between two refreshes of a page, by default.
pub(crate) const REFRESH_SECS: u64 = 5;

/// Longest silence on a connection before its headers are in.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

async fn accept(listener: TcpListener, site: Arc<Site>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors, say: let connections drain.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let site = Arc::clone(&site);
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let site = Arc::clone(&site);
                async move { Ok::<_, Infallible>(respond(&site, req).await) }
            });
            // A client that hangs up is its own business.
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// One answer: the token checked, then the route.
async fn respond(site: &Site, req: Request<hyper::body::Incoming>) -> Answer {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD are served\n");
    }
    let Some(granted) = auth::check(site.token.as_deref(), &req) else {
        return auth::refused();
    };
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let mut answer = route(site, &path, &query).await;
    if let Some(cookie) = granted.set_cookie {
        if let Ok(value) = cookie.parse() {
            answer.headers_mut().insert(hyper::header::SET_COOKIE, value);
        }
    }
    answer
}

/// Jobs a page lists by default, and at most.
const JOBS_PAGE: usize = 100;
const JOBS_PAGE_MAX: usize = 1000;

async fn route(site: &Site, path: &str, query: &str) -> Answer {
    let answer = match path {
        "/metrics" => match &site.exporter {
            Some(exporter) => exporter
                .render(site.store.as_ref())
                .await
                .map(|body| with_type(StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", body)),
            None => Ok(text(
                StatusCode::NOT_FOUND,
                "no metrics here: `run --metrics-addr` serves them\n",
            )),
        },
        "/assets/watch.css" => Ok(with_type(StatusCode::OK, "text/css; charset=utf-8", CSS)),
        "/assets/watch.js" => Ok(with_type(StatusCode::OK, "text/javascript; charset=utf-8", JS)),
        "/" => report::Report::read(site.store.as_ref(), site.max_attempts)
            .await
            .map(|r| html_page("oncefetch status", site.refresh, &html::status_main(&r, &site.source))),
        "/api/status" => report::Report::read(site.store.as_ref(), site.max_attempts)
            .await
            .map(|r| json_answer(&r.status_json())),
        "/api/hosts" => report::Report::read(site.store.as_ref(), site.max_attempts)
            .await
            .map(|r| json_answer(&r.hosts_json())),
        "/jobs" | "/api/jobs" => jobs(site, path == "/api/jobs", query).await,
        _ => match path.strip_prefix("/job/").or_else(|| path.strip_prefix("/api/job/")) {
            Some(key) if !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric()) => {
                job(site, path.starts_with("/api/"), key).await
            }
            _ => Ok(text(StatusCode::NOT_FOUND, "not found\n")),
        },
    };
    answer.unwrap_or_else(|err| {
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("cannot read the ledger: {err:#}\n"),
        )
    })
}

const CSS: &str = include_str!("assets/watch.css");
const JS: &str = include_str!("assets/watch.js");

/// The value of query parameter `name`.
fn param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// `/jobs` and `/api/jobs`: `?state=S&after=KEY&limit=N`, in job-key order.
async fn jobs(site: &Site, api: bool, query: &str) -> anyhow::Result<Answer> {
    let state = match param(query, "state").filter(|s| !s.is_empty()) {
        Some(name) => match name.parse::<JobState>() {
            Ok(state) => Some(state),
            Err(_) => return Ok(text(StatusCode::BAD_REQUEST, &format!("unknown state {name:?}\n"))),
        },
        None => None,
    };
    let limit = match param(query, "limit").map(str::parse::<usize>) {
        None => JOBS_PAGE,
        Some(Ok(n)) if (1..=JOBS_PAGE_MAX).contains(&n) => n,
        Some(_) => {
            return Ok(text(
                StatusCode::BAD_REQUEST,
                &format!("limit must be 1 to {JOBS_PAGE_MAX}\n"),
            ))
        }
    };
    let after = param(query, "after").filter(|a| a.bytes().all(|b| b.is_ascii_alphanumeric()));
    let query = JobQuery {
        state,
        canonical_url: None,
        after: after.map(str::to_owned),
        limit,
    };
    let mut pages = JobPages::new(site.store.as_ref(), query);
    let found = pages.next().await?.unwrap_or_default();
    let now = site.store.now().await?;
    // The page's own link to the next: the cursor past its last job.
    let next = pages.next_query().and_then(|next| next.after.clone());
    Ok(if api {
        json_answer(&json!({
            "jobs": found.iter().map(|j| job_json(j, now)).collect::<Vec<_>>(),
            "next": next,
        }))
    } else {
        html_page(
            "oncefetch jobs",
            site.refresh,
            &html::jobs_main(state, &found, next.as_deref(), now),
        )
    })
}

/// `/job/KEY` and `/api/job/KEY`: the job and its ledger trail.
async fn job(site: &Site, api: bool, key: &str) -> anyhow::Result<Answer> {
    let job = match site.store.job(key).await {
        Ok(job) => job,
        Err(StoreError::NotFound(_)) => return Ok(text(StatusCode::NOT_FOUND, &format!("no job {key}\n"))),
        Err(err) => return Err(err.into()),
    };
    let ops = site
        .store
        .ops(&OpQuery {
            job_key: Some(job.job_key.clone()),
            after_seq: None,
            limit: 0,
        })
        .await?;
    let now = site.store.now().await?;
    Ok(if api {
        json_answer(&json!({
            "job": job_json(&job, now),
            "ledger": ops.iter().map(op_json).collect::<Vec<_>>(),
        }))
    } else {
        html_page("oncefetch job", site.refresh, &html::job_main(&job, &ops, now))
    })
}

fn html_page(title: &str, refresh: u64, main: &str) -> Answer {
    with_type(
        StatusCode::OK,
        "text/html; charset=utf-8",
        html::page(title, refresh, main),
    )
}

fn json_answer(value: &serde_json::Value) -> Answer {
    with_type(StatusCode::OK, "application/json", format!("{value}\n"))
}

/// An answer of `content_type` with `body`.
pub(crate) fn with_type(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Answer {
    let mut answer = Response::new(Full::new(body.into()));
    *answer.status_mut() = status;
    answer.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    answer.headers_mut().insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-store"),
    );
    answer
}

/// A plain-text answer.
pub(crate) fn text(status: StatusCode, body: &str) -> Answer {
    with_type(status, "text/plain; charset=utf-8", body.to_owned())
}
