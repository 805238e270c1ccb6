//! Exit statuses (SPEC §7).

/// All well.
pub const OK: u8 = 0;
/// A fatal error: ledger unreachable, output folder not writable, a SQLite
/// ledger that does not exist (any command but `plan` and `fetch`), or a
/// resource error (disk full, quota, read-only filesystem, no file
/// descriptors, output folder gone) that stopped the run.
pub const FATAL: u8 = 1;
/// Usage error (clap exits with it).
pub const USAGE: u8 = 2;
/// Manifest lines were rejected.
pub const REJECTED: u8 = 3;
/// Jobs in the ledger ended FAILED (wins over [`REJECTED`]).
pub const FAILED: u8 = 4;
/// `verify`: an artifact is missing or differs.
pub const MISMATCH: u8 = 5;
/// Interrupted by SIGINT (after giving the leases back).
pub const SIGINT: u8 = 130;
/// Interrupted by SIGTERM (after giving the leases back).
pub const SIGTERM: u8 = 143;
