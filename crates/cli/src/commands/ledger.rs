//! `ledger [--job KEY]`: one JSON object per line and attempt (KEY may be a
//! unique prefix).

use std::io::Write;
use std::sync::Arc;

use oncefetch_core::{OpQuery, Store};

use crate::cli::LedgerArgs;
use crate::{exit, output};

const PAGE: usize = 10_000;

/// Prints the ledger.
pub(crate) async fn run(store: &Arc<dyn Store>, args: &LedgerArgs) -> anyhow::Result<u8> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let job_key = match &args.job {
        Some(key) => Some(super::resolve_job_key(store, key).await?),
        None => None,
    };
    let mut after_seq = None;
    loop {
        let query = OpQuery {
            job_key: job_key.clone(),
            after_seq,
            limit: PAGE,
        };
        let page = store.ops(&query).await?;
        for op in &page {
            writeln!(out, "{}", output::op_json(op))?;
        }
        match page.last() {
            Some(last) if page.len() == PAGE => after_seq = Some(last.seq),
            _ => break,
        }
    }
    out.flush()?;
    Ok(exit::OK)
}
