use oncefetch_core::{FailureKind, Fetcher, FetcherConfig};
use oncefetch_fetch_http::{BuildError, HttpFetcher};
use oncefetch_test_server::TestServer;

use crate::support::{fetcher_with, from, get_body, whole};

fn header<'h>(headers: &'h [(String, String)], name: &str) -> Vec<&'h str> {
    headers
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

#[tokio::test]
async fn user_agent_and_extra_headers_reach_the_server() {
    let server = TestServer::start();
    server.add("/a", "x");
    let fetcher = fetcher_with(FetcherConfig {
        user_agent: "tester/1".into(),
        headers: vec![("X-Token".into(), "abc".into()), ("Accept".into(), "*/*".into())],
        ..FetcherConfig::default()
    });
    get_body(&fetcher, &whole(&server.url("/a"))).await;
    let seen = server.last_request_headers("/a").unwrap();
    assert_eq!(header(&seen, "user-agent"), ["tester/1"]);
    assert_eq!(header(&seen, "x-token"), ["abc"]);
    assert_eq!(header(&seen, "accept"), ["*/*"]);
}

#[tokio::test]
async fn request_headers_replace_configured_ones_of_their_name_but_not_the_range() {
    let server = TestServer::start();
    server.add("/a", "0123456789");
    let fetcher = fetcher_with(FetcherConfig {
        user_agent: "tester/1".into(),
        headers: vec![("X-Token".into(), "global".into()), ("Accept".into(), "*/*".into())],
        ..FetcherConfig::default()
    });
    let mut request = from(&server.url("/a"), 4, None);
    request.headers = vec![
        ("x-token".into(), "per-request".into()),
        ("User-Agent".into(), "hostbot/1".into()),
        ("Range".into(), "bytes=0-".into()),
    ];
    let (_, start, bytes) = get_body(&fetcher, &request).await;
    assert_eq!(
        (start, bytes.as_slice()),
        (4, b"456789".as_slice()),
        "the ranged GET's own Range"
    );
    let seen = server.last_request_headers("/a").unwrap();
    assert_eq!(header(&seen, "x-token"), ["per-request"]);
    assert_eq!(header(&seen, "user-agent"), ["hostbot/1"]);
    assert_eq!(header(&seen, "accept"), ["*/*"], "the others stay");
}

#[tokio::test]
async fn a_request_header_that_cannot_be_sent_is_a_permanent_error() {
    let server = TestServer::start();
    server.add("/a", "x");
    let mut request = whole(&server.url("/a"));
    request.headers = vec![("Bad Name".into(), "v".into())];
    let error = fetcher_with(FetcherConfig::default()).get(&request).await.unwrap_err();
    assert_eq!(error.kind, FailureKind::Permanent, "{error}");
    assert!(error.message.contains("Bad Name"), "{error}");
    assert_eq!(server.stats().gets, 0);
}

#[tokio::test]
async fn the_default_user_agent_names_oncefetch_and_its_version() {
    let server = TestServer::start();
    server.add("/a", "x");
    get_body(&fetcher_with(FetcherConfig::default()), &whole(&server.url("/a"))).await;
    let seen = server.last_request_headers("/a").unwrap();
    assert_eq!(
        header(&seen, "user-agent"),
        [concat!("oncefetch/", env!("CARGO_PKG_VERSION"))]
    );
}

#[test]
fn a_header_that_cannot_be_sent_is_refused_at_build() {
    for (name, value) in [("Bad Name", "v"), ("X-Ok", "a\nb")] {
        let config = FetcherConfig {
            headers: vec![(name.into(), value.into())],
            ..FetcherConfig::default()
        };
        let error = HttpFetcher::new(&config).unwrap_err();
        assert!(matches!(error, BuildError::Header { .. }), "{error}");
        assert!(error.to_string().contains(name), "{error}");
    }
}

#[tokio::test]
async fn a_proxy_carries_every_request() {
    // The test server answers the absolute-form request a proxy gets.
    let server = TestServer::start();
    server.add("/a", "proxied");
    let fetcher = fetcher_with(FetcherConfig {
        proxy: Some(server.url("")),
        ..FetcherConfig::default()
    });
    let (meta, _, bytes) = get_body(&fetcher, &whole("http://origin.invalid/a")).await;
    assert_eq!(bytes, b"proxied");
    assert_eq!(meta.status, 200);
    assert_eq!(server.stats().gets, 1);
}

#[tokio::test]
async fn proxy_credentials_are_never_shown() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let fetcher = fetcher_with(FetcherConfig {
        proxy: Some(format!("http://user:s3cret@{addr}")),
        ..FetcherConfig::default()
    });
    let error = fetcher.get(&whole("http://origin.invalid/a")).await.unwrap_err();
    assert_eq!(error.kind, FailureKind::Transient, "{error}");
    assert!(!error.message.contains("s3cret"), "{error}");

    let config = FetcherConfig {
        proxy: Some("http://user:s3cret@[bad".into()),
        ..FetcherConfig::default()
    };
    let error = HttpFetcher::new(&config).unwrap_err().to_string();
    assert!(error.contains("proxy") && !error.contains("s3cret"), "{error}");
}
