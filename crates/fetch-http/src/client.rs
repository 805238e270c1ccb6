//! The pooled reqwest client a fetcher is built around.

use std::time::Duration;

use oncefetch_core::FetcherConfig;

use crate::redirect;

/// Idle connections kept per host: many small files on one host reuse them.
const POOL_MAX_IDLE_PER_HOST: usize = 64;

/// How long an idle pooled connection is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// The HTTP client could not be built (TLS roots, say).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the http client")]
pub struct BuildError(#[source] reqwest::Error);

/// One client for every request of a fetcher: rustls with certificate checks,
/// no content decoding (a gzip body is stored as served, like curl without
/// `--compressed`),
/// the SPEC §8 redirect policy, connect and idle-read timeouts, and a pool
/// sized for many small files on one host. No overall timeout: a large file
/// may take as long as it keeps flowing.
pub(crate) fn build(config: &FetcherConfig) -> Result<reqwest::Client, BuildError> {
    reqwest::Client::builder()
        .use_rustls_tls()
        .user_agent(config.user_agent.as_str())
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
        .tcp_nodelay(true)
        .build()
        .map_err(BuildError)
}
