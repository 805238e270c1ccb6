//! [`PostgresOptions`]: where the ledger lives and how the store talks to it.

use std::fmt;
use std::time::Duration;

use oncefetch_core::{StoreError, StoreResult};
use percent_encoding::percent_decode_str;

use crate::STORE;

/// Connections per store unless `pool_size` says otherwise.
pub const DEFAULT_POOL_SIZE: usize = 16;

/// How long a call keeps retrying after the connection failed.
pub const DEFAULT_RETRY_WINDOW: Duration = Duration::from_secs(15);

/// How long opening a connection may take.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How to reach the ledger: a libpq-style `postgres://` URL (passed to
/// `tokio-postgres`) plus the options this crate reads from its query string.
///
/// | URL parameter | meaning |
/// |---|---|
/// | `schema=NAME` | keep the ledger in schema `NAME` (created if missing): every pooled connection runs `SET search_path TO "NAME"`. Without it the server's default `search_path` (normally `public`) is used. |
/// | `pool_size=N` | at most `N` connections (default 16) |
///
/// Every other parameter (`connect_timeout`, `application_name`, `options`,
/// `host=/run/postgresql` for a Unix socket, …) goes to `tokio-postgres`
/// unchanged. TLS is not supported (no OpenSSL): use `sslmode=disable` or
/// the default `prefer` on a trusted network or a Unix socket.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresOptions {
    url: String,
    schema: Option<String>,
    pool_size: usize,
    retry_window: Duration,
    connect_timeout: Duration,
}

impl PostgresOptions {
    /// Reads a `postgres://` or `postgresql://` URL, taking out this crate's
    /// own parameters.
    pub fn from_url(url: &str) -> StoreResult<Self> {
        let invalid = |why: String| StoreError::backend(STORE, format!("invalid PostgreSQL URL: {why}"));
        let scheme_ok = ["postgres://", "postgresql://"]
            .iter()
            .any(|s| url.len() >= s.len() && url[..s.len()].eq_ignore_ascii_case(s));
        if !scheme_ok {
            return Err(invalid("expected postgres://… or postgresql://…".into()));
        }
        let (base, query) = match url.split_once('?') {
            Some((base, query)) => (base, query),
            None => (url, ""),
        };
        let mut options = Self {
            url: base.to_owned(),
            schema: None,
            pool_size: DEFAULT_POOL_SIZE,
            retry_window: DEFAULT_RETRY_WINDOW,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        };
        let mut passed = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, raw) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode_str(raw)
                .decode_utf8()
                .map_err(|_| invalid(format!("parameter {key} is not UTF-8")))?;
            match key {
                "schema" => {
                    if value.is_empty() {
                        return Err(invalid("schema is empty".into()));
                    }
                    options.schema = Some(value.into_owned());
                }
                "pool_size" => {
                    options.pool_size = value
                        .parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| invalid(format!("pool_size {value:?} is not a positive integer")))?;
                }
                _ => passed.push(pair),
            }
        }
        if !passed.is_empty() {
            options.url = format!("{base}?{}", passed.join("&"));
        }
        Ok(options)
    }

    /// Keeps the ledger in `schema` (see the table above).
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// At most `size` pooled connections (at least one).
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size.max(1);
        self
    }

    /// How long a call keeps retrying after the connection to the server
    /// failed (a server restart, say) before it reports the error.
    pub fn retry_window(mut self, window: Duration) -> Self {
        self.retry_window = window;
        self
    }

    /// How long opening one connection may take.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The URL handed to `tokio-postgres` (this crate's parameters removed).
    pub fn connection_url(&self) -> &str {
        &self.url
    }

    /// The schema the ledger lives in, if one was chosen.
    pub fn schema_name(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// Most pooled connections.
    pub fn max_connections(&self) -> usize {
        self.pool_size
    }

    /// See [`PostgresOptions::retry_window`].
    pub fn retry_window_duration(&self) -> Duration {
        self.retry_window
    }

    /// See [`PostgresOptions::connect_timeout`].
    pub fn connect_timeout_duration(&self) -> Duration {
        self.connect_timeout
    }
}

/// The URL with its password replaced by `***`.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

impl fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresOptions")
            .field("url", &redact(&self.url))
            .field("schema", &self.schema)
            .field("pool_size", &self.pool_size)
            .field("retry_window", &self.retry_window)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

/// `name` as a quoted SQL identifier.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_parameters_are_taken_out() {
        let o = PostgresOptions::from_url(
            "postgres://u:secret@h:5433/db?connect_timeout=3&schema=t%20one&pool_size=4&options=-c%20x%3Dy",
        )
        .unwrap();
        assert_eq!(o.schema_name(), Some("t one"));
        assert_eq!(o.max_connections(), 4);
        assert_eq!(
            o.connection_url(),
            "postgres://u:secret@h:5433/db?connect_timeout=3&options=-c%20x%3Dy"
        );
        let shown = format!("{o:?}");
        assert!(!shown.contains("secret") && shown.contains("u:***@h:5433"), "{shown}");
    }

    #[test]
    fn plain_urls_pass_through() {
        let o = PostgresOptions::from_url("postgresql://h/db").unwrap();
        assert_eq!(o.connection_url(), "postgresql://h/db");
        assert_eq!((o.schema_name(), o.max_connections()), (None, DEFAULT_POOL_SIZE));
    }

    #[test]
    fn bad_values_are_refused() {
        for url in [
            "sqlite:x.db",
            "postgres://h/db?pool_size=0",
            "postgres://h/db?pool_size=x",
            "postgres://h/db?schema=",
        ] {
            assert!(PostgresOptions::from_url(url).is_err(), "{url}");
        }
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident(r#"a"b"#), r#""a""b""#);
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }
}
