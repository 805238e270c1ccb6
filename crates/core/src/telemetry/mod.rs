//! Run metrics through the [`metrics`] facade (SPEC §11): the names, and
//! wrappers that count at the edges of the pipeline — the store
//! ([`MeteredStore`]), the fetcher ([`MeteredFetcher`]) and the progress
//! hooks ([`MeteredProgress`]) — so the pipeline itself holds no metrics
//! calls. Without a recorder installed every call is a no-op.
//!
//! Labels stay bounded: never a URL or a job key; hosts only through
//! [`HostLabels`], which folds every host beyond a fixed set into
//! `host="other"`.

mod fetcher;
mod names;
mod progress;
mod store;

use std::collections::HashSet;

pub use fetcher::MeteredFetcher;
pub use names::*;
pub use progress::{record_recovery, MeteredProgress};
pub use store::MeteredStore;

/// The host label of everything beyond [`HostLabels`]' set.
pub const OTHER_HOST: &str = "other";

/// The host label values a run may use: the hosts it was given (the busiest
/// of the ledger), every other host as [`OTHER_HOST`].
#[derive(Debug, Clone, Default)]
pub struct HostLabels {
    named: HashSet<String>,
}

impl HostLabels {
    /// Labels for `hosts` (`HOST:PORT` as [`crate::url::host_port`] gives).
    pub fn new(hosts: impl IntoIterator<Item = String>) -> Self {
        Self {
            named: hosts.into_iter().collect(),
        }
    }

    /// The label of the host of `canonical_url`.
    pub fn label(&self, canonical_url: &str) -> String {
        let host = crate::url::host_port(canonical_url);
        if self.named.contains(host) {
            host.to_owned()
        } else {
            OTHER_HOST.to_owned()
        }
    }
}

/// The bounded reason class of a failure message (the `reason` label of
/// [`RETRIES`]): `http_429`, `http_4xx`, `http_5xx`, `connect`, `timeout`,
/// `truncated`, `mismatch` or `other`.
pub fn reason_class(message: &str) -> &'static str {
    if let Some(answer) = message.strip_prefix("server answered ") {
        return match answer.as_bytes().first() {
            _ if answer.starts_with("429") => "http_429",
            Some(b'4') => "http_4xx",
            Some(b'5') => "http_5xx",
            _ => "other",
        };
    }
    if message.starts_with("cannot connect") {
        "connect"
    } else if message.starts_with("timed out") || message.contains("too slow") {
        "timeout"
    } else if message.contains("truncated") || message.contains("ended early") {
        "truncated"
    } else if mismatch_check(message).is_some() {
        "mismatch"
    } else {
        "other"
    }
}

/// Which check a failure message reports failing (the `check` label of
/// [`VERIFY_MISMATCHES`]): `sha256` or `size`.
pub fn mismatch_check(message: &str) -> Option<&'static str> {
    if message.starts_with("sha256 mismatch") {
        Some("sha256")
    } else if message.starts_with("size mismatch") {
        Some("size")
    } else {
        None
    }
}

/// The class of an HTTP status (`2xx` … `5xx`), or `none` when no answer
/// came.
pub fn status_class(status: Option<u16>) -> &'static str {
    match status.map(|s| s / 100) {
        Some(1) => "1xx",
        Some(2) => "2xx",
        Some(3) => "3xx",
        Some(4) => "4xx",
        Some(5) => "5xx",
        _ => "none",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_fall_into_few_classes() {
        let cases = [
            ("server answered 503 service unavailable for http://h/a", "http_5xx"),
            ("server answered 404 not found for http://h/a", "http_4xx"),
            ("server answered 429 too many requests for http://h/a", "http_429"),
            ("cannot connect to http://h/a: refused", "connect"),
            ("timed out requesting http://h/a", "timeout"),
            ("sha256 mismatch: expected a, got b", "mismatch"),
            ("anything else", "other"),
        ];
        for (message, class) in cases {
            assert_eq!(reason_class(message), class, "{message}");
        }
        assert_eq!(mismatch_check("size mismatch: expected 3 bytes, got 4"), Some("size"));
    }

    #[test]
    fn hosts_beyond_the_set_are_other() {
        let labels = HostLabels::new(["a.example:8080".to_owned()]);
        assert_eq!(labels.label("http://a.example:8080/x"), "a.example:8080");
        assert_eq!(labels.label("http://u:p@b.example/x"), OTHER_HOST);
        assert_eq!((status_class(Some(206)), status_class(None)), ("2xx", "none"));
    }
}
