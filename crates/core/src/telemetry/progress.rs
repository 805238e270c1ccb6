//! [`MeteredProgress`]: [`Progress`] hooks that count how jobs end (retries
//! by reason, mismatches, duplicates and the bytes they saved, hosts
//! paused) and pass every call on.

use std::sync::Arc;

use crate::job::Job;
use crate::pipeline::recover::RecoverReport;
use crate::pipeline::{Download, JobOutcome, Progress};

use super::{mismatch_check, names, reason_class, store::recovery, HostLabels};

/// Counts job outcomes, then calls `inner`.
#[derive(Debug)]
pub struct MeteredProgress {
    inner: Arc<dyn Progress>,
    hosts: HostLabels,
}

impl MeteredProgress {
    /// Counts, then reports to `inner`.
    pub fn new(inner: Arc<dyn Progress>, hosts: HostLabels) -> Self {
        Self { inner, hosts }
    }
}

/// Counts what recovery did to partial files and finished jobs (the leases
/// and ops it freed are counted by [`MeteredStore`](super::MeteredStore)'s
/// reconcile).
pub fn record_recovery(report: &RecoverReport) {
    recovery("partial_removed", report.partials_removed);
    recovery("partial_kept", report.partials_kept);
    recovery("requeued_missing", report.requeued_missing);
}

fn finished(outcome: &'static str) {
    metrics::counter!(names::JOBS_FINISHED, "outcome" => outcome).increment(1);
}

impl Progress for MeteredProgress {
    fn bytes(&self, n: u64) {
        self.inner.bytes(n);
    }

    fn job_done(&self, job: &Job, outcome: &JobOutcome) {
        match outcome {
            JobOutcome::Succeeded => finished("succeeded"),
            JobOutcome::Skipped { bytes } => {
                finished("skipped");
                metrics::counter!(names::DUPLICATES_LINKED).increment(1);
                metrics::counter!(names::DUPLICATE_SAVED_BYTES).increment(*bytes);
            }
            JobOutcome::Failed {
                will_retry, message, ..
            } => {
                finished("failed");
                if let Some(check) = mismatch_check(message) {
                    metrics::counter!(names::VERIFY_MISMATCHES, "check" => check).increment(1);
                }
                if *will_retry {
                    metrics::counter!(names::RETRIES, "reason" => reason_class(message)).increment(1);
                }
            }
            JobOutcome::LeaseLost => {
                finished("lease_lost");
                metrics::counter!(names::LEASES_LOST).increment(1);
            }
            JobOutcome::StoreFailed(_) => finished("store_failed"),
            JobOutcome::Interrupted => finished("interrupted"),
            JobOutcome::Deferred { .. } => {
                finished("deferred");
                let host = self.hosts.label(&job.canonical_url);
                metrics::counter!(names::HOST_DEFERRED, "host" => host).increment(1);
            }
        }
        self.inner.job_done(job, outcome);
    }

    fn download_started(&self, download: &Download<'_>) {
        self.inner.download_started(download);
    }

    fn download_bytes(&self, job_key: &str, n: u64) {
        self.inner.download_bytes(job_key, n);
    }
}
