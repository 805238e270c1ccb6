//! The worker's ledger writes, pinned per job: the op rows each path through
//! the state table leaves (kind, epoch, result code, result) and the number
//! of commits it takes — one per transition the worker makes, no more (the
//! hot path is benchmarked). Each case runs alone on the reference store, so
//! its trail and its count are exact.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{stream, StreamExt};
use metrics::{Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use oncefetch_core::memory::MemoryStore;
use oncefetch_core::pipeline::{NoProgress, OutDir, Pipeline, RunConfig};
use oncefetch_core::telemetry::MeteredStore;
use oncefetch_core::{
    async_trait, FetchError, Fetcher, GetRequest, GetResponse, JobState, LedgerStore, NewJob, OpKind, OpQuery,
    ResourceMeta,
};
use serde_json::Value;

use crate::support::new_job;

/// The name [`MeteredStore`] times each commit under.
const COMMIT_METRIC: &str = "oncefetch_ledger_commit_duration_seconds";

/// Counts the commits [`MeteredStore`] times.
#[derive(Debug, Default)]
struct Commits(Arc<Count>);

/// How many values a histogram recorded.
#[derive(Debug, Default)]
struct Count(AtomicU64);

impl HistogramFn for Count {
    fn record(&self, _value: f64) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl Recorder for Commits {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
        Counter::noop()
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        if key.name() == COMMIT_METRIC {
            Histogram::from_arc(Arc::clone(&self.0))
        } else {
            Histogram::noop()
        }
    }
}

/// A page's answers, GET by GET; after the script, the last one again.
#[derive(Debug, Clone, Copy)]
enum Answer {
    /// The whole body (or its rest, for a `Range` under the current ETag).
    Body,
    /// Half the body, then the connection drops.
    Cut,
    /// An HTTP error status.
    Status(u16),
    /// Half the body, then nothing more, ever.
    Stall,
}

/// Answers by URL; every page is `BODY` under ETag `"v1"`.
#[derive(Debug, Default)]
struct Site {
    scripts: Mutex<HashMap<String, Vec<Answer>>>,
}

const BODY: &[u8] = b"the same twenty bytes";

impl Site {
    fn with(self, url: &str, answers: &[Answer]) -> Self {
        let mut reversed = answers.to_vec();
        reversed.reverse();
        self.scripts.lock().unwrap().insert(url.to_owned(), reversed);
        self
    }
}

#[async_trait]
impl Fetcher for Site {
    async fn get(&self, request: &GetRequest) -> Result<GetResponse, FetchError> {
        let answer = {
            let mut scripts = self.scripts.lock().unwrap();
            let script = scripts.get_mut(&request.url).expect("a scripted URL");
            if script.len() > 1 {
                script.pop().unwrap()
            } else {
                script[0]
            }
        };
        let start = match request.if_range.as_deref() {
            Some("\"v1\"") => request.range_start,
            _ => 0,
        };
        let rest = Bytes::from_static(&BODY[start as usize..]);
        let chunks: Vec<Result<Bytes, FetchError>> = match answer {
            Answer::Status(status) if status >= 500 => {
                return Err(FetchError::transient(format!("server answered {status}")).with_status(status))
            }
            Answer::Status(status) => {
                return Err(FetchError::permanent(format!("server answered {status}")).with_status(status))
            }
            Answer::Body => vec![Ok(rest)],
            Answer::Cut => vec![
                Ok(rest.slice(..rest.len() / 2)),
                Err(FetchError::transient("connection reset mid-body")),
            ],
            Answer::Stall => vec![Ok(rest.slice(..rest.len() / 2))],
        };
        let body: oncefetch_core::BodyStream = match answer {
            Answer::Stall => Box::pin(stream::iter(chunks).chain(stream::pending())),
            _ => Box::pin(stream::iter(chunks)),
        };
        Ok(GetResponse::Body {
            meta: ResourceMeta {
                status: if start > 0 { 206 } else { 200 },
                // The whole resource's length, a 206's too.
                content_length: Some(BODY.len() as u64),
                etag: Some("\"v1\"".to_owned()),
                last_modified: None,
                final_url: request.url.clone(),
                insecure: false,
                accepts_ranges: false,
                content_type: None,
            },
            start,
            body,
        })
    }
}

/// One ledger row as the trail shows it: `KIND epoch CODE result`, the
/// output folder's path written `OUT`.
fn row_line(kind: &str, epoch: i64, code: &str, result: Option<&Value>, out: &str) -> String {
    let result = result.map_or_else(String::new, |r| format!(" {r}").replace(out, "OUT"));
    format!("{kind} {epoch} {code}{result}")
}

/// The ledger and output folder the cases share, run after run.
struct Ledger {
    store: Arc<MemoryStore>,
    dir: tempfile::TempDir,
    site: Arc<Site>,
}

impl Ledger {
    fn new(site: Site) -> Self {
        Self {
            store: Arc::new(MemoryStore::new()),
            dir: tempfile::tempdir().unwrap(),
            site: Arc::new(site),
        }
    }

    /// Plans `job` and runs the pipeline until the ledger is settled; the
    /// commits it took.
    fn run(&self, job: &NewJob) -> u64 {
        self.run_until(job, false)
    }

    /// [`Self::run`], interrupted once the job streams when `interrupt`.
    fn run_until(&self, job: &NewJob, interrupt: bool) -> u64 {
        let commits = Commits::default();
        let counted = Arc::clone(&commits.0);
        metrics::with_local_recorder(&commits, || {
            // One thread: every commit is timed under this thread's recorder.
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                self.store.plan(std::slice::from_ref(job)).await.unwrap();
                let config = RunConfig {
                    concurrency: 1,
                    max_attempts: 2,
                    fsync: false,
                    backoff_base: Duration::from_millis(1),
                    backoff_cap: Duration::from_millis(2),
                    poll_interval: Duration::from_millis(1),
                    ..RunConfig::default()
                };
                let out = OutDir::create(self.dir.path()).unwrap();
                let store = Arc::new(MeteredStore::new(self.store.clone()));
                let pipeline = Pipeline::new(store, self.site.clone(), out, config, Arc::new(NoProgress));
                let interrupter = pipeline.interrupter();
                let streaming = async {
                    // Bounded: three seconds at most.
                    for _ in 0..3000 {
                        if !interrupt || self.streams(job).await {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    if interrupt {
                        interrupter.interrupt();
                    }
                };
                let (ran, ()) = tokio::join!(tokio::time::timeout(Duration::from_secs(30), pipeline.run()), streaming);
                ran.expect("the run ends").expect("the run succeeds");
            });
        });
        counted.0.load(Ordering::SeqCst)
    }

    /// Whether the job's STREAM op is running.
    async fn streams(&self, job: &NewJob) -> bool {
        let query = OpQuery {
            job_key: Some(job.job_key.clone()),
            after_seq: None,
            limit: 0,
        };
        let rows = self.store.ops(&query).await.unwrap();
        rows.iter()
            .any(|row| row.kind == OpKind::Stream && row.result_code.is_none())
    }

    /// The job's state, attempts and ledger rows, oldest first.
    fn trail(&self, job: &NewJob) -> (JobState, u32, Vec<String>) {
        let out = std::fs::canonicalize(self.dir.path()).unwrap();
        let out = out.to_str().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            let state = self.store.job(&job.job_key).await.unwrap();
            let query = OpQuery {
                job_key: Some(job.job_key.clone()),
                after_seq: None,
                limit: 0,
            };
            let rows = self.store.ops(&query).await.unwrap();
            let rows = rows
                .iter()
                .map(|row| {
                    let code = row.result_code.map_or("RUNNING", |c| c.as_str());
                    row_line(row.kind.as_str(), row.epoch, code, row.result.as_ref(), out)
                })
                .collect();
            (state.state, state.attempts, rows)
        })
    }
}

/// Stands for the body's hash in an expected trail.
const SHA: &str = "SHA";

/// The trail with the body's hash in place of `SHA`.
fn expect(lines: &[&str]) -> Vec<String> {
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(BODY));
    lines.iter().map(|l| l.replace(SHA, &sha)).collect()
}

fn head(epoch: i64, code: &str, result: &str) -> String {
    format!("HEAD {epoch} {code} {result}")
}

fn meta_json(url: &str, status: u16, len: usize) -> String {
    format!(r#"{{"content_length":{len},"etag":"\"v1\"","final_url":"{url}","last_modified":null,"status":{status}}}"#)
}

/// The trail of a job that read `BODY` from `url` in one GET, placed it at
/// `path` and ended SUCCESS, its DEDUPE naming `original`.
fn copied(url: &str, path: &str, original: &str, hard_linked: bool) -> (JobState, u32, Vec<String>) {
    let len = BODY.len();
    let stream = format!(r#"{{"range_start":0,"sha256":"{SHA}","size":{len},"validator":"\"v1\""}}"#);
    let rows = [
        head(1, "OK", &meta_json(url, 200, len)),
        format!("STREAM 1 OK {stream}"),
        format!(r#"FINALIZE 1 OK {{"path":"{path}"}}"#),
        format!(r#"INDEX 1 OK {{"first_path":"{original}"}}"#),
        format!(r#"DEDUPE 1 OK {{"hard_linked":{hard_linked},"original":"{original}"}}"#),
    ];
    let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
    (JobState::Success, 1, expect(&rows))
}

#[test]
fn a_first_copy_takes_four_commits_and_a_second_copy_five() {
    let ledger = Ledger::new(
        Site::default()
            .with("http://h/a", &[Answer::Body])
            .with("http://h/b", &[Answer::Body]),
    );
    let (a, b) = (new_job("w", "a", "http://h/a"), new_job("w", "b", "http://h/b"));
    assert_eq!(
        ledger.run(&a),
        4,
        "begin HEAD; STREAMING; begin FINALIZE; INDEXED and settled"
    );
    assert_eq!(ledger.trail(&a), copied("http://h/a", "OUT/w/a", "OUT/w/a", false));
    assert_eq!(
        ledger.run(&b),
        5,
        "the second copy links at DEDUPE in a commit of its own"
    );
    assert_eq!(ledger.trail(&b), copied("http://h/b", "OUT/w/b", "OUT/w/a", true));
}

#[test]
fn a_duplicate_url_is_skipped_in_two_commits() {
    let ledger = Ledger::new(Site::default().with("http://h/a", &[Answer::Body]));
    let (a, dup) = (new_job("w", "a", "http://h/a"), new_job("w", "dup", "http://h/a"));
    ledger.run(&a);
    assert_eq!(ledger.run(&dup), 2, "begin DEDUPE; SKIPPED_DUPLICATE");
    assert_eq!(
        ledger.trail(&dup),
        (
            JobState::SkippedDuplicate,
            0,
            vec![format!(
                r#"DEDUPE 1 OK {{"copied":false,"duplicate_of":"{}","linked_to":"OUT/w/a"}}"#,
                a.job_key
            )]
        )
    );
}

#[test]
fn failures_before_streaming_finish_the_head_op_as_error() {
    let ledger = Ledger::new(
        Site::default()
            .with("http://h/busy", &[Answer::Status(503)])
            .with("http://h/gone", &[Answer::Status(404)]),
    );
    let (busy, gone) = (
        new_job("w", "busy", "http://h/busy"),
        new_job("w", "gone", "http://h/gone"),
    );
    assert_eq!(ledger.run(&busy), 4, "per epoch: begin HEAD; FAILED");
    let error = r#"{"error":"server answered 503"}"#;
    assert_eq!(
        ledger.trail(&busy),
        (
            JobState::Failed,
            2,
            vec![head(1, "ERROR", error), head(2, "ERROR", error)]
        )
    );
    assert_eq!(ledger.run(&gone), 2, "begin HEAD; FAILED");
    assert_eq!(
        ledger.trail(&gone),
        (
            JobState::Failed,
            1,
            vec![head(1, "ERROR", r#"{"error":"server answered 404"}"#)]
        )
    );
}

#[test]
fn a_body_cut_short_resumes_under_a_stream_op_of_its_offset() {
    let ledger = Ledger::new(Site::default().with("http://h/cut", &[Answer::Cut, Answer::Body]));
    let cut = new_job("w", "cut", "http://h/cut");
    assert_eq!(
        ledger.run(&cut),
        7,
        "epoch 1: begin HEAD, STREAMING, FAILED; epoch 2: begin HEAD (replayed), STREAMING, begin FINALIZE, INDEXED"
    );
    let len = BODY.len();
    let half = len / 2;
    assert_eq!(
        ledger.trail(&cut),
        (
            JobState::Success,
            2,
            expect(&[
                &head(1, "OK", &meta_json("http://h/cut", 200, len)),
                r#"STREAM 1 ERROR {"error":"connection reset mid-body"}"#,
                &format!(r#"STREAM 2 OK {{"range_start":{half},"sha256":"{SHA}","size":{len},"validator":"\"v1\""}}"#),
                r#"FINALIZE 2 OK {"path":"OUT/w/cut"}"#,
                r#"INDEX 2 OK {"first_path":"OUT/w/cut"}"#,
                r#"DEDUPE 2 OK {"hard_linked":false,"original":"OUT/w/cut"}"#,
            ])
        )
    );
}

#[test]
fn a_permanent_failure_after_streaming_counts_the_one_attempt() {
    let ledger = Ledger::new(Site::default().with("http://h/big", &[Answer::Body]));
    let big = NewJob {
        expected_size: Some(5),
        ..new_job("w", "big", "http://h/big")
    };
    assert_eq!(ledger.run(&big), 3, "begin HEAD; STREAMING; FAILED");
    let len = BODY.len();
    assert_eq!(
        ledger.trail(&big),
        (
            JobState::Failed,
            1,
            vec![
                head(1, "OK", &meta_json("http://h/big", 200, len)),
                format!(r#"STREAM 1 ERROR {{"error":"size mismatch: expected 5 bytes, got {len}"}}"#),
            ]
        )
    );
}

#[test]
fn an_interrupt_records_the_running_op_as_error_and_keeps_the_state() {
    let ledger = Ledger::new(Site::default().with("http://h/slow", &[Answer::Stall]));
    let slow = new_job("w", "slow", "http://h/slow");
    assert_eq!(
        ledger.run_until(&slow, true),
        3,
        "begin HEAD; STREAMING; the STREAM op stopped"
    );
    let len = BODY.len();
    assert_eq!(
        ledger.trail(&slow),
        (
            JobState::Streaming,
            0,
            vec![
                head(1, "OK", &meta_json("http://h/slow", 200, len)),
                r#"STREAM 1 ERROR {"error":"interrupted"}"#.to_owned(),
            ]
        )
    );
}
