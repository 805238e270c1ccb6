//! [`LeaseManager`] for [`PostgresStore`]: grants in one statement, fenced by
//! epoch, judged by the server's clock.

use std::time::Duration;

use async_trait::async_trait;
use diesel_async::scoped_futures::ScopedFutureExt;
use diesel_async::RunQueryDsl;
use oncefetch_core::{AcquireRequest, Fence, Lease, LeaseManager, Millis, ReconcileReport, StoreResult};

use crate::conn::Replay;
use crate::queries;
use crate::rows::{count, Count, Expiry, LeaseRow, ReconcileRow};
use crate::sql::Sql;
use crate::store::{millis, PostgresStore};
use oncefetch_core::kernel;

fn into_leases(rows: Vec<LeaseRow>) -> StoreResult<Vec<Lease>> {
    rows.into_iter().map(LeaseRow::into_lease).collect()
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
        // One statement: grants, abandoned ops and RELET rows commit together.
        let rows: Vec<LeaseRow> = self
            .db
            .run(Replay::Once, |conn| {
                async move {
                    Ok(Sql::new(queries::ACQUIRE)
                        .bind(request.owner.as_str())
                        .bind(millis(request.ttl))
                        .bind(limit)
                        .bind(max_attempts(request))
                        .load(conn)
                        .await?)
                }
                .scope_boxed()
            })
            .await?;
        into_leases(rows)
    }

    async fn renew(&self, fence: &Fence, ttl: Duration) -> StoreResult<Millis> {
        // Renewing twice only moves the expiry again: safe to run again.
        let rows: Vec<Expiry> = self
            .db
            .run(Replay::Safe, |conn| {
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
            .ok_or_else(|| kernel::lease_lost(fence))
    }

    async fn release(&self, fence: &Fence) -> StoreResult<()> {
        let released = self
            .db
            .run(Replay::Once, |conn| {
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
            Err(kernel::lease_lost(fence))
        }
    }

    async fn reconcile(&self, stale_after: Duration) -> StoreResult<ReconcileReport> {
        // Set-based and idempotent: a second run after a lost connection
        // only finds less to do.
        let row: ReconcileRow = self
            .db
            .run(Replay::Safe, |conn| {
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
            .run(Replay::Safe, |conn| {
                async move { Ok(Sql::new(queries::NOW).get_result(conn).await?) }.scope_boxed()
            })
            .await?;
        Ok(row.n)
    }
}
