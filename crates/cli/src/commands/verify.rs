//! `verify [--out DIR]`: read-only re-hash of every finished artifact.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use oncefetch_core::pipeline::files::hash_file;
use oncefetch_core::{Job, JobQuery, JobState, Store};

use crate::cli::VerifyArgs;
use crate::exit;

const PAGE: usize = 10_000;

/// What became of the artifacts looked for.
#[derive(Debug, Default)]
struct Tally {
    looked: u64,
    ok: u64,
    missing: u64,
    different: u64,
    outside: u64,
}

/// Checks the file of each SUCCESS / SKIPPED_DUPLICATE job at the path the
/// ledger records, which must lie under DIR when given; 5 on any problem.
pub(crate) async fn run(store: &Arc<dyn Store>, args: &VerifyArgs) -> anyhow::Result<u8> {
    // Recorded paths are canonical; a folder that does not exist holds nothing.
    let root = match &args.out {
        Some(out) => Some(
            std::fs::canonicalize(out)
                .or_else(|_| std::path::absolute(out))
                .with_context(|| format!("output folder {}", out.display()))?,
        ),
        None => None,
    };
    let mut tally = Tally::default();
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
                check(job, root.as_deref(), &mut tally).await?;
            }
            match page.last() {
                Some(last) if page.len() == PAGE => after = Some(last.job_key.clone()),
                _ => break,
            }
        }
    }
    let Tally {
        looked,
        ok,
        missing,
        different,
        outside,
    } = tally;
    match &root {
        Some(root) => {
            println!(
                "looked for {looked} artifacts the ledger records under {}: {ok} ok, {missing} missing, \
                 {different} different, {outside} not under it",
                root.display()
            );
            if outside > 0 {
                println!(
                    "the ledger records {outside} artifacts outside {} (the wrong folder, or a moved one?); \
                     `oncefetch verify` without --out checks the recorded paths",
                    root.display()
                );
            }
        }
        None => println!(
            "looked for {looked} artifacts at the paths the ledger records: {ok} ok, {missing} missing, \
             {different} different"
        ),
    }
    let bad = missing + different + outside;
    Ok(if bad > 0 { exit::MISMATCH } else { exit::OK })
}

/// Checks one finished job's file and counts the outcome.
async fn check(job: &Job, root: Option<&Path>, tally: &mut Tally) -> anyhow::Result<()> {
    tally.looked += 1;
    let (Some(path), Some(expected)) = (job.path.clone(), job.sha256.clone()) else {
        println!("missing: job {} has no recorded file", job.job_key);
        tally.missing += 1;
        return Ok(());
    };
    let path = PathBuf::from(path);
    if let Some(root) = root.filter(|root| !path.starts_with(root)) {
        println!("not under {}: {} (job {})", root.display(), path.display(), job.job_key);
        tally.outside += 1;
        return Ok(());
    }
    let hashed = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || hash_file(&path)).await?
    };
    match hashed {
        Ok((sha, _)) if sha == expected => tally.ok += 1,
        Ok((sha, _)) => {
            println!(
                "differs: {} (job {}): sha256 {sha}, ledger {expected}",
                path.display(),
                job.job_key
            );
            tally.different += 1;
        }
        Err(err) => {
            println!("missing: {} (job {}): {err}", path.display(), job.job_key);
            tally.missing += 1;
        }
    }
    Ok(())
}
