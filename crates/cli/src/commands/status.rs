//! `status [--json]`.

use std::sync::Arc;

use oncefetch_core::Store;

use crate::cli::StatusArgs;
use crate::{exit, output};

/// Prints counts per state, then the in-flight jobs a live lease holds and
/// those whose lease expired (or was given back): a `run` takes those over.
pub(crate) async fn run(store: &Arc<dyn Store>, args: &StatusArgs) -> anyhow::Result<u8> {
    let counts = store.status().await?;
    if args.json {
        println!("{}", output::status_json(&counts));
    } else {
        for (state, n) in &counts.states {
            println!("{:<18} {n}", state.as_str());
        }
        println!("{:<18} {}", "total", counts.total());
        println!("{:<18} {}", "live leases", counts.live_leases);
        println!("{:<18} {}", "expired leases", counts.expired_leases());
    }
    Ok(exit::OK)
}
