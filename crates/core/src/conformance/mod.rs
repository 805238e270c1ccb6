//! The store conformance kit: one `pub async fn` per contract clause of
//! [`LedgerStore`](crate::LedgerStore) and [`LeaseManager`](crate::LeaseManager),
//! of the same name, and [`store_conformance!`](crate::store_conformance)
//! which expands to one `#[tokio::test]` each.
//!
//! The clauses are the bullets of the traits' `# Contract` sections, each
//! led by its check's name; [`CHECKS`] lists them in that order, and a test
//! of this module holds the two lists (and the checks defined here) equal.
//! The checks are grouped by clause group, one file each: `plan.rs`,
//! `commit.rs` (fencing, the state table, the artifact index), `ops.rs`,
//! `requeue.rs`, `status.rs` (status, outstanding, watch), `budget.rs`, and
//! `grants.rs` (the [`LeaseManager`](crate::LeaseManager) clauses).
//!
//! ```ignore
//! async fn setup() -> oncefetch_core::conformance::Setup {
//!     let store = MyStore::open_fresh().await;
//!     oncefetch_core::conformance::Setup::single(Arc::new(store))
//! }
//! oncefetch_core::store_conformance!(setup);
//! ```
//!
//! Each check panics with the clause it found broken. Checks that wait for a
//! lease to expire use leases of a few hundred milliseconds.

use std::sync::Arc;
use std::time::Duration;

use crate::error::StoreError;
use crate::job::{Expectations, JobFailure, JobPatch, NewJob};
use crate::key::job_key;
use crate::lease::{AcquireRequest, Fence, Lease};
use crate::ledger::{LedgerExt, OpQuery, OpRecord};
use crate::state::JobState;
use crate::store::Store;

mod budget;
mod commit;
mod grants;
mod ops;
mod plan;
mod requeue;
mod status;

pub use budget::*;
pub use commit::*;
pub use grants::*;
pub use ops::*;
pub use plan::*;
pub use requeue::*;
pub use status::*;

/// The stores a check runs against.
#[derive(Debug, Clone)]
pub struct Setup {
    /// A fresh, empty, isolated store.
    pub store: Arc<dyn Store>,
    /// A second handle (connection) to the same ledger, for racing checks;
    /// the same handle where the store has only one.
    pub other: Arc<dyn Store>,
}

impl Setup {
    /// One handle.
    pub fn single(store: Arc<dyn Store>) -> Self {
        Self {
            other: Arc::clone(&store),
            store,
        }
    }

    /// Two handles to one ledger.
    pub fn pair(store: Arc<dyn Store>, other: Arc<dyn Store>) -> Self {
        Self { store, other }
    }
}

/// Expands to one `#[tokio::test]` per contract clause, each calling `setup`
/// (an `async fn() -> Setup`) for a fresh store. Needs `tokio` (macros,
/// rt-multi-thread) among the caller's dev-dependencies.
///
/// The list of checks is written once, here, in the order of the `# Contract`
/// sections of `LedgerStore` then `LeaseManager`; [`CHECKS`] is expanded
/// from it too.
#[macro_export]
macro_rules! store_conformance {
    ($setup:path) => {
        $crate::store_conformance!(@checks each $setup);
    };
    (@checks $then:ident $($setup:path)?) => {
        $crate::store_conformance! { @$then $($setup)?;
            // LedgerStore
            plan_is_idempotent,
            streamed_plan,
            plan_reports_other_expectations,
            plan_records_the_content_type,
            stale_epoch_writes_are_fenced,
            state_table_is_enforced,
            terminal_steps_end_the_lease,
            failure_before_streaming_counts_an_attempt,
            op_replay_returns_recorded_result,
            error_op_runs_again,
            ops_are_listed_in_order,
            artifact_index_first_writer_wins,
            index_settles_the_first_copy,
            requeue_resets_finished_jobs,
            update_expected_requeues_mismatches,
            requeue_matching_narrows,
            status_counts_every_state,
            status_counts_live_leases,
            status_counts_bytes_and_failures,
            far_retries_are_not_waited_for,
            watch_counts,
            request_budget_is_shared,
            // LeaseManager
            grant_bumps_epoch,
            failed_jobs_back_off_until_max_attempts,
            expired_lease_is_granted_again,
            abandoned_op_reruns_under_new_epoch,
            expired_out_of_attempts,
            concurrent_grants_are_exclusive,
            one_url_in_flight_at_a_time,
            renew_keeps_the_lease,
            release_frees_the_job,
            release_gives_the_attempt_back,
            reconcile_counts
        }
    };
    (@each $setup:path; $($check:ident),+) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $check() {
                let setup = $setup().await;
                $crate::conformance::$check(setup).await;
            }
        )+
    };
    (@names; $($check:ident),+) => {
        &[$(stringify!($check)),+]
    };
}

/// The name of every check [`store_conformance!`](crate::store_conformance)
/// runs, in the order of the `# Contract` sections of
/// [`LedgerStore`](crate::LedgerStore) then
/// [`LeaseManager`](crate::LeaseManager): each is a clause's name.
pub const CHECKS: &[&str] = crate::store_conformance!(@checks names);

const OWNER: &str = "conformance-a";
const OTHER_OWNER: &str = "conformance-b";
const LONG: Duration = Duration::from_secs(60);
const SHORT: Duration = Duration::from_millis(300);
/// The steps from LEASED to STREAMING.
const TO_STREAMING: [JobState; 3] = [JobState::HeadDone, JobState::ResumeOk, JobState::Streaming];

/// `n` jobs with distinct URLs under `prefix`.
pub fn sample_jobs(prefix: &str, n: usize) -> Vec<NewJob> {
    (0..n)
        .map(|i| {
            sample_job(
                &format!("{prefix}-w{i}"),
                "a",
                &format!("https://example.org/{prefix}/{i}"),
            )
        })
        .collect()
}

/// One job.
pub fn sample_job(work_id: &str, artifact_id: &str, url: &str) -> NewJob {
    let canonical_url = crate::url::canonicalize(url).expect("sample URL is valid");
    NewJob {
        job_key: job_key(work_id, artifact_id, &canonical_url),
        work_id: work_id.to_owned(),
        artifact_id: artifact_id.to_owned(),
        url: url.to_owned(),
        canonical_url,
        expected_sha256: None,
        expected_size: Some(42),
        expected_content_type: None,
    }
}

fn request(owner: &str, ttl: Duration, limit: usize) -> AcquireRequest {
    AcquireRequest {
        owner: owner.to_owned(),
        ttl,
        limit,
        max_attempts: 3,
    }
}

async fn lease_one(store: &dyn Store, owner: &str, ttl: Duration) -> Lease {
    let mut leases = store.acquire(&request(owner, ttl, 1)).await.expect("acquire");
    assert_eq!(leases.len(), 1, "runnable: a planned job must be granted");
    leases.remove(0)
}

async fn ops_of(store: &dyn Store, job: &str) -> Vec<OpRecord> {
    store
        .ops(&OpQuery {
            job_key: Some(job.to_owned()),
            ..OpQuery::default()
        })
        .await
        .expect("ops")
}

/// A patch recording `failure`.
fn failing(failure: JobFailure) -> JobPatch {
    JobPatch {
        failure: Some(failure),
        ..JobPatch::default()
    }
}

/// Steps the job of `fence` to STREAMING, then to FAILED with `patch`.
async fn stream_then_fail(store: &dyn Store, fence: &Fence, patch: JobPatch) {
    store
        .advance(fence, &TO_STREAMING, JobPatch::default())
        .await
        .expect("stream");
    store.advance(fence, &[JobState::Failed], patch).await.expect("fail");
}

fn assert_lease_lost<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(StoreError::LeaseLost { .. }) => {}
        other => panic!("fenced writes: {what} with a stale lease must fail with LeaseLost, got {other:?}"),
    }
}

async fn wait_past(ttl: Duration) {
    tokio::time::sleep(ttl + Duration::from_millis(150)).await;
}

/// Expectations declaring `sha256` and `size` (`None` for none).
fn expectations(sha256: Option<&str>, size: Option<u64>) -> Expectations {
    Expectations {
        sha256: sha256.map(str::to_owned),
        size,
        content_type: None,
    }
}

/// The clause names of the `# Contract` section in the rustdoc of `source`
/// (`///` or `//!`): the name in backticks that leads each item (`- `name`…`
/// or `1. `name`…`).
#[cfg(test)]
pub(crate) fn contract_clauses(source: &str) -> Vec<&str> {
    fn doc(line: &str) -> Option<&str> {
        let line = line.trim_start();
        line.strip_prefix("///").or_else(|| line.strip_prefix("//!"))
    }
    source
        .lines()
        .skip_while(|line| doc(line).map(str::trim) != Some("# Contract"))
        .skip(1)
        .map_while(doc)
        .take_while(|text| !text.trim_start().starts_with('#'))
        .filter_map(|text| {
            let item = text.trim_start();
            let item = item.strip_prefix("- ").or_else(|| {
                item.split_once(". ")
                    .filter(|(n, _)| n.parse::<u32>().is_ok())
                    .map(|(_, rest)| rest)
            })?;
            item.strip_prefix('`')?.split_once('`').map(|(name, _)| name)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{contract_clauses as clauses, CHECKS};

    #[test]
    fn every_contract_clause_is_one_check_of_its_name() {
        let mut contract = clauses(include_str!("../ledger.rs"));
        assert!(!contract.is_empty(), "LedgerStore has a # Contract section");
        let ledger = contract.len();
        contract.extend(clauses(include_str!("../lease.rs")));
        assert!(contract.len() > ledger, "LeaseManager has a # Contract section");
        assert_eq!(
            contract, CHECKS,
            "the clauses of LedgerStore's and LeaseManager's # Contract, in order, are the checks of store_conformance!"
        );
    }

    #[test]
    fn every_check_defined_is_run() {
        let sources = [
            include_str!("budget.rs"),
            include_str!("commit.rs"),
            include_str!("grants.rs"),
            include_str!("ops.rs"),
            include_str!("plan.rs"),
            include_str!("requeue.rs"),
            include_str!("status.rs"),
        ];
        let mut defined: Vec<&str> = sources
            .iter()
            .flat_map(|source| source.lines())
            .filter_map(|line| line.strip_prefix("pub async fn "))
            .filter_map(|rest| rest.strip_suffix("(setup: Setup) {"))
            .collect();
        defined.sort_unstable();
        let mut run = CHECKS.to_vec();
        run.sort_unstable();
        assert_eq!(defined, run, "every check of the kit is in store_conformance!, once");
    }
}
