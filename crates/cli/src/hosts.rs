//! `run --hosts FILE`: per-host policies in TOML (SPEC §8).
//!
//! ```toml
//! [default]
//! rate = "5/s"
//! concurrency = 4
//!
//! [host."export.arxiv.org"]
//! rate = "1/3s"
//! concurrency = 1
//! bandwidth = "500k"
//! headers = { "Authorization" = "Bearer abc", "User-Agent" = "mybot/1" }
//! ```
//!
//! `headers` is a TOML table of header name to value (an inline table as
//! above, or a `[host."NAME".headers]` table); each is checked as a
//! `--header` is.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use oncefetch_core::pipeline::{HostPolicies, HostPolicy, Rate};
use serde::de::{Deserializer, Error as _};
use serde::Deserialize;

use crate::cli::{parse_bandwidth, parse_header, parse_rate};

/// The file's shape: a `[default]` table and `[host."NAME"]` tables.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HostsFile {
    #[serde(default)]
    default: Table,
    #[serde(default)]
    host: BTreeMap<String, Table>,
}

/// One table's keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    #[serde(default, deserialize_with = "rate")]
    rate: Option<Rate>,
    #[serde(default, deserialize_with = "concurrency")]
    concurrency: Option<usize>,
    #[serde(default, deserialize_with = "bandwidth")]
    bandwidth: Option<u64>,
    #[serde(default, deserialize_with = "headers")]
    headers: Vec<(String, String)>,
}

impl Table {
    fn policy(&self) -> HostPolicy {
        HostPolicy {
            rate: self.rate,
            concurrency: self.concurrency,
            bandwidth: self.bandwidth,
            headers: self.headers.clone(),
        }
    }
}

fn rate<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Rate>, D::Error> {
    let text = String::deserialize(d)?;
    parse_rate(&text)
        .map(Some)
        .map_err(|e| D::Error::custom(format!("rate: {e}")))
}

fn concurrency<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    match u64::deserialize(d)? {
        n @ 1..=4096 => Ok(Some(n as usize)),
        n => Err(D::Error::custom(format!("concurrency: {n} is not in 1..=4096"))),
    }
}

/// A size per second: a number of bytes, or text as for `--limit-rate`.
#[derive(Deserialize)]
#[serde(untagged)]
enum Bandwidth {
    Bytes(u64),
    Text(String),
}

fn bandwidth<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let text = match Bandwidth::deserialize(d)? {
        Bandwidth::Bytes(n) => n.to_string(),
        Bandwidth::Text(text) => text,
    };
    parse_bandwidth(&text)
        .map(Some)
        .map_err(|e| D::Error::custom(format!("bandwidth: {e}")))
}

/// A table of header name to value, each checked as `--header` checks
/// `Name: value` (a later name repeated with another case replaces the
/// earlier when sent).
fn headers<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, String)>, D::Error> {
    let table = BTreeMap::<String, String>::deserialize(d)?;
    table
        .iter()
        .map(|(name, value)| {
            let bad = |e: String| D::Error::custom(format!("headers: {name:?}: {e}"));
            if name.contains(':') {
                return Err(bad(format!("{name:?} is not a header name")));
            }
            parse_header(&format!("{name}:{value}")).map_err(bad)
        })
        .collect()
}

/// Parses `text`, the hosts file's content.
fn parse(text: &str) -> Result<HostPolicies, toml::de::Error> {
    let file: HostsFile = toml::from_str(text)?;
    Ok(HostPolicies {
        default: file.default.policy(),
        hosts: file
            .host
            .iter()
            .map(|(name, table)| (name.trim().to_ascii_lowercase(), table.policy()))
            .collect(),
    })
}

/// Reads the hosts file at `path`; an error names the file, and the line
/// and key at fault.
pub(crate) fn load(path: &Path) -> anyhow::Result<HostPolicies> {
    let text = std::fs::read_to_string(path).with_context(|| format!("hosts file {}", path.display()))?;
    parse(&text).map_err(|e| anyhow::anyhow!("hosts file {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_default_and_host_tables() {
        let policies = parse(
            r#"
            [default]
            rate = "5/s"
            concurrency = 4

            [host."Export.arXiv.org"]
            rate = "1/3s"
            concurrency = 1
            bandwidth = "500k"

            headers = { "X-Token" = " t ", "User-Agent" = "bot/1" }

            [host."127.0.0.1:8080"]
            bandwidth = 1000

            [host."127.0.0.1:8080".headers]
            Accept = "*/*"
            "#,
        )
        .expect("parse");
        assert_eq!(policies.default.rate, Some("5/s".parse().unwrap()));
        assert_eq!(policies.default.concurrency, Some(4));
        let arxiv = &policies.hosts["export.arxiv.org"];
        assert_eq!(
            (arxiv.rate, arxiv.concurrency, arxiv.bandwidth),
            (Some("1/3s".parse().unwrap()), Some(1), Some(500_000))
        );
        let pairs = |v: &[(&str, &str)]| v.iter().map(|&(n, v)| (n.to_owned(), v.to_owned())).collect::<Vec<_>>();
        assert_eq!(arxiv.headers, pairs(&[("User-Agent", "bot/1"), ("X-Token", "t")]));
        assert_eq!(policies.hosts["127.0.0.1:8080"].bandwidth, Some(1000));
        assert_eq!(policies.hosts["127.0.0.1:8080"].headers, pairs(&[("Accept", "*/*")]));
        assert!(policies.default.headers.is_empty());
        assert_eq!(parse("").expect("empty"), HostPolicies::default());
    }

    #[test]
    fn errors_name_the_line_and_key() {
        let cases = [
            ("[default]\nrate = \"5/x\"\n", "line 2", "rate"),
            ("[default]\n\n[host.\"h\"]\nconcurrency = 0\n", "line 4", "concurrency"),
            ("[host.\"h\"]\nbandwidth = \"fast\"\n", "line 2", "bandwidth"),
            ("[default]\nspeed = 3\n", "line 2", "speed"),
            ("[defaults]\n", "line 1", "defaults"),
            (
                "[host.\"h\"]\nheaders = { a = \"b\\u0007\" }\n",
                "line 2",
                "control character",
            ),
            (
                "[default]\nheaders = { \"a b\" = \"c\" }\n",
                "line 2",
                "not a header name",
            ),
            ("[default]\nheaders = { a = 1 }\n", "line 2", "headers"),
            (
                "[default]\nheaders = { \"a:b\" = \"c\" }\n",
                "line 2",
                "not a header name",
            ),
            ("[default\n", "line 1", ""),
        ];
        for (text, line, key) in cases {
            let err = parse(text).expect_err(text).to_string();
            assert!(err.contains(line) && err.contains(key), "{text:?}: {err}");
        }
    }
}
