//! What the pages and `/api/status` show, read from the ledger at each
//! request: the counts of `status` and a [`Watch`], with the rate, the ETA
//! and the failures grouped by reason worked out from them.

use std::collections::BTreeMap;
use std::time::Duration;

use oncefetch_core::watch::{HostCounts, Watch, WatchQuery};
use oncefetch_core::{Job, StatusCounts, Store};
use serde_json::{json, Value};

use crate::output::{job_json, status_json, timestamp};
use crate::reason::reason;

/// The span the rate (and a host's rate) is measured over.
pub(crate) const RECENT: Duration = Duration::from_secs(600);

/// FAILED jobs shown as examples of one reason.
const EXAMPLES: usize = 3;

/// A snapshot of the ledger for the pages.
#[derive(Debug)]
pub(crate) struct Report {
    pub(crate) status: StatusCounts,
    pub(crate) watch: Watch,
    pub(crate) max_attempts: u32,
}

/// FAILED jobs of one reason, among those read.
#[derive(Debug)]
pub(crate) struct FailureGroup<'a> {
    pub(crate) reason: String,
    pub(crate) jobs: usize,
    pub(crate) examples: Vec<&'a Job>,
}

impl Report {
    /// Reads the ledger.
    pub(crate) async fn read(store: &dyn Store, max_attempts: u32) -> anyhow::Result<Report> {
        let query = WatchQuery {
            recent: RECENT,
            ..WatchQuery::default()
        };
        let watch = store.watch(&query).await?;
        let status = store.status().await?;
        Ok(Report {
            status,
            watch,
            max_attempts,
        })
    }

    /// The span the rates are over: the recent span, or less when the
    /// ledger's first finish is younger (at least a minute).
    fn span_minutes(&self) -> f64 {
        let recent_start = self.watch.now - i64::try_from(RECENT.as_millis()).unwrap_or(i64::MAX);
        let first = self
            .watch
            .minutes
            .iter()
            .map(|m| m.minute)
            .find(|&m| m >= recent_start - 60_000)
            .unwrap_or(recent_start)
            .max(recent_start);
        ((self.watch.now - first) as f64 / 60_000.0).max(1.0)
    }

    /// Jobs finished (SUCCESS, SKIPPED_DUPLICATE or FAILED) per minute,
    /// over the recent span.
    pub(crate) fn rate_per_minute(&self) -> f64 {
        let since = self.watch.now - i64::try_from(RECENT.as_millis()).unwrap_or(i64::MAX);
        let finished: u64 = self
            .watch
            .minutes
            .iter()
            .filter(|m| m.minute + 60_000 > since)
            .map(|m| m.succeeded + m.skipped + m.failed)
            .sum();
        finished as f64 / self.span_minutes()
    }

    /// A host's finishes per minute over the recent span.
    pub(crate) fn host_rate(&self, host: &HostCounts) -> f64 {
        host.recent_finished as f64 / self.span_minutes()
    }

    /// Jobs a run still has to settle: every job but those SUCCESS,
    /// SKIPPED_DUPLICATE, or FAILED for good.
    pub(crate) fn remaining(&self) -> u64 {
        let s = &self.status;
        s.total()
            - s.get(oncefetch_core::JobState::Success)
            - s.get(oncefetch_core::JobState::SkippedDuplicate)
            - s.failed(self.max_attempts).final_
    }

    /// Seconds until the remaining jobs are settled at the recent rate;
    /// `None` while nothing finishes.
    pub(crate) fn eta_seconds(&self) -> Option<u64> {
        let rate = self.rate_per_minute();
        (rate > 0.0).then(|| (self.remaining() as f64 / rate * 60.0).ceil() as u64)
    }

    /// The FAILED jobs read, grouped by reason, the largest group first.
    pub(crate) fn failure_groups(&self) -> Vec<FailureGroup<'_>> {
        let mut groups: BTreeMap<String, FailureGroup<'_>> = BTreeMap::new();
        for job in &self.watch.failed {
            let why = reason(job.last_error.as_deref().unwrap_or("no error recorded"));
            let group = groups.entry(why.clone()).or_insert(FailureGroup {
                reason: why,
                jobs: 0,
                examples: Vec::new(),
            });
            group.jobs += 1;
            if group.examples.len() < EXAMPLES {
                group.examples.push(job);
            }
        }
        let mut groups: Vec<_> = groups.into_values().collect();
        groups.sort_by(|a, b| b.jobs.cmp(&a.jobs).then_with(|| a.reason.cmp(&b.reason)));
        groups
    }

    /// One host as `/api/hosts` shows it.
    pub(crate) fn host_json(&self, host: &HostCounts) -> Value {
        json!({
            "host": host.host,
            "total": host.total(),
            "planned": host.planned,
            "in_flight": host.in_flight,
            "succeeded": host.succeeded,
            "skipped": host.skipped,
            "failed": host.failed,
            "bytes_done": host.bytes,
            "recent_finished": host.recent_finished,
            "rate_per_minute": self.host_rate(host),
        })
    }

    /// `/api/hosts`.
    pub(crate) fn hosts_json(&self) -> Value {
        Value::Array(self.watch.hosts.iter().map(|h| self.host_json(h)).collect())
    }

    /// `/api/status`: the object of `status --json`, and more.
    pub(crate) fn status_json(&self) -> Value {
        let mut value = status_json(&self.status, self.max_attempts);
        let now = self.watch.now;
        let extra = json!({
            "now": timestamp(now),
            "remaining": self.remaining(),
            "rate_per_minute": self.rate_per_minute(),
            "eta_seconds": self.eta_seconds(),
            "throughput": self.watch.minutes.iter().map(|m| json!({
                "minute": timestamp(m.minute),
                "succeeded": m.succeeded,
                "skipped": m.skipped,
                "failed": m.failed,
                "bytes": m.bytes,
            })).collect::<Vec<_>>(),
            "hosts": self.hosts_json(),
            "failures": self.failure_groups().iter().map(|g| json!({
                "reason": g.reason,
                "jobs": g.jobs,
                "examples": g.examples.iter().map(|j| j.job_key.as_str()).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "failures_read": self.watch.failed.len(),
            "in_flight": self.watch.in_flight.iter().map(|j| job_json(j, now)).collect::<Vec<_>>(),
            "workers": self.watch.workers.iter().map(|w| json!({
                "owner": w.owner,
                "live_leases": w.live_leases,
                "last_expiry": timestamp(w.last_expiry),
            })).collect::<Vec<_>>(),
        });
        if let (Value::Object(base), Value::Object(more)) = (&mut value, extra) {
            base.extend(more);
        }
        value
    }
}
