use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oncefetch_core::conformance::sample_jobs;
use oncefetch_core::{AcquireRequest, JobPatch, JobState, LeaseManager, LedgerExt, LedgerStore, Millis, StoreError};
use oncefetch_store_postgres::PostgresStore;
use oncefetch_test_postgres::Server;

use crate::support::{postmaster_start, require_postgres};

/// A grant as the worker saw it.
#[derive(Debug, Clone)]
struct Grant {
    epoch: i64,
    expires_at: Millis,
    committed: bool,
}

const JOBS: usize = 4_000;
const TTL: Duration = Duration::from_secs(2);

async fn worker(
    store: PostgresStore,
    id: usize,
    grants: Arc<Mutex<HashMap<String, Vec<Grant>>>>,
    errors: Arc<AtomicU64>,
) {
    let request = AcquireRequest {
        owner: format!("worker-{id}"),
        ttl: TTL,
        limit: 8,
        max_attempts: 3,
    };
    let rest = JobState::PIPELINE[2..].to_vec();
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let leases = match store.acquire(&request).await {
            Ok(leases) => leases,
            Err(e) => {
                assert!(e.is_retryable(), "acquire failed for good: {e}");
                errors.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if leases.is_empty() {
            match store.outstanding(3, None).await {
                Ok(0) => return,
                Ok(_) => {}
                Err(_) => {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        for lease in leases {
            {
                let mut grants = grants.lock().unwrap();
                let earlier = grants.entry(lease.fence.job_key.clone()).or_default();
                for before in earlier.iter() {
                    assert!(
                        !before.committed,
                        "job {} granted again after it succeeded",
                        lease.fence.job_key
                    );
                    assert!(
                        before.epoch < lease.fence.epoch,
                        "epoch {} granted twice",
                        lease.fence.epoch
                    );
                    let granted_at = lease.expires_at - i64::try_from(TTL.as_millis()).unwrap();
                    assert!(
                        granted_at + 1 >= before.expires_at,
                        "job {} granted while its lease (until {}) was live",
                        lease.fence.job_key,
                        before.expires_at
                    );
                }
                earlier.push(Grant {
                    epoch: lease.fence.epoch,
                    expires_at: lease.expires_at,
                    committed: false,
                });
            }
            // Some work per job, so the run spans the restart.
            tokio::time::sleep(Duration::from_millis(2)).await;
            match store.advance(&lease.fence, &rest, JobPatch::default()).await {
                Ok(()) => {
                    let mut grants = grants.lock().unwrap();
                    let mine = grants.get_mut(&lease.fence.job_key).and_then(|g| g.last_mut()).unwrap();
                    mine.committed = true;
                }
                // Outcome unknown (COMMIT cut off), or the lease ran out while
                // the server was down: the job is left to expire and be
                // granted again.
                Err(e @ (StoreError::Backend { .. } | StoreError::LeaseLost { .. })) => {
                    eprintln!("worker-{id}: commit of {} failed: {e}", lease.fence.job_key);
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => panic!("commit failed: {e}"),
            }
        }
    }
    panic!("worker-{id} did not finish in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_restart_is_ridden_out() {
    let _ = require_postgres!();
    let Some(mut server) = Server::for_test("store-restart") else {
        return;
    };
    let url = format!("{}?schema=restart&pool_size=4", server.url());
    let store = PostgresStore::open(&url).await.expect("open");
    store.plan(&sample_jobs("restart", JOBS)).await.expect("plan");

    let grants = Arc::new(Mutex::new(HashMap::new()));
    let errors = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for id in 0..4 {
        let store = PostgresStore::open(&url).await.expect("open");
        workers.push(tokio::spawn(worker(
            store,
            id,
            Arc::clone(&grants),
            Arc::clone(&errors),
        )));
    }

    loop {
        let done = store.status().await.expect("status").get(JobState::Success);
        if done >= 400 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started_before = postmaster_start(&server.url()).await;
    let restart = Instant::now();
    let server = tokio::task::spawn_blocking(move || {
        server.restart().expect("restart");
        server
    })
    .await
    .expect("restart");
    let downtime = restart.elapsed();
    assert_ne!(
        postmaster_start(&server.url()).await,
        started_before,
        "the server restarted"
    );
    let done_at_restart = store
        .status()
        .await
        .expect("status after restart")
        .get(JobState::Success);
    assert!(
        done_at_restart < JOBS as u64,
        "the work must outlast the restart ({done_at_restart} done)"
    );

    for w in workers {
        w.await.expect("worker");
    }
    let status = store.status().await.expect("status");
    assert_eq!(status.get(JobState::Success), JOBS as u64, "{status:?}");
    let grants = grants.lock().unwrap();
    assert_eq!(grants.len(), JOBS);
    let committed = grants
        .values()
        .filter(|g| g.iter().filter(|g| g.committed).count() == 1)
        .count();
    let regranted = grants.values().filter(|g| g.len() > 1).count();
    eprintln!(
        "restart took {downtime:?}; {done_at_restart} jobs done before it; {} errors seen by workers; \
         {regranted} jobs granted again after their lease expired; {committed} commits confirmed",
        errors.load(Ordering::Relaxed)
    );
    drop(server);
}
