//! Per-host politeness policies: a request rate, a download concurrency,
//! a bandwidth cap and request headers for each host, from a table of its
//! own, else the default table, else the run's flags.

use std::collections::HashMap;

use super::Rate;

/// What one host gets; an unset field falls back (host table, then the
/// default table, then the run's flags).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostPolicy {
    /// Requests per period ([`RunConfig::rate_per_host`](super::RunConfig::rate_per_host)).
    pub rate: Option<Rate>,
    /// Downloads at once ([`RunConfig::per_host`](super::RunConfig::per_host)).
    pub concurrency: Option<usize>,
    /// Body bytes per second of this host's downloads together.
    pub bandwidth: Option<u64>,
    /// Headers (name, value) sent with every request to this host, on top
    /// of (and, for a name they share, instead of) the fetcher's own
    /// ([`FetcherConfig::headers`](crate::FetcherConfig::headers) and its
    /// `User-Agent`). Unlike the other fields these merge by name, compared
    /// case-insensitively: a host table's header replaces the default
    /// table's of that name, and adds to the others.
    pub headers: Vec<(String, String)>,
}

impl HostPolicy {
    /// Each field of `self`, else of `fallback`; the headers of both, those
    /// of `self` winning by name.
    pub fn or(&self, fallback: &HostPolicy) -> HostPolicy {
        let shadowed = |name: &str| self.headers.iter().any(|(own, _)| own.eq_ignore_ascii_case(name));
        let headers = fallback
            .headers
            .iter()
            .filter(|(name, _)| !shadowed(name))
            .chain(&self.headers)
            .cloned()
            .collect();
        HostPolicy {
            rate: self.rate.or(fallback.rate),
            concurrency: self.concurrency.or(fallback.concurrency),
            bandwidth: self.bandwidth.or(fallback.bandwidth),
            headers,
        }
    }
}

/// The policies of a run: a default and one per host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostPolicies {
    /// What every host gets unless its own table says otherwise.
    pub default: HostPolicy,
    /// By host, lowercase: `HOST` (any port) or `HOST:PORT` (that port).
    pub hosts: HashMap<String, HostPolicy>,
}

impl HostPolicies {
    /// The policy of `host_port` (a canonical URL's `HOST[:PORT]`): its
    /// `HOST:PORT` table, else its `HOST` table, field by field, then the
    /// default.
    pub fn of(&self, host_port: &str) -> HostPolicy {
        let own = self.hosts.get(host_port).cloned().unwrap_or_default();
        let host = strip_port(host_port);
        let bare = (host != host_port)
            .then(|| self.hosts.get(host).cloned())
            .flatten()
            .unwrap_or_default();
        own.or(&bare).or(&self.default)
    }
}

/// `HOST` of `HOST[:PORT]` (an IPv6 literal keeps its brackets).
fn strip_port(host_port: &str) -> &str {
    match host_port.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && !host.ends_with(':') => {
            host
        }
        _ => host_port,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_table_wins_field_by_field_then_the_default() {
        let rate = |s: &str| Some(s.parse::<Rate>().expect("rate"));
        let mut policies = HostPolicies {
            default: HostPolicy {
                rate: rate("5/s"),
                concurrency: Some(4),
                bandwidth: None,
                headers: vec![("X-A".into(), "default".into()), ("X-B".into(), "default".into())],
            },
            hosts: HashMap::new(),
        };
        policies.hosts.insert(
            "export.arxiv.org".into(),
            HostPolicy {
                rate: rate("1/3s"),
                headers: vec![("x-a".into(), "host".into())],
                ..HostPolicy::default()
            },
        );
        policies.hosts.insert(
            "export.arxiv.org:8443".into(),
            HostPolicy {
                concurrency: Some(1),
                ..HostPolicy::default()
            },
        );
        let any_port = policies.of("export.arxiv.org");
        assert_eq!((any_port.rate, any_port.concurrency), (rate("1/3s"), Some(4)));
        let pairs = |p: &HostPolicy| p.headers.iter().map(|(n, v)| format!("{n}: {v}")).collect::<Vec<_>>();
        assert_eq!(pairs(&any_port), ["X-B: default", "x-a: host"]);
        assert_eq!(policies.of("export.arxiv.org:8080"), any_port);
        let port = policies.of("export.arxiv.org:8443");
        assert_eq!((port.rate, port.concurrency), (rate("1/3s"), Some(1)));
        assert_eq!(pairs(&port), ["X-B: default", "x-a: host"]);
        assert_eq!(policies.of("example.org"), policies.default);
        assert_eq!(policies.of("[::1]:80"), policies.default);
    }

    #[test]
    fn ports_are_stripped_but_not_from_ipv6_literals() {
        assert_eq!(strip_port("h:80"), "h");
        assert_eq!(strip_port("h"), "h");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
    }
}
