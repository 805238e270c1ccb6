//! The pooled reqwest client a fetcher is built around.

use std::time::Duration;

use oncefetch_core::FetcherConfig;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use crate::{redirect, trust};

/// Idle connections kept per host: many small files on one host reuse them.
const POOL_MAX_IDLE_PER_HOST: usize = 64;

/// How long an idle pooled connection is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// The HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// reqwest refused the settings (TLS roots, say).
    #[error("cannot build the http client: {0}")]
    Client(String),
    /// An extra header that cannot be sent.
    #[error("cannot send header {name:?}: {reason}")]
    Header {
        /// The header's name, as given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A CA certificate file that cannot be used.
    #[error("CA certificate file {path}: {reason}")]
    CaCert {
        /// The file, as given.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A proxy URL that cannot be used (shown with its credentials redacted).
    #[error("proxy {url}: {reason}")]
    Proxy {
        /// The URL, credentials redacted.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// One client for every request of a fetcher: rustls with certificate checks
/// against the bundled roots, the system's and any `ca_certs` (unless
/// `insecure`), no content decoding (a gzip body is stored as served, like
/// curl without `--compressed`), the SPEC §8 redirect policy, connect and
/// idle-read timeouts, the extra headers, the proxy, and a pool sized for
/// many small files on one host. No overall timeout unless `max_time` sets
/// one: a large file may take as long as it keeps flowing.
pub(crate) fn build(config: &FetcherConfig) -> Result<reqwest::Client, BuildError> {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .user_agent(config.user_agent.as_str())
        .default_headers(headers(&config.headers)?)
        .connect_timeout(config.connect_timeout)
        .read_timeout(config.read_timeout)
        .redirect(redirect::policy(config.max_redirects))
        // Bodies are stored as served (SPEC: the bytes the server sent are the
        // ones hashed): never decode a Content-Encoding, even when another
        // crate in the build turns reqwest's decoders on.
        .no_gzip()
        .no_brotli()
        .no_deflate()
        .no_zstd()
        .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .tcp_nodelay(true);
    for path in &config.ca_certs {
        for certificate in trust::load(path)? {
            builder = builder.add_root_certificate(certificate);
        }
    }
    if config.insecure {
        builder = builder.danger_accept_invalid_certs(true);
    }
    if let Some(url) = &config.proxy {
        builder = builder.proxy(proxy(url)?);
    }
    if let Some(max_time) = config.max_time {
        builder = builder.timeout(max_time);
    }
    builder
        .build()
        .map_err(|error| BuildError::Client(crate::classify::chain(&error)))
}

/// `pairs` as a header map; a later header of a name replaces an earlier one.
pub(crate) fn headers(pairs: &[(String, String)]) -> Result<HeaderMap, BuildError> {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        let invalid = |reason: &str| BuildError::Header {
            name: name.clone(),
            reason: reason.to_owned(),
        };
        let header = HeaderName::try_from(name.as_str()).map_err(|_| invalid("not a valid header name"))?;
        let value =
            HeaderValue::try_from(value.as_str()).map_err(|_| invalid("the value holds a control character"))?;
        map.insert(header, value);
    }
    Ok(map)
}

/// Every request through `url`, but for the hosts `NO_PROXY` names (as curl
/// does).
fn proxy(url: &str) -> Result<reqwest::Proxy, BuildError> {
    let proxy = reqwest::Proxy::all(url).map_err(|_| BuildError::Proxy {
        url: crate::classify::shown(url).into_owned(),
        reason: "not a proxy URL (expected http://[user:pass@]host:port)".to_owned(),
    })?;
    Ok(proxy.no_proxy(reqwest::NoProxy::from_env()))
}
