//! `ledger [--job KEY] [--json]`: an aligned table on a terminal, else one
//! JSON object per line and attempt (KEY may be a unique prefix).

use std::io::{IsTerminal, Write};
use std::sync::Arc;

use oncefetch_core::{OpPages, OpQuery, Store};

use crate::cli::LedgerArgs;
use crate::table::{self, Table};
use crate::{exit, output};

const PAGE: usize = 10_000;

/// Prints the ledger.
pub(crate) async fn run(store: &Arc<dyn Store>, args: &LedgerArgs) -> anyhow::Result<u8> {
    let stdout = std::io::stdout();
    let human = !args.json && stdout.is_terminal();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut table = human.then(|| Table::new(table::LEDGER));
    let job_key = match &args.job {
        Some(key) => Some(super::resolve_job_key(store, key).await?),
        None => None,
    };
    let query = OpQuery {
        job_key,
        after_seq: None,
        limit: PAGE,
    };
    let mut pages = OpPages::new(store.as_ref(), query);
    while let Some(page) = pages.next().await? {
        match &mut table {
            Some(table) => {
                let rows: Vec<_> = page.iter().map(table::op_row).collect();
                table.page(&mut out, &rows)?;
            }
            None => {
                for op in &page {
                    writeln!(out, "{}", output::op_json(op))?;
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
