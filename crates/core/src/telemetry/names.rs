//! The metric names (SPEC §11): `oncefetch_` prefix, base units, `_total`
//! for counters. Each is documented with its labels.

/// Gauge, label `state`: jobs per state, read from the ledger at each scrape.
pub const JOBS: &str = "oncefetch_jobs";
/// Counter, label `outcome` (`succeeded`, `skipped`, `failed`, `deferred`,
/// `lease_lost`, `store_failed`, `interrupted`): jobs this run finished, by
/// how.
pub const JOBS_FINISHED: &str = "oncefetch_jobs_finished_total";
/// Counter, labels `class` (`2xx` … `5xx`, `none` when no answer came) and
/// `outcome` (`ok`, `transient`, `permanent`): GET and HEAD requests.
pub const REQUESTS: &str = "oncefetch_requests_total";
/// Counter: body bytes received.
pub const RECEIVED_BYTES: &str = "oncefetch_received_bytes_total";
/// Histogram: a GET from its start to its body's end (or failure).
pub const DOWNLOAD_DURATION: &str = "oncefetch_download_duration_seconds";
/// Histogram: a GET from its start until its answer's headers are in.
pub const TIME_TO_FIRST_BYTE: &str = "oncefetch_time_to_first_byte_seconds";
/// Counter, label `reason` (see [`reason_class`](super::reason_class)):
/// failed attempts that will be retried.
pub const RETRIES: &str = "oncefetch_retries_total";
/// Counter, label `outcome` (`range_ok`, `range_ignored`,
/// `validator_changed`): GETs that asked to resume a partial file.
pub const RESUMES: &str = "oncefetch_resumes_total";
/// Counter, label `check` (`sha256`, `size`): downloads that failed their
/// declared checks.
pub const VERIFY_MISMATCHES: &str = "oncefetch_verify_mismatches_total";
/// Counter: jobs linked to an earlier copy of the same content.
pub const DUPLICATES_LINKED: &str = "oncefetch_duplicates_linked_total";
/// Counter: bytes not downloaded thanks to duplicate links.
pub const DUPLICATE_SAVED_BYTES: &str = "oncefetch_duplicate_saved_bytes_total";
/// Counter: leases granted.
pub const LEASES_GRANTED: &str = "oncefetch_leases_granted_total";
/// Counter: leases renewed.
pub const LEASES_RENEWED: &str = "oncefetch_leases_renewed_total";
/// Counter: jobs whose lease this run lost (another worker took them over).
pub const LEASES_LOST: &str = "oncefetch_leases_lost_total";
/// Counter: fenced writes (commit, renew, release) the ledger refused
/// because the lease had moved on.
pub const FENCED_WRITES_REFUSED: &str = "oncefetch_fenced_writes_refused_total";
/// Counter, label `kind` (`lease_freed`, `op_abandoned`, `partial_removed`,
/// `partial_kept`, `requeued_missing`, `cleanup`): recovery actions.
pub const RECOVERY_ACTIONS: &str = "oncefetch_recovery_actions_total";
/// Histogram: one fenced ledger commit.
pub const LEDGER_COMMIT_DURATION: &str = "oncefetch_ledger_commit_duration_seconds";
/// Gauge, label `host`: requests in flight per host.
pub const HOST_IN_FLIGHT: &str = "oncefetch_host_in_flight";
/// Counter, label `host`: jobs put off because their host was paused by
/// its circuit breaker.
pub const HOST_DEFERRED: &str = "oncefetch_host_deferred_total";

/// Every histogram, for an exporter to give buckets to.
pub const HISTOGRAMS: [&str; 3] = [DOWNLOAD_DURATION, TIME_TO_FIRST_BYTE, LEDGER_COMMIT_DURATION];

/// Histogram buckets, in seconds: 1 ms to 5 min.
pub const SECONDS_BUCKETS: [f64; 14] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0, 60.0, 300.0,
];

/// Gives every metric its help text (the `# HELP` line of an exporter).
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_gauge!(JOBS, "Jobs per state in the ledger, read at each scrape.");
    describe_counter!(JOBS_FINISHED, "Jobs this run finished, by outcome.");
    describe_counter!(REQUESTS, "GET and HEAD requests, by status class and outcome.");
    describe_counter!(RECEIVED_BYTES, Unit::Bytes, "Body bytes received.");
    describe_histogram!(
        DOWNLOAD_DURATION,
        Unit::Seconds,
        "GETs, from start to the end of the body."
    );
    describe_histogram!(
        TIME_TO_FIRST_BYTE,
        Unit::Seconds,
        "GETs, from start until the headers are in."
    );
    describe_counter!(RETRIES, "Failed attempts that will be retried, by reason.");
    describe_counter!(RESUMES, "GETs that asked to resume a partial file, by outcome.");
    describe_counter!(
        VERIFY_MISMATCHES,
        "Downloads that failed their declared sha256 or size."
    );
    describe_counter!(DUPLICATES_LINKED, "Jobs linked to an earlier copy of the same content.");
    describe_counter!(
        DUPLICATE_SAVED_BYTES,
        Unit::Bytes,
        "Bytes not downloaded thanks to duplicate links."
    );
    describe_counter!(LEASES_GRANTED, "Leases granted to this run.");
    describe_counter!(LEASES_RENEWED, "Leases renewed by this run.");
    describe_counter!(LEASES_LOST, "Jobs whose lease this run lost to another worker.");
    describe_counter!(
        FENCED_WRITES_REFUSED,
        "Fenced writes the ledger refused (the lease had moved on)."
    );
    describe_counter!(RECOVERY_ACTIONS, "Recovery actions, by kind.");
    describe_histogram!(LEDGER_COMMIT_DURATION, Unit::Seconds, "Fenced ledger commits.");
    describe_gauge!(HOST_IN_FLIGHT, "Requests in flight, by host.");
    describe_counter!(HOST_DEFERRED, "Jobs put off while their host was paused, by host.");
}
