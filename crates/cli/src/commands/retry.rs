//! `retry [--state FAILED] [--job KEY] [--work ID] [--host HOST] [--error TEXT] [--permanent] [--json]`.

use std::sync::Arc;

use oncefetch_core::{JobState, RequeueFilter, Store};

use crate::cli::RetryArgs;
use crate::{exit, output};

/// Requeues the jobs of the state the flags narrow to, in one store call,
/// and says how many of each kind (one JSON object with `--json`).
pub(crate) async fn run(store: &Arc<dyn Store>, args: &RetryArgs) -> anyhow::Result<u8> {
    let job_key = match &args.job {
        Some(key) => Some(super::resolve_job_key(store, key).await?),
        None => None,
    };
    let filter = RequeueFilter {
        state: args.state,
        include_permanent: args.permanent,
        narrow: super::job_filter(job_key, &args.narrow),
    };
    let counts = store.requeue_matching(&filter, "oncefetch retry").await?;
    if args.json {
        println!("{}", output::retry_json(args.state, &counts));
    } else if args.state == JobState::Failed {
        let skipped = if args.permanent {
            ""
        } else {
            "; non-retryable failures left as they are (add --permanent)"
        };
        println!(
            "requeued {} FAILED jobs: {} retryable, {} permanent{skipped}",
            counts.total(),
            counts.retryable,
            counts.permanent
        );
    } else {
        println!("requeued {} {} jobs", counts.total(), args.state);
    }
    Ok(exit::OK)
}
