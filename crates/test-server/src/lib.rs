#![doc = include_str!("../README.md")]

mod body;
mod content;
mod fault;
mod serve;
mod state;
mod tls;

use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_rustls::TlsAcceptor;

pub use content::content;
pub use fault::Fault;
pub use state::{PathStats, Stats};
pub use tls::{ServerCert, TestCa, Validity};

use state::Shared;

/// An HTTP/1.1 server on `127.0.0.1` and an ephemeral port, plain or over
/// TLS; dropping it stops the server.
pub struct TestServer {
    addr: SocketAddr,
    scheme: &'static str,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for TestServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl TestServer {
    /// Starts on a runtime of its own in a background thread (usable from sync tests and from inside tokio).
    ///
    /// # Panics
    ///
    /// When no port can be bound or no thread started.
    pub fn start() -> TestServer {
        Self::spawn(None)
    }

    /// Starts like [`TestServer::start`], serving HTTPS with `cert`.
    ///
    /// # Panics
    ///
    /// As [`TestServer::start`].
    pub fn start_tls(cert: &ServerCert) -> TestServer {
        Self::spawn(Some(tls::acceptor(cert)))
    }

    fn spawn(tls: Option<TlsAcceptor>) -> TestServer {
        let scheme = if tls.is_some() { "https" } else { "http" };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the test server to 127.0.0.1");
        listener.set_nonblocking(true).expect("make the listener non-blocking");
        let addr = listener.local_addr().expect("local address of the test server");
        let shared = Arc::new(Shared::default());
        let (shutdown, stop) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(format!("test-server-{}", addr.port()))
            .spawn({
                let shared = shared.clone();
                move || {
                    let runtime = tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(2)
                        .enable_all()
                        .build()
                        .expect("test server runtime");
                    runtime.block_on(accept_loop(listener, tls, shared, stop));
                    runtime.shutdown_timeout(Duration::from_secs(1));
                }
            })
            .expect("start the test server thread");
        TestServer {
            addr,
            scheme,
            shared,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// "http://127.0.0.1:PORT" (https for a TLS server) + path (path starts
    /// with '/').
    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.addr)
    }

    /// The headers of the last request for `path` (names in lowercase, in
    /// the order sent); `None` before any.
    pub fn last_request_headers(&self, path: &str) -> Option<Vec<(String, String)>> {
        self.shared.last_headers(path)
    }

    /// Registers (or replaces) content at `path`; ETag is a strong etag derived from the content hash, Last-Modified fixed.
    ///
    /// The first bytes a path holds get the same ETag and Last-Modified on
    /// every server; re-adding the bytes a path holds changes nothing, other
    /// bytes get new validators (like [`TestServer::replace`]).
    pub fn add(&self, path: &str, body: impl Into<Bytes>) {
        self.shared.content().add(path, body.into());
    }

    /// Adds a fault to `path` (faults stack; `clear_faults` removes them).
    pub fn fault(&self, path: &str, fault: Fault) {
        self.shared
            .content()
            .faults
            .entry(path.to_owned())
            .or_default()
            .push(fault);
    }

    /// Removes every fault of `path`.
    pub fn clear_faults(&self, path: &str) {
        self.shared.content().faults.remove(path);
    }

    /// Replaces the body at `path` and changes its ETag/Last-Modified (resource changed).
    ///
    /// The validators change even when the bytes do not.
    pub fn replace(&self, path: &str, body: impl Into<Bytes>) {
        self.shared.content().install(path, body.into());
    }

    /// The bytes `path` serves now (after any [`Fault::ChangeAfter`]).
    pub fn current(&self, path: &str) -> Option<Bytes> {
        self.shared.content().resources.get(path).map(|r| r.body.clone())
    }

    /// A snapshot of the server-wide counters.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// A snapshot of the counters of `path` (query strings are not part of
    /// the path); zeros for a path never requested.
    pub fn path_stats(&self, path: &str) -> PathStats {
        self.shared.path_stats(path)
    }

    /// When each request (any method, any path, faulted ones included)
    /// arrived since start or [`TestServer::reset_stats`], in order.
    pub fn request_times(&self) -> Vec<std::time::Instant> {
        self.shared.arrivals()
    }

    /// Sets every counter back to zero (and forgets the request times).
    pub fn reset_stats(&self) {
        self.shared.reset_stats();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Accepts connections (counting them; TLS handshakes with `tls`) until
/// `stop` fires.
async fn accept_loop(
    listener: std::net::TcpListener,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    mut stop: oneshot::Receiver<()>,
) {
    let listener = TcpListener::from_std(listener).expect("register the listener with tokio");
    loop {
        tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    shared.count_connection();
                    let _ = stream.set_nodelay(true);
                    let shared = shared.clone();
                    match tls.clone() {
                        None => drop(tokio::spawn(serve_connection(stream, shared))),
                        Some(tls) => drop(tokio::spawn(async move {
                            // A client that refuses the certificate ends here.
                            if let Ok(stream) = tls.accept(stream).await {
                                serve_connection(stream, shared).await;
                            }
                        })),
                    }
                }
                // Out of file descriptors, say: let connections drain.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
        }
    }
}

/// Serves one keep-alive connection.
async fn serve_connection<S>(stream: S, shared: Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let response = serve::respond(&shared, &req);
        async move { Ok::<_, Infallible>(response) }
    });
    // Errors here are the client's business (it hung up) or a Truncate fault.
    let _ = http1::Builder::new()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service)
        .await;
}
