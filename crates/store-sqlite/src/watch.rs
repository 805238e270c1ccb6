//! [`LedgerStore::watch`](oncefetch_core::LedgerStore::watch): the counters
//! of schema version 7, and the FAILED and in-flight jobs through their
//! partial indexes, in one read transaction.

use std::collections::{BTreeMap, HashMap};

use oncefetch_core::watch::{HostCounts, MinuteCounts, Watch, WatchQuery, WorkerSeen};
use oncefetch_core::{millis, JobState, Millis};
use rusqlite::{named_params, Connection};

use crate::clock;
use crate::error::TxError;
use crate::{queries, rows, tables};

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Reads what [`Watch`] shows.
pub(crate) fn watch(conn: &Connection, query: &WatchQuery) -> Result<Watch, TxError> {
    let tx = conn.unchecked_transaction()?;
    let now = clock::now(&tx)?;
    let mut hosts: HashMap<String, HostCounts> = HashMap::new();
    let groups = tx
        .prepare_cached(queries::WATCH_HOSTS)?
        .query_map(named_params! {":limit": limit(query.hosts)}, |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, i64>(3)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    for (host, group, jobs, bytes) in groups {
        let counts = hosts.entry(host.clone()).or_insert_with(|| HostCounts {
            host,
            ..HostCounts::default()
        });
        let jobs = count(jobs);
        match group.parse::<JobState>() {
            Ok(JobState::Planned) => counts.planned += jobs,
            Ok(JobState::Success) => {
                counts.succeeded += jobs;
                counts.bytes += count(bytes);
            }
            Ok(JobState::SkippedDuplicate) => counts.skipped += jobs,
            Ok(JobState::Failed) => counts.failed += jobs,
            _ => counts.in_flight += jobs,
        }
    }
    let since = MinuteCounts::minute_of(now - millis(query.window));
    let recent = MinuteCounts::minute_of(now - millis(query.recent));
    let mut minutes: BTreeMap<Millis, MinuteCounts> = BTreeMap::new();
    let rows = tx
        .prepare_cached(queries::WATCH_MINUTES)?
        .query_map(named_params! {":since": since.min(recent)}, |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                [row.get::<_, i64>(2)?, row.get(3)?, row.get(4)?, row.get(5)?],
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    for (minute, host, [succeeded, skipped, failed, bytes]) in rows {
        if minute >= recent {
            if let Some(counts) = hosts.get_mut(&host) {
                counts.recent_finished += count(succeeded) + count(skipped) + count(failed);
            }
        }
        if minute >= since {
            let row = minutes.entry(minute).or_insert(MinuteCounts {
                minute,
                ..MinuteCounts::default()
            });
            row.succeeded += count(succeeded);
            row.skipped += count(skipped);
            row.failed += count(failed);
            row.bytes += count(bytes);
        }
    }
    let mut failed = tx
        .prepare_cached(queries::WATCH_FAILED)?
        .query_map(named_params! {":limit": limit(query.failed)}, rows::job)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    tables::hide_freed_leases(&tx, &mut failed)?;
    let mut in_flight = tx
        .prepare_cached(queries::WATCH_LEASES)?
        .query_map(
            named_params! {":after": now, ":limit": limit(query.in_flight)},
            rows::job,
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    tables::hide_freed_leases(&tx, &mut in_flight)?;
    let after = (now - millis(query.recent)).max(tables::freed_through(&tx)?);
    let workers = tx
        .prepare_cached(queries::WATCH_WORKERS)?
        .query_map(named_params! {":after": after, ":now": now}, |row| {
            Ok(WorkerSeen {
                owner: row.get(0)?,
                live_leases: count(row.get(1)?),
                last_expiry: row.get(2)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    tx.finish()?;
    let mut hosts: Vec<HostCounts> = hosts.into_values().filter(|h| h.total() > 0).collect();
    Watch::rank_hosts(&mut hosts, query.hosts);
    Ok(Watch {
        now,
        hosts,
        minutes: minutes.into_values().collect(),
        failed,
        in_flight,
        workers,
    })
}
