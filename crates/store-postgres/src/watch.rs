//! [`LedgerStore::watch`](oncefetch_core::LedgerStore::watch) for
//! PostgreSQL: the counters of `watch_hosts` and `watch_minutes` (summed
//! over their shards), and the FAILED and in-flight jobs through their
//! partial indexes, in one transaction.

use std::collections::{BTreeMap, HashMap};

use diesel::sql_types::{BigInt, Text};
use diesel::QueryableByName;
use diesel_async::scoped_futures::ScopedFutureExt;
use diesel_async::RunQueryDsl;
use oncefetch_core::watch::{HostCounts, MinuteCounts, Watch, WatchQuery, WorkerSeen};
use oncefetch_core::{JobState, Millis, StoreResult};

use crate::conn::Replay;
use crate::queries;
use crate::rows::{count, JobRow};
use crate::sql::Sql;
use crate::store::{millis, PostgresStore};

/// Each host's jobs by group, the busiest `$1` hosts.
const HOSTS: &str = "SELECT host, grp, sum(jobs)::bigint AS jobs, sum(bytes)::bigint AS bytes FROM watch_hosts \
     WHERE host IN (SELECT host FROM watch_hosts GROUP BY host HAVING sum(jobs) <> 0 \
                    ORDER BY sum(jobs) DESC, host LIMIT $1) \
     GROUP BY host, grp";
/// Finishes per minute and host from `$1` on.
const MINUTES: &str = "SELECT minute, host, sum(succeeded)::bigint AS succeeded, sum(skipped)::bigint AS skipped, \
     sum(failed)::bigint AS failed, sum(bytes)::bigint AS bytes FROM watch_minutes WHERE minute >= $1 \
     GROUP BY minute, host ORDER BY minute";
/// The first `$1` FAILED jobs in planning order (jobs_failed_order).
const FAILED: &str = "SELECT r.* FROM (SELECT job_key, planned_seq FROM jobs WHERE state = 'FAILED' \
     ORDER BY planned_seq LIMIT $1) f JOIN job_rows r USING (job_key) ORDER BY f.planned_seq";
/// In-flight jobs with a live lease, the earliest expiry first (jobs_in_flight).
const LEASES: &str = "SELECT r.* FROM (SELECT job_key, lease_expires_at, planned_seq FROM jobs \
     WHERE in_flight(state) \
       AND lease_expires_at > now() ORDER BY lease_expires_at, planned_seq LIMIT $1) l \
     JOIN job_rows r USING (job_key) ORDER BY l.lease_expires_at, l.planned_seq";
/// Owners of in-flight jobs whose lease expires after now − `$1` ms and was
/// not freed by reconcile.
const WORKERS: &str = "SELECT lease_owner AS owner, count(*) FILTER (WHERE lease_expires_at > now()) AS live, \
     floor(extract(epoch FROM max(lease_expires_at)) * 1000)::bigint AS last_expiry FROM jobs \
     WHERE in_flight(state) \
       AND lease_owner IS NOT NULL \
       AND lease_expires_at > greatest(now() - $1 * interval '1 millisecond', (SELECT freed_through FROM reconcile_mark)) \
     GROUP BY lease_owner ORDER BY lease_owner";

#[derive(Debug, QueryableByName)]
struct HostRow {
    #[diesel(sql_type = Text)]
    host: String,
    #[diesel(sql_type = Text)]
    grp: String,
    #[diesel(sql_type = BigInt)]
    jobs: i64,
    #[diesel(sql_type = BigInt)]
    bytes: i64,
}

#[derive(Debug, QueryableByName)]
struct MinuteRow {
    #[diesel(sql_type = BigInt)]
    minute: i64,
    #[diesel(sql_type = Text)]
    host: String,
    #[diesel(sql_type = BigInt)]
    succeeded: i64,
    #[diesel(sql_type = BigInt)]
    skipped: i64,
    #[diesel(sql_type = BigInt)]
    failed: i64,
    #[diesel(sql_type = BigInt)]
    bytes: i64,
}

#[derive(Debug, QueryableByName)]
struct WorkerRow {
    #[diesel(sql_type = Text)]
    owner: String,
    #[diesel(sql_type = BigInt)]
    live: i64,
    #[diesel(sql_type = BigInt)]
    last_expiry: i64,
}

#[derive(Debug, QueryableByName)]
struct Now {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// What one transaction read.
type Read = (
    i64,
    Vec<HostRow>,
    Vec<MinuteRow>,
    Vec<JobRow>,
    Vec<JobRow>,
    Vec<WorkerRow>,
);

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl PostgresStore {
    /// Reads what [`Watch`] shows.
    pub(crate) async fn read_watch(&self, query: &WatchQuery) -> StoreResult<Watch> {
        let window = millis(query.window);
        let recent = millis(query.recent);
        let (now, host_rows, minute_rows, failed, in_flight, workers): Read = self
            .db
            .transaction(Replay::Safe, |conn| {
                async move {
                    let now: Now = Sql::new(queries::NOW).get_result(conn).await?;
                    let since = MinuteCounts::minute_of(now.n - window.max(recent));
                    Ok((
                        now.n,
                        Sql::new(HOSTS).bind(limit(query.hosts)).load(conn).await?,
                        Sql::new(MINUTES).bind(since).load(conn).await?,
                        Sql::new(FAILED).bind(limit(query.failed)).load(conn).await?,
                        Sql::new(LEASES).bind(limit(query.in_flight)).load(conn).await?,
                        Sql::new(WORKERS).bind(recent).load(conn).await?,
                    ))
                }
                .scope_boxed()
            })
            .await?;
        let mut hosts: HashMap<String, HostCounts> = HashMap::new();
        for row in host_rows {
            let counts = hosts.entry(row.host.clone()).or_insert_with(|| HostCounts {
                host: row.host.clone(),
                ..HostCounts::default()
            });
            let jobs = count(row.jobs);
            match row.grp.parse::<JobState>() {
                Ok(JobState::Planned) => counts.planned += jobs,
                Ok(JobState::Success) => {
                    counts.succeeded += jobs;
                    counts.bytes += count(row.bytes);
                }
                Ok(JobState::SkippedDuplicate) => counts.skipped += jobs,
                Ok(JobState::Failed) => counts.failed += jobs,
                _ => counts.in_flight += jobs,
            }
        }
        let since = MinuteCounts::minute_of(now - window);
        let recent_start = MinuteCounts::minute_of(now - recent);
        let mut minutes: BTreeMap<Millis, MinuteCounts> = BTreeMap::new();
        for row in minute_rows {
            if row.minute >= recent_start {
                if let Some(counts) = hosts.get_mut(&row.host) {
                    counts.recent_finished += count(row.succeeded) + count(row.skipped) + count(row.failed);
                }
            }
            if row.minute >= since {
                let m = minutes.entry(row.minute).or_insert(MinuteCounts {
                    minute: row.minute,
                    ..MinuteCounts::default()
                });
                m.succeeded += count(row.succeeded);
                m.skipped += count(row.skipped);
                m.failed += count(row.failed);
                m.bytes += count(row.bytes);
            }
        }
        let mut hosts: Vec<HostCounts> = hosts.into_values().filter(|h| h.total() > 0).collect();
        Watch::rank_hosts(&mut hosts, query.hosts);
        Ok(Watch {
            now,
            hosts,
            minutes: minutes.into_values().collect(),
            failed: failed.into_iter().map(JobRow::into_job).collect::<StoreResult<_>>()?,
            in_flight: in_flight
                .into_iter()
                .map(JobRow::into_job)
                .collect::<StoreResult<_>>()?,
            workers: workers
                .into_iter()
                .map(|w| WorkerSeen {
                    owner: w.owner,
                    live_leases: count(w.live),
                    last_expiry: w.last_expiry,
                })
                .collect(),
        })
    }
}
