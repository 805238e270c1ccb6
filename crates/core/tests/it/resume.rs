//! A property of the resume decision (SPEC §6), through the real pipeline on
//! the reference store: whatever a server does between attempts — cut the
//! body, change the content, ignore `Range`, ignore `If-Range`, answer a
//! `206` at another offset or without the total length — a placed file is
//! always exactly one whole version of the resource.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::stream;
use oncefetch_core::memory::MemoryStore;
use oncefetch_core::pipeline::{NoProgress, OutDir, Pipeline, RunConfig};
use oncefetch_core::{
    async_trait, job_key, url, FetchError, Fetcher, GetRequest, GetResponse, JobQuery, JobState, LedgerStore, NewJob,
    ResourceMeta,
};
use proptest::prelude::*;

const URL: &str = "http://127.0.0.1:9/doc";

/// How the server answers one GET.
#[derive(Debug, Clone, Copy)]
enum Answer {
    /// As RFC 9110 says.
    Honest,
    /// 200 with everything, whatever `Range` says.
    IgnoreRange,
    /// A `Range` is honoured with the current version, whatever `If-Range` says.
    IgnoreIfRange,
    /// A 206 that starts `n` bytes before the requested offset.
    EarlyStart(u64),
    /// A 206 without the total length.
    NoTotal,
}

/// One GET of the script: the content may change first, the answer may be
/// cut after a fraction of its body.
#[derive(Debug, Clone, Copy)]
struct Step {
    change_first: bool,
    answer: Answer,
    /// Body bytes sent before the connection drops, in 1/8ths of the body.
    cut_eighths: Option<u8>,
}

/// A resource whose versions follow a script; after the script, honest
/// whole answers.
#[derive(Debug)]
struct Scripted {
    versions: Vec<Bytes>,
    state: Mutex<(usize, std::vec::IntoIter<Step>)>,
}

fn meta(status: u16, total: Option<u64>, version: usize) -> ResourceMeta {
    ResourceMeta {
        status,
        content_length: total,
        etag: Some(format!("\"v{version}\"")),
        last_modified: None,
        final_url: URL.to_owned(),
        insecure: false,
        accepts_ranges: false,
        content_type: None,
    }
}

fn body(bytes: Bytes, cut_eighths: Option<u8>) -> oncefetch_core::BodyStream {
    let cut = cut_eighths.map(|e| bytes.len() * usize::from(e) / 8);
    let sent = bytes.slice(..cut.unwrap_or(bytes.len()));
    let mut chunks: Vec<Result<Bytes, FetchError>> = sent.chunks(97).map(Bytes::copy_from_slice).map(Ok).collect();
    if cut.is_some() {
        chunks.push(Err(FetchError::transient("connection reset mid-body")));
    }
    Box::pin(stream::iter(chunks))
}

#[async_trait]
impl Fetcher for Scripted {
    async fn get(&self, request: &GetRequest) -> Result<GetResponse, FetchError> {
        let (version, step) = {
            let mut state = self.state.lock().unwrap();
            let step = state.1.next().unwrap_or(Step {
                change_first: false,
                answer: Answer::Honest,
                cut_eighths: None,
            });
            if step.change_first && state.0 + 1 < self.versions.len() {
                state.0 += 1;
            }
            (state.0, step)
        };
        let bytes = self.versions[version].clone();
        let len = bytes.len() as u64;
        let whole = || GetResponse::Body {
            meta: meta(200, Some(len), version),
            start: 0,
            body: body(bytes.clone(), step.cut_eighths),
        };
        let from = request.range_start;
        if from == 0 {
            return Ok(whole());
        }
        let current = request.if_range.as_deref() == Some(&format!("\"v{version}\""));
        let partial = |start: u64, total: Option<u64>| {
            if start >= len {
                GetResponse::RangeNotSatisfiable {
                    meta: meta(416, Some(len), version),
                    complete_len: Some(len),
                }
            } else {
                GetResponse::Body {
                    meta: meta(206, total, version),
                    start,
                    body: body(bytes.slice(start as usize..), step.cut_eighths),
                }
            }
        };
        Ok(match step.answer {
            Answer::IgnoreRange => whole(),
            Answer::Honest if !current => whole(),
            Answer::Honest | Answer::IgnoreIfRange => partial(from, Some(len)),
            Answer::EarlyStart(n) => partial(from.saturating_sub(n), Some(len)),
            Answer::NoTotal => partial(from, None),
        })
    }
}

fn step() -> impl Strategy<Value = Step> {
    let answer = prop_oneof![
        3 => Just(Answer::Honest),
        1 => Just(Answer::IgnoreRange),
        2 => Just(Answer::IgnoreIfRange),
        1 => (1u64..50).prop_map(Answer::EarlyStart),
        1 => Just(Answer::NoTotal),
    ];
    (any::<bool>(), answer, prop::option::weighted(0.6, 1u8..8)).prop_map(|(change_first, answer, cut_eighths)| Step {
        change_first,
        answer,
        cut_eighths,
    })
}

fn versions() -> impl Strategy<Value = Vec<Bytes>> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 64..2000), 2..5)
        .prop_map(|vs| vs.into_iter().map(Bytes::from).collect())
}

/// Runs one job over `fetcher` to the end; returns its state and the bytes
/// at its final path, if any.
async fn fetch(fetcher: Scripted) -> (JobState, Option<Vec<u8>>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(MemoryStore::new());
    let canonical = url::canonicalize(URL).unwrap();
    let job = NewJob {
        job_key: job_key("w", "a", &canonical),
        work_id: "w".to_owned(),
        artifact_id: "a".to_owned(),
        url: URL.to_owned(),
        canonical_url: canonical,
        expected_sha256: None,
        expected_size: None,
        expected_content_type: None,
    };
    store.plan(&[job]).await.unwrap();
    let config = RunConfig {
        concurrency: 1,
        max_attempts: 12,
        fsync: false,
        backoff_base: Duration::from_millis(1),
        backoff_cap: Duration::from_millis(2),
        poll_interval: Duration::from_millis(1),
        ..RunConfig::default()
    };
    let out = OutDir::create(dir.path()).unwrap();
    let pipeline = Pipeline::new(store.clone(), Arc::new(fetcher), out, config, Arc::new(NoProgress));
    tokio::time::timeout(Duration::from_secs(30), pipeline.run())
        .await
        .expect("the run ends")
        .expect("the run succeeds");
    let jobs = store.jobs(&JobQuery::default()).await.unwrap();
    let placed = std::fs::read(dir.path().join("w").join("a")).ok();
    (jobs[0].state, placed)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn a_placed_file_is_one_whole_version(versions in versions(), script in prop::collection::vec(step(), 0..8)) {
        let fetcher = Scripted {
            versions: versions.clone(),
            state: Mutex::new((0, script.into_iter())),
        };
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (state, placed) = runtime.block_on(fetch(fetcher));
        match placed {
            Some(bytes) => {
                prop_assert_eq!(state, JobState::Success);
                prop_assert!(versions.iter().any(|v| v[..] == bytes[..]), "a placed file of {} bytes is no whole version", bytes.len());
            }
            None => prop_assert_eq!(state, JobState::Failed, "a job without a file did not succeed"),
        }
    }
}
