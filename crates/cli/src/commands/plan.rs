//! `plan MANIFEST`: stream the manifest into the ledger in batches.

use std::fs::File;
use std::io::{self, BufRead, BufReader};

use anyhow::Context;
use oncefetch_core::manifest::{Format, ManifestReader};
use oncefetch_core::{PlanCounts, Store};

use crate::exit;

/// Jobs planned per ledger call.
const BATCH: usize = 10_000;

/// Plans `manifest`; prints counts; 3 when lines were rejected.
pub(crate) async fn run(store: &std::sync::Arc<dyn Store>, manifest: &str) -> anyhow::Result<u8> {
    let input: Box<dyn BufRead + Send> = if manifest == "-" {
        Box::new(BufReader::with_capacity(1 << 20, io::stdin()))
    } else {
        let file = File::open(manifest).with_context(|| format!("cannot read manifest {manifest}"))?;
        Box::new(BufReader::with_capacity(1 << 20, file))
    };
    let mut reader = ManifestReader::new(input, Format::for_path(manifest));
    let mut totals = PlanCounts::default();
    let mut rejected = 0u64;
    let mut batch = Vec::with_capacity(BATCH);
    let stderr = io::stderr();
    loop {
        let entry = reader.next_entry();
        let end = entry.is_none();
        match entry {
            Some(Ok(Ok(job))) => batch.push(job),
            Some(Ok(Err(bad))) => {
                rejected += 1;
                use std::io::Write;
                let _ = writeln!(stderr.lock(), "{manifest}: {bad}");
            }
            Some(Err(err)) => return Err(err).with_context(|| format!("cannot read manifest {manifest}")),
            None => {}
        }
        if batch.len() >= BATCH || (end && !batch.is_empty()) {
            let counts = store.plan(&batch).await.context("cannot plan jobs")?;
            totals.new += counts.new;
            totals.existing += counts.existing;
            batch.clear();
        }
        if end {
            break;
        }
    }
    println!(
        "planned: {} new, {} already planned, {} rejected",
        totals.new, totals.existing, rejected
    );
    Ok(if rejected > 0 { exit::REJECTED } else { exit::OK })
}
