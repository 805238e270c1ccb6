//! A run's progress: bars on a terminal; otherwise one log line per job
//! and a heartbeat line with the bar's figures every `--progress-interval`.
//! Either way the figures end up in the end-of-run summary.

mod bars;
mod figures;
mod plan;
mod rate;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, ProgressBar};
use oncefetch_core::pipeline::{Download, JobOutcome, Progress};
use oncefetch_core::url::host_port;
use oncefetch_core::Job;

use self::bars::{Bars, LARGE};
use self::figures::Figures;
pub(crate) use self::figures::{per_sec, took};
pub(crate) use self::plan::PlanProgress;
use self::rate::Rate;
use crate::terminal::Terminal;

/// How often rates are sampled and the bars updated.
const TICK: Duration = Duration::from_millis(250);

/// The progress of one run; [`finish`](Self::finish) stops it and hands
/// over its tally.
#[derive(Debug)]
pub(crate) struct RunProgress {
    board: Arc<Board>,
    ticker: Mutex<Option<Ticker>>,
}

/// What the hooks record, shared with the ticker.
#[derive(Debug)]
struct Board {
    bars: Option<Bars>,
    started: Instant,
    /// Jobs to settle when the run started.
    total: u64,
    bytes: AtomicU64,
    state: Mutex<State>,
}

/// A job whose last attempt in this run failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    /// `work_id/artifact_id`.
    pub(crate) name: String,
    /// The error, as recorded in the ledger's `last_error`.
    pub(crate) message: String,
    /// A later lease retries it.
    pub(crate) will_retry: bool,
}

/// The figures of a finished run.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Tally {
    /// From the start of the downloads to their end.
    pub(crate) elapsed: Duration,
    /// Body bytes received.
    pub(crate) bytes: u64,
    /// Jobs brought to SUCCESS.
    pub(crate) succeeded: u64,
    /// Jobs linked to an earlier copy (SKIPPED_DUPLICATE).
    pub(crate) linked: u64,
    /// The bytes those links saved downloading.
    pub(crate) saved: u64,
    /// Failed attempts, retried or not.
    pub(crate) failed_attempts: u64,
    /// The jobs whose last attempt failed, by job key order.
    pub(crate) failures: Vec<Failure>,
}

#[derive(Debug)]
struct State {
    /// Jobs this run settled.
    settled: u64,
    succeeded: u64,
    linked: u64,
    saved: u64,
    failed_attempts: u64,
    /// By job key: jobs whose last attempt failed.
    failures: HashMap<String, Failure>,
    /// By job key: downloads streaming.
    live: HashMap<String, Live>,
    /// Downloads begun.
    begun: u64,
    /// What the ended downloads received.
    ended_bytes: u64,
    rate: Rate,
}

/// A download streaming.
#[derive(Debug)]
struct Live {
    /// `work_id/artifact_id`.
    name: String,
    /// Transfer length, when known: the full length less the resumed prefix.
    expected: Option<u64>,
    /// Bytes kept from an earlier attempt.
    start: u64,
    received: u64,
    began: Instant,
    rate: Rate,
    /// Its own bar, once it is known to be large (on a terminal).
    bar: Option<ProgressBar>,
}

impl Live {
    /// The bytes it brings, as far as known.
    fn expected(&self) -> u64 {
        self.expected.unwrap_or(0).max(self.received)
    }
}

impl RunProgress {
    /// The progress of a run that has `total` jobs to settle; a heartbeat
    /// every `interval` when not drawing bars.
    pub(crate) fn start(terminal: &Terminal, total: u64, interval: Duration) -> Self {
        let now = Instant::now();
        let board = Arc::new(Board {
            bars: terminal.bars.then(|| Bars::new(terminal, total)),
            started: now,
            total,
            bytes: AtomicU64::new(0),
            state: Mutex::new(State {
                settled: 0,
                succeeded: 0,
                linked: 0,
                saved: 0,
                failed_attempts: 0,
                failures: HashMap::new(),
                live: HashMap::new(),
                begun: 0,
                ended_bytes: 0,
                rate: Rate::new(now, 0),
            }),
        });
        let ticker = Ticker::start(Arc::clone(&board), interval);
        Self {
            board,
            ticker: Mutex::new(ticker),
        }
    }

    /// Stops the ticker, clears the bars, and returns the run's figures.
    pub(crate) fn finish(&self) -> Tally {
        if let Some(ticker) = self.ticker.lock().unwrap_or_else(|p| p.into_inner()).take() {
            ticker.stop();
        }
        if let Some(bars) = &self.board.bars {
            bars.finish();
        }
        let state = self.board.lock();
        let mut failures: Vec<(&String, &Failure)> = state.failures.iter().collect();
        failures.sort_by_key(|(key, _)| *key);
        Tally {
            elapsed: self.board.started.elapsed(),
            bytes: self.board.bytes.load(Ordering::Relaxed),
            succeeded: state.succeeded,
            linked: state.linked,
            saved: state.saved,
            failed_attempts: state.failed_attempts,
            failures: failures.into_iter().map(|(_, f)| f.clone()).collect(),
        }
    }
}

impl Board {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The figures now, from `state`.
    fn figures(&self, state: &State) -> Figures {
        let bytes = self.bytes.load(Ordering::Relaxed);
        let expected = state.ended_bytes + state.live.values().map(Live::expected).sum::<u64>();
        let rate = state.rate.per_sec();
        // Jobs not begun yet are taken to bring as much as the begun ones
        // did on average.
        let waiting = self.total.saturating_sub(state.settled + state.live.len() as u64);
        let average = expected.checked_div(state.begun).unwrap_or(0);
        let left = expected
            .saturating_sub(bytes)
            .saturating_add(average.saturating_mul(waiting));
        let eta = (rate > 0.0).then(|| Duration::from_secs_f64(left as f64 / rate));
        Figures {
            done: state.settled,
            total: self.total,
            bytes,
            expected,
            rate,
            eta,
            in_flight: state.live.len(),
            failed: state.failures.len(),
            retrying: state.failures.values().filter(|f| f.will_retry).count(),
        }
    }

    /// Samples the rates and updates the bars; returns the figures.
    fn tick(&self, now: Instant) -> Figures {
        let mut state = self.lock();
        let bytes = self.bytes.load(Ordering::Relaxed);
        state.rate.sample(now, bytes);
        for live in state.live.values_mut() {
            live.rate.sample(now, live.received);
            if let Some(bar) = &live.bar {
                Bars::show_download(bar, live.start + live.received, live.rate.per_sec());
            }
        }
        let figures = self.figures(&state);
        if let Some(bars) = &self.bars {
            bars.show(&figures);
        }
        figures
    }

    /// Gives `live` its own bar once it is known to be large.
    fn bar_if_large(&self, live: &mut Live) {
        if let (None, Some(bars)) = (&live.bar, &self.bars) {
            if live.expected() > LARGE {
                let full = live.expected.map(|len| len + live.start);
                live.bar = Some(bars.download(&live.name, full));
            }
        }
    }
}

impl Progress for RunProgress {
    fn bytes(&self, n: u64) {
        self.board.bytes.fetch_add(n, Ordering::Relaxed);
    }

    fn download_started(&self, download: &Download<'_>) {
        let job = download.job;
        let now = Instant::now();
        let mut live = Live {
            name: job.name(),
            expected: download.expected.map(|len| len.saturating_sub(download.start)),
            start: download.start,
            received: 0,
            began: now,
            rate: Rate::new(now, 0),
            bar: None,
        };
        self.board.bar_if_large(&mut live);
        let mut state = self.board.lock();
        state.begun += 1;
        state.live.insert(job.job_key.clone(), live);
    }

    fn download_bytes(&self, job_key: &str, n: u64) {
        self.bytes(n);
        let mut state = self.board.lock();
        if let Some(live) = state.live.get_mut(job_key) {
            live.received += n;
            if live.bar.is_none() && live.received > LARGE {
                self.board.bar_if_large(live);
            }
        }
    }

    fn job_done(&self, job: &Job, outcome: &JobOutcome) {
        let live = {
            let mut state = self.board.lock();
            let live = state.live.remove(&job.job_key);
            if let Some(live) = &live {
                state.ended_bytes += live.received;
            }
            tally(&mut state, job, outcome);
            live
        };
        if let (Some(bar), Some(bars)) = (live.as_ref().and_then(|l| l.bar.as_ref()), &self.board.bars) {
            bars.remove(bar);
        }
        log(job, outcome, live.as_ref());
    }
}

/// Counts `outcome` of `job` in `state`.
fn tally(state: &mut State, job: &Job, outcome: &JobOutcome) {
    match outcome {
        JobOutcome::Succeeded => {
            state.settled += 1;
            state.succeeded += 1;
            state.failures.remove(&job.job_key);
        }
        JobOutcome::Skipped { bytes } => {
            state.settled += 1;
            state.linked += 1;
            state.saved += bytes;
            state.failures.remove(&job.job_key);
        }
        JobOutcome::Failed {
            will_retry, message, ..
        } => {
            state.failed_attempts += 1;
            if !will_retry {
                state.settled += 1;
            }
            let failure = Failure {
                name: job.name(),
                message: message.clone(),
                will_retry: *will_retry,
            };
            state.failures.insert(job.job_key.clone(), failure);
        }
        JobOutcome::LeaseLost | JobOutcome::StoreFailed(_) | JobOutcome::Interrupted | JobOutcome::Deferred { .. } => {}
    }
}

/// The job's one log line for `outcome` (what `live` streamed, if it did).
fn log(job: &Job, outcome: &JobOutcome, live: Option<&Live>) {
    let name = job.name();
    let host = host_port(&job.canonical_url);
    match outcome {
        JobOutcome::Succeeded => match live {
            Some(live) => {
                let elapsed = live.began.elapsed();
                let resumed = match live.start {
                    0 => String::new(),
                    start => format!(" after {} kept from before", HumanBytes(start)),
                };
                tracing::info!(
                    "{name} from {host}: done, {}{resumed} in {} ({})",
                    HumanBytes(live.received),
                    took(elapsed),
                    per_sec(live.received as f64 / elapsed.as_secs_f64().max(0.001))
                );
            }
            None => tracing::info!("{name} from {host}: done"),
        },
        JobOutcome::Skipped { bytes } => tracing::info!(
            "{name} from {host}: same URL already downloaded; linked to it, {} not downloaded",
            HumanBytes(*bytes)
        ),
        JobOutcome::Failed {
            retryable,
            will_retry,
            message,
        } => {
            let what = match (will_retry, retryable) {
                (true, _) => "failed, will retry",
                (false, true) => "failed, out of attempts",
                (false, false) => "failed for good",
            };
            tracing::warn!("{name} from {host}: {what}: {message}");
        }
        JobOutcome::LeaseLost => {
            tracing::warn!("{name} from {host}: lease lost (another worker holds the job now); stopped")
        }
        JobOutcome::StoreFailed(err) => {
            tracing::warn!("{name} from {host}: ledger write failed, the job will be taken over: {err}")
        }
        JobOutcome::Interrupted => tracing::info!("{name} from {host}: interrupted; lease given back"),
        // The host's pause is logged once, not per job.
        JobOutcome::Deferred { message } => {
            tracing::debug!("{name} from {host}: put off while its host is paused, no attempt counted: {message}")
        }
    }
}

/// The thread that samples rates and redraws the bars every [`TICK`], and
/// without bars logs a heartbeat every interval.
#[derive(Debug)]
struct Ticker {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl Ticker {
    /// Starts one on `board`; `None` when no thread can be started (the run
    /// goes on without progress figures).
    fn start(board: Arc<Board>, interval: Duration) -> Option<Self> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("progress".to_owned())
            .spawn(move || {
                let mut heartbeat = Instant::now() + interval;
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(TICK) {
                    let now = Instant::now();
                    let figures = board.tick(now);
                    if board.bars.is_none() && now >= heartbeat {
                        tracing::info!("progress: {figures}");
                        heartbeat = now + interval;
                    }
                }
            })
            .ok()?;
        Some(Self { stop, thread })
    }

    /// Stops the thread and waits for it.
    fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}
