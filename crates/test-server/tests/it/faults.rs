use std::time::{Duration, Instant, SystemTime};

use oncefetch_test_server::{content, Fault, TestServer};

use crate::client::{get, send, Conn};

#[test]
fn status_answers_the_next_requests_then_stops() {
    let server = TestServer::start();
    server.add("/a", "body");
    server.fault("/a", Fault::Status { status: 503, times: 2 });
    server.fault("/a", Fault::Status { status: 410, times: 1 });
    assert_eq!(send(server.addr(), "HEAD", "/a", &[]).status, 503);
    let reply = get(server.addr(), "/a");
    assert_eq!((reply.status, reply.body.len()), (503, 0));
    assert_eq!(get(server.addr(), "/a").status, 410);
    assert_eq!(get(server.addr(), "/a").body, b"body");
    let stats = server.path_stats("/a");
    assert_eq!((stats.gets, stats.heads), (3, 1));
}

#[test]
fn status_on_a_path_without_content() {
    let server = TestServer::start();
    server.fault("/x", Fault::Status { status: 500, times: 1 });
    assert_eq!(get(server.addr(), "/x").status, 500);
    assert_eq!(get(server.addr(), "/x").status, 404);
}

#[test]
fn retry_after_seconds_and_date() {
    let server = TestServer::start();
    server.add("/a", "body");
    server.fault(
        "/a",
        Fault::RetryAfterSecs {
            status: 429,
            secs: 7,
            times: 1,
        },
    );
    server.fault(
        "/a",
        Fault::RetryAfterDate {
            status: 503,
            secs: 120,
            times: 1,
        },
    );
    let reply = get(server.addr(), "/a");
    assert_eq!((reply.status, reply.header("retry-after")), (429, Some("7")));

    let reply = get(server.addr(), "/a");
    assert_eq!(reply.status, 503);
    let date = httpdate::parse_http_date(reply.header("retry-after").unwrap()).unwrap();
    let ahead = date.duration_since(SystemTime::now()).unwrap();
    assert!(
        ahead > Duration::from_secs(100) && ahead <= Duration::from_secs(120),
        "{ahead:?}"
    );

    assert_eq!(get(server.addr(), "/a").status, 200);
}

#[test]
fn truncate_announces_everything_then_closes() {
    let server = TestServer::start();
    let body = content(7, 200_000);
    server.add("/a", body.clone());
    server.fault(
        "/a",
        Fault::Truncate {
            after: 70_000,
            times: 1,
        },
    );

    let mut conn = Conn::open(server.addr());
    let reply = conn.send("GET", "/a", &[]);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.content_length(), Some(200_000));
    assert_eq!(reply.body, body[..70_000]);
    assert!(conn.closed());
    assert_eq!(server.path_stats("/a").bytes_served, 70_000);

    // Cut at zero bytes still sends the headers.
    server.fault("/a", Fault::Truncate { after: 0, times: 1 });
    let reply = get(server.addr(), "/a");
    assert_eq!((reply.status, reply.body.len()), (200, 0));

    assert_eq!(get(server.addr(), "/a").body, body);
}

#[test]
fn ignore_range_sends_everything() {
    let server = TestServer::start();
    let body = content(8, 1000);
    server.add("/a", body.clone());
    server.fault("/a", Fault::IgnoreRange);
    let reply = send(server.addr(), "GET", "/a", &[("Range", "bytes=500-")]);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-range"), None);
    assert_eq!(reply.body, body);
    server.clear_faults("/a");
    assert_eq!(send(server.addr(), "GET", "/a", &[("Range", "bytes=500-")]).status, 206);
}

#[test]
fn refuse_head_leaves_get_working() {
    let server = TestServer::start();
    server.add("/a", "body");
    server.fault("/a", Fault::RefuseHead { status: 405 });
    assert_eq!(send(server.addr(), "HEAD", "/a", &[]).status, 405);
    assert_eq!(send(server.addr(), "HEAD", "/a", &[]).status, 405);
    assert_eq!(get(server.addr(), "/a").body, b"body");
}

#[test]
fn redirect_to_any_location() {
    let server = TestServer::start();
    server.fault(
        "/a",
        Fault::RedirectTo {
            location: "file:///etc/passwd".into(),
        },
    );
    for method in ["GET", "HEAD"] {
        let reply = send(server.addr(), method, "/a", &[]);
        assert_eq!(reply.status, 302);
        assert_eq!(reply.header("location"), Some("file:///etc/passwd"));
    }
}

#[test]
fn redirect_loop_never_ends() {
    let server = TestServer::start();
    server.add("/x", "body");
    server.fault("/x", Fault::RedirectLoop);
    assert_eq!(get(server.addr(), "/x").header("location"), Some("/x?1"));
    assert_eq!(get(server.addr(), "/x?1").header("location"), Some("/x?2"));
    assert_eq!(get(server.addr(), "/x?41").header("location"), Some("/x?42"));
    assert_eq!(server.path_stats("/x").gets, 3);
}

#[test]
fn throttle_paces_the_body() {
    let server = TestServer::start();
    let body = content(9, 1000);
    server.add("/a", body.clone());
    server.fault(
        "/a",
        Fault::Throttle {
            chunk: 250,
            delay_ms: 50,
        },
    );
    let started = Instant::now();
    assert_eq!(get(server.addr(), "/a").body, body);
    // Four chunks, three pauses.
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn change_after_changes_bytes_and_validators() {
    let server = TestServer::start();
    let body = content(10, 5000);
    server.add("/a", body.clone());
    server.fault("/a", Fault::ChangeAfter { after_gets: 1 });

    let first = get(server.addr(), "/a");
    assert_eq!(first.body, body);
    let old_etag = first.header("etag").unwrap().to_owned();

    let resumed = send(
        server.addr(),
        "GET",
        "/a",
        &[("Range", "bytes=100-"), ("If-Range", &old_etag)],
    );
    assert_eq!(resumed.status, 200);
    assert_eq!(resumed.body.len(), 5000);
    assert_ne!(resumed.body, body);
    let new_etag = resumed.header("etag").unwrap().to_owned();
    assert_ne!(new_etag, old_etag);

    // Only once: the new content stays.
    let again = send(
        server.addr(),
        "GET",
        "/a",
        &[("Range", "bytes=100-"), ("If-Range", &new_etag)],
    );
    assert_eq!(again.status, 206);
    assert_eq!(again.body, resumed.body[100..]);
}
