//! Start-up (and `oncefetch recover`) reconciliation: expired leases, abandoned
//! ops, partial files, and ledger-vs-disk drift — each action logged and
//! written to the ledger.

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use crate::destination::Destination;
use crate::error::StoreResult;
use crate::job::JobQuery;
use crate::key::OpKeys;
use crate::ledger::OpKind;
use crate::paging::JobPages;
use crate::state::JobState;
use crate::store::Store;

/// What recovery did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecoverReport {
    /// In-flight jobs whose lease had expired, made runnable.
    pub expired_leases: u64,
    /// Unfinished op attempts of dead epochs marked ABANDONED.
    pub abandoned_ops: u64,
    /// Partial files of finished jobs removed.
    pub partials_removed: u64,
    /// Partial files kept for resume.
    pub partials_kept: u64,
    /// Finished jobs whose file was missing, sent back to download.
    pub requeued_missing: u64,
    /// Multipart uploads the ledger knows dead (their job finished, or
    /// requeued), aborted.
    pub uploads_aborted: u64,
}

/// Jobs read per page while scanning the ledger.
const PAGE: usize = 10_000;

/// Reconciles the ledger with itself and, given the destination (an
/// [`OutDir`](super::OutDir), a bucket), with what it holds.
pub async fn recover(
    store: &dyn Store,
    out: Option<&dyn Destination>,
    stale_after: Duration,
) -> StoreResult<RecoverReport> {
    let reconciled = store.reconcile(stale_after).await?;
    let mut report = RecoverReport {
        expired_leases: reconciled.expired_leases,
        abandoned_ops: reconciled.abandoned_ops,
        ..RecoverReport::default()
    };
    if reconciled.expired_leases > 0 || reconciled.abandoned_ops > 0 {
        tracing::info!(
            expired_leases = reconciled.expired_leases,
            abandoned_ops = reconciled.abandoned_ops,
            "recovered stale leases"
        );
    }
    if let Some(out) = out {
        sweep_partials(store, out, &mut report).await?;
        out.sweep_probes().await;
        match out.abort_dead(store).await {
            Ok(aborted) => report.uploads_aborted = aborted,
            Err(err) => tracing::warn!(out = %out.describe(), error = %err, "cannot abort dead uploads"),
        }
    }
    requeue_missing_files(store, out, &mut report).await?;
    Ok(report)
}

/// Removes partial files of finished jobs; keeps the rest for resume.
async fn sweep_partials(store: &dyn Store, out: &dyn Destination, report: &mut RecoverReport) -> StoreResult<()> {
    let partials = match out.all_partials().await {
        Ok(found) => found,
        Err(err) => {
            tracing::warn!(out = %out.describe(), error = %err, "cannot list partial files");
            return Ok(());
        }
    };
    for partial in partials {
        let (name, path) = (&partial, &partial.handle);
        let job = match store.job(&name.job_key).await {
            Ok(job) => job,
            Err(crate::StoreError::NotFound(_)) => {
                tracing::warn!(file = %path, "partial file of a job not in this ledger; left alone");
                continue;
            }
            Err(err) => return Err(err),
        };
        if job.state.is_terminal() {
            let file = name.name.clone();
            if let Err(err) = out.remove(vec![partial.clone()], None).await {
                tracing::warn!(file = %path, error = %err, "cannot remove partial file");
                continue;
            }
            let op_key = OpKeys { job_key: &job.job_key }.cleanup(&file);
            let result = json!({ "removed": file, "reason": format!("job is {}", job.state) });
            store.note(&job.job_key, &op_key, OpKind::Cleanup, &result).await?;
            tracing::info!(job = %job.job_key, file = %file, "removed partial file of a finished job");
            report.partials_removed += 1;
        } else {
            report.partials_kept += 1;
        }
    }
    Ok(())
}

/// Sends SUCCESS / SKIPPED_DUPLICATE jobs whose file is gone back to PLANNED
/// (only files `out` holds, when given: another host's folder is not ours to
/// judge; without it, only local paths).
async fn requeue_missing_files(
    store: &dyn Store,
    out: Option<&dyn Destination>,
    report: &mut RecoverReport,
) -> StoreResult<()> {
    for state in [JobState::Success, JobState::SkippedDuplicate] {
        let query = JobQuery {
            state: Some(state),
            limit: PAGE,
            ..JobQuery::default()
        };
        let mut pages = JobPages::new(store, query);
        while let Some(page) = pages.next().await? {
            for job in &page {
                let Some(path) = job.path.as_deref() else {
                    continue;
                };
                let present = match out {
                    Some(out) if !out.holds(path) => continue,
                    Some(out) => match out.exists(path).await {
                        Ok(present) => present,
                        Err(err) => {
                            tracing::warn!(job = %job.job_key, path, error = %err, "cannot tell whether the artifact stands; left alone");
                            continue;
                        }
                    },
                    // A location with a scheme (`s3://…`) is judged with its destination only.
                    None if crate::registry::url_scheme(path).is_some() => continue,
                    None => Path::new(path).exists(),
                };
                if present {
                    continue;
                }
                let reason = format!("file missing at {path}");
                if store.requeue(&job.job_key, &reason).await? {
                    tracing::warn!(job = %job.job_key, path, "finished file is missing; downloading again");
                    report.requeued_missing += 1;
                }
            }
        }
    }
    Ok(())
}
