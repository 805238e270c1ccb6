//! `status [--json] [--max-attempts N]`.

use std::sync::Arc;

use oncefetch_core::Store;

use crate::cli::StatusArgs;
use crate::table::bytes;
use crate::{exit, output};

/// Prints counts per state, then the in-flight jobs a live lease holds and
/// those whose lease expired (or was given back): a `run` takes those over;
/// then the bytes done, and the FAILED jobs split into retryable and final
/// (`--max-attempts` judges), and those waiting out a backoff.
pub(crate) async fn run(store: &Arc<dyn Store>, args: &StatusArgs) -> anyhow::Result<u8> {
    let counts = store.status().await?;
    if args.json {
        println!("{}", output::status_json(&counts, args.max_attempts));
    } else {
        for (state, n) in &counts.states {
            println!("{:<18} {n}", state.as_str());
        }
        println!("{:<18} {}", "total", counts.total());
        println!("{:<18} {}", "live leases", counts.live_leases);
        println!("{:<18} {}", "expired leases", counts.expired_leases());
        println!(
            "{:<18} {} ({})",
            "bytes done",
            counts.bytes_done,
            bytes(counts.bytes_done)
        );
        let failed = counts.failed(args.max_attempts);
        println!("{:<18} {}", "failed retryable", failed.retryable);
        println!("{:<18} {}", "failed final", failed.final_);
        println!(
            "{:<18} {}",
            "backoff waiting",
            counts.backoff_waiting(args.max_attempts)
        );
    }
    Ok(exit::OK)
}
