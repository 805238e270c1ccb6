//! The invariants a torture episode checks: [`safety`] ones hold at every instant (checked after
//! each restart, while other processes run), [`at_rest`] ones once every process has ended.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::corpus::{hex, Corpus};

/// The invariants, by the name a violation is reported under.
pub(crate) const INVARIANTS: &[(&str, &str)] = &[
    ("one-ok-per-op", "at most one OK ledger row per op key"),
    ("one-finalize", "at most one FINALIZE OK per job; exactly one per SUCCESS job at the end, none for a duplicate"),
    ("content", "every SUCCESS or SKIPPED_DUPLICATE job's file holds the bytes its URL serves (SHA-256)"),
    ("effect-happened", "no OK row for an effect that did not happen: HEAD/STREAM OK only for a URL the server was asked for, STREAM OK with the served bytes' size and hash, FINALIZE OK only with the file in place, DEDUPE hard_linked only for one inode"),
    ("no-stale-write", "no OK or ERROR row of an epoch finished after a later epoch of its job began"),
    ("exit-0-means-done", "a run that exits 0 leaves every job terminal"),
    ("unexpected-exit", "a run ends only by exit 0, by the driver's SIGKILL, or (PostgreSQL) while the server was killed"),
    ("terminal", "at the end every job is SUCCESS or SKIPPED_DUPLICATE"),
    ("no-running-op", "no running (unfinished) op row once every process has ended"),
    ("inside-out", "no file outside --out (besides the ledger, manifest and logs), nothing in --out but artifacts and partial files"),
    ("no-orphan-partial", "no partial file after `recover --out`"),
    ("bytes-served", "bytes served ≤ 1.5 × the corpus, over each store's run (each episode's ratio is printed, the worst in the table)"),
    ("verify", "`oncefetch verify --out` exits 0"),
];

/// One broken invariant.
#[derive(Debug, Clone)]
pub(crate) struct Violation {
    /// The invariant's name (one of [`INVARIANTS`]).
    pub(crate) invariant: &'static str,
    /// What was seen.
    pub(crate) detail: String,
}

impl Violation {
    pub(crate) fn new(invariant: &'static str, detail: impl Into<String>) -> Self {
        debug_assert!(INVARIANTS.iter().any(|(name, _)| *name == invariant));
        Violation {
            invariant,
            detail: detail.into(),
        }
    }
}

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key].as_str().unwrap_or_default()
}

/// The invariants that hold at any instant, whatever runs: one OK per op key, at most one
/// FINALIZE OK per job, finished jobs' content, OK rows for effects that happened, no stale write.
pub(crate) fn safety(corpus: &Corpus, jobs: &[Value], ledger: &[Value]) -> Vec<Violation> {
    let mut found = Vec::new();
    let mut ok_per_op: BTreeMap<&str, usize> = BTreeMap::new();
    let mut finalize_ok: BTreeMap<&str, usize> = BTreeMap::new();
    for row in ledger.iter().filter(|r| text(r, "result_code") == "OK") {
        *ok_per_op.entry(text(row, "op_key")).or_default() += 1;
        if text(row, "kind") == "FINALIZE" {
            *finalize_ok.entry(text(row, "job_key")).or_default() += 1;
        }
    }
    for (op, n) in ok_per_op.iter().filter(|(_, n)| **n > 1) {
        found.push(Violation::new("one-ok-per-op", format!("op {op} has {n} OK rows")));
    }
    for (job, n) in finalize_ok.iter().filter(|(_, n)| **n > 1) {
        found.push(Violation::new(
            "one-finalize",
            format!("job {job} has {n} FINALIZE OK rows"),
        ));
    }
    let by_key: BTreeMap<&str, &Value> = jobs.iter().map(|j| (text(j, "job_key"), j)).collect();
    for job in jobs {
        let state = text(job, "state");
        if state != "SUCCESS" && state != "SKIPPED_DUPLICATE" {
            continue;
        }
        let Some(body) = corpus.bodies.get(text(job, "url")) else {
            found.push(Violation::new(
                "content",
                format!("job {} names a URL not in the corpus", text(job, "job_key")),
            ));
            continue;
        };
        let path = text(job, "path");
        match fs::read(path) {
            Ok(bytes) if bytes == *body && text(job, "sha256") == hex(&Sha256::digest(body)) => {}
            Ok(bytes) => found.push(Violation::new(
                "content",
                format!(
                    "{state} job {} at {path}: {} bytes on disk (sha256 {}), job records {}, the URL serves {} bytes",
                    text(job, "job_key"),
                    bytes.len(),
                    hex(&Sha256::digest(&bytes)),
                    text(job, "sha256"),
                    body.len()
                ),
            )),
            Err(e) => found.push(Violation::new(
                "content",
                format!("{state} job {}: cannot read {path}: {e}", text(job, "job_key")),
            )),
        }
    }
    let placed: BTreeMap<&str, &str> = ledger
        .iter()
        .filter(|r| text(r, "kind") == "FINALIZE" && text(r, "result_code") == "OK")
        .map(|r| (text(r, "job_key"), r["result"]["path"].as_str().unwrap_or_default()))
        .collect();
    for row in ledger.iter().filter(|r| text(r, "result_code") == "OK") {
        let job_key = text(row, "job_key");
        let Some(job) = by_key.get(job_key) else {
            continue;
        };
        let url = text(job, "url");
        let result = &row["result"];
        match text(row, "kind") {
            "HEAD" | "STREAM" if corpus.requests_for(url) == 0 => found.push(Violation::new(
                "effect-happened",
                format!(
                    "{} OK for job {job_key} but {url} was never requested",
                    text(row, "kind")
                ),
            )),
            "STREAM" => {
                let body = &corpus.bodies[url];
                let (size, sha) = (result["size"].as_u64(), result["sha256"].as_str());
                if size != Some(body.len() as u64) || sha != Some(hex(&Sha256::digest(body)).as_str()) {
                    found.push(Violation::new(
                        "effect-happened",
                        format!(
                            "STREAM OK for job {job_key} records {result} but {url} serves {} bytes",
                            body.len()
                        ),
                    ));
                }
            }
            "FINALIZE" => {
                let path = result["path"].as_str().unwrap_or_default();
                if fs::read(path).ok().as_ref() != corpus.bodies.get(url) {
                    found.push(Violation::new(
                        "effect-happened",
                        format!("FINALIZE OK for job {job_key} but {path} does not hold the bytes of {url}"),
                    ));
                }
            }
            "DEDUPE" if result["hard_linked"] == true => {
                // The job's own file is where its FINALIZE placed it (its row may not name it yet).
                let path = placed.get(job_key).copied().unwrap_or_default();
                let original = result["original"].as_str().unwrap_or_default();
                let same = match (fs::metadata(path), fs::metadata(original)) {
                    (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
                    _ => false,
                };
                if !same {
                    found.push(Violation::new(
                        "effect-happened",
                        format!("DEDUPE OK hard_linked for job {job_key} but {path} and {original} are not one file"),
                    ));
                }
            }
            _ => {}
        }
    }
    found.extend(stale_writes(ledger));
    found
}

/// OK or ERROR rows of an epoch that finished after a later epoch of the same job began (its
/// first row's start): a write the fencing token should have refused. Times are the store's, to
/// the millisecond, so only a strictly later finish counts.
fn stale_writes(ledger: &[Value]) -> Vec<Violation> {
    let mut first_start: BTreeMap<(&str, u64), &str> = BTreeMap::new();
    for row in ledger {
        let key = (text(row, "job_key"), row["epoch"].as_u64().unwrap_or(0));
        let started = text(row, "started_at");
        let entry = first_start.entry(key).or_insert(started);
        if started < *entry {
            *entry = started;
        }
    }
    let mut found = Vec::new();
    for row in ledger {
        let code = text(row, "result_code");
        if code != "OK" && code != "ERROR" {
            continue;
        }
        let (job, epoch) = (text(row, "job_key"), row["epoch"].as_u64().unwrap_or(0));
        let finished = text(row, "finished_at");
        let later = first_start
            .range((job, epoch + 1)..=(job, u64::MAX))
            .map(|(_, started)| *started)
            .min();
        if let Some(began) = later.filter(|began| finished > *began) {
            found.push(Violation::new(
                "no-stale-write",
                format!(
                    "{} {code} of job {job} epoch {epoch} finished at {finished}, after a later epoch began at {began}",
                    text(row, "kind")
                ),
            ));
        }
    }
    found
}

/// The invariants of a ledger at rest (every process ended): every job terminal, exactly one
/// FINALIZE OK per SUCCESS job and none for a duplicate, no running op row.
pub(crate) fn at_rest(jobs: &[Value], ledger: &[Value]) -> Vec<Violation> {
    let mut found = Vec::new();
    let mut finalize_ok: BTreeMap<&str, usize> = BTreeMap::new();
    for row in ledger {
        if text(row, "kind") == "FINALIZE" && text(row, "result_code") == "OK" {
            *finalize_ok.entry(text(row, "job_key")).or_default() += 1;
        }
        if row["result_code"].is_null() || text(row, "result_code").is_empty() {
            found.push(Violation::new(
                "no-running-op",
                format!(
                    "{} of job {} epoch {} still running (started {})",
                    text(row, "kind"),
                    text(row, "job_key"),
                    row["epoch"],
                    text(row, "started_at")
                ),
            ));
        }
    }
    for job in jobs {
        let key = text(job, "job_key");
        let n = finalize_ok.get(key).copied().unwrap_or(0);
        match text(job, "state") {
            "SUCCESS" if n != 1 => {
                found.push(Violation::new(
                    "one-finalize",
                    format!("SUCCESS job {key} has {n} FINALIZE OK rows"),
                ));
            }
            "SKIPPED_DUPLICATE" if n != 0 => found.push(Violation::new(
                "one-finalize",
                format!("SKIPPED_DUPLICATE job {key} has {n} FINALIZE OK rows"),
            )),
            "SUCCESS" | "SKIPPED_DUPLICATE" => {}
            state => found.push(Violation::new(
                "terminal",
                format!(
                    "job {key} ({}/{}) ends {state}: {}",
                    text(job, "work_id"),
                    text(job, "artifact_id"),
                    job["last_error"]
                ),
            )),
        }
    }
    found
}

/// Every file of the episode folder `dir` that is none of the driver's own (the ledger
/// `ledger.db*`, `manifest.jsonl`, anything under `logs/`) and not under `out`, and every file
/// under `out` that is neither a job's path nor a partial file.
pub(crate) fn stray_files(dir: &Path, out: &Path, jobs: &[Value]) -> Vec<Violation> {
    let paths: BTreeSet<PathBuf> = jobs.iter().map(|j| PathBuf::from(text(j, "path"))).collect();
    let partial = out.join(".oncefetch").join("partial");
    let mut found = Vec::new();
    for path in &paths {
        if path.as_os_str().is_empty() {
            continue;
        }
        let inside = path.starts_with(out)
            && path.parent().and_then(Path::parent) == Some(out)
            && !path.components().any(|c| matches!(c, std::path::Component::ParentDir));
        if !inside {
            found.push(Violation::new(
                "inside-out",
                format!("a job's path {} is not DIR/WORK/ARTIFACT", path.display()),
            ));
        }
    }
    for file in walk(dir) {
        let fine = if file.starts_with(out) {
            paths.contains(&file) || file.parent() == Some(partial.as_path())
        } else {
            let own = file.parent() == Some(dir)
                && file
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("ledger.db") || n == "manifest.jsonl");
            own || file.starts_with(dir.join("logs"))
        };
        if !fine {
            found.push(Violation::new(
                "inside-out",
                format!("unexpected file {}", file.display()),
            ));
        }
    }
    found
}

/// The files under `out`'s partial folder.
pub(crate) fn partial_files(out: &Path) -> Vec<PathBuf> {
    walk(&out.join(".oncefetch").join("partial"))
}

/// Every non-directory under `dir` (symbolic links included, not followed).
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(next) = todo.pop() {
        let Ok(entries) = fs::read_dir(&next) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => todo.push(path),
                _ => files.push(path),
            }
        }
    }
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn row(kind: &str, job: &str, epoch: u64, started: &str, finished: &str, code: &str) -> Value {
        json!({"op_key": format!("{kind}-{job}-{epoch}"), "job_key": job, "kind": kind, "epoch": epoch,
               "started_at": started, "finished_at": finished, "result_code": code, "result": {}})
    }

    #[test]
    fn a_write_after_a_later_epoch_began_is_stale() {
        let ledger = [
            row(
                "HEAD",
                "j",
                1,
                "2026-01-01T00:00:00.000Z",
                "2026-01-01T00:00:00.100Z",
                "OK",
            ),
            row(
                "STREAM",
                "j",
                1,
                "2026-01-01T00:00:00.100Z",
                "2026-01-01T00:00:05.000Z",
                "OK",
            ),
            row(
                "STREAM",
                "j",
                2,
                "2026-01-01T00:00:03.000Z",
                "2026-01-01T00:00:04.000Z",
                "OK",
            ),
        ];
        let found = stale_writes(&ledger);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].detail.contains("STREAM OK of job j epoch 1"), "{found:?}");
        assert!(stale_writes(&ledger[..1]).is_empty());
    }

    #[test]
    fn abandoned_rows_are_not_stale_writes() {
        let ledger = [
            row(
                "STREAM",
                "j",
                1,
                "2026-01-01T00:00:00.000Z",
                "2026-01-01T00:00:05.000Z",
                "ABANDONED",
            ),
            row(
                "STREAM",
                "j",
                2,
                "2026-01-01T00:00:03.000Z",
                "2026-01-01T00:00:04.000Z",
                "OK",
            ),
        ];
        assert!(stale_writes(&ledger).is_empty());
    }

    #[test]
    fn at_rest_wants_terminal_jobs_and_one_finalize() {
        let jobs = [
            json!({"job_key": "a", "state": "SUCCESS"}),
            json!({"job_key": "b", "state": "STREAMING", "last_error": null}),
            json!({"job_key": "c", "state": "SKIPPED_DUPLICATE"}),
        ];
        let ledger = [json!({"job_key": "x", "kind": "STREAM", "epoch": 1, "result_code": null})];
        let names: Vec<_> = at_rest(&jobs, &ledger).iter().map(|v| v.invariant).collect();
        assert_eq!(names, ["no-running-op", "one-finalize", "terminal"]);
    }
}
