//! `plan MANIFEST`: parse the manifest on a blocking thread and stream the
//! jobs into the ledger, so reading, parsing and key hashing overlap with the
//! ledger's writes.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};

use anyhow::Context;
use oncefetch_core::manifest::{Format, ManifestReader};
use oncefetch_core::{NewJob, Store};
use tokio::sync::mpsc;

use crate::exit;

/// Jobs per batch sent to the ledger.
const BATCH: usize = 2048;

/// Parsed batches waiting for the ledger: enough to keep it busy while the
/// parser catches up, few enough to keep memory small.
const QUEUED_BATCHES: usize = 2;

/// Plans `manifest`; prints counts; 3 when lines were rejected.
pub(crate) async fn run(store: &std::sync::Arc<dyn Store>, manifest: &str) -> anyhow::Result<u8> {
    let input: Box<dyn BufRead + Send> = if manifest == "-" {
        Box::new(BufReader::with_capacity(1 << 20, io::stdin()))
    } else {
        let file = File::open(manifest).with_context(|| format!("cannot read manifest {manifest}"))?;
        Box::new(BufReader::with_capacity(1 << 20, file))
    };
    let reader = ManifestReader::new(input, Format::for_path(manifest));
    let (batches, received) = mpsc::channel(QUEUED_BATCHES);
    let name = manifest.to_owned();
    let parser = tokio::task::spawn_blocking(move || parse(reader, &name, &batches));
    let planned = store.plan_stream(received).await;
    // The parser stops early when the ledger stopped listening.
    let parsed = parser.await.context("the manifest reader panicked")?;
    let totals = planned.context("cannot plan jobs")?;
    let rejected = parsed.with_context(|| format!("cannot read manifest {manifest}"))?;
    println!(
        "planned: {} new, {} already planned, {} rejected",
        totals.new, totals.existing, rejected
    );
    Ok(if rejected > 0 { exit::REJECTED } else { exit::OK })
}

/// Sends the manifest's jobs in batches, reporting each rejected line on
/// stderr; returns how many lines were rejected.
fn parse<R: BufRead>(
    mut reader: ManifestReader<R>,
    manifest: &str,
    batches: &mpsc::Sender<Vec<NewJob>>,
) -> io::Result<u64> {
    let mut rejected = 0u64;
    let mut batch = Vec::with_capacity(BATCH);
    let stderr = io::stderr();
    while let Some(entry) = reader.next_entry() {
        match entry? {
            Ok(job) => batch.push(job),
            Err(bad) => {
                rejected += 1;
                let _ = writeln!(stderr.lock(), "{manifest}: {bad}");
            }
        }
        if batch.len() == BATCH {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
            if batches.blocking_send(full).is_err() {
                return Ok(rejected);
            }
        }
    }
    if !batch.is_empty() {
        let _ = batches.blocking_send(batch);
    }
    Ok(rejected)
}
