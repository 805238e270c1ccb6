//! The watch server (SPEC §11): Prometheus text at `/metrics` while a run
//! lasts (`run --metrics-addr`), and the read-only status pages and JSON API
//! over the ledger (`serve`, and `run --metrics-addr` too).
//!
//! It binds loopback unless told otherwise; any other address needs an
//! access token ([`check_bind`]), which every request must then carry
//! ([`auth`]).

mod auth;
mod metrics;
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
use oncefetch_core::Store;
use tokio::net::TcpListener;

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
    let granted = match auth::check(site.token.as_deref(), &req) {
        Ok(granted) => granted,
        Err(refused) => return refused,
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

async fn route(site: &Site, path: &str, _query: &str) -> Answer {
    match path {
        "/metrics" => match &site.exporter {
            Some(exporter) => match exporter.render(site.store.as_ref()).await {
                Ok(body) => with_type(StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", body),
                Err(err) => text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!("cannot read the ledger: {err}\n"),
                ),
            },
            None => text(
                StatusCode::NOT_FOUND,
                "no metrics here: `run --metrics-addr` serves them\n",
            ),
        },
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
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
