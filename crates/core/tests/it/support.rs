//! What the integration tests share.

use oncefetch_core::{job_key, url, NewJob};

/// A job of `work`/`artifact` at `raw_url`, nothing expected of it.
pub(crate) fn new_job(work: &str, artifact: &str, raw_url: &str) -> NewJob {
    let canonical = url::canonicalize(raw_url).unwrap();
    NewJob {
        job_key: job_key(work, artifact, &canonical),
        work_id: work.to_owned(),
        artifact_id: artifact.to_owned(),
        url: raw_url.to_owned(),
        canonical_url: canonical,
        expected_sha256: None,
        expected_size: None,
        expected_content_type: None,
    }
}
