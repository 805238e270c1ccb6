//! End-to-end tests of the `oncefetch` binary against the in-process test
//! server, on real SQLite files.

/// `retry` narrowing, `verify` folders, `ledger --job` prefixes, leases in
/// `jobs` and `status`; only `plan` and `fetch` create a ledger.
#[cfg(feature = "sqlite")]
mod commands;
/// Content checks: an HTML page where a PDF was expected fails without retry
/// (also by `--accept`), a PDF served as octet-stream passes, a wrong body is
/// abandoned on its first bytes.
#[cfg(feature = "sqlite")]
mod content;
/// Crash safety: SIGKILL mid-stream and restart; SIGSTOP past the lease.
#[cfg(feature = "sqlite")]
mod crash;
/// SPEC §6's batched finalize: SIGKILL while held (by strace) at each of
/// its steps never leaves a FINALIZE OK without its complete file; a failed
/// `syncfs` falls back to one fsync per file.
#[cfg(feature = "sqlite")]
mod durability;
/// Declared sha256/size hold for duplicates and re-planned lines.
#[cfg(feature = "sqlite")]
mod expect;
/// Every HTTP fault case ends as SPEC §8 says.
#[cfg(feature = "sqlite")]
mod faults;
/// Happy path, idempotent re-fetch, duplicates, output layout.
#[cfg(feature = "sqlite")]
mod fetch;
/// The output folder: links never followed, local errors bounded, placement
/// across filesystems, names that never collide.
#[cfg(feature = "sqlite")]
mod files;
/// `--help` lists exit codes, the manifest, the environment and examples;
/// `--version` names the stores; completions; short flags.
mod help;
/// Who oncefetch says it is and whom it trusts: `--user-agent`, `--header`,
/// `--proxy`, `--ca-cert`, `SSL_CERT_FILE`, certificate errors, `--insecure`;
/// `--max-time` and `--low-speed` aborts resumed with `Range`.
#[cfg(feature = "sqlite")]
mod identity;
/// SIGINT and SIGTERM give the leases back; a rerun resumes at once.
#[cfg(feature = "sqlite")]
mod interrupt;
/// The SQLite ledger file: self-contained after a command, readable on a
/// read-only mount.
#[cfg(feature = "sqlite")]
mod ledger_file;
/// Politeness: per-host request rates, the bandwidth cap, long
/// `Retry-After`s that end the run, and the per-host circuit breaker.
#[cfg(feature = "sqlite")]
mod polite;
/// Many hosts on one PostgreSQL ledger.
#[cfg(feature = "postgres")]
mod postgres;
/// Credentials in URLs are never shown.
#[cfg(feature = "sqlite")]
mod redaction;
/// A full disk, a read-only filesystem, a deleted output folder stop the
/// run and cost no job an attempt.
#[cfg(feature = "sqlite")]
mod resources;
/// Resuming never splices two versions of a resource.
#[cfg(feature = "sqlite")]
mod resume;
/// `--robots respect`: robots.txt fetched once per host per run, disallowed
/// jobs failed without a request or a retry, a 404 allowing everything;
/// `ignore` (the default) never asks for it.
#[cfg(feature = "sqlite")]
mod robots;
/// `--out s3://bucket/prefix` on SeaweedFS: a thousand files with
/// duplicates, SIGKILL mid-upload, an occupied key, three runs on one
/// PostgreSQL ledger, the object server restarted mid-run.
#[cfg(all(feature = "s3", feature = "sqlite"))]
mod s3;
/// `--split N`: one file over ranged connections, hashed whole; a SIGKILL
/// mid-split resumes every piece; a changed resource is never spliced.
#[cfg(feature = "sqlite")]
mod split;
/// Shared helpers.
#[allow(dead_code)] // parts serve only the SQLite-backed modules
mod support;
/// Tables on a terminal, JSON for scripts: `jobs`/`ledger` on a
/// pseudo-terminal and off it, `jobs` filters, `status` bytes and failures,
/// the `--json` summaries of `plan`, `recover`, `verify` and `retry`.
#[cfg(feature = "sqlite")]
mod tables;
/// Progress bars on a terminal, plain log lines otherwise, the end-of-run
/// summary.
#[cfg(feature = "sqlite")]
mod terminal;
/// Manifest errors, usage errors, help texts, other commands.
#[cfg(feature = "sqlite")]
mod usage;
/// Watching a fleet: `/metrics` during a run, the `serve` pages and JSON
/// API, a real browser, the loopback default and the access token.
#[cfg(feature = "sqlite")]
mod watch;
