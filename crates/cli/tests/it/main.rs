//! End-to-end tests of the `oncefetch` binary against the in-process test
//! server, on real SQLite files.

/// `retry` narrowing, `verify` folders, `ledger --job` prefixes, leases in
/// `jobs` and `status`.
#[cfg(feature = "sqlite")]
mod commands;
/// Crash safety: SIGKILL mid-stream and restart; SIGSTOP past the lease.
#[cfg(feature = "sqlite")]
mod crash;
/// Every HTTP fault case ends as SPEC §8 says.
#[cfg(feature = "sqlite")]
mod faults;
/// Happy path, idempotent re-fetch, duplicates, output layout.
#[cfg(feature = "sqlite")]
mod fetch;
/// SIGINT and SIGTERM give the leases back; a rerun resumes at once.
#[cfg(feature = "sqlite")]
mod interrupt;
/// Many hosts on one PostgreSQL ledger.
#[cfg(feature = "postgres")]
mod postgres;
/// Resuming never splices two versions of a resource.
#[cfg(feature = "sqlite")]
mod resume;
/// Shared helpers.
#[allow(dead_code)] // parts serve only the SQLite-backed modules
mod support;
/// Manifest errors, usage errors, help texts, other commands.
#[cfg(feature = "sqlite")]
mod usage;
