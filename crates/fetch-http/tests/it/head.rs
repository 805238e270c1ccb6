use std::time::{Duration, Instant};

use oncefetch_core::Fetcher;
use oncefetch_test_server::{content, Fault, TestServer};

use crate::support::fetcher;

#[tokio::test]
async fn head_reads_length_and_validators_without_body() {
    let server = TestServer::start();
    server.add("/a", content(1, 12_345));
    let meta = fetcher().head(&server.url("/a")).await.unwrap();
    assert_eq!(meta.status, 200);
    assert_eq!(meta.content_length, Some(12_345));
    let etag = meta.etag.as_deref().unwrap();
    assert!(etag.starts_with('"'), "{etag}");
    assert_eq!(meta.last_modified.as_deref(), Some("Wed, 21 Oct 2015 07:28:00 GMT"));
    assert_eq!(meta.final_url, server.url("/a"));
    let stats = server.path_stats("/a");
    assert_eq!((stats.heads, stats.gets, stats.bytes_served), (1, 0, 0));
}

#[tokio::test]
async fn refused_head_falls_back_to_get_without_reading_the_body() {
    for status in [405, 501] {
        let server = TestServer::start();
        server.add("/a", content(2, 1 << 20));
        server.fault("/a", Fault::RefuseHead { status });
        // Reading this body would take over a minute.
        server.fault(
            "/a",
            Fault::Throttle {
                chunk: 1024,
                delay_ms: 100,
            },
        );
        let started = Instant::now();
        let meta = fetcher().head(&server.url("/a")).await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        assert_eq!(meta.status, 200, "after {status}");
        assert_eq!(meta.content_length, Some(1 << 20));
        assert!(meta.etag.is_some());
        let stats = server.path_stats("/a");
        assert_eq!((stats.heads, stats.gets), (1, 1), "after {status}");
        assert!(stats.bytes_served < 64 << 10, "{} bytes served", stats.bytes_served);
    }
}

#[tokio::test]
async fn redirects_to_http_are_followed_and_reported() {
    let server = TestServer::start();
    server.add("/real", content(3, 10));
    server.fault(
        "/old",
        Fault::RedirectTo {
            location: "/real".into(),
        },
    );
    let meta = fetcher().head(&server.url("/old")).await.unwrap();
    assert_eq!(meta.content_length, Some(10));
    assert_eq!(meta.final_url, server.url("/real"));
}
