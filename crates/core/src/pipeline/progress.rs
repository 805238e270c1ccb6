//! What a run reports as it goes: the [`Progress`] hooks the worker calls.

use crate::job::Job;

use super::JobOutcome;

/// A download about to stream, as [`Progress::download_started`] reports it.
#[derive(Debug, Clone, Copy)]
pub struct Download<'a> {
    /// The job (its `work_id`, `artifact_id` and URL name it).
    pub job: &'a Job,
    /// The resource's full length when known: the answer's length
    /// (`Content-Length`, or the total of a `Content-Range`), else the size
    /// the manifest declared.
    pub expected: Option<u64>,
    /// Bytes already in hand before the body's first byte (the prefix a
    /// resumed download keeps); 0 for a whole download.
    pub start: u64,
}

/// What a run reports as it goes (a progress bar, log lines).
///
/// For each job a worker takes: [`download_started`](Self::download_started)
/// once its GET is answered (never for a job that ends before, such as a
/// duplicate or a failed request), then [`download_bytes`](Self::download_bytes)
/// per chunk of its body, then [`job_done`](Self::job_done) exactly once. A
/// job retried later in the same run starts over with a new
/// `download_started`. Calls come from many tasks at once.
pub trait Progress: Send + Sync + std::fmt::Debug {
    /// Body bytes received (of any job).
    fn bytes(&self, n: u64);

    /// A job ended (for this worker) with `outcome`; `job` is the job as it
    /// was leased.
    fn job_done(&self, job: &Job, outcome: &JobOutcome);

    /// The body of `download.job` is about to stream. Does nothing by
    /// default.
    fn download_started(&self, download: &Download<'_>) {
        let _ = download;
    }

    /// `n` body bytes of the job `job_key` arrived. By default counted with
    /// [`bytes`](Self::bytes) only; an override counts them there itself.
    fn download_bytes(&self, job_key: &str, n: u64) {
        let _ = job_key;
        self.bytes(n);
    }
}

/// A [`Progress`] that reports nothing.
#[derive(Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn bytes(&self, _n: u64) {}
    fn job_done(&self, _job: &Job, _outcome: &JobOutcome) {}
}
