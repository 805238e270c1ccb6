//! `jobs [--state S] [--work ID] [--host HOST] [--error TEXT] [--limit N] [--json]`:
//! an aligned table on a terminal, else one JSON object per line, paged
//! through the ledger, with the owner and expiry of each live lease.
//!
//! The store filters by state; the other filters are core's
//! [`JobFilter::matches`](oncefetch_core::JobFilter::matches) (the rule
//! `retry` narrows by) applied to each page as it arrives, so a listing
//! holds one page at a time however many jobs the ledger has, and stops
//! reading once `--limit` jobs matched.

use std::io::{IsTerminal, Write};
use std::sync::Arc;

use oncefetch_core::{JobFilter, JobPages, JobQuery, Store};

use crate::cli::JobsArgs;
use crate::table::{self, Table};
use crate::{exit, output};

const PAGE: usize = 10_000;

/// Lists jobs.
pub(crate) async fn run(store: &Arc<dyn Store>, args: &JobsArgs) -> anyhow::Result<u8> {
    let stdout = std::io::stdout();
    let human = !args.json && stdout.is_terminal();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut table = human.then(|| Table::new(table::JOBS));
    let filter = super::job_filter(None, &args.narrow);
    // Leases are judged by the store clock, read once for the listing.
    let now = store.now().await?;
    let mut left = args.limit.unwrap_or(u64::MAX);
    let query = JobQuery {
        state: args.state,
        limit: PAGE,
        ..JobQuery::default()
    };
    let mut pages = JobPages::new(store.as_ref(), query);
    while left > 0 {
        // Without filters every job read is listed: read no more than the
        // limit asks for.
        if filter == JobFilter::default() {
            pages.set_limit(PAGE.min(usize::try_from(left).unwrap_or(PAGE)));
        }
        let Some(page) = pages.next().await? else {
            break;
        };
        let take = usize::try_from(left).unwrap_or(usize::MAX);
        let listed: Vec<_> = page.iter().filter(|job| filter.matches(job)).take(take).collect();
        left -= listed.len() as u64;
        match &mut table {
            Some(table) => {
                let rows: Vec<_> = listed.iter().map(|job| table::job_row(job)).collect();
                table.page(&mut out, &rows)?;
            }
            None => {
                for job in listed {
                    writeln!(out, "{}", output::job_json(job, now))?;
                }
            }
        }
    }
    if let Some(table) = table {
        table.finish(&mut out)?;
    }
    out.flush()?;
    Ok(exit::OK)
}
