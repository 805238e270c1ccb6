//! `retry [--state FAILED]`.

use std::sync::Arc;

use oncefetch_core::{JobQuery, Store};

use crate::cli::RetryArgs;
use crate::exit;

const PAGE: usize = 10_000;

/// Requeues every job in the state.
pub(crate) async fn run(store: &Arc<dyn Store>, args: &RetryArgs) -> anyhow::Result<u8> {
    let mut requeued = 0u64;
    let mut after = None;
    loop {
        let page = store
            .jobs(&JobQuery {
                state: Some(args.state),
                canonical_url: None,
                after: after.take(),
                limit: PAGE,
            })
            .await?;
        for job in &page {
            if store.requeue(&job.job_key, "oncefetch retry").await? {
                requeued += 1;
            }
        }
        match page.last() {
            Some(last) if page.len() == PAGE => after = Some(last.job_key.clone()),
            _ => break,
        }
    }
    println!("requeued {requeued} {} jobs", args.state);
    Ok(exit::OK)
}
