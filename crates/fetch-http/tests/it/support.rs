use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::time::Duration;

use futures::StreamExt;
use oncefetch_core::{BodyStream, FetchError, Fetcher, FetcherConfig, GetRequest, GetResponse, ResourceMeta};
use oncefetch_fetch_http::HttpFetcher;

pub(crate) fn fetcher() -> HttpFetcher {
    fetcher_with(FetcherConfig::default())
}

pub(crate) fn fetcher_with(config: FetcherConfig) -> HttpFetcher {
    HttpFetcher::new(&config).expect("build the fetcher")
}

pub(crate) fn whole(url: &str) -> GetRequest {
    GetRequest {
        url: url.to_owned(),
        range_start: 0,
        range_end: None,
        if_range: None,
        headers: Vec::new(),
    }
}

pub(crate) fn from(url: &str, range_start: u64, if_range: Option<&str>) -> GetRequest {
    GetRequest {
        url: url.to_owned(),
        range_start,
        range_end: None,
        if_range: if_range.map(str::to_owned),
        headers: Vec::new(),
    }
}

/// Reads a body to its end; the first error ends it.
pub(crate) async fn collect(mut body: BodyStream) -> Result<Vec<u8>, (Vec<u8>, FetchError)> {
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(bytes) => out.extend_from_slice(&bytes),
            Err(error) => {
                // Nothing follows an error.
                assert!(body.next().await.is_none(), "the stream went on after {error}");
                return Err((out, error));
            }
        }
    }
    Ok(out)
}

/// A GET that must answer with a body: (meta, start, bytes).
pub(crate) async fn get_body(fetcher: &HttpFetcher, request: &GetRequest) -> (ResourceMeta, u64, Vec<u8>) {
    match fetcher.get(request).await.expect("get") {
        GetResponse::Body { meta, start, body } => {
            let bytes = collect(body).await.unwrap_or_else(|(_, e)| panic!("body failed: {e}"));
            (meta, start, bytes)
        }
        other => panic!("expected a body, got {other:?}"),
    }
}

/// A server on a std thread that answers one connection with `answer`
/// verbatim, whatever was asked, then closes it. Returns its base URL.
pub(crate) fn canned(answer: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
            line.clear();
        }
        let mut stream = reader.into_inner();
        let _ = stream.write_all(answer.as_bytes());
    });
    format!("http://{addr}")
}
