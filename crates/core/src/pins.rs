//! Pins for the rules a store keeps in its own query language for speed.
//!
//! The [`kernel`] defines every rule; a store that evaluates
//! one in SQL (the set-based grant, say) proves that its SQL agrees with the
//! kernel's function over every shape a row can take, including shapes the
//! API never produces — which the behavioural kit cannot reach. The store's
//! test writes each shape into its own tables, then hands the store back:
//!
//! ```ignore
//! let pin = RunnablePin::plan(store.as_ref()).await;
//! for (job_key, shape) in pin.shapes() {
//!     // UPDATE jobs SET state = …, retryable = …, … WHERE job_key = …
//! }
//! pin.check(store.as_ref()).await;
//! ```

use std::collections::BTreeSet;
use std::time::Duration;

use crate::conformance::sample_job;
use crate::job::NewJob;
use crate::kernel;
use crate::lease::AcquireRequest;
use crate::state::JobState;
use crate::store::Store;

/// One job row's lease and retry columns, as a pin writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowShape {
    /// `state`.
    pub state: JobState,
    /// `retryable`.
    pub retryable: bool,
    /// `attempts`.
    pub attempts: u32,
    /// `next_attempt_at` this many milliseconds from the store's now, or
    /// none.
    pub next_attempt_in: Option<i64>,
    /// `lease_expires_at` this many milliseconds from the store's now, or no
    /// lease. With a lease, `lease_owner` is `"someone"` and `epoch` is 1;
    /// without, both are unset (owner none, epoch 0).
    pub lease_in: Option<i64>,
}

impl RowShape {
    /// The `epoch` the row holds.
    pub fn epoch(&self) -> i64 {
        i64::from(self.lease_in.is_some())
    }
}

/// Attempts a [`RunnablePin`] grants under.
pub const PIN_MAX_ATTEMPTS: u32 = 3;

/// Every combination of state, retryable, attempts (none, all used),
/// backoff (none, past, future) and lease (none, expired, live).
fn every_shape() -> Vec<RowShape> {
    let mut shapes = Vec::new();
    for state in JobState::ALL {
        for retryable in [false, true] {
            for attempts in [0, PIN_MAX_ATTEMPTS] {
                for next_attempt_in in [None, Some(-60_000), Some(60_000)] {
                    for lease_in in [None, Some(-60_000), Some(60_000)] {
                        shapes.push(RowShape {
                            state,
                            retryable,
                            attempts,
                            next_attempt_in,
                            lease_in,
                        });
                    }
                }
            }
        }
    }
    shapes
}

/// The grant picks exactly the jobs [`kernel::runnable`] calls runnable:
/// one planned job per [`RowShape`], each of its own URL (so that the
/// one-URL rule stays out of it).
#[derive(Debug)]
pub struct RunnablePin {
    jobs: Vec<(NewJob, RowShape)>,
}

impl RunnablePin {
    /// Plans one job per shape into `store` (fresh and empty).
    pub async fn plan(store: &dyn Store) -> Self {
        let jobs: Vec<(NewJob, RowShape)> = (every_shape().into_iter().enumerate())
            .map(|(i, shape)| {
                (
                    sample_job(&format!("pin{i}"), "a", &format!("https://pin.test/{i}")),
                    shape,
                )
            })
            .collect();
        let new: Vec<NewJob> = jobs.iter().map(|(job, _)| job.clone()).collect();
        store.plan(&new).await.expect("pin: plan");
        Self { jobs }
    }

    /// Each job key and the shape the store's test must write into its row.
    pub fn shapes(&self) -> impl Iterator<Item = (&str, &RowShape)> {
        self.jobs.iter().map(|(job, shape)| (job.job_key.as_str(), shape))
    }

    /// Grants every job `store` finds runnable and panics unless the picked
    /// jobs (granted, or ended FAILED out of attempts: either way under the
    /// next epoch) are the ones [`kernel::runnable`] calls runnable.
    pub async fn check(&self, store: &dyn Store) {
        let now = store.now().await.expect("pin: now");
        let mut runnable = BTreeSet::new();
        for (job, _) in &self.jobs {
            let stored = store.job(&job.job_key).await.expect("pin: job");
            if kernel::runnable(&stored, now, PIN_MAX_ATTEMPTS) {
                runnable.insert(job.job_key.as_str());
            }
        }
        assert!(
            !runnable.is_empty() && runnable.len() < self.jobs.len(),
            "pin: {} of {} shapes runnable",
            runnable.len(),
            self.jobs.len()
        );
        let request = AcquireRequest {
            owner: "pin".into(),
            ttl: Duration::from_secs(60),
            limit: self.jobs.len(),
            max_attempts: PIN_MAX_ATTEMPTS,
        };
        store.acquire(&request).await.expect("pin: acquire");
        let mut picked = BTreeSet::new();
        for (job, shape) in &self.jobs {
            if store.job(&job.job_key).await.expect("pin: job").epoch > shape.epoch() {
                picked.insert(job.job_key.as_str());
            }
        }
        let shape_of = |key: &&str| self.jobs.iter().find(|(j, _)| j.job_key == *key).map(|(_, s)| *s);
        let missed: Vec<_> = runnable.difference(&picked).map(shape_of).collect();
        let extra: Vec<_> = picked.difference(&runnable).map(shape_of).collect();
        assert!(
            missed.is_empty(),
            "pin: runnable by the kernel but not granted: {missed:?}"
        );
        assert!(
            extra.is_empty(),
            "pin: granted but not runnable by the kernel: {extra:?}"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::memory::MemoryStore;

    /// The memory store runs the kernel itself; its rows cannot be shaped
    /// from outside, so the pin checks only that its own shapes are sound:
    /// some are runnable, some not, and planning them all grants exactly the
    /// planned (all PLANNED without backoff) ones.
    #[tokio::test]
    async fn the_pin_plans_one_job_per_shape() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let pin = RunnablePin::plan(store.as_ref()).await;
        assert_eq!(pin.shapes().count(), JobState::ALL.len() * 2 * 2 * 3 * 3);
        let keys: BTreeSet<&str> = pin.shapes().map(|(k, _)| k).collect();
        assert_eq!(keys.len(), pin.shapes().count(), "one job per shape");
    }
}
