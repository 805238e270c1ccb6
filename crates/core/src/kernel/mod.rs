//! The ledger kernel: the rules every store follows, once, as pure functions
//! over plain data (SPEC §3–§5).
//!
//! A store reads what a rule needs (a job row, the op rows of the keys a
//! commit names, the artifact standing for a hash), calls the rule inside its
//! transaction, and writes what comes back. The memory store is nothing more
//! than that; the SQL stores keep some rules in SQL where it pays (the
//! set-based grant, reconcile, planning), and the conformance kit pins them
//! to these functions.
//!
//! | rule | file |
//! |---|---|
//! | a step and the patch ([`step`], [`patch`]) | `step.rs` |
//! | fencing, runnable, renew, release, reconcile, reads ([`holds_lease`], [`runnable`], [`expiry`], [`renew`], [`release`], [`as_read`]) | `lease.rs` |
//! | update expected ([`expect`]) | `expect.rs` |
//! | op start, finish, replay, abandon ([`start_op`], [`finish_op`], [`abandon`]) | `ops.rs` |
//! | one commit's write set ([`plan_commit`]) | `commit.rs` |
//! | the pick, grant, out of attempts ([`pick`], [`grant_picked`]) | `grant.rs` |
//! | requeue ([`requeue`]) | `requeue.rs` |
//! | status, outstanding, watch as folds over jobs ([`status`], [`outstanding`], [`watch`]) | `read.rs` |

mod commit;
mod expect;
mod grant;
mod lease;
mod ops;
mod read;
mod requeue;
mod step;

pub use commit::{plan_commit, CommitReads, CommitWrites, IndexWrite};
pub use expect::{expect, Expecting};
pub use grant::{abandoned_on_grant, grant_picked, pick, Picked};
pub use lease::{
    abandoned_by_reconcile, as_read, expiry, freed_by_reconcile, holds_lease, lease_live, lease_lost, release, renew,
    runnable,
};
pub use ops::{abandon, abandon_all, finish_op, finish_row, may_start_ops, ok_row, start_op, OpFacts};
pub use read::{outstanding, status, watch, Finish};
pub use requeue::{requeue, requeue_row, superseded_by_requeue};
pub use step::{patch, step, steps};
