//! What the status pages show (SPEC §11), read by
//! [`LedgerStore::watch`](crate::LedgerStore::watch) in one call: per-host
//! counts, finishes per minute, failed and in-flight jobs, and the workers
//! seen. Stores keep the counts in tables of counters that their writes
//! maintain, so that a watch costs the same on ten jobs as on ten million.

use std::time::Duration;

use crate::job::{Job, Millis};
use crate::state::JobState;

/// What to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchQuery {
    /// At most this many hosts, those with the most jobs first.
    pub hosts: usize,
    /// At most this many FAILED jobs (the first in planning order).
    pub failed: usize,
    /// At most this many in-flight jobs with a live lease (the earliest
    /// expiry first).
    pub in_flight: usize,
    /// Minutes of finishes to return: those that started within this span
    /// before now.
    pub window: Duration,
    /// The span of a host's recent finishes and of the workers seen.
    pub recent: Duration,
}

impl Default for WatchQuery {
    fn default() -> Self {
        Self {
            hosts: 20,
            failed: 200,
            in_flight: 20,
            window: Duration::from_secs(3600),
            recent: Duration::from_secs(600),
        }
    }
}

/// One host's jobs (the host as [`crate::url::host_port`] gives it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostCounts {
    /// `HOST:PORT`.
    pub host: String,
    /// PLANNED jobs.
    pub planned: u64,
    /// Jobs in flight (LEASED … DEDUPED).
    pub in_flight: u64,
    /// SUCCESS jobs.
    pub succeeded: u64,
    /// SKIPPED_DUPLICATE jobs.
    pub skipped: u64,
    /// FAILED jobs.
    pub failed: u64,
    /// The sizes of its SUCCESS jobs, summed.
    pub bytes: u64,
    /// Finishes (steps into SUCCESS, SKIPPED_DUPLICATE or FAILED) within
    /// [`WatchQuery::recent`].
    pub recent_finished: u64,
}

impl HostCounts {
    /// All its jobs.
    pub fn total(&self) -> u64 {
        self.planned + self.in_flight + self.succeeded + self.skipped + self.failed
    }

    /// Counts one job of `state` (with `size`, for SUCCESS).
    pub fn count(&mut self, state: JobState, size: Option<u64>) {
        match state {
            JobState::Planned => self.planned += 1,
            JobState::Success => {
                self.succeeded += 1;
                self.bytes += size.unwrap_or(0);
            }
            JobState::SkippedDuplicate => self.skipped += 1,
            JobState::Failed => self.failed += 1,
            _ => self.in_flight += 1,
        }
    }
}

/// The finishes of one minute, over every host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MinuteCounts {
    /// The minute's start, in milliseconds by the store clock (a multiple
    /// of 60,000).
    pub minute: Millis,
    /// Steps into SUCCESS.
    pub succeeded: u64,
    /// Steps into SKIPPED_DUPLICATE.
    pub skipped: u64,
    /// Steps into FAILED (retryable or not).
    pub failed: u64,
    /// Sizes of the jobs that stepped into SUCCESS.
    pub bytes: u64,
}

impl MinuteCounts {
    /// The start of the minute `at` falls in.
    pub fn minute_of(at: Millis) -> Millis {
        at.div_euclid(60_000) * 60_000
    }
}

/// A lease owner seen holding a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerSeen {
    /// The lease owner id.
    pub owner: String,
    /// Its live leases now.
    pub live_leases: u64,
    /// The latest expiry among its leases.
    pub last_expiry: Millis,
}

/// The answer of [`LedgerStore::watch`](crate::LedgerStore::watch).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Watch {
    /// The store clock when read.
    pub now: Millis,
    /// Hosts, the most jobs first (then by name).
    pub hosts: Vec<HostCounts>,
    /// Minutes with finishes within [`WatchQuery::window`], oldest first.
    pub minutes: Vec<MinuteCounts>,
    /// FAILED jobs, in planning order.
    pub failed: Vec<Job>,
    /// In-flight jobs with a live lease, the earliest expiry first.
    pub in_flight: Vec<Job>,
    /// Owners of in-flight jobs whose lease expires after now − `recent`,
    /// by owner.
    pub workers: Vec<WorkerSeen>,
}

impl Watch {
    /// Sorts and cuts hosts as [`Watch::hosts`] says.
    pub fn rank_hosts(hosts: &mut Vec<HostCounts>, limit: usize) {
        hosts.sort_by(|a, b| b.total().cmp(&a.total()).then_with(|| a.host.cmp(&b.host)));
        hosts.truncate(limit);
    }
}
