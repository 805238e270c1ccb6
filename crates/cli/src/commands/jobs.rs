//! `jobs [--state S]`: one JSON object per line, paged through the ledger,
//! with the owner and expiry of each live lease.

use std::io::Write;
use std::sync::Arc;

use oncefetch_core::{JobQuery, Store};

use crate::cli::JobsArgs;
use crate::{exit, output};

const PAGE: usize = 10_000;

/// Lists jobs.
pub(crate) async fn run(store: &Arc<dyn Store>, args: &JobsArgs) -> anyhow::Result<u8> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    // Leases are judged by the store clock, read once for the listing.
    let now = store.now().await?;
    let mut after = None;
    loop {
        let query = JobQuery {
            state: args.state,
            canonical_url: None,
            after: after.take(),
            limit: PAGE,
        };
        let page = store.jobs(&query).await?;
        for job in &page {
            writeln!(out, "{}", output::job_json(job, now))?;
        }
        match page.last() {
            Some(last) if page.len() == PAGE => after = Some(last.job_key.clone()),
            _ => break,
        }
    }
    out.flush()?;
    Ok(exit::OK)
}
