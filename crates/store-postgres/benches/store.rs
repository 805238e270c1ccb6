//! Benchmarks of the PostgreSQL store, against `ONCEFETCH_TEST_POSTGRES_URL`
//! (skipped with a note when it is not set):
//!
//! - `now/round-trip`: the store clock, one round trip: the floor under
//!   every call;
//! - `acquire/one`: one grant of one job by one worker, the latency a worker
//!   waits for its next job (target: p50 ≤ 1 ms on loopback; the p50/p99 of
//!   single calls are printed after criterion's report);
//! - `claim/4x100`, `claim/4x500`: four claimers, each with its own pool,
//!   granting 20,000 planned jobs in batches of 100 or 500 (target ≥ 20,000
//!   jobs/s);
//! - `reconcile/1m`: freeing 1,000,000 expired leases in one call (target
//!   ≤ 5 s). The rows are built once with one `INSERT … SELECT
//!   generate_series`; each sample first resets the reconcile mark, untimed.
//!
//! Each benchmark works in a schema of its own, dropped at the end.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use diesel::sql_types::{BigInt, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use oncefetch_core::{AcquireRequest, LeaseManager};
use oncefetch_store_postgres::PostgresStore;
use tokio::runtime::Runtime;
use tokio::sync::Barrier;

const CLAIMERS: usize = 4;
const CLAIM_JOBS: i64 = 20_000;
/// Batch sizes of the claim benchmark (`claim/4x100`, `claim/4x500`).
const CLAIM_BATCHES: [usize; 2] = [100, 500];
const EXPIRED_LEASES: i64 = 1_000_000;

fn request(owner: &str, limit: usize) -> AcquireRequest {
    AcquireRequest {
        owner: owner.to_owned(),
        ttl: Duration::from_secs(600),
        limit,
        max_attempts: 3,
    }
}

fn with_params(base: &str, params: &str) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}{params}")
}

/// A schema for one benchmark: its store URL and a plain connection in it.
struct Fixture {
    base: String,
    schema: String,
    url: String,
    conn: AsyncPgConnection,
}

impl Fixture {
    async fn new(base: &str, name: &str) -> Self {
        let schema = format!("bench_{name}_{}", std::process::id());
        let mut admin = AsyncPgConnection::establish(base).await.expect("connect");
        admin
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .await
            .expect("drop old schema");
        let url = with_params(base, &format!("schema={schema}&pool_size=4"));
        // Opening creates the schema and the tables.
        PostgresStore::open(&url).await.expect("open");
        let mut conn = AsyncPgConnection::establish(base).await.expect("connect");
        conn.batch_execute(&format!("SET search_path TO {schema}"))
            .await
            .expect("search_path");
        Self {
            base: base.to_owned(),
            schema,
            url,
            conn,
        }
    }

    /// Plans `n` jobs with distinct URLs in one statement.
    async fn plan(&mut self, prefix: &str, n: i64) {
        diesel::sql_query(
            "INSERT INTO jobs (job_key, work_id, artifact_id, url, canonical_url) \
             SELECT md5($1 || i) || md5(i::text), $1 || i, 'a', \
                    'https://example.org/' || $1 || '/' || i, 'https://example.org/' || $1 || '/' || i \
             FROM generate_series(1, $2) AS i",
        )
        .bind::<Text, _>(prefix)
        .bind::<BigInt, _>(n)
        .execute(&mut self.conn)
        .await
        .expect("plan");
        self.conn.batch_execute("ANALYZE jobs").await.expect("analyze");
    }

    async fn drop_schema(self) {
        let mut admin = AsyncPgConnection::establish(&self.base).await.expect("connect");
        let dropped = admin
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", self.schema))
            .await;
        if let Err(e) = dropped {
            eprintln!("could not drop schema {}: {e}", self.schema);
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// One round trip through the store (`now`): the floor under every call.
fn round_trip(c: &mut Criterion, rt: &Runtime, base: &str) {
    let fixture = rt.block_on(Fixture::new(base, "now"));
    let store = rt.block_on(PostgresStore::open(&fixture.url)).expect("open");
    c.bench_function("now/round-trip", |b| {
        b.to_async(rt).iter(|| async { store.now().await.expect("now") });
    });
    drop(store);
    rt.block_on(fixture.drop_schema());
}

fn acquire_one(c: &mut Criterion, rt: &Runtime, base: &str) {
    let mut fixture = rt.block_on(Fixture::new(base, "acquire"));
    let store = Arc::new(rt.block_on(PostgresStore::open(&fixture.url)).expect("open"));
    rt.block_on(fixture.plan("warm", 1_000));
    let fixture = Arc::new(tokio::sync::Mutex::new(fixture));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let batches = Arc::new(AtomicU64::new(0));
    let request = request("bench", 1);

    c.bench_function("acquire/one", |b| {
        b.to_async(rt).iter_custom(|iters| {
            let (store, fixture, latencies, batches, request) = (
                Arc::clone(&store),
                Arc::clone(&fixture),
                Arc::clone(&latencies),
                Arc::clone(&batches),
                request.clone(),
            );
            async move {
                // Enough planned jobs for this batch, planned untimed.
                let prefix = format!("b{}-", batches.fetch_add(1, Ordering::Relaxed));
                fixture
                    .lock()
                    .await
                    .plan(&prefix, i64::try_from(iters).expect("iters"))
                    .await;
                let mut own = Vec::with_capacity(usize::try_from(iters).unwrap_or(0));
                let started = Instant::now();
                for _ in 0..iters {
                    let t = Instant::now();
                    let leases = store.acquire(&request).await.expect("acquire");
                    own.push(t.elapsed());
                    assert_eq!(leases.len(), 1);
                }
                let total = started.elapsed();
                latencies.lock().unwrap().extend(own);
                total
            }
        });
    });

    let mut all = latencies.lock().unwrap().clone();
    all.sort_unstable();
    println!(
        "acquire/one over {} calls: p50 {:?}, p90 {:?}, p99 {:?} (target p50 <= 1 ms)",
        all.len(),
        percentile(&all, 0.50),
        percentile(&all, 0.90),
        percentile(&all, 0.99)
    );
    drop(store);
    let fixture = Arc::try_unwrap(fixture).ok().expect("fixture").into_inner();
    rt.block_on(fixture.drop_schema());
}

/// Four claimers grant everything planned; returns how many were granted.
async fn claim_all(stores: &[Arc<PostgresStore>], batch: usize) -> usize {
    let start = Arc::new(Barrier::new(stores.len()));
    let tasks: Vec<_> = stores
        .iter()
        .enumerate()
        .map(|(i, store)| {
            let (store, start) = (Arc::clone(store), Arc::clone(&start));
            tokio::spawn(async move {
                let request = request(&format!("claimer-{i}"), batch);
                start.wait().await;
                let mut granted = 0;
                loop {
                    let leases = store.acquire(&request).await.expect("acquire");
                    if leases.is_empty() {
                        return granted;
                    }
                    granted += leases.len();
                }
            })
        })
        .collect();
    let mut total = 0;
    for task in tasks {
        total += task.await.expect("claimer");
    }
    total
}

fn claim(c: &mut Criterion, rt: &Runtime, base: &str) {
    let fixture = rt.block_on(Fixture::new(base, "claim"));
    let stores: Vec<_> = (0..CLAIMERS)
        .map(|_| Arc::new(rt.block_on(PostgresStore::open(&fixture.url)).expect("open")))
        .collect();
    let fixture = Arc::new(tokio::sync::Mutex::new(fixture));
    let mut group = c.benchmark_group("claim");
    group.throughput(Throughput::Elements(u64::try_from(CLAIM_JOBS).expect("jobs")));
    group.sample_size(10);
    for batch in CLAIM_BATCHES {
        group.bench_function(format!("4x{batch}"), |b| {
            b.to_async(rt).iter_custom(|iters| {
                let (stores, fixture) = (stores.clone(), Arc::clone(&fixture));
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        {
                            let mut fixture = fixture.lock().await;
                            fixture
                                .conn
                                .batch_execute("TRUNCATE ops, artifacts, jobs")
                                .await
                                .expect("truncate");
                            fixture.plan("claim", CLAIM_JOBS).await;
                        }
                        let started = Instant::now();
                        let granted = claim_all(&stores, batch).await;
                        total += started.elapsed();
                        assert_eq!(i64::try_from(granted).expect("granted"), CLAIM_JOBS);
                    }
                    total
                }
            });
        });
    }
    group.finish();
    drop(stores);
    let fixture = Arc::try_unwrap(fixture).ok().expect("fixture").into_inner();
    rt.block_on(fixture.drop_schema());
}

fn reconcile(c: &mut Criterion, rt: &Runtime, base: &str) {
    let mut fixture = rt.block_on(Fixture::new(base, "reconcile"));
    let store = Arc::new(rt.block_on(PostgresStore::open(&fixture.url)).expect("open"));
    let built = Instant::now();
    rt.block_on(async {
        diesel::sql_query(
            "INSERT INTO jobs (job_key, work_id, artifact_id, url, canonical_url, state, epoch, lease_owner, \
                               lease_expires_at) \
             SELECT md5(i::text) || md5((-i)::text), 'w' || i, 'a', 'https://example.org/r/' || i, \
                    'https://example.org/r/' || i, 'STREAMING', 1, 'crashed', now() - interval '1 hour' \
             FROM generate_series(1, $1) AS i",
        )
        .bind::<BigInt, _>(EXPIRED_LEASES)
        .execute(&mut fixture.conn)
        .await
        .expect("build expired leases");
        fixture.conn.batch_execute("VACUUM ANALYZE jobs").await.expect("vacuum");
    });
    println!(
        "reconcile/1m: built {EXPIRED_LEASES} expired leases in {:?}",
        built.elapsed()
    );
    let fixture = Arc::new(tokio::sync::Mutex::new(fixture));
    let mut group = c.benchmark_group("reconcile");
    group.sample_size(10);
    group.throughput(Throughput::Elements(u64::try_from(EXPIRED_LEASES).expect("rows")));
    group.bench_function("1m", |b| {
        b.to_async(rt).iter_custom(|iters| {
            let (store, fixture) = (Arc::clone(&store), Arc::clone(&fixture));
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    {
                        // Unfree them all again, untimed.
                        let mut fixture = fixture.lock().await;
                        fixture
                            .conn
                            .batch_execute("UPDATE reconcile_mark SET freed_through = '-infinity'")
                            .await
                            .expect("reset the reconcile mark");
                    }
                    let started = Instant::now();
                    let report = store.reconcile(Duration::ZERO).await.expect("reconcile");
                    total += started.elapsed();
                    assert_eq!(report.expired_leases, u64::try_from(EXPIRED_LEASES).expect("rows"));
                }
                total
            }
        });
    });
    group.finish();
    drop(store);
    let fixture = Arc::try_unwrap(fixture).ok().expect("fixture").into_inner();
    rt.block_on(fixture.drop_schema());
}

fn main() {
    let Some(base) = std::env::var("ONCEFETCH_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("note: ONCEFETCH_TEST_POSTGRES_URL is not set; skipping the PostgreSQL benchmarks");
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime");
    let mut c = Criterion::default().configure_from_args();
    // A benchmark name (they all contain a slash) given on the command line.
    let only = std::env::args()
        .skip(1)
        .find(|a| a.contains('/') && !a.starts_with('-'));
    let wanted = |name: &str| only.as_deref().is_none_or(|f| name.contains(f));
    if wanted("now/round-trip") {
        round_trip(&mut c, &rt, &base);
    }
    if wanted("acquire/one") {
        acquire_one(&mut c, &rt, &base);
    }
    if wanted("claim/4x100") || wanted("claim/4x500") {
        claim(&mut c, &rt, &base);
    }
    if wanted("reconcile/1m") {
        reconcile(&mut c, &rt, &base);
    }
    c.final_summary();
}
