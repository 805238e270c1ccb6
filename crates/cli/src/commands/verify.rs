//! `verify [--out DIR] [--json]`: read-only re-hash of every finished artifact.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use oncefetch_core::pipeline::files::hash_file;
use oncefetch_core::{Job, JobQuery, JobState, Store};

use crate::cli::VerifyArgs;
use crate::exit;
use crate::output::{self, VerifyTally};

const PAGE: usize = 10_000;

/// Where the verdict on each artifact goes: standard output, or standard
/// error when standard output carries the `--json` summary.
#[derive(Debug, Clone, Copy)]
struct Report {
    json: bool,
}

impl Report {
    fn problem(self, line: std::fmt::Arguments<'_>) {
        if self.json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
}

/// Checks the file of each SUCCESS / SKIPPED_DUPLICATE job at the path the
/// ledger records, which must lie under DIR when given; 5 on any problem.
/// With `--json` the summary is one JSON object, and each problem goes to
/// standard error.
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
    let mut tally = VerifyTally::default();
    let report = Report { json: args.json };
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
                check(job, root.as_deref(), &mut tally, report).await?;
            }
            match page.last() {
                Some(last) if page.len() == PAGE => after = Some(last.job_key.clone()),
                _ => break,
            }
        }
    }
    if args.json {
        println!("{}", output::verify_json(&tally, root.as_deref()));
    }
    let VerifyTally {
        looked,
        ok,
        missing,
        different,
        outside,
    } = tally;
    let bad = missing + different + outside;
    let code = if bad > 0 { exit::MISMATCH } else { exit::OK };
    if args.json {
        return Ok(code);
    }
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
    Ok(code)
}

/// Checks one finished job's file and counts the outcome.
async fn check(job: &Job, root: Option<&Path>, tally: &mut VerifyTally, report: Report) -> anyhow::Result<()> {
    tally.looked += 1;
    let (Some(path), Some(expected)) = (job.path.clone(), job.sha256.clone()) else {
        report.problem(format_args!("missing: job {} has no recorded file", job.job_key));
        tally.missing += 1;
        return Ok(());
    };
    let path = PathBuf::from(path);
    if let Some(root) = root.filter(|root| !path.starts_with(root)) {
        report.problem(format_args!(
            "not under {}: {} (job {})",
            root.display(),
            path.display(),
            job.job_key
        ));
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
            report.problem(format_args!(
                "differs: {} (job {}): sha256 {sha}, ledger {expected}",
                path.display(),
                job.job_key
            ));
            tally.different += 1;
        }
        Err(err) => {
            report.problem(format_args!("missing: {} (job {}): {err}", path.display(), job.job_key));
            tally.missing += 1;
        }
    }
    Ok(())
}
