//! One module per subcommand.

pub(crate) mod jobs;
pub(crate) mod ledger;
pub(crate) mod plan;
pub(crate) mod recover;
pub(crate) mod retry;
pub(crate) mod run;
pub(crate) mod serve;
pub(crate) mod status;
pub(crate) mod verify;

use std::sync::Arc;

use anyhow::bail;
use oncefetch_core::{JobFilter, JobPages, JobQuery, Store, StoreError};

use crate::cli::{FetchArgs, NarrowArgs};
use crate::exit;
use crate::signals::Signals;
use crate::terminal::Terminal;

/// `fetch`: plan, then run; FAILED jobs (4) win over rejected lines (3).
/// With `--json` the plan's line goes to stderr, leaving stdout to the
/// summary.
pub(crate) async fn fetch(
    store: Arc<dyn Store>,
    args: &FetchArgs,
    terminal: &Terminal,
    signals: &Signals,
) -> anyhow::Result<u8> {
    let planned = plan::run(&store, &args.manifest, false, terminal).await?;
    if args.run.json {
        eprint!("{}", planned.report());
    } else {
        print!("{}", planned.report());
    }
    let ran = run::run(store, &args.run, terminal, signals, Some(planned)).await?;
    Ok(if ran != exit::OK { ran } else { planned.code() })
}

/// The narrowing of `--job`, `--work`, `--host` and `--error` (`retry`,
/// `jobs`): canonical URLs have lowercase hosts, so the host is lowercased.
pub(crate) fn job_filter(job_key: Option<String>, narrow: &NarrowArgs) -> JobFilter {
    JobFilter {
        job_key,
        work_id: narrow.work.clone(),
        host: narrow.host.as_deref().map(str::to_ascii_lowercase),
        error: narrow.error.clone(),
    }
}

/// Jobs read per page while counting the keys a prefix matches.
const PREFIX_PAGE: usize = 1_000;

/// The one job key that is `key`, or else starts with it; an error when no
/// key or several do (naming how many).
pub(crate) async fn resolve_job_key(store: &Arc<dyn Store>, key: &str) -> anyhow::Result<String> {
    match store.job(key).await {
        Ok(job) => return Ok(job.job_key),
        Err(StoreError::NotFound(_)) => {}
        Err(err) => return Err(err.into()),
    }
    // Keys that start with `key` sort right after it, side by side.
    let mut matches = Vec::new();
    let query = JobQuery {
        after: Some(key.to_owned()),
        limit: PREFIX_PAGE,
        ..JobQuery::default()
    };
    let mut pages = JobPages::new(store.as_ref(), query);
    while let Some(page) = pages.next().await? {
        let read = page.len();
        let before = matches.len();
        matches.extend(page.into_iter().map(|j| j.job_key).take_while(|k| k.starts_with(key)));
        if matches.len() - before < read {
            break;
        }
    }
    match matches.len() {
        0 => bail!("no job key is or starts with {key:?}"),
        1 => Ok(matches.remove(0)),
        n => bail!("{n} jobs have keys starting with {key:?}; give more of the key"),
    }
}
