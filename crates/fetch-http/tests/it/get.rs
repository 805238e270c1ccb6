use oncefetch_core::{Fetcher, GetRequest, GetResponse};
use oncefetch_test_server::{content, Fault, TestServer};

use crate::support::{canned, fetcher, from, get_body, whole};

#[tokio::test]
async fn whole_get_starts_at_zero() {
    let server = TestServer::start();
    let body = content(1, 300_000);
    server.add("/a", body.clone());
    let (meta, start, bytes) = get_body(&fetcher(), &whole(&server.url("/a"))).await;
    assert_eq!((meta.status, start), (200, 0));
    assert_eq!(meta.content_length, Some(300_000));
    assert!(meta.etag.is_some() && meta.last_modified.is_some());
    assert_eq!(bytes, body);
    assert_eq!(server.path_stats("/a").ranged_gets, 0);
}

#[tokio::test]
async fn ranged_resume_with_matching_validator() {
    let server = TestServer::start();
    let body = content(2, 300_000);
    server.add("/a", body.clone());
    let fetcher = fetcher();
    let (head, _, _) = get_body(&fetcher, &whole(&server.url("/a"))).await;
    let validator = head.validator().unwrap();
    server.reset_stats();

    let (meta, start, bytes) = get_body(&fetcher, &from(&server.url("/a"), 123_456, Some(validator))).await;
    assert_eq!((meta.status, start), (206, 123_456));
    assert_eq!(meta.content_length, Some(300_000), "the full length, not the range's");
    assert_eq!(meta.etag, head.etag);
    assert_eq!(bytes, body[123_456..]);
    let stats = server.path_stats("/a");
    assert_eq!((stats.ranged_gets, stats.bytes_served), (1, 300_000 - 123_456));
}

#[tokio::test]
async fn a_closed_range_asks_for_one_piece_and_ranges_are_announced() {
    let server = TestServer::start();
    let body = content(6, 300_000);
    server.add("/a", body.clone());
    let fetcher = fetcher();
    let (head, _, _) = get_body(&fetcher, &whole(&server.url("/a"))).await;
    assert!(head.accepts_ranges, "the server says Accept-Ranges: bytes");
    server.reset_stats();
    for (first, last) in [(0, 99_999), (100_000, 199_999), (250_000, 299_999)] {
        let request = GetRequest {
            range_end: Some(last),
            ..from(&server.url("/a"), first, head.validator())
        };
        let (meta, start, bytes) = get_body(&fetcher, &request).await;
        assert_eq!((meta.status, start, meta.content_length), (206, first, Some(300_000)));
        assert!(meta.accepts_ranges);
        assert_eq!(bytes, body[first as usize..=last as usize]);
    }
    let stats = server.path_stats("/a");
    assert_eq!((stats.ranged_gets, stats.bytes_served), (3, 250_000));

    server.fault("/a", Fault::IgnoreRange);
    let (meta, _, _) = get_body(&fetcher, &whole(&server.url("/a"))).await;
    assert!(!meta.accepts_ranges, "Accept-Ranges: none");
}

#[tokio::test]
async fn ignored_range_restarts_at_zero() {
    let server = TestServer::start();
    let body = content(3, 50_000);
    server.add("/a", body.clone());
    server.fault("/a", Fault::IgnoreRange);
    let (meta, start, bytes) = get_body(&fetcher(), &from(&server.url("/a"), 20_000, None)).await;
    assert_eq!((meta.status, start), (200, 0));
    assert_eq!(meta.content_length, Some(50_000));
    assert_eq!(bytes, body);
    assert_eq!(server.path_stats("/a").ranged_gets, 1, "the Range header was sent");
}

#[tokio::test]
async fn changed_validator_restarts_at_zero_with_the_new_etag() {
    let server = TestServer::start();
    let body = content(4, 50_000);
    server.add("/a", body.clone());
    server.fault("/a", Fault::ChangeAfter { after_gets: 1 });
    let fetcher = fetcher();
    let (first, _, bytes) = get_body(&fetcher, &whole(&server.url("/a"))).await;
    assert_eq!(bytes, body);
    let old_etag = first.etag.clone().unwrap();

    let (meta, start, bytes) = get_body(&fetcher, &from(&server.url("/a"), 10_000, Some(&old_etag))).await;
    assert_eq!((meta.status, start), (200, 0));
    let new_etag = meta.etag.unwrap();
    assert_ne!(new_etag, old_etag);
    assert_eq!(bytes.len(), 50_000);
    assert_ne!(bytes, body);
}

#[tokio::test]
async fn unsatisfiable_range_reports_the_complete_length() {
    let server = TestServer::start();
    server.add("/a", content(5, 1000));
    let fetcher = fetcher();
    for range_start in [1000, 4000] {
        match fetcher.get(&from(&server.url("/a"), range_start, None)).await.unwrap() {
            GetResponse::RangeNotSatisfiable { meta, complete_len } => {
                assert_eq!(complete_len, Some(1000));
                assert_eq!((meta.status, meta.content_length), (416, Some(1000)));
            }
            other => panic!("expected 416, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_206_is_reported_as_it_came() {
    // Another offset than asked, and no total length: the pipeline judges.
    let url =
        canned("HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-9/*\r\nContent-Length: 10\r\n\r\n0123456789");
    let (meta, start, bytes) = get_body(&fetcher(), &from(&url, 50, None)).await;
    assert_eq!((meta.status, start, meta.content_length), (206, 0, None));
    assert_eq!(bytes, b"0123456789");
}

#[tokio::test]
async fn a_206_without_content_range_is_unusable() {
    let url = canned("HTTP/1.1 206 Partial Content\r\nContent-Length: 10\r\n\r\n0123456789");
    match fetcher().get(&from(&url, 50, None)).await.unwrap() {
        GetResponse::UnusableRange { meta, reason } => {
            assert_eq!(meta.status, 206);
            assert!(reason.contains("Content-Range") && reason.contains(&url), "{reason}");
        }
        other => panic!("expected UnusableRange, got {other:?}"),
    }
}

#[tokio::test]
async fn weak_etag_is_dropped_last_modified_kept() {
    let url = canned(
        "HTTP/1.1 200 OK\r\nETag: W/\"weak\"\r\nLast-Modified: Wed, 21 Oct 2015 07:28:00 GMT\r\nContent-Length: 2\r\n\r\nok",
    );
    let (meta, _, bytes) = get_body(&fetcher(), &whole(&url)).await;
    assert_eq!(meta.etag, None);
    assert_eq!(meta.validator(), Some("Wed, 21 Oct 2015 07:28:00 GMT"));
    assert_eq!(bytes, b"ok");
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
    let (meta, _, bytes) = get_body(&fetcher(), &whole(&server.url("/old"))).await;
    assert_eq!(meta.content_length, Some(10));
    assert_eq!(bytes, content(3, 10));
    assert_eq!(meta.final_url, server.url("/real"));
}
