#![doc = include_str!("../README.md")]

pub mod content;
pub mod destination;
pub mod error;
pub mod fetch;
pub mod job;
pub mod kernel;
pub mod key;
pub mod lease;
pub mod ledger;
pub mod manifest;
pub mod paging;
pub mod pipeline;
pub mod registry;
pub mod robots;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod transition;
pub mod url;
pub mod watch;

/// How a third party writes a store: the guide in `docs/writing-a-store.md`.
#[doc = include_str!("../../../docs/writing-a-store.md")]
pub mod writing_a_store {}

#[cfg(feature = "conformance")]
pub mod conformance;
#[cfg(feature = "conformance")]
pub mod memory;
#[cfg(feature = "conformance")]
pub mod pins;

pub use error::{BoxError, StoreError, StoreResult};
pub use fetch::{
    BodyStream, FailureKind, FetchError, Fetcher, FetcherConfig, GetRequest, GetResponse, LowSpeed, ResourceMeta,
};
pub use job::{
    attempts_left, millis, wall_clock, ExpectationConflict, Expectations, ExpectedUpdate, FailedSplit, Job, JobFailure,
    JobFilter, JobPatch, JobQuery, Millis, NewJob, PlanCounts, RetryableFailed, StatusCounts,
};
pub use key::{ikey, job_key, op_key, KeyValue, OpKeys};
pub use lease::{out_of_attempts, AcquireRequest, Fence, Lease, LeaseManager, ReconcileReport};
pub use ledger::{
    run_effect, ArtifactEntry, Commit, CommitOutcome, Effect, EffectError, IndexOp, LedgerExt, LedgerStore, OpBegin,
    OpFinish, OpKind, OpQuery, OpRecord, OpStart, RequestSlots, RequeueCounts, RequeueFilter, ResultCode, Settle,
};
pub use paging::{JobPages, Keyset, OpPages, Pages};
pub use registry::{
    open_fetcher, open_store, open_store_read_only, open_store_with, FetcherFactory, OpenMode, StoreFactory,
};
pub use state::JobState;
pub use store::Store;
pub use transition::{check_transition, Transition};

// Re-exported so backends register without naming the crate themselves.
pub use async_trait::async_trait;
pub use inventory;
