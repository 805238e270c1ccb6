//! `run --metrics-addr ADDR`: the run's store, fetcher and progress hooks
//! wrapped to count (oncefetch_core::telemetry), and the watch server with
//! `/metrics` for as long as the run lasts.

use std::net::SocketAddr;
use std::sync::Arc;

use oncefetch_core::pipeline::recover::RecoverReport;
use oncefetch_core::pipeline::Progress;
use oncefetch_core::telemetry::{self, HostLabels, MeteredFetcher, MeteredProgress, MeteredStore};
use oncefetch_core::watch::WatchQuery;
use oncefetch_core::{Fetcher, Store};

use super::{check_bind, Exporter, Server, Site};

/// The busiest hosts of the ledger (by jobs) when the run starts get a
/// `host` label of their own; the others are `host="other"`.
pub(crate) const LABELLED_HOSTS: usize = 20;

/// A run's metrics: off, or on with its server.
#[derive(Debug)]
pub(crate) struct RunWatch {
    hosts: HostLabels,
    server: Option<Server>,
}

impl RunWatch {
    /// Nothing counted, nothing served.
    pub(crate) fn off() -> Self {
        Self {
            hosts: HostLabels::default(),
            server: None,
        }
    }

    /// Counts the run through `store` and serves `/metrics` and the pages at
    /// `addr`; returns the store the run must use.
    pub(crate) async fn start(
        addr: SocketAddr,
        token: Option<String>,
        store: Arc<dyn Store>,
        max_attempts: u32,
        source: String,
    ) -> anyhow::Result<(Self, Arc<dyn Store>)> {
        check_bind(addr, token.as_deref())?;
        let exporter = Exporter::install()?;
        let busiest = store
            .watch(&WatchQuery {
                hosts: LABELLED_HOSTS,
                ..WatchQuery::default()
            })
            .await?;
        let hosts = HostLabels::new(busiest.hosts.into_iter().map(|h| h.host));
        let metered: Arc<dyn Store> = Arc::new(MeteredStore::new(store));
        let site = Site {
            store: Arc::clone(&metered),
            exporter: Some(exporter),
            token,
            max_attempts,
            refresh: super::REFRESH_SECS,
            source,
        };
        let server = Server::start(addr, site).await?;
        tracing::info!(addr = %server.addr(), "serving /metrics and the status pages");
        eprintln!("metrics and status pages at http://{}/", server.addr());
        Ok((
            Self {
                hosts,
                server: Some(server),
            },
            metered,
        ))
    }

    fn on(&self) -> bool {
        self.server.is_some()
    }

    /// The fetcher the run must use.
    pub(crate) fn fetcher(&self, fetcher: Arc<dyn Fetcher>) -> Arc<dyn Fetcher> {
        if self.on() {
            Arc::new(MeteredFetcher::new(fetcher, self.hosts.clone()))
        } else {
            fetcher
        }
    }

    /// The progress hooks the run must use.
    pub(crate) fn progress(&self, progress: Arc<dyn Progress>) -> Arc<dyn Progress> {
        if self.on() {
            Arc::new(MeteredProgress::new(progress, self.hosts.clone()))
        } else {
            progress
        }
    }

    /// Counts what recovery did.
    pub(crate) fn recovered(&self, report: &RecoverReport) {
        if self.on() {
            telemetry::record_recovery(report);
        }
    }
}
