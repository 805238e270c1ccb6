//! What the integration tests share.

use oncefetch_core::conformance::sample_job;
use oncefetch_core::NewJob;

/// A job of `work`/`artifact` at `raw_url`, nothing expected of it.
pub(crate) fn new_job(work: &str, artifact: &str, raw_url: &str) -> NewJob {
    NewJob {
        expected_size: None,
        ..sample_job(work, artifact, raw_url)
    }
}
