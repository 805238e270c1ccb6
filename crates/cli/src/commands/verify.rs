//! `verify --out DIR`: read-only re-hash of every finished artifact.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use oncefetch_core::pipeline::files::hash_file;
use oncefetch_core::{JobQuery, JobState, Store};

use crate::cli::VerifyArgs;
use crate::exit;

const PAGE: usize = 10_000;

/// Checks each SUCCESS / SKIPPED_DUPLICATE file under DIR; 5 on any problem.
pub(crate) async fn run(store: &Arc<dyn Store>, args: &VerifyArgs) -> anyhow::Result<u8> {
    let root = std::fs::canonicalize(&args.out).with_context(|| format!("output folder {}", args.out.display()))?;
    let (mut ok, mut bad) = (0u64, 0u64);
    for state in [JobState::Success, JobState::SkippedDuplicate] {
        let mut after = None;
        loop {
            let page = store
                .jobs(&JobQuery {
                    state: Some(state),
                    canonical_url: None,
                    after: after.take(),
                    limit: PAGE,
                })
                .await?;
            for job in &page {
                let (Some(path), Some(expected)) = (job.path.clone(), job.sha256.clone()) else {
                    println!("missing: job {} has no recorded file", job.job_key);
                    bad += 1;
                    continue;
                };
                if !Path::new(&path).starts_with(&root) {
                    continue;
                }
                let checked =
                    tokio::task::spawn_blocking(move || hash_file(Path::new(&path)).map(|h| (path, h))).await?;
                match checked {
                    Ok((_, (sha, _))) if sha == expected => ok += 1,
                    Ok((path, (sha, _))) => {
                        println!("differs: {path} (job {}): sha256 {sha}, ledger {expected}", job.job_key);
                        bad += 1;
                    }
                    Err(err) => {
                        println!(
                            "missing: {} (job {}): {err}",
                            job.path.as_deref().unwrap_or(""),
                            job.job_key
                        );
                        bad += 1;
                    }
                }
            }
            match page.last() {
                Some(last) if page.len() == PAGE => after = Some(last.job_key.clone()),
                _ => break,
            }
        }
    }
    println!("verified {} artifacts: {ok} ok, {bad} missing or different", ok + bad);
    Ok(if bad > 0 { exit::MISMATCH } else { exit::OK })
}
