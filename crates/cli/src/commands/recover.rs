//! `recover [--stale-after DUR] [--out DIR] [--json]`.

use std::sync::Arc;

use anyhow::Context;
use oncefetch_core::destination::{open_destination, Destination, DestinationOptions};
use oncefetch_core::pipeline::recover::recover;
use oncefetch_core::pipeline::OutDir;
use oncefetch_core::registry::url_scheme;
use oncefetch_core::Store;

use crate::cli::RecoverArgs;
use crate::{exit, output};

/// Reconciles and prints what it did (one JSON object with `--json`).
pub(crate) async fn run(store: &Arc<dyn Store>, args: &RecoverArgs) -> anyhow::Result<u8> {
    let options = DestinationOptions {
        endpoint: args.s3_endpoint.clone(),
        path_style: args.s3_path_style,
    };
    let out: Option<Arc<dyn Destination>> = match &args.out {
        Some(dir) => match open_destination(dir.to_str().unwrap_or_default(), options).await? {
            Some(bucket) => Some(bucket),
            None => Some(Arc::new(
                OutDir::create(dir).with_context(|| format!("output folder {}", dir.display()))?,
            )),
        },
        None => None,
    };
    let report = recover(store.as_ref(), out.as_deref(), args.stale_after).await?;
    // Only a bucket has multipart uploads to abort.
    let bucket = args
        .out
        .as_deref()
        .and_then(|o| o.to_str())
        .is_some_and(|o| url_scheme(o).is_some());
    if args.json {
        println!("{}", output::recover_json(&report, out.is_some(), bucket));
        return Ok(exit::OK);
    }
    println!("expired leases made runnable: {}", report.expired_leases);
    println!("abandoned op attempts marked: {}", report.abandoned_ops);
    if out.is_some() {
        println!("partial files removed (job finished): {}", report.partials_removed);
        println!("partial files kept for resume: {}", report.partials_kept);
        if bucket {
            println!("dead multipart uploads aborted: {}", report.uploads_aborted);
        }
    } else {
        println!("partial files: not checked (give --out DIR)");
    }
    println!(
        "finished jobs with a missing file requeued: {}",
        report.requeued_missing
    );
    Ok(exit::OK)
}
