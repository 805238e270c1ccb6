//! Who may watch: the server binds loopback unless told otherwise, and an
//! address others can reach needs an access token, which every request then
//! carries (`Authorization: Bearer TOKEN`, the `oncefetch_token` cookie, or
//! `?token=TOKEN`, which sets the cookie for the pages' later requests).

use std::net::SocketAddr;

use hyper::header::{AUTHORIZATION, COOKIE};
use hyper::{Request, StatusCode};

use super::{text, Answer};

/// The cookie that carries the token for a browser.
const COOKIE_NAME: &str = "oncefetch_token";

/// Refuses to serve a non-loopback address without a token: the pages show
/// URLs and errors to whoever reaches them.
pub(crate) fn check_bind(addr: SocketAddr, token: Option<&str>) -> anyhow::Result<()> {
    if let Some(token) = token {
        anyhow::ensure!(!token.is_empty(), "--auth-token must not be empty");
    }
    anyhow::ensure!(
        addr.ip().is_loopback() || token.is_some(),
        "{addr} is not a loopback address: anyone who reaches it would see the ledger's URLs and errors; \
         give --auth-token TOKEN (or ONCEFETCH_AUTH_TOKEN) so that only requests carrying it are served"
    );
    Ok(())
}

/// A request let in.
#[derive(Debug, Default)]
pub(crate) struct Granted {
    /// A `Set-Cookie` value to answer with (the token came in the query).
    pub(crate) set_cookie: Option<String>,
}

/// Lets a request in when no token is set or it carries the token;
/// `None` when it must be refused ([`refused`]).
pub(crate) fn check<B>(token: Option<&str>, req: &Request<B>) -> Option<Granted> {
    let Some(token) = token else {
        return Some(Granted::default());
    };
    let bearer = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if bearer.is_some_and(|given| same(given, token)) {
        return Some(Granted::default());
    }
    let cookie = req
        .headers()
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value);
    if cookie.is_some_and(|given| same(given, token)) {
        return Some(Granted::default());
    }
    let query = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| *name == "token")
        .map(|(_, value)| value);
    query.filter(|given| same(given, token)).map(|_| Granted {
        set_cookie: Some(format!("{COOKIE_NAME}={token}; Path=/; HttpOnly; SameSite=Strict")),
    })
}

/// The answer to a request without the token: 401, and nothing of the
/// ledger.
pub(crate) fn refused() -> Answer {
    let mut refused = text(
        StatusCode::UNAUTHORIZED,
        "this server needs its access token: send `Authorization: Bearer TOKEN`, or open the page with ?token=TOKEN\n",
    );
    refused.headers_mut().insert(
        hyper::header::WWW_AUTHENTICATE,
        hyper::header::HeaderValue::from_static("Bearer"),
    );
    refused
}

/// Compares in time that depends on the lengths only.
fn same(given: &str, token: &str) -> bool {
    given.len() == token.len() && given.bytes().zip(token.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(header: Option<&str>, cookie: Option<&str>, uri: &str) -> Request<()> {
        let mut builder = Request::builder().uri(uri);
        if let Some(h) = header {
            builder = builder.header(AUTHORIZATION, h);
        }
        if let Some(c) = cookie {
            builder = builder.header(COOKIE, c);
        }
        builder.body(()).expect("request")
    }

    #[test]
    fn only_requests_with_the_token_pass() {
        let t = Some("s3cret");
        assert!(check(None, &request(None, None, "/")).is_some());
        assert!(check(t, &request(Some("Bearer s3cret"), None, "/")).is_some());
        assert!(check(t, &request(None, Some("a=b; oncefetch_token=s3cret"), "/")).is_some());
        let by_query = check(t, &request(None, None, "/?x=1&token=s3cret")).expect("query token");
        assert!(by_query
            .set_cookie
            .is_some_and(|c| c.starts_with("oncefetch_token=s3cret")));
        for (header, cookie, uri) in [
            (None, None, "/"),
            (Some("Bearer s3cre"), None, "/"),
            (Some("Basic s3cret"), None, "/"),
            (None, Some("oncefetch_token=nope"), "/?token=s3cret2"),
        ] {
            assert!(
                check(t, &request(header, cookie, uri)).is_none(),
                "{header:?} {cookie:?} {uri}"
            );
        }
    }

    #[test]
    fn a_refusal_shows_nothing() {
        let answer = refused();
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(answer.headers()[hyper::header::WWW_AUTHENTICATE], "Bearer");
    }

    #[test]
    fn other_addresses_need_a_token() {
        let loopback: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert!(check_bind(loopback, None).is_ok());
        assert!(check_bind("[::1]:8080".parse().unwrap(), None).is_ok());
        let err = check_bind(any, None).unwrap_err().to_string();
        assert!(err.contains("--auth-token"), "{err}");
        assert!(check_bind(any, Some("t")).is_ok());
        assert!(check_bind(loopback, Some("")).is_err());
    }
}
