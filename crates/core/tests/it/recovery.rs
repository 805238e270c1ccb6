//! The pipeline's start-up reconciliation (`recover`) and `--robots respect`,
//! through the real pipeline on the reference store with an in-memory site:
//! partial files of finished jobs removed (with a CLEANUP row), those of
//! unfinished or unknown jobs kept, finished jobs whose file went missing
//! sent back to PLANNED (only under the output folder when one is given);
//! robots.txt rules fail the jobs they disallow without retry, and an
//! unreadable robots.txt fails its origin's jobs retryably.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::stream;
use oncefetch_core::memory::MemoryStore;
use oncefetch_core::pipeline::recover::recover;
use oncefetch_core::pipeline::{NoProgress, OutDir, Pipeline, RunConfig};
use oncefetch_core::robots::RobotsMode;
use oncefetch_core::{
    async_trait, FetchError, Fetcher, GetRequest, GetResponse, JobQuery, JobState, LedgerStore, OpKind, OpQuery,
    ResourceMeta,
};

use crate::support::new_job;

/// Answers by URL: a body, or an HTTP error status; counts the GETs of each URL.
#[derive(Debug, Default)]
struct Site {
    pages: HashMap<String, Result<Bytes, u16>>,
    gets: Mutex<HashMap<String, u32>>,
}

impl Site {
    fn with(mut self, url: &str, page: Result<&[u8], u16>) -> Self {
        self.pages.insert(url.to_owned(), page.map(Bytes::copy_from_slice));
        self
    }

    fn gets(&self, url: &str) -> u32 {
        self.gets.lock().unwrap().get(url).copied().unwrap_or(0)
    }
}

#[async_trait]
impl Fetcher for Site {
    async fn get(&self, request: &GetRequest) -> Result<GetResponse, FetchError> {
        *self.gets.lock().unwrap().entry(request.url.clone()).or_default() += 1;
        match self.pages.get(&request.url) {
            Some(Ok(bytes)) => Ok(GetResponse::Body {
                meta: ResourceMeta {
                    status: 200,
                    content_length: Some(bytes.len() as u64),
                    etag: Some("\"v1\"".to_owned()),
                    last_modified: None,
                    final_url: request.url.clone(),
                    insecure: false,
                    accepts_ranges: false,
                    content_type: None,
                },
                start: 0,
                body: Box::pin(stream::iter([Ok(bytes.clone())])),
            }),
            Some(Err(status)) if *status >= 500 => {
                Err(FetchError::transient(format!("server answered {status}")).with_status(*status))
            }
            Some(Err(status)) => Err(FetchError::permanent(format!("server answered {status}")).with_status(*status)),
            None => Err(FetchError::permanent("server answered 404 not found").with_status(404)),
        }
    }
}

fn config(robots: RobotsMode) -> RunConfig {
    RunConfig {
        concurrency: 2,
        max_attempts: 2,
        fsync: false,
        backoff_base: Duration::from_millis(1),
        backoff_cap: Duration::from_millis(2),
        poll_interval: Duration::from_millis(1),
        robots,
        ..RunConfig::default()
    }
}

async fn run(store: &Arc<MemoryStore>, site: Arc<Site>, dir: &std::path::Path, robots: RobotsMode) {
    let out = OutDir::create(dir).unwrap();
    let pipeline = Pipeline::new(store.clone(), site, out, config(robots), Arc::new(NoProgress));
    tokio::time::timeout(Duration::from_secs(30), pipeline.run())
        .await
        .expect("the run ends")
        .expect("the run succeeds");
}

async fn job(store: &MemoryStore, key: &str) -> oncefetch_core::Job {
    store.job(key).await.unwrap()
}

#[tokio::test]
async fn recover_sweeps_partials_and_requeues_missing_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(MemoryStore::new());
    let (a, dup, b) = (
        new_job("w1", "a", "http://h/a"),
        new_job("w2", "a", "http://h/a"),
        new_job("w3", "b", "http://h/b"),
    );
    store.plan(&[a.clone(), dup.clone(), b.clone()]).await.unwrap();
    let site = Site::default()
        .with("http://h/a", Ok(b"first"))
        .with("http://h/b", Ok(b"second"));
    run(&store, Arc::new(site), dir.path(), RobotsMode::Ignore).await;
    assert_eq!(job(&store, &a.job_key).await.state, JobState::Success);
    assert_eq!(job(&store, &dup.job_key).await.state, JobState::SkippedDuplicate);
    assert_eq!(job(&store, &b.job_key).await.state, JobState::Success);

    // A job planned since, never run; partial files of it, of a finished
    // job, and of a job this ledger does not know.
    let later = new_job("w4", "c", "http://h/c");
    store.plan(std::slice::from_ref(&later)).await.unwrap();
    let out = OutDir::create(dir.path()).unwrap();
    std::fs::create_dir_all(out.partial_dir()).unwrap();
    let finished_partial = out.partial_path(&a.job_key, 1, None);
    let kept_partial = out.partial_path(&later.job_key, 1, None);
    let stranger = out.partial_path(&"f".repeat(64), 3, None);
    for path in [&finished_partial, &kept_partial, &stranger] {
        std::fs::write(path, b"part").unwrap();
    }
    let b_path = job(&store, &b.job_key).await.path.expect("a finished job has a path");
    std::fs::remove_file(&b_path).unwrap();

    let report = recover(&*store, Some(&out), Duration::from_secs(60)).await.unwrap();
    assert_eq!(
        (report.partials_removed, report.partials_kept, report.requeued_missing),
        (1, 1, 1),
        "{report:?}"
    );
    assert!(!finished_partial.exists(), "the finished job's partial is removed");
    assert!(kept_partial.exists(), "the unfinished job's partial is kept for resume");
    assert!(stranger.exists(), "a partial of a job not in the ledger is left alone");
    let requeued = job(&store, &b.job_key).await;
    assert_eq!(requeued.state, JobState::Planned, "{requeued:?}");
    let ops = store
        .ops(&OpQuery {
            job_key: Some(a.job_key.clone()),
            ..OpQuery::default()
        })
        .await
        .unwrap();
    let cleanup = ops.iter().find(|op| op.kind == OpKind::Cleanup).expect("a CLEANUP row");
    assert_eq!(
        cleanup.result.as_ref().and_then(|r| r["reason"].as_str()),
        Some("job is SUCCESS")
    );

    // Again: nothing left to do.
    let again = recover(&*store, Some(&out), Duration::from_secs(60)).await.unwrap();
    assert_eq!((again.partials_removed, again.requeued_missing), (0, 0), "{again:?}");
}

#[tokio::test]
async fn recover_judges_only_files_under_the_output_folder() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(MemoryStore::new());
    let a = new_job("w1", "a", "http://h/a");
    store.plan(std::slice::from_ref(&a)).await.unwrap();
    run(
        &store,
        Arc::new(Site::default().with("http://h/a", Ok(b"x"))),
        &dir.path().join("one"),
        RobotsMode::Ignore,
    )
    .await;
    let path = job(&store, &a.job_key).await.path.unwrap();
    std::fs::remove_file(&path).unwrap();
    let elsewhere = OutDir::create(&dir.path().join("two")).unwrap();
    let report = recover(&*store, Some(&elsewhere), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        report.requeued_missing, 0,
        "another folder's files are not ours to judge"
    );
    assert_eq!(job(&store, &a.job_key).await.state, JobState::Success);
    let report = recover(&*store, None, Duration::from_secs(60)).await.unwrap();
    assert_eq!(
        report.requeued_missing, 1,
        "without a folder every recorded path is checked"
    );
    assert_eq!((report.partials_removed, report.partials_kept), (0, 0));
}

#[tokio::test]
async fn robots_rules_fail_the_jobs_they_disallow() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(MemoryStore::new());
    let (private, public) = (
        new_job("w1", "a", "http://h/private/a"),
        new_job("w2", "b", "http://h/public/b"),
    );
    store.plan(&[private.clone(), public.clone()]).await.unwrap();
    let site = Arc::new(
        Site::default()
            .with(
                "http://h/robots.txt",
                Ok(b"User-agent: other\nDisallow: /\n\nUser-agent: *\nDisallow: /private/\n"),
            )
            .with("http://h/private/a", Ok(b"secret"))
            .with("http://h/public/b", Ok(b"open")),
    );
    run(&store, site.clone(), dir.path(), RobotsMode::Respect).await;
    let refused = job(&store, &private.job_key).await;
    assert_eq!(refused.state, JobState::Failed);
    assert!(!refused.retryable, "{refused:?}");
    assert_eq!(refused.attempts, 0, "no attempt counted: {refused:?}");
    let error = refused.last_error.unwrap_or_default();
    assert!(
        error.contains("robots.txt") && error.contains("Disallow: /private/") && error.contains("user-agent *"),
        "{error}"
    );
    assert_eq!(site.gets("http://h/private/a"), 0, "no request to a disallowed URL");
    assert_eq!(job(&store, &public.job_key).await.state, JobState::Success);
    assert_eq!(
        site.gets("http://h/robots.txt"),
        1,
        "robots.txt asked once per run and origin"
    );
}

#[tokio::test]
async fn an_unreadable_robots_txt_fails_its_jobs_retryably() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(MemoryStore::new());
    let a = new_job("w1", "a", "http://h/a");
    let gone = new_job("w2", "b", "http://g/b");
    store.plan(&[a.clone(), gone.clone()]).await.unwrap();
    let site = Arc::new(
        Site::default()
            .with("http://h/robots.txt", Err(503))
            .with("http://h/a", Ok(b"x"))
            .with("http://g/robots.txt", Err(404))
            .with("http://g/b", Ok(b"y")),
    );
    run(&store, site.clone(), dir.path(), RobotsMode::Respect).await;
    let failed = job(&store, &a.job_key).await;
    assert_eq!(failed.state, JobState::Failed);
    assert!(failed.retryable, "{failed:?}");
    let error = failed.last_error.unwrap_or_default();
    assert!(error.contains("could not be read"), "{error}");
    assert_eq!(site.gets("http://h/a"), 0);
    assert_eq!(
        job(&store, &gone.job_key).await.state,
        JobState::Success,
        "a robots.txt answered 404 allows everything"
    );
    let all = store.jobs(&JobQuery::default()).await.unwrap();
    assert_eq!(all.len(), 2);
}

/// Found by `cargo xtask torture` (issue 19, PostgreSQL episode seed
/// 7551116549102670021): a run SIGKILLed between creating and removing its
/// write probe left `.write-probe-PID-N` in the partial folder, and
/// `recover --out` kept it. A probe of a process gone is removed; one of a
/// live process (this one) is left to it.
#[tokio::test]
async fn recover_removes_the_write_probes_of_processes_gone() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(MemoryStore::new());
    let out = OutDir::create(dir.path()).unwrap();
    out.probe().unwrap();
    std::fs::create_dir_all(out.partial_dir()).unwrap();
    // No process has a pid this high (the kernel's limit is 2^22).
    let orphan = out.partial_dir().join(".write-probe-4294967295-0");
    let live = out
        .partial_dir()
        .join(format!(".write-probe-{}-99", std::process::id()));
    let other = out.partial_dir().join(".write-probe-notes");
    for path in [&orphan, &live, &other] {
        std::fs::write(path, b"").unwrap();
    }
    recover(&*store, Some(&out), Duration::from_secs(60)).await.unwrap();
    assert!(!orphan.exists(), "the probe of a process gone is removed");
    assert!(live.exists(), "a live process's probe is its own");
    assert!(other.exists(), "a file that is no probe is left alone");
    // A probe whose file someone else removed still passes.
    out.probe().unwrap();
}
