use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Barrier;

use oncefetch_core::conformance::{sample_job, sample_jobs};
use oncefetch_core::{AcquireRequest, JobState, LeaseManager, LedgerStore, NewJob};
use oncefetch_store_postgres::PostgresStore;

use crate::support::{fresh_url, require_postgres};

const CLAIMERS: usize = 4;

/// `CLAIMERS` stores (separate pools) on one schema, each claiming batches of
/// `batch` until nothing is left; returns every grant as (job key, URL).
async fn claim_all(url: &str, batch: usize) -> Vec<(String, String)> {
    let mut stores = Vec::new();
    for _ in 0..CLAIMERS {
        stores.push(PostgresStore::open(url).await.expect("open"));
    }
    // All start at once, for the most overlap.
    let start = Arc::new(Barrier::new(CLAIMERS));
    let mut tasks = Vec::new();
    for (claimer, store) in stores.into_iter().enumerate() {
        let start = Arc::clone(&start);
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            let request = AcquireRequest {
                owner: format!("claimer-{claimer}"),
                ttl: Duration::from_secs(600),
                limit: batch,
                max_attempts: 3,
            };
            let mut got = Vec::new();
            loop {
                let leases = store.acquire(&request).await.expect("acquire under contention");
                if leases.is_empty() {
                    break got;
                }
                got.extend(leases.into_iter().map(|l| (l.fence.job_key, l.job.canonical_url)));
            }
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("claimer"));
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_thousand_jobs_each_granted_once() {
    let base = require_postgres!();
    let url = fresh_url(&base);
    let store = PostgresStore::open(&url).await.expect("open");
    const JOBS: usize = 20_000;
    let planned = store.plan(&sample_jobs("many", JOBS)).await.expect("plan");
    assert_eq!(planned.new, JOBS as u64);

    let grants = claim_all(&url, 100).await;
    let mut seen = HashSet::new();
    for (key, _) in &grants {
        assert!(seen.insert(key.clone()), "job {key} granted twice");
    }
    assert_eq!(seen.len(), JOBS, "every job granted");
    let status = store.status().await.expect("status");
    assert_eq!(status.get(JobState::Leased), JOBS as u64);
}

/// Five jobs per URL, planned interleaved, claimed by four claimers at once
/// with long leases: every URL must end with exactly one live lease. Without
/// the fresh-snapshot check of `free_of_other_leases`, a grant whose snapshot
/// predates another claimer's commit takes a second job of the same URL: with
/// the function made STABLE (its query then sees the calling statement's
/// snapshot), one of the first three rounds failed in every trial.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_live_lease_per_url_under_contention() {
    let base = require_postgres!();
    const ROUNDS: usize = 5;
    const URLS: usize = 1_000;
    const PER_URL: usize = 5;
    let mut jobs: Vec<NewJob> = Vec::new();
    for copy in 0..PER_URL {
        for u in 0..URLS {
            // A cheap deterministic shuffle of the URL order per copy.
            let u = (u * 7919 + copy * 104_729) % URLS;
            jobs.push(sample_job(
                &format!("w{u}-{copy}"),
                "a",
                &format!("https://example.org/shared/{u}.pdf"),
            ));
        }
    }
    for round in 0..ROUNDS {
        let url = fresh_url(&base);
        let store = PostgresStore::open(&url).await.expect("open");
        store.plan(&jobs).await.expect("plan");
        let grants = claim_all(&url, 20).await;
        let mut per_url: HashMap<String, Vec<String>> = HashMap::new();
        for (key, url) in grants {
            per_url.entry(url).or_default().push(key);
        }
        let doubled: Vec<_> = per_url.iter().filter(|(_, keys)| keys.len() > 1).collect();
        assert!(
            doubled.is_empty(),
            "round {round}: URLs leased twice at once: {doubled:?}"
        );
        assert_eq!(per_url.len(), URLS, "every URL has one job in flight");
        let status = store.status().await.expect("status");
        assert_eq!(status.get(JobState::Leased), URLS as u64);
        assert_eq!(status.get(JobState::Planned), (URLS * (PER_URL - 1)) as u64);
    }
}
