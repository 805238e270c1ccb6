//! The end-of-run summary of `run` and `fetch`: on stderr for people, and
//! with `--json` as one JSON object on stdout.

use std::collections::HashMap;
use std::fmt::Write as _;

use indicatif::HumanBytes;
use oncefetch_core::url::redact;
use oncefetch_core::{JobState, StatusCounts};
use serde_json::{json, Value};

use crate::commands::plan::Planned;
use crate::output::status_json;
use crate::progress::{per_sec, took, Failure, Tally};
use crate::reason::{reason, CANNOT_CONNECT};

/// Failure groups shown; the rest are counted.
const SHOWN_GROUPS: usize = 5;

/// The next steps when jobs ended FAILED.
const NEXT: [&str; 2] = ["oncefetch jobs --state FAILED", "oncefetch retry"];

/// Jobs that failed for one reason.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Group<'a> {
    reason: String,
    count: u64,
    example: &'a Failure,
}

/// What a run did, with the ledger after it.
#[derive(Debug)]
pub(crate) struct Summary<'a> {
    tally: &'a Tally,
    /// The ledger's counts after the run, when it could be read.
    ledger: Option<&'a StatusCounts>,
    /// The run's `--max-attempts`: which FAILED jobs in the ledger are final.
    max_attempts: u32,
    /// `fetch`: what its plan did.
    planned: Option<Planned>,
    /// Why the run stopped before the ledger was settled.
    stopped: Option<&'a str>,
    /// Failure reasons, largest first.
    groups: Vec<Group<'a>>,
}

impl<'a> Summary<'a> {
    /// The summary of `tally`.
    pub(crate) fn new(
        tally: &'a Tally,
        ledger: Option<&'a StatusCounts>,
        max_attempts: u32,
        planned: Option<Planned>,
        stopped: Option<&'a str>,
    ) -> Self {
        Self {
            tally,
            ledger,
            max_attempts,
            planned,
            stopped,
            groups: groups(&tally.failures),
        }
    }

    fn rate(&self) -> f64 {
        self.tally.bytes as f64 / self.tally.elapsed.as_secs_f64().max(0.001)
    }

    /// Every failure was a connection failure, and nothing succeeded: a
    /// machine without network, most likely.
    fn all_failed_to_connect(&self) -> bool {
        self.tally.succeeded == 0
            && self.tally.linked == 0
            && !self.groups.is_empty()
            && self.groups.iter().all(|g| g.reason == CANNOT_CONNECT)
    }

    /// Whether the ledger holds FAILED jobs (then the next steps are named).
    fn failed_in_ledger(&self) -> bool {
        self.ledger
            .map_or(!self.groups.is_empty(), |l| l.get(JobState::Failed) > 0)
    }

    /// The lines for stderr.
    pub(crate) fn text(&self) -> String {
        let t = self.tally;
        let mut text = format!(
            "fetched {} {}; {} received in {} ({})",
            t.succeeded,
            plural(t.succeeded, "file", "files"),
            HumanBytes(t.bytes),
            took(t.elapsed),
            per_sec(self.rate())
        );
        if t.linked > 0 {
            let _ = write!(
                text,
                "; {} {} linked, {} saved",
                t.linked,
                plural(t.linked, "duplicate", "duplicates"),
                HumanBytes(t.saved)
            );
        }
        text.push('\n');
        if !self.groups.is_empty() {
            let jobs = t.failures.len() as u64;
            let retrying = t.failures.iter().filter(|f| f.will_retry).count();
            let _ = write!(text, "{jobs} {} failed", plural(jobs, "job", "jobs"));
            if retrying > 0 {
                let _ = write!(text, " ({retrying} to be retried)");
            }
            text.push_str(", by reason:\n");
            for group in self.groups.iter().take(SHOWN_GROUPS) {
                let _ = writeln!(
                    text,
                    "  {:>6} × {}, e.g. {}: {}",
                    group.count,
                    group.reason,
                    group.example.name,
                    redact(&group.example.message)
                );
            }
            let (more, more_jobs) = self.more();
            if more > 0 {
                let _ = writeln!(
                    text,
                    "  … and {more} more {} ({more_jobs} {})",
                    plural(more, "reason", "reasons"),
                    plural(more_jobs, "job", "jobs")
                );
            }
        }
        if self.all_failed_to_connect() {
            text.push_str(
                "every job failed to connect: is this machine offline? `cargo xtask demo` shows oncefetch at work \
                 against a local server, no network needed\n",
            );
        }
        if self.failed_in_ledger() {
            let _ = writeln!(
                text,
                "next: `{}` lists the failed jobs and their errors; `{}` requeues the retryable ones (`--permanent` \
                 the others too, `--error TEXT` those of one reason)",
                NEXT[0], NEXT[1]
            );
        }
        text
    }

    /// The groups past [`SHOWN_GROUPS`], and their jobs.
    fn more(&self) -> (u64, u64) {
        let rest = self.groups.iter().skip(SHOWN_GROUPS);
        (rest.clone().count() as u64, rest.map(|g| g.count).sum())
    }

    /// The summary as one JSON object.
    pub(crate) fn json(&self) -> Value {
        let t = self.tally;
        let groups: Vec<Value> = self
            .groups
            .iter()
            .take(SHOWN_GROUPS)
            .map(|g| {
                json!({
                    "reason": g.reason,
                    "count": g.count,
                    "example": { "job": g.example.name, "error": redact(&g.example.message) },
                })
            })
            .collect();
        let (more, more_jobs) = self.more();
        json!({
            "elapsed_secs": t.elapsed.as_secs_f64(),
            "files": {
                "succeeded": t.succeeded,
                "linked": t.linked,
                "failed": t.failures.len(),
                "to_retry": t.failures.iter().filter(|f| f.will_retry).count(),
            },
            "bytes": { "fetched": t.bytes, "per_sec": self.rate(), "saved": t.saved },
            "failed_attempts": t.failed_attempts,
            "failures": {
                "groups": groups,
                "more_groups": more,
                "more_jobs": more_jobs,
                "all_failed_to_connect": self.all_failed_to_connect(),
            },
            "stopped": self.stopped,
            "ledger": self.ledger.map(|counts| status_json(counts, self.max_attempts)),
            "planned": self.planned.as_ref().map(Planned::json),
            "next": if self.failed_in_ledger() { NEXT.to_vec() } else { Vec::new() },
        })
    }
}

/// `failures` grouped by [`reason`], largest group first (then by reason);
/// each group's example is its first failure.
fn groups(failures: &[Failure]) -> Vec<Group<'_>> {
    let mut groups: Vec<Group<'_>> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for failure in failures {
        let reason = reason(&failure.message);
        match index.get(&reason) {
            Some(&i) => groups[i].count += 1,
            None => {
                index.insert(reason.clone(), groups.len());
                groups.push(Group {
                    reason,
                    count: 1,
                    example: failure,
                });
            }
        }
    }
    groups.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.reason.cmp(&b.reason)));
    groups
}

fn plural(n: u64, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 {
        one
    } else {
        many
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn failure(name: &str, message: &str) -> Failure {
        Failure {
            name: name.to_owned(),
            message: message.to_owned(),
            will_retry: false,
        }
    }

    #[test]
    fn failures_are_grouped_largest_first_and_the_rest_counted() {
        let mut failures = vec![
            failure("w1/a", "server answered 404 not found for http://h/1"),
            failure("w2/a", "sha256 mismatch: expected 00, got 11"),
            failure("w3/a", "server answered 404 not found for http://h/3"),
        ];
        for status in ["400 bad request", "401 unauthorized", "403 forbidden", "410 gone"] {
            failures.push(failure("w9/a", &format!("server answered {status} for http://h/x")));
        }
        let tally = Tally {
            elapsed: Duration::from_secs(2),
            failures,
            ..Tally::default()
        };
        let summary = Summary::new(&tally, None, 5, None, None);
        let json = summary.json();
        let groups = json["failures"]["groups"].as_array().unwrap();
        assert_eq!(groups.len(), 5);
        assert_eq!(groups[0]["reason"], "HTTP 404 not found");
        assert_eq!(groups[0]["count"], 2);
        assert_eq!(groups[0]["example"]["job"], "w1/a");
        assert_eq!(json["failures"]["more_groups"], 1);
        assert_eq!(json["failures"]["more_jobs"], 1);
        let text = summary.text();
        assert!(text.contains("7 jobs failed, by reason:"), "{text}");
        assert!(
            text.contains("2 × HTTP 404 not found, e.g. w1/a: server answered 404"),
            "{text}"
        );
        assert!(text.contains("and 1 more reason (1 job)"), "{text}");
        assert!(text.contains("oncefetch jobs --state FAILED"), "{text}");
        assert!(!text.contains("cargo xtask demo"), "{text}");
    }

    #[test]
    fn a_run_that_never_connected_says_so() {
        let tally = Tally {
            failures: vec![failure("w/a", "cannot connect to http://h/x: connection refused")],
            ..Tally::default()
        };
        let summary = Summary::new(&tally, None, 5, None, None);
        assert!(summary.text().contains("cargo xtask demo"), "{}", summary.text());
        assert_eq!(summary.json()["failures"]["all_failed_to_connect"], true);
        let some_fetched = Tally {
            succeeded: 1,
            ..tally.clone()
        };
        assert!(!Summary::new(&some_fetched, None, 5, None, None).all_failed_to_connect());
    }
}
