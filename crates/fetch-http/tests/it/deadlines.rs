use std::time::{Duration, Instant};

use oncefetch_core::{FailureKind, Fetcher, FetcherConfig, GetResponse, LowSpeed};
use oncefetch_test_server::{content, Fault, TestServer};

use crate::support::{collect, fetcher_with, whole};

/// A body of 200 KB trickling at about 20 KB/s.
fn trickling() -> TestServer {
    let server = TestServer::start();
    server.add("/a", content(3, 200_000));
    server.fault(
        "/a",
        Fault::Throttle {
            chunk: 2_000,
            delay_ms: 100,
        },
    );
    server
}

/// Reads `/a` with `config`: the bytes before the failure, the failure and
/// how long it took.
async fn cut(server: &TestServer, config: FetcherConfig) -> (usize, oncefetch_core::FetchError, Duration) {
    let started = Instant::now();
    let GetResponse::Body { body, .. } = fetcher_with(config).get(&whole(&server.url("/a"))).await.unwrap() else {
        panic!("a body");
    };
    let (got, error) = collect(body).await.unwrap_err();
    (got.len(), error, started.elapsed())
}

#[tokio::test]
async fn max_time_bounds_the_whole_request_body_included() {
    let server = trickling();
    let config = FetcherConfig {
        max_time: Some(Duration::from_millis(600)),
        ..FetcherConfig::default()
    };
    let (got, error, took) = cut(&server, config).await;
    assert_eq!(error.kind, FailureKind::Transient, "{error}");
    assert!(error.message.contains("timed out"), "{error}");
    assert!(got > 0 && got < 200_000, "{got}");
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[tokio::test]
async fn a_body_under_the_low_speed_limit_is_given_up_on() {
    let server = trickling();
    let config = FetcherConfig {
        low_speed: Some(LowSpeed {
            bytes_per_sec: 100_000,
            time: Duration::from_millis(500),
        }),
        ..FetcherConfig::default()
    };
    let (got, error, took) = cut(&server, config).await;
    assert_eq!(error.kind, FailureKind::Transient, "{error}");
    assert!(error.message.contains("too slow"), "{error}");
    assert!(got > 0 && got < 200_000, "{got}");
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[tokio::test]
async fn a_body_over_the_low_speed_limit_flows() {
    let server = trickling();
    let config = FetcherConfig {
        low_speed: Some(LowSpeed {
            bytes_per_sec: 1_000,
            time: Duration::from_millis(300),
        }),
        ..FetcherConfig::default()
    };
    let GetResponse::Body { body, .. } = fetcher_with(config).get(&whole(&server.url("/a"))).await.unwrap() else {
        panic!("a body");
    };
    assert_eq!(collect(body).await.unwrap().len(), 200_000);
}
