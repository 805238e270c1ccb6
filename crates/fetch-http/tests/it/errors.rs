use std::net::TcpListener;
use std::time::Duration;

use oncefetch_core::{FailureKind, FetchError, Fetcher, FetcherConfig, GetResponse};
use oncefetch_test_server::{content, Fault, TestServer};

use crate::support::{collect, fetcher, fetcher_with, whole};

/// The error of a GET.
async fn fail(server: &TestServer, path: &str) -> FetchError {
    fetcher().get(&whole(&server.url(path))).await.unwrap_err()
}

#[tokio::test]
async fn server_errors_408_and_429_are_transient() {
    let server = TestServer::start();
    server.add("/a", "x");
    for status in [500, 503, 502, 408, 429] {
        server.fault("/a", Fault::Status { status, times: 1 });
        let error = fail(&server, "/a").await;
        assert_eq!(error.kind, FailureKind::Transient, "{status}: {error}");
        assert_eq!(error.status, Some(status));
        assert_eq!(error.retry_after, None);
        assert!(error.message.contains(&status.to_string()), "{error}");
        assert!(error.message.contains(&server.url("/a")), "{error}");
    }
}

#[tokio::test]
async fn missing_gone_and_other_4xx_are_permanent() {
    let server = TestServer::start();
    server.add("/a", "x");
    for status in [404, 410, 400, 403] {
        server.fault("/a", Fault::Status { status, times: 1 });
        let error = fail(&server, "/a").await;
        assert_eq!(error.kind, FailureKind::Permanent, "{status}: {error}");
        assert_eq!(error.status, Some(status));
    }
    let error = fail(&server, "/never-added").await;
    assert!(!error.is_retryable());
    assert_eq!(
        error.message,
        format!("server answered 404 not found for {}", server.url("/never-added"))
    );
}

#[tokio::test]
async fn retry_after_in_seconds() {
    let server = TestServer::start();
    server.add("/a", "x");
    server.fault(
        "/a",
        Fault::RetryAfterSecs {
            status: 429,
            secs: 7,
            times: 1,
        },
    );
    let error = fail(&server, "/a").await;
    assert!(error.is_retryable());
    assert_eq!(error.status, Some(429));
    assert_eq!(error.retry_after, Some(Duration::from_secs(7)));
}

#[tokio::test]
async fn retry_after_as_a_date() {
    let server = TestServer::start();
    server.add("/a", "x");
    server.fault(
        "/a",
        Fault::RetryAfterDate {
            status: 503,
            secs: 120,
            times: 1,
        },
    );
    let error = fail(&server, "/a").await;
    assert!(error.is_retryable());
    assert_eq!(error.status, Some(503));
    let delay = error.retry_after.expect("a delay from the date");
    // HTTP-dates have whole seconds; allow for a slow test machine.
    assert!(
        delay > Duration::from_secs(100) && delay <= Duration::from_secs(120),
        "{delay:?}"
    );
}

#[tokio::test]
async fn truncated_body_is_a_transient_stream_error() {
    let server = TestServer::start();
    server.add("/a", content(1, 200_000));
    server.fault(
        "/a",
        Fault::Truncate {
            after: 70_000,
            times: 1,
        },
    );
    let GetResponse::Body { meta, body, .. } = fetcher().get(&whole(&server.url("/a"))).await.unwrap() else {
        panic!("expected a body");
    };
    assert_eq!(meta.content_length, Some(200_000));
    let (got, error) = collect(body).await.unwrap_err();
    assert_eq!(got.len(), 70_000);
    assert_eq!(error.kind, FailureKind::Transient, "{error}");
    assert!(
        error.message.starts_with("truncated body: got 70000 of 200000 bytes"),
        "{error}"
    );
}

#[tokio::test]
async fn redirect_to_other_schemes_is_permanent_and_names_the_location() {
    // reqwest cannot resolve `file:` and hands back the 302; `ftp:` reaches the policy.
    for location in ["file:///etc/passwd", "ftp://example.invalid/x"] {
        let server = TestServer::start();
        server.fault(
            "/a",
            Fault::RedirectTo {
                location: location.into(),
            },
        );
        let error = fail(&server, "/a").await;
        assert_eq!(error.kind, FailureKind::Permanent, "{error}");
        assert!(error.message.contains(location), "{error}");
        assert!(error.message.contains("only http and https"), "{error}");
    }
}

#[tokio::test]
async fn redirect_loop_is_permanent_after_ten_hops() {
    let server = TestServer::start();
    server.add("/x", "x");
    server.fault("/x", Fault::RedirectLoop);
    let error = fail(&server, "/x").await;
    assert_eq!(error.kind, FailureKind::Permanent, "{error}");
    assert!(error.message.contains("too many redirects"), "{error}");
    // The original request and ten redirects.
    assert_eq!(server.path_stats("/x").gets, 11);

    let config = FetcherConfig {
        max_redirects: 2,
        ..FetcherConfig::default()
    };
    server.reset_stats();
    fetcher_with(config).get(&whole(&server.url("/x"))).await.unwrap_err();
    assert_eq!(server.path_stats("/x").gets, 3);
}

#[tokio::test]
async fn refused_connection_is_transient() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/a");
    let error = fetcher().get(&whole(&url)).await.unwrap_err();
    assert!(error.is_retryable(), "{error}");
    assert_eq!(error.status, None);
    assert!(error.message.contains(&url), "{error}");
}

#[tokio::test]
async fn silent_server_times_out_transiently() {
    let server = TestServer::start();
    server.add("/a", content(2, 1000));
    server.fault(
        "/a",
        Fault::Throttle {
            chunk: 100,
            delay_ms: 2_000,
        },
    );
    let config = FetcherConfig {
        read_timeout: Duration::from_millis(300),
        ..FetcherConfig::default()
    };
    let GetResponse::Body { body, .. } = fetcher_with(config).get(&whole(&server.url("/a"))).await.unwrap() else {
        panic!("expected a body");
    };
    let (got, error) = collect(body).await.unwrap_err();
    assert_eq!(got.len(), 100);
    assert!(error.is_retryable(), "{error}");
    assert!(error.message.contains("timed out"), "{error}");
}

#[tokio::test]
async fn size_cap_is_permanent_before_the_body() {
    let server = TestServer::start();
    server.add("/a", content(3, 10_000));
    let capped = fetcher_with(FetcherConfig {
        max_size: 9_999,
        ..FetcherConfig::default()
    });
    let url = server.url("/a");
    let error = capped.get(&whole(&url)).await.unwrap_err();
    assert_eq!(error.kind, FailureKind::Permanent);
    assert_eq!(error.message, format!("size 10000 exceeds cap 9999 for {url}"));

    // At the cap exactly is fine.
    let exact = fetcher_with(FetcherConfig {
        max_size: 10_000,
        ..FetcherConfig::default()
    });
    assert!(exact.get(&whole(&url)).await.is_ok());
}

#[tokio::test]
async fn size_cap_holds_without_a_content_length() {
    let url = crate::support::canned(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n01234567\r\n8\r\n89abcdef\r\n0\r\n\r\n",
    );
    let capped = fetcher_with(FetcherConfig {
        max_size: 12,
        ..FetcherConfig::default()
    });
    let GetResponse::Body { meta, body, .. } = capped.get(&whole(&url)).await.unwrap() else {
        panic!("expected a body");
    };
    assert_eq!(meta.content_length, None);
    let (_, error) = collect(body).await.unwrap_err();
    assert_eq!(error.kind, FailureKind::Permanent, "{error}");
    assert!(error.message.contains("exceeds cap 12"), "{error}");
}

/// `http://127.0.0.1:PORT` + `path` on a port nothing listens on.
fn dead(path: &str) -> String {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    format!("http://127.0.0.1:{port}{path}")
}

#[tokio::test]
async fn redirect_to_a_refused_target_names_the_target() {
    let target = dead("/x");
    let server = TestServer::start();
    server.fault(
        "/a",
        Fault::RedirectTo {
            location: target.clone(),
        },
    );
    let error = fail(&server, "/a").await;
    assert!(error.is_retryable(), "{error}");
    assert_eq!(error.status, None);
    assert!(
        error.message.starts_with(&format!("cannot connect to {target}")),
        "{error}"
    );
    assert!(
        error.message.contains(&format!("redirected from {}", server.url("/a"))),
        "{error}"
    );
}

#[tokio::test]
async fn redirect_chain_to_a_refused_target_names_the_last_hop() {
    let target = dead("/x");
    let server = TestServer::start();
    server.fault("/a", Fault::RedirectTo { location: "/b".into() });
    server.fault(
        "/b",
        Fault::RedirectTo {
            location: target.clone(),
        },
    );
    let error = fail(&server, "/a").await;
    assert!(error.is_retryable(), "{error}");
    assert!(
        error.message.starts_with(&format!("cannot connect to {target}")),
        "{error}"
    );
    assert!(error.message.contains(&server.url("/a")), "{error}");
}

#[tokio::test]
async fn redirect_to_a_silent_target_names_the_target_when_it_times_out() {
    // Bound but never accepting: the kernel completes the handshake, nothing answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = format!("http://{}/x", silent.local_addr().unwrap());
    let server = TestServer::start();
    server.fault(
        "/a",
        Fault::RedirectTo {
            location: target.clone(),
        },
    );
    let config = FetcherConfig {
        read_timeout: Duration::from_millis(300),
        ..FetcherConfig::default()
    };
    let error = fetcher_with(config).get(&whole(&server.url("/a"))).await.unwrap_err();
    assert!(error.is_retryable(), "{error}");
    assert!(
        error.message.starts_with(&format!("timed out requesting {target}")),
        "{error}"
    );
    drop(silent);
}

#[tokio::test]
async fn redirect_failure_keeps_credentials_redacted() {
    let target = dead("/x").replace("http://", "http://user:target-secret@");
    let server = TestServer::start();
    server.fault("/a", Fault::RedirectTo { location: target });
    let original = server.url("/a").replace("http://", "http://me:origin-secret@");
    let error = fetcher().get(&whole(&original)).await.unwrap_err();
    assert!(!error.message.contains("secret"), "{error}");
    assert!(error.message.contains("http://user:***@127.0.0.1:"), "{error}");
    assert!(error.message.contains("http://me:***@127.0.0.1:"), "{error}");
}
