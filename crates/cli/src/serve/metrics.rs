//! The Prometheus exporter of a run: the `metrics` facade's recorder,
//! rendered as text at each scrape, with the jobs per state read from the
//! ledger then.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use oncefetch_core::telemetry;
use oncefetch_core::Store;

/// Renders the process's metrics.
#[derive(Debug, Clone)]
pub(crate) struct Exporter {
    handle: PrometheusHandle,
}

/// The process's recorder: installed once, on first use.
static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

impl Exporter {
    /// The exporter of this process (the recorder installed on first call).
    pub(crate) fn install() -> anyhow::Result<Exporter> {
        if let Some(handle) = HANDLE.get() {
            return Ok(Exporter { handle: handle.clone() });
        }
        let mut builder = PrometheusBuilder::new();
        for name in telemetry::HISTOGRAMS {
            builder = builder.set_buckets_for_metric(Matcher::Full(name.to_owned()), &telemetry::SECONDS_BUCKETS)?;
        }
        let recorder = builder.build_recorder();
        let handle = HANDLE.get_or_init(|| recorder.handle()).clone();
        metrics::set_global_recorder(recorder)
            .map_err(|e| anyhow::anyhow!("cannot install the metrics recorder: {e}"))?;
        telemetry::describe();
        Ok(Exporter { handle })
    }

    /// The Prometheus text: the ledger's jobs per state, read now, then
    /// every metric of the run.
    pub(crate) async fn render(&self, store: &dyn Store) -> anyhow::Result<String> {
        let counts = store.status().await?;
        for (state, n) in &counts.states {
            metrics::gauge!(telemetry::JOBS, "state" => state.as_str()).set(*n as f64);
        }
        self.handle.run_upkeep();
        Ok(self.handle.render())
    }
}
