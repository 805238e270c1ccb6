//! `plan MANIFEST`: parse the manifest on a blocking thread and stream the
//! jobs into the ledger, so reading, parsing and key hashing overlap with the
//! ledger's writes. A line that declares expectations its already planned job
//! does not record is rejected, unless `--update-expected` records them.

use std::fs::File;
use std::io::{self, BufRead, BufReader};

use anyhow::Context;
use oncefetch_core::manifest::{Format, ManifestReader};
use oncefetch_core::{ExpectationConflict, ExpectedUpdate, NewJob, Store};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::exit;
use crate::progress::PlanProgress;
use crate::terminal::Terminal;

/// Jobs per batch sent to the ledger.
const BATCH: usize = 2048;

/// Parsed batches waiting for the ledger: enough to keep it busy while the
/// parser catches up, few enough to keep memory small.
const QUEUED_BATCHES: usize = 2;

/// Entries parsed between two updates of the lines-read figure.
const SHOWN_EVERY: u64 = 1024;

/// What a plan did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Planned {
    /// Jobs new to the ledger.
    pub(crate) new: u64,
    /// Lines whose job was planned before.
    pub(crate) existing: u64,
    /// Lines rejected.
    pub(crate) rejected: u64,
    /// With `--update-expected`: expectations updated, and jobs requeued.
    pub(crate) updated: Option<(u64, u64)>,
}

impl Planned {
    /// `planned: N new, M already planned, R rejected`, and with
    /// `--update-expected` a second line of what it updated.
    pub(crate) fn report(&self) -> String {
        let mut text = format!(
            "planned: {} new, {} already planned, {} rejected\n",
            self.new, self.existing, self.rejected
        );
        if let Some((updated, requeued)) = self.updated {
            text.push_str(&format!(
                "{updated} {} updated, {requeued} {} requeued\n",
                plural(updated, "expectation", "expectations"),
                plural(requeued, "job", "jobs")
            ));
        }
        text
    }

    /// The counts as JSON (`plan --json`, and a run summary's `planned`).
    pub(crate) fn json(&self) -> Value {
        let mut value = json!({
            "new": self.new,
            "already_planned": self.existing,
            "rejected": self.rejected,
        });
        if let Some((updated, requeued)) = self.updated {
            value["expectations_updated"] = json!(updated);
            value["requeued"] = json!(requeued);
        }
        value
    }

    /// 3 when lines were rejected.
    pub(crate) fn code(&self) -> u8 {
        if self.rejected > 0 {
            exit::REJECTED
        } else {
            exit::OK
        }
    }
}

/// `plan`: plans `manifest` and prints what it did (one JSON object with
/// `json`).
pub(crate) async fn command(
    store: &std::sync::Arc<dyn Store>,
    manifest: &str,
    update_expected: bool,
    json: bool,
    terminal: &Terminal,
) -> anyhow::Result<u8> {
    let planned = run(store, manifest, update_expected, terminal).await?;
    if json {
        println!("{}", planned.json());
    } else {
        print!("{}", planned.report());
    }
    Ok(planned.code())
}

/// What the parser saw.
#[derive(Debug, Default)]
struct Parsed {
    /// Lines rejected.
    rejected: u64,
    /// (position among the jobs sent, its line number minus the position) of
    /// the first job sent and of each job that follows skipped lines (rejected
    /// or empty), in order: enough to name the line of any job sent (a
    /// conflict's), in memory that grows with the lines skipped, not with the
    /// lines planned.
    gaps: Vec<(u64, u64)>,
}

impl Parsed {
    /// Notes that the job sent at `position` came from line `line`.
    fn sent(&mut self, position: u64, line: u64) {
        let gap = line - position;
        if self.gaps.last().is_none_or(|&(_, last)| last != gap) {
            self.gaps.push((position, gap));
        }
    }

    /// The line number of the job sent at `position`.
    fn line_of(&self, position: u64) -> Option<u64> {
        let after = self.gaps.partition_point(|&(p, _)| p <= position);
        let (_, gap) = self.gaps.get(after.checked_sub(1)?)?;
        Some(position + gap)
    }
}

/// Plans `manifest` (a spinner shows the lines read on a terminal); each
/// rejected line is reported on stderr. With `update_expected`, the
/// expectations of conflicting lines are recorded.
pub(crate) async fn run(
    store: &std::sync::Arc<dyn Store>,
    manifest: &str,
    update_expected: bool,
    terminal: &Terminal,
) -> anyhow::Result<Planned> {
    let input: Box<dyn BufRead + Send> = if manifest == "-" {
        Box::new(BufReader::with_capacity(1 << 20, io::stdin()))
    } else {
        let file = File::open(manifest).with_context(|| format!("cannot read manifest {manifest}"))?;
        Box::new(BufReader::with_capacity(1 << 20, file))
    };
    let reader = ManifestReader::new(input, Format::for_path(manifest));
    let (batches, received) = mpsc::channel(QUEUED_BATCHES);
    let name = manifest.to_owned();
    let progress = PlanProgress::start(terminal);
    let shown = progress.clone();
    let parser = tokio::task::spawn_blocking(move || parse(reader, &name, &batches, &shown));
    let planned = store.plan_stream(received).await;
    // The parser stops early when the ledger stopped listening.
    let parsed = parser.await.context("the manifest reader panicked");
    progress.finish();
    let parsed = parsed?;
    let totals = planned.context("cannot plan jobs")?;
    let parsed = parsed.with_context(|| format!("cannot read manifest {manifest}"))?;
    let mut rejected = parsed.rejected;
    let (mut updated, mut requeued) = (0u64, 0u64);
    for conflict in &totals.conflicts {
        let line = parsed
            .line_of(conflict.position)
            .map_or_else(|| format!("job {}", conflict.job_key), |line| format!("line {line}"));
        let why = if !update_expected {
            "(`plan --update-expected` records it)".to_owned()
        } else {
            match update(store, conflict).await? {
                ExpectedUpdate::Unchanged => continue,
                ExpectedUpdate::Recorded => {
                    updated += 1;
                    continue;
                }
                ExpectedUpdate::Requeued => {
                    updated += 1;
                    requeued += 1;
                    continue;
                }
                ExpectedUpdate::InFlight(state) => {
                    format!("but the job is in flight ({state}): run `plan --update-expected` again once it settles")
                }
            }
        };
        rejected += 1;
        let _ = terminal.write_lines(&format!(
            "{manifest}: {line}: already planned with {}; the line declares {} {why}\n",
            conflict.recorded, conflict.declared
        ));
    }
    Ok(Planned {
        new: totals.new,
        existing: totals.existing - (rejected - parsed.rejected),
        rejected,
        updated: update_expected.then_some((updated, requeued)),
    })
}

/// Records a conflicting line's expectations on its job.
async fn update(store: &std::sync::Arc<dyn Store>, conflict: &ExpectationConflict) -> anyhow::Result<ExpectedUpdate> {
    let reason = format!(
        "oncefetch plan --update-expected: the line declares {}",
        conflict.declared
    );
    store
        .update_expected(&conflict.job_key, &conflict.declared, &reason)
        .await
        .with_context(|| format!("cannot record the expectations of job {}", conflict.job_key))
}

fn plural(n: u64, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 {
        one
    } else {
        many
    }
}

/// Sends the manifest's jobs in batches, reporting each rejected line on
/// stderr and the lines read to `progress`; returns how many lines were
/// rejected and where the lines that declare expectations are.
fn parse<R: BufRead>(
    mut reader: ManifestReader<R>,
    manifest: &str,
    batches: &mpsc::Sender<Vec<NewJob>>,
    progress: &PlanProgress,
) -> io::Result<Parsed> {
    let mut parsed = Parsed::default();
    let mut sent = 0u64;
    let mut batch = Vec::with_capacity(BATCH);
    let mut entries = 0u64;
    while let Some(entry) = reader.next_entry() {
        entries += 1;
        if entries.is_multiple_of(SHOWN_EVERY) {
            progress.lines(reader.line_number());
        }
        match entry? {
            Ok(job) => {
                parsed.sent(sent, reader.line_number());
                sent += 1;
                batch.push(job);
            }
            Err(bad) => {
                parsed.rejected += 1;
                let _ = progress.write_line(&format!("{manifest}: {bad}"));
            }
        }
        if batch.len() == BATCH {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
            if batches.blocking_send(full).is_err() {
                return Ok(parsed);
            }
        }
    }
    if !batch.is_empty() {
        let _ = batches.blocking_send(batch);
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::Parsed;

    #[test]
    fn a_jobs_line_counts_the_lines_skipped_before_it() {
        let mut parsed = Parsed::default();
        // Jobs on lines 1 and 2, line 3 rejected, jobs on 4 and 5, lines 6
        // and 7 empty, a job on 8.
        let sent = [(0, 1), (1, 2), (2, 4), (3, 5), (4, 8)];
        for (position, line) in sent {
            parsed.sent(position, line);
        }
        assert_eq!(parsed.gaps.len(), 3, "one entry per run of skipped lines");
        for (position, line) in sent {
            assert_eq!(parsed.line_of(position), Some(line));
        }
    }
}
