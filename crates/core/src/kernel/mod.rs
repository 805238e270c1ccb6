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
//! | fencing, runnable, release, reconcile ([`holds_lease`], [`runnable`], [`release`]) | `lease.rs` |
//! | update expected ([`expect`]) | `expect.rs` |
//! | op start, finish, replay ([`start_op`], [`finish_op`]) | `ops.rs` |
//! | one commit's write set ([`plan_commit`]) | `commit.rs` |
//! | grant, out of attempts ([`grant`], [`fail_out_of_attempts`]) | `grant.rs` |
//! | requeue ([`requeue`]) | `requeue.rs` |
//! | status, outstanding, watch as folds over jobs ([`status`], [`settled`], [`watch`]) | `read.rs` |

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
pub use grant::{abandoned_on_grant, fail_out_of_attempts, grant, Granted};
pub use lease::{abandoned_by_reconcile, freed_by_reconcile, holds_lease, lease_live, lease_lost, release, runnable};
pub use ops::{finish_op, may_start_ops, ok_row, start_op, OpFacts};
pub use read::{settled, status, watch, Finish};
pub use requeue::{requeue, requeue_row, superseded_by_requeue};
pub use step::{patch, step, steps};
