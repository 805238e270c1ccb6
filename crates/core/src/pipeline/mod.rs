//! The worker pipeline (backend-agnostic): lease a batch, take each job
//! through every state with each side effect in the ledger, until every job
//! in the ledger is settled.

mod backoff;
mod bandwidth;
mod breaker;
mod coalesce;
mod dirsync;
pub mod files;
mod filesync;
mod interrupt;
mod job_ledger;
mod lease_keeper;
mod part_log;
mod policy;
mod progress;
pub mod rate;
pub mod recover;
mod resource;
mod resume;
mod robots;
pub mod split;
pub(crate) mod stream;
mod waits;
mod worker;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::destination::Destination;
use crate::error::StoreError;
use crate::fetch::Fetcher;
use crate::lease::AcquireRequest;
use crate::robots::RobotsMode;
use crate::store::Store;

pub use files::OutDir;
pub use interrupt::Interrupt;
pub use part_log::stream_records;
pub use policy::{HostPolicies, HostPolicy};
pub use progress::{Download, NoProgress, Progress};
pub use rate::Rate;
pub use resource::{ResourceError, Shortage};
pub use split::SplitConfig;
pub use worker::JobOutcome;

/// The shortest lease a run takes ([`RunConfig::lease_ttl`]). A lease is
/// renewed every third of its length, and each renewal is a ledger round
/// trip: a shorter lease expires before a renewal lands (every grant lost at
/// once, the job leased again and again), so `oncefetch run` refuses one.
pub const MIN_LEASE_TTL: Duration = Duration::from_secs(1);

/// Settings of a run (SPEC §7 defaults).
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Downloads at once (a job gives its slot back once its body is in).
    pub concurrency: usize,
    /// Downloads per host at once.
    pub per_host: usize,
    /// Lease length; renewed every third of it while a job runs. At least
    /// [`MIN_LEASE_TTL`].
    pub lease_ttl: Duration,
    /// Attempts (body transfers) per job.
    pub max_attempts: u32,
    /// Largest artifact accepted.
    pub max_size: u64,
    /// fsync files and folders when placing (durability).
    pub fsync: bool,
    /// This worker's lease owner id.
    pub owner: String,
    /// First backoff after a transient failure.
    pub backoff_base: Duration,
    /// Longest backoff.
    pub backoff_cap: Duration,
    /// How often to look for work while waiting on others.
    pub poll_interval: Duration,
    /// Expected media type (`--accept`, normalized by
    /// [`content::parse_expected`](crate::content::parse_expected)) for jobs
    /// that record none of their own.
    pub accept: Option<String>,
    /// The longest wait for a server's `Retry-After` the run sits out: a
    /// job asked to wait longer is left FAILED (retryable, its next attempt
    /// when the server said), and the run does not wait for it. Also how
    /// long a host may stay paused by its circuit breaker before the run
    /// gives up on it (its jobs are put off past this horizon).
    pub max_retry_after: Duration,
    /// Requests per host (each request of a job waits its turn); `None`:
    /// unlimited.
    pub rate_per_host: Option<Rate>,
    /// Body bytes per second over every download of the run; `None`:
    /// unlimited.
    pub limit_rate: Option<u64>,
    /// Per-host policies: where a host's (or the default) policy sets a
    /// field, it wins over `per_host` and `rate_per_host`.
    pub hosts: HostPolicies,
    /// Whether each host's `robots.txt` is fetched (once per run) and
    /// obeyed; [`RobotsMode::Ignore`] by default.
    pub robots: RobotsMode,
    /// How large downloads are split over several connections
    /// (`--split`); off by default.
    pub split: SplitConfig,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            concurrency: 16,
            per_host: 16,
            lease_ttl: Duration::from_secs(60),
            max_attempts: 5,
            max_size: 4 << 30,
            fsync: true,
            owner: default_owner(),
            backoff_base: Duration::from_millis(500),
            backoff_cap: Duration::from_secs(60),
            poll_interval: Duration::from_millis(200),
            accept: None,
            max_retry_after: Duration::from_secs(15 * 60),
            rate_per_host: None,
            limit_rate: None,
            hosts: HostPolicies::default(),
            robots: RobotsMode::default(),
            split: SplitConfig::default(),
        }
    }
}

/// `host-pid-random`: unique per process.
pub fn default_owner() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".to_owned());
    format!("{host}-{}-{:08x}", std::process::id(), fastrand::u32(..))
}

/// Totals of one run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunReport {
    /// Jobs this worker brought to SUCCESS.
    pub succeeded: u64,
    /// Jobs this worker marked SKIPPED_DUPLICATE.
    pub skipped: u64,
    /// Failures recorded (retryable or not).
    pub failed: u64,
    /// Jobs dropped because their lease moved on.
    pub lost: u64,
    /// Jobs stopped by an [`Interrupt`], their leases given back.
    pub interrupted: u64,
    /// Jobs put off, no attempt counted, while their host was paused.
    pub deferred: u64,
}

/// Why a run stopped early.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// The ledger failed and kept failing.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The output folder is not usable.
    #[error("output folder {path}: {source}")]
    OutDir {
        /// The folder.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Everything a job task needs, shared.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) fetcher: Arc<dyn Fetcher>,
    pub(crate) dest: Arc<dyn Destination>,
    pub(crate) config: RunConfig,
    pub(crate) progress: Arc<dyn Progress>,
    hosts: std::sync::Mutex<HashMap<String, Arc<Semaphore>>>,
    /// Each host's next request slot under its rate (its policy's, else
    /// [`RunConfig::rate_per_host`]).
    pub(crate) rates: rate::HostRates,
    /// The run's [`RunConfig::limit_rate`].
    pub(crate) bandwidth: Option<bandwidth::Bandwidth>,
    /// The bandwidth caps of hosts whose policy has one.
    host_bandwidths: std::sync::Mutex<HashMap<String, Arc<bandwidth::Bandwidth>>>,
    /// Long waits logged so far.
    pub(crate) waits: waits::Waits,
    /// Each host's circuit breaker.
    pub(crate) breakers: breaker::Breakers,
    /// Each origin's `robots.txt` answer, under `--robots respect`.
    pub(crate) robots: robots::RobotsCache,
    /// Leased jobs not downloading yet (see `worker::QueuePlace`).
    pub(crate) queued: AtomicUsize,
    /// Set when the run must stop.
    pub(crate) interrupt: Interrupt,
    /// The resource error that stopped the run, the first one met.
    halted: std::sync::Mutex<Option<ResourceError>>,
}

impl Shared {
    /// Stops the run for `err`; the first such error is the one
    /// [`Pipeline::halted`] reports.
    pub(crate) fn halt(&self, err: ResourceError) {
        self.halted.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(err);
        self.interrupt.interrupt();
    }

    /// The policy of `host` (`HOST[:PORT]` of a canonical URL): its
    /// own, the default, then the flags.
    pub(crate) fn policy(&self, host: &str) -> HostPolicy {
        let flags = HostPolicy {
            rate: self.config.rate_per_host,
            concurrency: Some(self.config.per_host),
            bandwidth: None,
            headers: Vec::new(),
        };
        self.config.hosts.of(host).or(&flags)
    }

    /// The download limiter of `host` (`HOST[:PORT]`), as many permits as
    /// its policy's concurrency.
    pub(crate) fn host_slot(&self, host: &str) -> Arc<Semaphore> {
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        let permits = || self.policy(host).concurrency.unwrap_or(1).max(1);
        Arc::clone(
            hosts
                .entry(host.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(permits()))),
        )
    }

    /// The bandwidth cap of `host`, when its policy has one.
    pub(crate) fn host_bandwidth(&self, host: &str) -> Option<Arc<bandwidth::Bandwidth>> {
        let cap = self.policy(host).bandwidth?;
        let mut caps = self.host_bandwidths.lock().unwrap_or_else(|p| p.into_inner());
        Some(Arc::clone(
            caps.entry(host.to_owned())
                .or_insert_with(|| Arc::new(bandwidth::Bandwidth::new(cap))),
        ))
    }
}

/// Runs jobs until every job in the ledger is settled (SUCCESS,
/// SKIPPED_DUPLICATE, or FAILED with no attempts left) or due only past
/// [`RunConfig::max_retry_after`], waiting for backoffs and other workers'
/// leases meanwhile.
#[derive(Debug)]
pub struct Pipeline {
    shared: Arc<Shared>,
}

/// How long the ledger may keep failing before the run gives up.
const STORE_OUTAGE_LIMIT: Duration = Duration::from_secs(120);

impl Pipeline {
    /// A pipeline over `store` and `fetcher`, writing into `dest` (an
    /// [`OutDir`], or any [`Destination`]).
    pub fn new(
        store: Arc<dyn Store>,
        fetcher: Arc<dyn Fetcher>,
        dest: impl Into<Arc<dyn Destination>>,
        config: RunConfig,
        progress: Arc<dyn Progress>,
    ) -> Self {
        let bandwidth = config.limit_rate.map(bandwidth::Bandwidth::new);
        let breakers = breaker::Breakers::new(config.max_retry_after);
        Self {
            shared: Arc::new(Shared {
                store,
                fetcher,
                dest: dest.into(),
                config,
                progress,
                hosts: std::sync::Mutex::new(HashMap::new()),
                rates: rate::HostRates::default(),
                bandwidth,
                host_bandwidths: std::sync::Mutex::new(HashMap::new()),
                waits: waits::Waits::default(),
                breakers,
                robots: robots::RobotsCache::default(),
                queued: AtomicUsize::new(0),
                interrupt: Interrupt::default(),
                halted: std::sync::Mutex::new(None),
            }),
        }
    }

    /// The handle that stops this pipeline's run: no job is taken after it
    /// fires, and the jobs in hand record their running op, give their
    /// lease back and end [`JobOutcome::Interrupted`]; [`run`](Self::run)
    /// then returns.
    pub fn interrupter(&self) -> Interrupt {
        self.shared.interrupt.clone()
    }

    /// The resource error that stopped [`run`](Self::run), if one did: a
    /// full disk, say, stops the run at once (every job in hand gives its
    /// lease and its attempt back) rather than failing job after job.
    pub fn halted(&self) -> Option<ResourceError> {
        self.shared.halted.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Processes jobs until the ledger is settled.
    ///
    /// Leases are taken in batches: when at most half of `concurrency` leased
    /// jobs wait for a download slot, one grant tops the queue up to
    /// `concurrency` (so one grant serves many jobs, not one per finished
    /// job); queued jobs keep their lease renewed. At most three times
    /// `concurrency` jobs are in hand: downloading, queued, or finishing
    /// (fsync, placement, ledger) after their download.
    pub async fn run(&self) -> Result<RunReport, PipelineError> {
        let shared = &self.shared;
        let config = &shared.config;
        let concurrency = config.concurrency.max(1);
        let slots = Arc::new(Semaphore::new(concurrency));
        let mut tasks: JoinSet<JobOutcome> = JoinSet::new();
        let mut report = RunReport::default();
        let mut outage: Option<tokio::time::Instant> = None;
        loop {
            while let Some(done) = tasks.try_join_next() {
                tally(&mut report, done);
            }
            let mut starved = false;
            let interrupted = shared.interrupt.is_set();
            let queued = shared.queued.load(Ordering::SeqCst);
            let room = (3 * concurrency).saturating_sub(tasks.len());
            if interrupted && tasks.is_empty() {
                break;
            }
            if !interrupted && queued <= concurrency / 2 && room > 0 {
                let request = AcquireRequest {
                    owner: config.owner.clone(),
                    ttl: config.lease_ttl,
                    limit: (concurrency - queued).min(room),
                    max_attempts: config.max_attempts,
                };
                match shared.store.acquire(&request).await {
                    Ok(leases) => {
                        outage = None;
                        starved = leases.len() < request.limit;
                        for lease in leases {
                            let (shared, slots) = (Arc::clone(shared), Arc::clone(&slots));
                            shared.queued.fetch_add(1, Ordering::SeqCst);
                            tasks.spawn(async move { worker::process(&shared, lease, slots).await });
                        }
                    }
                    Err(err) => {
                        wait_out_outage(&mut outage, err).await?;
                        continue;
                    }
                }
            }
            if tasks.is_empty() {
                if shared.interrupt.is_set() {
                    break;
                }
                match shared
                    .store
                    .outstanding(config.max_attempts, Some(config.max_retry_after))
                    .await
                {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(err) => {
                        wait_out_outage(&mut outage, err).await?;
                        continue;
                    }
                }
                shared.interrupt.or_stop(tokio::time::sleep(config.poll_interval)).await;
            } else {
                // Wake when a job ends or, while the store had no more work to
                // give, to poll for it.
                tokio::select! {
                    done = tasks.join_next() => {
                        if let Some(done) = done {
                            tally(&mut report, done);
                        }
                    }
                    () = tokio::time::sleep(config.poll_interval), if starved => {}
                    () = shared.interrupt.wait(), if !interrupted => {}
                }
            }
        }
        Ok(report)
    }
}

fn tally(report: &mut RunReport, done: Result<JobOutcome, tokio::task::JoinError>) {
    match done {
        Ok(JobOutcome::Succeeded) => report.succeeded += 1,
        Ok(JobOutcome::Skipped { .. }) => report.skipped += 1,
        Ok(JobOutcome::Failed { .. }) => report.failed += 1,
        Ok(JobOutcome::LeaseLost) | Ok(JobOutcome::StoreFailed(_)) => report.lost += 1,
        Ok(JobOutcome::Interrupted) => report.interrupted += 1,
        Ok(JobOutcome::Deferred { .. }) => report.deferred += 1,
        Err(err) => {
            tracing::error!(error = %err, "job task panicked");
            report.lost += 1;
        }
    }
}

/// Retries ledger outages (a restarting database) for a while, then gives up.
async fn wait_out_outage(since: &mut Option<tokio::time::Instant>, err: StoreError) -> Result<(), PipelineError> {
    if !err.is_retryable() {
        return Err(err.into());
    }
    let started = *since.get_or_insert_with(tokio::time::Instant::now);
    if started.elapsed() > STORE_OUTAGE_LIMIT {
        return Err(err.into());
    }
    tracing::warn!(error = %err, "ledger unavailable; retrying");
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compile-time check: the run loop (and every job task it spawns) can
    /// move between executor threads.
    #[allow(dead_code)]
    fn run_future_is_send(pipeline: &Pipeline) {
        fn is_send<T: Send>(_: T) {}
        is_send(pipeline.run());
    }

    #[test]
    fn owner_ids_differ_per_call() {
        assert_ne!(default_owner(), default_owner());
        assert!(default_owner().contains(&std::process::id().to_string()));
    }
}
