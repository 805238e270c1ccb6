//! [`LeaseManager`] for [`PostgresStore`]: grants in one statement, fenced by
//! epoch, judged by the server's clock.

use std::time::Duration;

use async_trait::async_trait;
use diesel_async::scoped_futures::ScopedFutureExt;
use diesel_async::RunQueryDsl;
use oncefetch_core::{
    AcquireRequest, Fence, Lease, LeaseManager, Millis, OpKeys, OpKind, ReconcileReport, StoreResult,
};

use crate::conn::{Conn, Failure, Replay};
use crate::queries;
use crate::rows::{count, Count, Expiry, LeaseRow, ReconcileRow};
use crate::sql::Sql;
use crate::store::{job_not_found, lease_lost, millis, PostgresStore};

/// Writes the RELET rows of grants that took over an expired in-flight job,
/// in the grant's transaction.
async fn record_relets(conn: &mut Conn, leases: &[Lease]) -> Result<(), Failure> {
    let relets: Vec<&Lease> = leases.iter().filter(|l| l.previous_state.is_in_flight()).collect();
    if relets.is_empty() {
        return Ok(());
    }
    let column = |f: fn(&Lease) -> String| -> Vec<Option<String>> { relets.iter().map(|l| Some(f(l))).collect() };
    Sql::new(queries::RELET)
        .bind(column(|l| {
            OpKeys {
                job_key: &l.fence.job_key,
            }
            .epoch_action(OpKind::Relet, l.fence.epoch)
        }))
        .bind(column(|l| l.fence.job_key.clone()))
        .bind(relets.iter().map(|l| Some(l.fence.epoch)).collect::<Vec<_>>())
        .bind(column(|l| l.previous_state.as_str().to_owned()))
        .execute(conn)
        .await?;
    Ok(())
}

/// Turns granted rows into leases and records their RELET rows.
async fn granted(conn: &mut Conn, rows: Vec<LeaseRow>) -> Result<Vec<Lease>, Failure> {
    let leases = rows
        .into_iter()
        .map(LeaseRow::into_lease)
        .collect::<StoreResult<Vec<_>>>()?;
    record_relets(conn, &leases).await?;
    Ok(leases)
}

fn max_attempts(request: &AcquireRequest) -> i32 {
    i32::try_from(request.max_attempts).unwrap_or(i32::MAX)
}

#[async_trait]
impl LeaseManager for PostgresStore {
    async fn acquire(&self, request: &AcquireRequest) -> StoreResult<Vec<Lease>> {
        if request.limit == 0 {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(request.limit).unwrap_or(i64::MAX);
        self.db
            .transaction(Replay::Once, |conn| {
                async move {
                    let rows: Vec<LeaseRow> = Sql::new(queries::ACQUIRE)
                        .bind(request.owner.as_str())
                        .bind(millis(request.ttl))
                        .bind(limit)
                        .bind(max_attempts(request))
                        .load(conn)
                        .await?;
                    granted(conn, rows).await
                }
                .scope_boxed()
            })
            .await
    }

    async fn acquire_job(&self, job_key: &str, request: &AcquireRequest) -> StoreResult<Option<Lease>> {
        self.db
            .transaction(Replay::Once, |conn| {
                async move {
                    let rows: Vec<LeaseRow> = Sql::new(queries::ACQUIRE_JOB)
                        .bind(request.owner.as_str())
                        .bind(millis(request.ttl))
                        .bind(max_attempts(request))
                        .bind(job_key)
                        .load(conn)
                        .await?;
                    if rows.is_empty() {
                        let exists: Count = Sql::new(queries::JOB_EXISTS).bind(job_key).get_result(conn).await?;
                        if exists.n == 0 {
                            return Err(job_not_found(job_key).into());
                        }
                    }
                    Ok(granted(conn, rows).await?.into_iter().next())
                }
                .scope_boxed()
            })
            .await
    }

    async fn renew(&self, fence: &Fence, ttl: Duration) -> StoreResult<Millis> {
        // Renewing twice only moves the expiry again: safe to run again.
        let rows: Vec<Expiry> = self
            .db
            .run(|conn| {
                async move {
                    Ok(Sql::new(queries::RENEW)
                        .bind(fence.job_key.as_str())
                        .bind(fence.epoch)
                        .bind(fence.owner.as_str())
                        .bind(millis(ttl))
                        .load(conn)
                        .await?)
                }
                .scope_boxed()
            })
            .await?;
        rows.into_iter()
            .next()
            .map(|r| r.expires_at)
            .ok_or_else(|| lease_lost(fence))
    }

    async fn release(&self, fence: &Fence) -> StoreResult<()> {
        let released = self
            .db
            .transaction(Replay::Once, |conn| {
                async move {
                    Ok(Sql::new(queries::RELEASE)
                        .bind(fence.job_key.as_str())
                        .bind(fence.epoch)
                        .bind(fence.owner.as_str())
                        .execute(conn)
                        .await?)
                }
                .scope_boxed()
            })
            .await?;
        if released == 1 {
            Ok(())
        } else {
            Err(lease_lost(fence))
        }
    }

    async fn reconcile(&self, stale_after: Duration) -> StoreResult<ReconcileReport> {
        // Set-based and idempotent: a second run after a lost connection
        // only finds less to do.
        let row: ReconcileRow = self
            .db
            .run(|conn| {
                async move {
                    Ok(Sql::new(queries::RECONCILE)
                        .bind(millis(stale_after))
                        .get_result(conn)
                        .await?)
                }
                .scope_boxed()
            })
            .await?;
        Ok(ReconcileReport {
            expired_leases: count(row.expired_leases),
            abandoned_ops: count(row.abandoned_ops),
        })
    }

    async fn now(&self) -> StoreResult<Millis> {
        let row: Count = self
            .db
            .run(|conn| async move { Ok(Sql::new(queries::NOW).get_result(conn).await?) }.scope_boxed())
            .await?;
        Ok(row.n)
    }
}
