//! The reads as folds over job rows: what [`LedgerStore::status`],
//! [`LedgerStore::outstanding`] and [`LedgerStore::watch`] answer, defined
//! over every job (the SQL stores answer the same from indexes and
//! counters, and the conformance kit pins them to these).
//!
//! [`LedgerStore::status`]: crate::LedgerStore::status
//! [`LedgerStore::outstanding`]: crate::LedgerStore::outstanding
//! [`LedgerStore::watch`]: crate::LedgerStore::watch

use std::collections::{BTreeMap, HashMap};

use super::lease::lease_live;
use crate::job::{attempts_left, millis, Job, Millis, StatusCounts};
use crate::state::JobState;
use crate::watch::{HostCounts, MinuteCounts, Watch, WatchQuery, WorkerSeen};

/// A step into SUCCESS, SKIPPED_DUPLICATE or FAILED, as the watch counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finish {
    /// When (store clock).
    pub at: Millis,
    /// The job's host ([`crate::url::host_port`]).
    pub host: String,
    /// The state stepped into.
    pub state: JobState,
    /// The job's size then.
    pub size: Option<u64>,
}

impl Finish {
    /// `job`'s finish in its current state at `at`.
    pub fn of(job: &Job, at: Millis) -> Self {
        Self {
            at,
            host: crate::url::host_port(&job.canonical_url).to_owned(),
            state: job.state,
            size: job.size,
        }
    }
}

/// **Status** of `jobs` at `now`: counts per state, live leases, bytes done
/// and the retryable failures by attempts used.
pub fn status<'a>(jobs: impl Iterator<Item = &'a Job> + Clone, now: Millis) -> StatusCounts {
    let live = jobs.clone().filter(|j| lease_live(j, now)).count();
    let bytes_done = jobs
        .clone()
        .filter(|j| j.state == JobState::Success)
        .filter_map(|j| j.size)
        .sum();
    let retryable_failed = jobs
        .clone()
        .filter(|j| j.state == JobState::Failed && j.retryable)
        .map(|j| (j.attempts, 1, u64::from(j.next_attempt_at.is_some_and(|t| t > now))));
    StatusCounts::from_pairs(jobs.map(|j| (j.state, 1)))
        .with_live_leases(u64::try_from(live).unwrap_or(u64::MAX))
        .with_bytes_done(bytes_done)
        .with_retryable_failed(retryable_failed)
}

/// **Outstanding** for `run`: the jobs not settled, where settled is
/// terminal, or FAILED without retries left (not retryable, out of attempts,
/// or next due after `horizon`).
pub fn outstanding<'a>(jobs: impl Iterator<Item = &'a Job>, max_attempts: u32, horizon: Option<Millis>) -> u64 {
    let settled = |job: &Job| {
        job.state.is_terminal()
            || (job.state == JobState::Failed
                && (!job.retryable
                    || !attempts_left(job.attempts, max_attempts)
                    || horizon.is_some_and(|h| job.next_attempt_at.is_some_and(|t| t > h))))
    };
    jobs.filter(|j| !settled(j)).count() as u64
}

/// **Watch** at `now` over `jobs` (as reads show them, in any order, each
/// with its place in planning order) and the `finishes` recorded.
pub fn watch(jobs: &[(u64, Job)], finishes: &[Finish], now: Millis, query: &WatchQuery) -> Watch {
    let mut hosts: HashMap<&str, HostCounts> = HashMap::new();
    for (_, job) in jobs {
        let host = crate::url::host_port(&job.canonical_url);
        hosts
            .entry(host)
            .or_insert_with(|| HostCounts {
                host: host.to_owned(),
                ..HostCounts::default()
            })
            .count(job.state, job.size);
    }
    let mut minutes: BTreeMap<Millis, MinuteCounts> = BTreeMap::new();
    let window_start = MinuteCounts::minute_of(now - millis(query.window));
    let recent_start = now - millis(query.recent);
    for finish in finishes {
        let minute = MinuteCounts::minute_of(finish.at);
        if minute >= window_start {
            let row = minutes.entry(minute).or_insert(MinuteCounts {
                minute,
                ..MinuteCounts::default()
            });
            match finish.state {
                JobState::Success => {
                    row.succeeded += 1;
                    row.bytes += finish.size.unwrap_or(0);
                }
                JobState::SkippedDuplicate => row.skipped += 1,
                _ => row.failed += 1,
            }
        }
        if minute >= MinuteCounts::minute_of(recent_start) {
            if let Some(counts) = hosts.get_mut(finish.host.as_str()) {
                counts.recent_finished += 1;
            }
        }
    }
    let mut hosts: Vec<HostCounts> = hosts.into_values().collect();
    Watch::rank_hosts(&mut hosts, query.hosts);
    let mut failed: Vec<&(u64, Job)> = jobs.iter().filter(|(_, j)| j.state == JobState::Failed).collect();
    failed.sort_by_key(|(seq, _)| *seq);
    let mut in_flight: Vec<Job> = jobs
        .iter()
        .map(|(_, j)| j)
        .filter(|j| lease_live(j, now))
        .cloned()
        .collect();
    in_flight.sort_by(|a, b| {
        a.lease_expires_at
            .cmp(&b.lease_expires_at)
            .then_with(|| a.job_key.cmp(&b.job_key))
    });
    in_flight.truncate(query.in_flight);
    let mut workers: BTreeMap<String, WorkerSeen> = BTreeMap::new();
    for (_, job) in jobs.iter().filter(|(_, j)| j.state.is_in_flight()) {
        let (Some(owner), Some(expiry)) = (&job.lease_owner, job.lease_expires_at) else {
            continue;
        };
        if expiry <= recent_start {
            continue;
        }
        let seen = workers.entry(owner.clone()).or_insert(WorkerSeen {
            owner: owner.clone(),
            live_leases: 0,
            last_expiry: expiry,
        });
        seen.live_leases += u64::from(expiry > now);
        seen.last_expiry = seen.last_expiry.max(expiry);
    }
    Watch {
        now,
        hosts,
        minutes: minutes.into_values().collect(),
        failed: failed.into_iter().take(query.failed).map(|(_, j)| j.clone()).collect(),
        in_flight,
        workers: workers.into_values().collect(),
    }
}
