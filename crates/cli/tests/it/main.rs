//! End-to-end tests of the `oncefetch` binary against the in-process test
//! server, on real SQLite files.

/// Crash safety: SIGKILL mid-stream and restart; SIGSTOP past the lease.
mod crash;
/// Every HTTP fault case ends as SPEC §8 says.
mod faults;
/// Happy path, idempotent re-fetch, duplicates, output layout.
mod fetch;
/// Many hosts on one PostgreSQL ledger.
#[cfg(feature = "postgres")]
mod postgres;
/// Shared helpers.
mod support;
/// Manifest errors, usage errors, help texts, other commands.
mod usage;
