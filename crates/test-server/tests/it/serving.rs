use std::net::TcpStream;

use oncefetch_test_server::{content, PathStats, TestServer};

use crate::client::{get, send, Conn};

#[test]
fn full_get_carries_validators_and_counts_bytes() {
    let server = TestServer::start();
    let body = content(1, 100_000);
    server.add("/a", body.clone());

    let reply = get(server.addr(), "/a");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, body);
    assert_eq!(reply.content_length(), Some(100_000));
    let etag = reply.header("etag").unwrap();
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() == 18,
        "{etag}"
    );
    assert_eq!(reply.header("last-modified"), Some("Wed, 21 Oct 2015 07:28:00 GMT"));
    assert_eq!(reply.header("accept-ranges"), Some("bytes"));

    let stats = server.stats();
    assert_eq!((stats.gets, stats.heads, stats.bytes_served), (1, 0, 100_000));
    assert_eq!(
        server.path_stats("/a"),
        PathStats {
            gets: 1,
            heads: 0,
            ranged_gets: 0,
            bytes_served: 100_000
        }
    );
    server.reset_stats();
    assert_eq!(server.stats().gets, 0);
    assert_eq!(server.path_stats("/a"), PathStats::default());
}

#[test]
fn open_and_closed_ranges_answer_206() {
    let server = TestServer::start();
    let body = content(2, 1000);
    server.add("/a", body.clone());

    let reply = send(server.addr(), "GET", "/a", &[("Range", "bytes=400-")]);
    assert_eq!(reply.status, 206);
    assert_eq!(reply.header("content-range"), Some("bytes 400-999/1000"));
    assert_eq!(reply.body, body[400..]);

    let reply = send(server.addr(), "GET", "/a", &[("Range", "bytes=10-19")]);
    assert_eq!(reply.status, 206);
    assert_eq!(reply.header("content-range"), Some("bytes 10-19/1000"));
    assert_eq!(reply.body, body[10..20]);

    let stats = server.path_stats("/a");
    assert_eq!((stats.gets, stats.ranged_gets, stats.bytes_served), (2, 2, 610));
}

#[test]
fn range_past_the_end_answers_416_with_the_length() {
    let server = TestServer::start();
    server.add("/a", content(3, 1000));
    for start in ["1000", "5000"] {
        let reply = send(server.addr(), "GET", "/a", &[("Range", &format!("bytes={start}-"))]);
        assert_eq!(reply.status, 416);
        assert_eq!(reply.header("content-range"), Some("bytes */1000"));
        assert!(reply.body.is_empty());
    }
}

#[test]
fn if_range_honours_only_the_current_validators() {
    let server = TestServer::start();
    let body = content(4, 1000);
    server.add("/a", body.clone());
    let head = send(server.addr(), "HEAD", "/a", &[]);
    let etag = head.header("etag").unwrap().to_owned();
    let modified = head.header("last-modified").unwrap().to_owned();

    for validator in [etag.as_str(), modified.as_str()] {
        let reply = send(
            server.addr(),
            "GET",
            "/a",
            &[("Range", "bytes=100-"), ("If-Range", validator)],
        );
        assert_eq!(reply.status, 206, "{validator}");
        assert_eq!(reply.body, body[100..]);
    }
    for stale in ["\"0000000000000000\"", "W/\"x\"", "Tue, 20 Oct 2015 07:28:00 GMT"] {
        let reply = send(
            server.addr(),
            "GET",
            "/a",
            &[("Range", "bytes=100-"), ("If-Range", stale)],
        );
        assert_eq!(reply.status, 200, "{stale}");
        assert_eq!(reply.body, body);
    }

    // After a replace the old validators no longer match, even for the same bytes.
    server.replace("/a", body.clone());
    let reply = send(
        server.addr(),
        "GET",
        "/a",
        &[("Range", "bytes=100-"), ("If-Range", &etag)],
    );
    assert_eq!(reply.status, 200);
    assert_ne!(reply.header("etag"), Some(etag.as_str()));
    assert_ne!(reply.header("last-modified"), Some(modified.as_str()));
}

#[test]
fn head_sends_headers_without_body() {
    let server = TestServer::start();
    server.add("/a", content(5, 1234));
    let mut conn = Conn::open(server.addr());
    let reply = conn.send("HEAD", "/a", &[]);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.content_length(), Some(1234));
    assert!(reply.header("etag").is_some());
    // The connection stays usable: no body bytes were in the way.
    let reply = conn.send("GET", "/a", &[("Range", "bytes=1000-")]);
    assert_eq!(reply.body.len(), 234);
    let stats = server.path_stats("/a");
    assert_eq!((stats.heads, stats.gets, stats.bytes_served), (1, 1, 234));
}

#[test]
fn unknown_path_is_404_and_counted() {
    let server = TestServer::start();
    assert_eq!(get(server.addr(), "/nope").status, 404);
    assert_eq!(send(server.addr(), "HEAD", "/nope", &[]).status, 404);
    let stats = server.path_stats("/nope");
    assert_eq!((stats.gets, stats.heads), (1, 1));
}

#[test]
fn hundreds_of_keep_alive_connections() {
    let server = TestServer::start();
    let body = content(6, 10_000);
    server.add("/a", body.clone());
    let addr = server.addr();
    let threads: Vec<_> = (0..200)
        .map(|_| {
            let body = body.clone();
            std::thread::spawn(move || {
                let mut conn = Conn::open(addr);
                for _ in 0..5 {
                    assert_eq!(conn.send("GET", "/a", &[]).body, body);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(server.stats().gets, 1000);
    assert_eq!(server.stats().bytes_served, 10_000_000);
}

#[test]
fn dropping_stops_the_server() {
    let server = TestServer::start();
    let addr = server.addr();
    assert!(TcpStream::connect(addr).is_ok());
    drop(server);
    assert!(TcpStream::connect(addr).is_err());
}

#[tokio::test(flavor = "current_thread")]
async fn starts_and_stops_inside_tokio() {
    let server = TestServer::start();
    server.add("/a", "hello");
    let addr = server.addr();
    let reply = tokio::task::spawn_blocking(move || get(addr, "/a")).await.unwrap();
    assert_eq!(reply.body, b"hello");
    drop(server);
}

#[test]
fn etags_follow_content_even_for_large_bodies() {
    let server = TestServer::start();
    let etag = |path: &str| {
        send(server.addr(), "HEAD", path, &[])
            .header("etag")
            .unwrap()
            .to_owned()
    };

    // Large bodies are hashed from samples; a change between samples must still show.
    let body = content(11, 3 << 20);
    server.add("/big", body.clone());
    let first = etag("/big");
    server.add("/big", body.clone());
    assert_eq!(etag("/big"), first, "the same bytes keep their ETag");
    // One changed byte at a time, at spots most of which no sample covers.
    let mut seen = vec![first.clone()];
    for i in 1..=10 {
        let mut changed = body.clone();
        changed[(1 << 20) + i * 104_729] ^= 1;
        server.add("/big", changed);
        let tag = etag("/big");
        assert!(!seen.contains(&tag), "change {i} kept an old ETag {tag}");
        seen.push(tag);
    }
    server.add("/big", body.clone());

    // Same bytes, same ETag on another path and another server.
    server.add("/copy", body.clone());
    assert_eq!(etag("/copy"), first);
    let other = TestServer::start();
    other.add("/big", body);
    assert_eq!(
        send(other.addr(), "HEAD", "/big", &[]).header("etag"),
        Some(first.as_str())
    );
}
