use std::path::{Path, PathBuf};

use oncefetch_core::{FailureKind, FetchError, Fetcher, FetcherConfig};
use oncefetch_fetch_http::{BuildError, HttpFetcher};
use oncefetch_test_server::{TestCa, TestServer, Validity};

use crate::support::{fetcher_with, get_body, whole};

/// A file holding `text`, kept until the returned guard drops.
fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ca.pem");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

fn trusting(ca: &Path) -> FetcherConfig {
    FetcherConfig {
        ca_certs: vec![ca.to_owned()],
        ..FetcherConfig::default()
    }
}

/// The error of a GET of `server`'s `/a`, and the connections it took.
async fn refused(server: &TestServer, config: FetcherConfig) -> (FetchError, u64) {
    let error = fetcher_with(config).get(&whole(&server.url("/a"))).await.unwrap_err();
    (error, server.stats().connections)
}

#[tokio::test]
async fn a_ca_given_as_a_file_is_trusted() {
    let ca = TestCa::new();
    let server = TestServer::start_tls(&ca.issue(&["127.0.0.1"], Validity::Current));
    server.add("/a", "secret bytes");
    let (_dir, path) = file(&ca.pem());
    let (meta, _, bytes) = get_body(&fetcher_with(trusting(&path)), &whole(&server.url("/a"))).await;
    assert_eq!(bytes, b"secret bytes");
    assert!(!meta.insecure);
    let json = serde_json::to_value(&meta).unwrap();
    assert!(json.get("insecure").is_none(), "only serialized when set: {json}");
}

#[tokio::test]
async fn certificate_errors_are_permanent_and_named() {
    let ca = TestCa::new();
    let (_dir, path) = file(&ca.pem());
    let cases = [
        (ca.issue(&["127.0.0.1"], Validity::Current), false, "unknown issuer"),
        (ca.issue(&["127.0.0.1"], Validity::Expired), true, "expired"),
        (ca.issue(&["localhost"], Validity::Current), true, "name mismatch"),
    ];
    for (cert, trust, problem) in cases {
        let server = TestServer::start_tls(&cert);
        server.add("/a", "x");
        let config = if trust {
            trusting(&path)
        } else {
            FetcherConfig::default()
        };
        let (error, connections) = refused(&server, config).await;
        assert_eq!(error.kind, FailureKind::Permanent, "{error}");
        assert!(error.message.contains(problem), "{problem}: {error}");
        assert!(error.message.contains("certificate"), "{error}");
        assert_eq!(connections, 1, "{problem}: one connection, no retry inside the fetcher");
        assert_eq!(server.stats().gets, 0);
    }
}

#[tokio::test]
async fn insecure_accepts_any_certificate_and_marks_the_meta() {
    let ca = TestCa::new();
    let server = TestServer::start_tls(&ca.issue(&["localhost"], Validity::Expired));
    server.add("/a", "x");
    let fetcher = fetcher_with(FetcherConfig {
        insecure: true,
        ..FetcherConfig::default()
    });
    let (meta, _, bytes) = get_body(&fetcher, &whole(&server.url("/a"))).await;
    assert_eq!(bytes, b"x");
    assert!(meta.insecure);
    assert_eq!(serde_json::to_value(&meta).unwrap()["insecure"], true);
}

#[test]
fn a_bad_ca_file_is_refused_naming_it() {
    let (_dir, garbage) = file("not a certificate\n");
    let broken = file("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n");
    let missing = garbage.with_file_name("missing.pem");
    for path in [&garbage, &broken.1, &missing] {
        let error = HttpFetcher::new(&trusting(path)).unwrap_err();
        assert!(matches!(error, BuildError::CaCert { .. }), "{error}");
        assert!(error.to_string().contains(&path.display().to_string()), "{error}");
    }
}
