//! `verify [--out DIR|s3://bucket/prefix] [--quick] [--json]`: read-only
//! re-hash of every finished artifact (objects streamed back from their
//! bucket, `--verify-concurrency` at once), or with `--quick` a comparison
//! of sizes and stored hashes without reading the bytes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use oncefetch_core::destination::{open_destination, Destination, DestinationOptions};
use oncefetch_core::pipeline::files::hash_file;
use oncefetch_core::pipeline::stream_records;
use oncefetch_core::registry::url_scheme;
use oncefetch_core::{Job, JobPages, JobQuery, JobState, Store};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

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
    let buckets = Buckets {
        options: DestinationOptions {
            endpoint: args.s3_endpoint.clone(),
            path_style: args.s3_path_style,
        },
        open: Mutex::default(),
    };
    let bucket = match args
        .out
        .as_deref()
        .and_then(Path::to_str)
        .filter(|o| url_scheme(o).is_some())
    {
        Some(url) => Some(buckets.get(url).await?),
        None => None,
    };
    // Recorded paths are canonical; a folder that does not exist holds nothing.
    let root = match &args.out {
        _ if bucket.is_some() => bucket.as_ref().map(|b| PathBuf::from(b.describe())),
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
        let query = JobQuery {
            state: Some(state),
            limit: PAGE,
            ..JobQuery::default()
        };
        let mut pages = JobPages::new(store.as_ref(), query);
        while let Some(page) = pages.next().await? {
            let scope = Scope {
                store: store.as_ref(),
                quick: args.quick,
                root: root.as_deref(),
                bucket: bucket.as_deref(),
                buckets: &buckets,
            };
            let verdicts: Vec<Verdict> = futures::stream::iter(&page)
                .map(|job| verdict(job, &scope))
                .buffered(args.verify_concurrency as usize)
                .collect()
                .await;
            for verdict in verdicts {
                count(verdict, &mut tally, report);
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

/// Where artifacts should be, and the buckets opened so far.
struct Scope<'a> {
    store: &'a dyn Store,
    /// `--quick`: sizes and stored hashes, not the bytes.
    quick: bool,
    root: Option<&'a Path>,
    bucket: Option<&'a dyn Destination>,
    buckets: &'a Buckets,
}

/// The buckets (`s3://bucket`) recorded paths name, opened once each.
struct Buckets {
    options: DestinationOptions,
    open: Mutex<HashMap<String, Arc<dyn Destination>>>,
}

impl Buckets {
    /// The destination of `url` (a bucket URL, or a recorded object location).
    async fn get(&self, url: &str) -> anyhow::Result<Arc<dyn Destination>> {
        let (scheme, rest) = url.split_once("://").unwrap_or((url, ""));
        let bucket = format!("{scheme}://{}", rest.split('/').next().unwrap_or_default());
        let mut open = self.open.lock().await;
        if let Some(dest) = open.get(&bucket) {
            return Ok(Arc::clone(dest));
        }
        let dest = open_destination(&bucket, self.options.clone())
            .await?
            .with_context(|| format!("{url} names no destination"))?;
        open.insert(bucket, Arc::clone(&dest));
        Ok(dest)
    }
}

/// What one finished job's artifact was found to be.
enum Verdict {
    Ok,
    /// Not found (or no file recorded), and why.
    Missing(String),
    Different(String),
    Outside(String),
}

/// Checks one finished job's artifact.
async fn verdict(job: &Job, scope: &Scope<'_>) -> Verdict {
    let (Some(path), Some(expected)) = (job.path.clone(), job.sha256.clone()) else {
        return Verdict::Missing(format!("missing: job {} has no recorded file", job.job_key));
    };
    let outside = match (scope.bucket, scope.root) {
        (Some(bucket), _) => !bucket.holds(&path),
        (None, Some(root)) => !Path::new(&path).starts_with(root),
        (None, None) => false,
    };
    if outside {
        let root = scope.root.map(|r| r.display().to_string()).unwrap_or_default();
        return Verdict::Outside(format!("not under {root}: {path} (job {})", job.job_key));
    }
    if scope.quick {
        if let Some(verdict) = quick_verdict(job, scope, &path, &expected).await {
            return verdict;
        }
    }
    let hashed = if url_scheme(&path).is_some() {
        hash_object(scope, &path).await
    } else {
        let file = PathBuf::from(&path);
        match tokio::task::spawn_blocking(move || hash_file(&file)).await {
            Ok(hashed) => hashed.map(|(sha, _)| sha).map_err(|e| e.to_string()),
            Err(err) => Err(err.to_string()),
        }
    };
    match hashed {
        Ok(sha) if sha == expected => Verdict::Ok,
        Ok(sha) => Verdict::Different(format!(
            "differs: {path} (job {}): sha256 {sha}, ledger {expected}",
            job.job_key
        )),
        Err(err) => Verdict::Missing(format!("missing: {path} (job {}): {err}", job.job_key)),
    }
}

/// `--quick`: the artifact's size (and its stored SHA-256, or the ETag the
/// ledger recorded at placement) against the ledger, without reading it;
/// `None` when that cannot tell (read it back).
async fn quick_verdict(job: &Job, scope: &Scope<'_>, path: &str, expected: &str) -> Option<Verdict> {
    let recorded = job.size?;
    let missing = |err: String| Verdict::Missing(format!("missing: {path} (job {}): {err}", job.job_key));
    let differs = |what: String| Verdict::Different(format!("differs: {path} (job {}): {what}", job.job_key));
    let (dest, stat) = if url_scheme(path).is_some() {
        let dest = match scope.buckets.get(path).await {
            Ok(dest) => dest,
            Err(err) => return Some(missing(format!("{err:#}"))),
        };
        let stat = dest.stat(path).await;
        (Some(dest), stat)
    } else {
        let file = PathBuf::from(path);
        let stat = tokio::task::spawn_blocking(move || match std::fs::symlink_metadata(&file) {
            Ok(meta) if meta.is_file() => Ok(Some(meta.len())),
            Ok(_) => Err(format!("{} is not a regular file", file.display())),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err.to_string()),
        })
        .await;
        return Some(match stat {
            Ok(Ok(Some(size))) if size == recorded => Verdict::Ok,
            Ok(Ok(Some(size))) => differs(format!("{size} bytes, ledger {recorded}")),
            Ok(Ok(None)) => missing("no such file".into()),
            Ok(Err(err)) => differs(err),
            Err(err) => missing(err.to_string()),
        });
    };
    let stat = match stat {
        Ok(Some(stat)) => stat,
        Ok(None) => return Some(missing("no such object".into())),
        Err(err) => return Some(missing(err.to_string())),
    };
    if stat.size != recorded {
        return Some(differs(format!("{} bytes, ledger {recorded}", stat.size)));
    }
    if let Some(sha) = stat.sha256 {
        return Some(if sha == expected {
            Verdict::Ok
        } else {
            differs(format!("stored sha256 {sha}, ledger {expected}"))
        });
    }
    let etag = stat.etag?;
    let records = stream_records(scope.store, &job.job_key).await.ok()?;
    let placed = dest?.placed_etag(path, &records)?;
    Some(if etag == placed {
        Verdict::Ok
    } else {
        differs(format!("ETag {etag}, placed with ETag {placed}"))
    })
}

/// The SHA-256 of the object at `location`, streamed back.
async fn hash_object(scope: &Scope<'_>, location: &str) -> Result<String, String> {
    let dest = scope.buckets.get(location).await.map_err(|e| format!("{e:#}"))?;
    let mut read = dest.read(location).await.map_err(|e| e.to_string())?;
    let mut hasher = Sha256::new();
    while let Some(chunk) = read.try_next().await.map_err(|e| e.to_string())? {
        hasher.update(&chunk);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Counts one verdict, reporting a problem.
fn count(verdict: Verdict, tally: &mut VerifyTally, report: Report) {
    tally.looked += 1;
    match verdict {
        Verdict::Ok => tally.ok += 1,
        Verdict::Missing(line) => {
            report.problem(format_args!("{line}"));
            tally.missing += 1;
        }
        Verdict::Different(line) => {
            report.problem(format_args!("{line}"));
            tally.different += 1;
        }
        Verdict::Outside(line) => {
            report.problem(format_args!("{line}"));
            tally.outside += 1;
        }
    }
}
