//! The command line (SPEC §7).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use clap_complete::Shell;
use oncefetch_core::pipeline::{HostPolicies, Rate};
use oncefetch_core::JobState;

use crate::help::{after_help, after_long_help, long_version, Topic};

/// Download a manifest of artifacts exactly once, and survive crashes.
///
/// Every artifact ends in exactly one terminal state (SUCCESS, SKIPPED_DUPLICATE
/// or FAILED); files appear atomically and complete, or not at all; kill it at
/// any moment and run it again to carry on where it stopped.
///
/// Credentials in a URL (`https://user:pass@host/…`) are sent with the
/// request but never shown: `jobs`, `ledger`, log lines and error messages
/// print `user:***@` (a user name given alone, as access tokens are, prints
/// as `***@`). The job key still hashes the URL as written.
///
/// Files hold the bytes as served: a body sent with `Content-Encoding: gzip`
/// is stored compressed (like curl without `--compressed`), and `sha256` and
/// `size` are checked against those bytes.
#[derive(Debug, Parser)]
#[command(
    name = "oncefetch",
    version,
    long_version = long_version(),
    max_term_width = 100,
    after_help = after_help(Topic::Top),
    after_long_help = after_long_help(Topic::Top)
)]
pub struct Cli {
    /// Ledger: `sqlite:PATH`, `sqlite://PATH`, a bare path, or
    /// `postgres://…` (when built with the `postgres` feature). Only `plan` and
    /// `fetch` create a missing SQLite ledger; other commands refuse it (exit 1).
    #[arg(
        long,
        global = true,
        env = "ONCEFETCH_DB",
        default_value = "sqlite:oncefetch.db",
        value_name = "URL"
    )]
    pub db: String,

    /// More log output (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Print only errors and the end-of-run summary: no progress bar, no per-job log lines, no heartbeat.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Colour in log lines and progress bars: `auto` colours a terminal unless `NO_COLOR` is set (to anything but
    /// the empty string); `always` and `never` override both.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// When to colour standard error (`--color`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// On a terminal, unless `NO_COLOR` is set.
    Auto,
    /// Always, even into a file or a pipe.
    Always,
    /// Never.
    Never,
}

/// Whether a run obeys `robots.txt` (`--robots`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum RobotsChoice {
    /// Never request `robots.txt` (as wget and curl do for explicit URL lists).
    #[default]
    Ignore,
    /// Fetch each host's `robots.txt` once per run and fail the jobs it disallows, without retry.
    Respect,
}

impl From<RobotsChoice> for oncefetch_core::robots::RobotsMode {
    fn from(choice: RobotsChoice) -> Self {
        match choice {
            RobotsChoice::Ignore => Self::Ignore,
            RobotsChoice::Respect => Self::Respect,
        }
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Plan the jobs of a manifest (idempotent); prints new / already planned / rejected (`--json`: one object).
    #[command(after_help = after_help(Topic::Plan), after_long_help = after_long_help(Topic::Plan))]
    Plan(PlanArgs),
    /// Recover stale work, then download until every job in the ledger is settled, showing progress (a bar on a
    /// terminal, log lines otherwise) and ending with a summary: what was fetched, the failures grouped by reason,
    /// what to do next.
    #[command(after_help = after_help(Topic::Run), after_long_help = after_long_help(Topic::Run))]
    Run(RunArgs),
    /// `plan` then `run`.
    #[command(after_help = after_help(Topic::Fetch), after_long_help = after_long_help(Topic::Fetch))]
    Fetch(FetchArgs),
    /// Count jobs per state, the bytes done, FAILED jobs retryable or final and those waiting out a backoff, and
    /// the in-flight jobs a live lease holds apart from those whose lease expired.
    #[command(after_help = after_help(Topic::Status), after_long_help = after_long_help(Topic::Status))]
    Status(StatusArgs),
    /// List jobs: a table on a terminal, else (or with `--json`) one JSON object per line (with the owner and
    /// expiry of a live lease); narrow with `--state`, `--work`, `--host`, `--error`, `--limit`.
    #[command(after_help = after_help(Topic::Jobs), after_long_help = after_long_help(Topic::Jobs))]
    Jobs(JobsArgs),
    /// Show the operations ledger: a table on a terminal, else (or with `--json`) one JSON object per line and
    /// attempt.
    #[command(after_help = after_help(Topic::Ledger), after_long_help = after_long_help(Topic::Ledger))]
    Ledger(LedgerArgs),
    /// Reconcile expired leases, abandoned ops, orphan partial files, and ledger vs files.
    #[command(after_help = after_help(Topic::Recover), after_long_help = after_long_help(Topic::Recover))]
    Recover(RecoverArgs),
    /// Re-hash every finished artifact against the ledger (read-only).
    #[command(after_help = after_help(Topic::Verify), after_long_help = after_long_help(Topic::Verify))]
    Verify(VerifyArgs),
    /// Requeue FAILED jobs: by default every retryable one (out of attempts, or waiting out a backoff), never a
    /// non-retryable one unless `--permanent`; narrow with `--job`, `--work`, `--host`, `--error` (all must match).
    /// Prints how many it requeued, retryable and permanent (`--json`: one object).
    #[command(after_help = after_help(Topic::Retry), after_long_help = after_long_help(Topic::Retry))]
    Retry(RetryArgs),
    /// Print a shell completion script to standard output (opens no ledger).
    #[command(
        after_help = after_help(Topic::Completions),
        after_long_help = after_long_help(Topic::Completions)
    )]
    Completions(CompletionsArgs),
    /// Serve read-only status pages and a JSON API over the ledger (`/`, `/jobs`, `/job/KEY`, `/api/status`,
    /// `/api/jobs`, `/api/hosts`): any host can watch a fleet's shared ledger. Binds loopback unless `--addr` says
    /// otherwise, and then needs `--auth-token`; runs until interrupted.
    #[command(after_help = after_help(Topic::Serve), after_long_help = after_long_help(Topic::Serve))]
    Serve(ServeArgs),
}

/// `plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// JSON Lines manifest (CSV with a header row when it ends in `.csv`; `-` reads standard input).
    pub manifest: String,
    /// Record the `sha256`/`size` a line declares on its already planned job instead of rejecting the
    /// line; a finished job whose content no longer matches is requeued (an in-flight job is left as
    /// it is, and its line rejected).
    #[arg(long)]
    pub update_expected: bool,
    /// Print the counts as one JSON object (`{"new":N,"already_planned":N,"rejected":N}`, with `--update-expected`
    /// also `"expectations_updated"` and `"requeued"`) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `run` (and the run half of `fetch`).
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Output folder: each artifact goes to DIR/<work_id>/<artifact_id>. Or, built with the `s3` feature, a
    /// bucket: `s3://bucket/prefix` (objects `prefix/<work_id>/<artifact_id>`; credentials, region and endpoint
    /// from the `AWS_*` variables).
    #[arg(short, long, value_name = "DIR")]
    pub out: PathBuf,
    /// Downloads at once (finished downloads are fsynced, placed and recorded
    /// while the next ones run).
    #[arg(short = 'j', long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=4096), value_name = "N")]
    pub concurrency: u32,
    /// Downloads per host at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=4096), value_name = "N")]
    pub per_host: u32,
    /// Lease length (renewed every third of it while a job runs), at least `1s`, e.g. `30s`, `5m`,
    /// `2h`.
    #[arg(long, default_value = "60s", value_parser = parse_lease_ttl, value_name = "DUR")]
    pub lease_ttl: Duration,
    /// Attempts (requests that transfer the body) per job.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..), value_name = "N")]
    pub max_attempts: u32,
    /// Largest artifact accepted, e.g. `4GiB`, `500MB`, `1048576`.
    #[arg(long, default_value = "4GiB", value_parser = parse_size, value_name = "BYTES")]
    pub max_size: u64,
    /// Connect timeout.
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DUR")]
    pub connect_timeout: Duration,
    /// Longest silence while reading a response.
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DUR")]
    pub read_timeout: Duration,
    /// First wait before retrying a transient failure (doubles per attempt, with full jitter; a server's
    /// `Retry-After` wins when longer).
    #[arg(long, default_value = "500ms", value_parser = parse_duration, value_name = "DUR")]
    pub backoff: Duration,
    /// Expected media type (`type/subtype` or `type/*`, e.g. `application/pdf`) for jobs whose manifest line gives
    /// no `content_type`: a response whose Content-Type or first bytes do not fit fails without retry.
    #[arg(long, value_parser = parse_accept, value_name = "TYPE")]
    pub accept: Option<String>,
    /// The longest `Retry-After` (or backoff) a run waits out: a job a server asks to wait longer is left FAILED,
    /// retryable, with its next attempt when the server said, and the run ends without it (exit 4; run again
    /// later, or `oncefetch retry`).
    #[arg(long, default_value = "15m", value_parser = parse_duration, value_name = "DUR")]
    pub max_retry_after: Duration,
    /// Per-host policies, TOML: a `[default]` table and `[host."NAME"]` tables (NAME a host, any port, or
    /// `HOST:PORT`) with `rate` (as `--rate-per-host`), `concurrency` (as `--per-host`) and `bandwidth` (bytes per
    /// second of that host's downloads together, as `--limit-rate`); a key a host's table leaves out comes from
    /// `[default]`, then from the flags. `headers = { "Name" = "value", … }` adds headers to every request to that
    /// host, over `--header` and `--user-agent` of the same name (a host's merge by name over `[default]`'s).
    /// Read and checked with the other arguments, before anything is planned or fetched.
    #[arg(long, value_name = "FILE", value_parser = parse_hosts_file)]
    pub hosts: Option<HostPolicies>,
    /// Requests per host, evenly spaced (every request of a job waits its turn: the GET, and a second GET when a
    /// resume is refused), e.g. `5/s`, `1/3s`, `100/min`; unlimited when not given.
    #[arg(long, value_parser = parse_rate, value_name = "RATE")]
    pub rate_per_host: Option<Rate>,
    /// Body bytes per second over all downloads together, e.g. `500k`, `2M`, `1MiB/s` (units as for
    /// `--max-size`: k = 1000, KiB = 1024); unlimited when not given.
    #[arg(long, value_parser = parse_bandwidth, value_name = "BYTES/s")]
    pub limit_rate: Option<u64>,
    /// Download one large file over up to N connections at once (like aria2c's `-x N -s N`): pieces of it asked
    /// for with ranged GETs and written at their offsets, what is written recorded in the ledger so that a crash
    /// resumes every piece. Only a file of at least two `--split-min` whose first answer is a 200 that accepts
    /// ranges and carries a validator is split; others stream over one connection. 1 (the default) never splits.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64), value_name = "N")]
    pub split: u32,
    /// Bytes per connection of a split download at least: a file is split over `min(N, size / SIZE)` connections,
    /// e.g. `20MiB` (the default), `100MB`.
    #[arg(long, default_value = "20MiB", value_parser = parse_split_min, value_name = "SIZE")]
    pub split_min: u64,
    /// `respect`: fetch each host's `/robots.txt` once per run and fail the jobs it disallows (for user-agent
    /// `oncefetch`, else `*`) without retry; a 4xx robots.txt allows everything, one that cannot be read (5xx,
    /// network error) fails the host's jobs retryably for this run. `ignore`: never request it.
    #[arg(long, value_enum, default_value_t = RobotsChoice::Ignore, value_name = "MODE")]
    pub robots: RobotsChoice,
    /// Skip fsync when placing files (faster; a power loss may lose recent files, never corrupt them in place).
    #[arg(long)]
    pub no_fsync: bool,
    /// When standard error is not a terminal, log a progress line this often (files, bytes, rate, ETA, in flight,
    /// failures), e.g. `10s`, `1m`.
    #[arg(long, default_value = "30s", value_parser = parse_interval, value_name = "DUR")]
    pub progress_interval: Duration,
    /// Longest time one request may take, body included (like curl's `--max-time`); one that takes longer
    /// fails transiently and the next attempt resumes where it stopped. No limit by default.
    #[arg(long, value_parser = parse_interval, value_name = "DUR")]
    pub max_time: Option<Duration>,
    /// Give up on a body that averages fewer than BYTES per second over `--low-speed-time` (like curl's
    /// `-Y`), e.g. `10KiB`; a transient failure, resumed by the next attempt. Off by default.
    #[arg(long, value_parser = parse_size, value_name = "BYTES")]
    pub low_speed: Option<u64>,
    /// The span `--low-speed` is averaged over (like curl's `-y`).
    #[arg(long, default_value = "30s", value_parser = parse_interval, value_name = "DUR", requires = "low_speed")]
    pub low_speed_time: Duration,
    /// `User-Agent` sent with every request.
    #[arg(
        long,
        env = "ONCEFETCH_USER_AGENT",
        default_value = concat!("oncefetch/", env!("CARGO_PKG_VERSION")),
        value_name = "TEXT"
    )]
    pub user_agent: String,
    /// A header sent with every request, `Name: value` (repeat for more; a later one of the same name wins,
    /// `User-Agent` included).
    #[arg(long = "header", value_parser = parse_header, value_name = "NAME: VALUE")]
    pub headers: Vec<(String, String)>,
    /// PEM file of one or more CA certificates trusted besides the bundled roots and the system's (repeat for
    /// more files).
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Vec<PathBuf>,
    /// Do not check TLS certificates at all: anyone on the way can read and change the downloads. Warns at
    /// start and marks each job's HEAD result `"insecure": true`.
    #[arg(long)]
    pub insecure: bool,
    /// Send every request through this proxy (`http://[user:pass@]host:port`; hosts in `NO_PROXY` are still
    /// reached directly); without it the `*_PROXY` variables decide.
    #[arg(long, value_name = "URL")]
    pub proxy: Option<String>,
    /// Also print the end-of-run summary as one JSON object on standard output (`fetch` then prints its
    /// `planned:` line on standard error, and the plan's counts go in the object).
    #[arg(long)]
    pub json: bool,
    /// With `--out s3://…`: the S3-compatible server to use (e.g. `http://127.0.0.1:8333`), over
    /// `AWS_ENDPOINT_URL`.
    #[arg(long, value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// With `--out s3://…`: path-style requests (`ENDPOINT/bucket/key`), as most S3-compatible servers want,
    /// instead of virtual-hosted ones (`bucket.ENDPOINT/key`).
    #[arg(long)]
    pub s3_path_style: bool,
    /// Serve Prometheus metrics at `/metrics`, and the status pages of `serve`, at this address while the run
    /// lasts, e.g. `127.0.0.1:9464` (port 0 picks one, printed at start). An address that is not loopback needs
    /// `--auth-token`.
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// The token every request to `--metrics-addr` must carry (`Authorization: Bearer TOKEN`, or `?token=TOKEN`
    /// in a browser); required for an address that is not loopback.
    #[arg(long, env = "ONCEFETCH_AUTH_TOKEN", value_name = "TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,
}

/// `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks one, printed at start). An address that is not loopback needs
    /// `--auth-token`: the pages show the ledger's URLs and errors.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub addr: std::net::SocketAddr,
    /// The token every request must carry (`Authorization: Bearer TOKEN`, or `?token=TOKEN` once in a browser,
    /// which then keeps it in a cookie); required for an address that is not loopback.
    #[arg(long, env = "ONCEFETCH_AUTH_TOKEN", value_name = "TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,
    /// Attempts per job, as given to `run`: a retryable FAILED job that used this many is final.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..), value_name = "N")]
    pub max_attempts: u32,
    /// How often the pages refresh themselves, in seconds.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600), value_name = "SECS")]
    pub refresh: u64,
}

/// `fetch`.
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Manifest, as for `plan`.
    pub manifest: String,
    /// Run options.
    #[command(flatten)]
    pub run: RunArgs,
}

/// `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// `{"total":N,"states":{…},"leases":{…},"bytes_done":N,"failed":{…},"backoff_waiting":N}` instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Attempts per job, as given to `run`: a retryable FAILED job that used this many is final (counted in
    /// `failed.final`, not waiting out a backoff).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..), value_name = "N")]
    pub max_attempts: u32,
}

/// `jobs`.
#[derive(Debug, Args)]
pub struct JobsArgs {
    /// Only jobs in this state (e.g. FAILED).
    #[arg(long, value_parser = parse_state, value_name = "S")]
    pub state: Option<JobState>,
    /// Narrowing by work id, host and error.
    #[command(flatten)]
    pub narrow: NarrowArgs,
    /// At most N jobs (the first N in job-key order that match).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..), value_name = "N")]
    pub limit: Option<u64>,
    /// JSON Lines even on a terminal (the format whenever standard output is not a terminal).
    #[arg(long)]
    pub json: bool,
}

/// `ledger`.
#[derive(Debug, Args)]
pub struct LedgerArgs {
    /// Only this job's rows: its key, or a prefix of one key (an unknown or ambiguous one is an error).
    #[arg(long, value_name = "KEY")]
    pub job: Option<String>,
    /// JSON Lines even on a terminal (the format whenever standard output is not a terminal).
    #[arg(long)]
    pub json: bool,
}

/// `recover`.
#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// Only leases expired at least this long ago.
    #[arg(long, default_value = "0s", value_parser = parse_duration, value_name = "DUR")]
    pub stale_after: Duration,
    /// Output folder whose partial files to reconcile (finished files are checked by their ledger path either way).
    #[arg(short, long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print what it did as one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// With `--out s3://…`: the S3-compatible server, over `AWS_ENDPOINT_URL`.
    #[arg(long, value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// With `--out s3://…`: path-style requests.
    #[arg(long)]
    pub s3_path_style: bool,
}

/// `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Output folder the artifacts should be in: one the ledger records elsewhere (a moved folder, or the wrong
    /// one) counts as missing. Without it, every artifact is checked at the path the ledger records.
    #[arg(short, long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print the counts as one JSON object on standard output (each problem found goes to standard error).
    #[arg(long)]
    pub json: bool,
    /// Artifacts checked at once (objects are streamed back from their bucket).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256), value_name = "N")]
    pub verify_concurrency: u32,
    /// For artifacts in a bucket: the S3-compatible server, over `AWS_ENDPOINT_URL`.
    #[arg(long, value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// For artifacts in a bucket: path-style requests.
    #[arg(long)]
    pub s3_path_style: bool,
    /// Compare the recorded size (and a stored SHA-256) without reading the bytes. A local file has no stored
    /// hash: quick checks that a regular file stands at the path with the recorded size. An object in a bucket is
    /// HEADed: its size must match, and its `x-amz-meta-oncefetch-sha256` metadata (objects written by one PUT,
    /// under 5 MiB) the recorded SHA-256; a larger object, placed by a server-side copy that carries no metadata,
    /// must carry the ETag the ledger recorded when it was placed. An object with neither (a duplicate placed by
    /// copy) is read back and hashed.
    #[arg(long)]
    pub quick: bool,
}

/// `retry`.
#[derive(Debug, Args)]
pub struct RetryArgs {
    /// Requeue jobs in this state: FAILED (the default) or SKIPPED_DUPLICATE. SUCCESS is refused: `oncefetch
    /// recover` requeues a finished job whose file went missing.
    #[arg(long, default_value = "FAILED", value_parser = parse_retry_state, value_name = "S")]
    pub state: JobState,
    /// Only this job: its key, or a prefix of one key (an unknown or ambiguous one is an error).
    #[arg(long, value_name = "KEY")]
    pub job: Option<String>,
    /// Narrowing by work id, host and error.
    #[command(flatten)]
    pub narrow: NarrowArgs,
    /// Also requeue non-retryable failures (404, 410, refused redirects, …); by default only retryable FAILED
    /// jobs are requeued.
    #[arg(long)]
    pub permanent: bool,
    /// Print the counts as one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The narrowing `jobs` and `retry` share.
#[derive(Debug, Args)]
pub struct NarrowArgs {
    /// Only jobs of this work id.
    #[arg(long, value_name = "ID")]
    pub work: Option<String>,
    /// Only jobs whose URL's host is HOST (any port), or HOST:PORT (that port only).
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// Only jobs whose last error contains TEXT (case-sensitive).
    #[arg(long, value_name = "TEXT")]
    pub error: Option<String>,
}

/// `completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// A state `retry` requeues: FAILED or SKIPPED_DUPLICATE.
pub fn parse_retry_state(s: &str) -> Result<JobState, String> {
    match parse_state(s)? {
        state @ (JobState::Failed | JobState::SkippedDuplicate) => Ok(state),
        JobState::Success => Err(
            "retry does not requeue SUCCESS jobs; `oncefetch recover` requeues a finished \
             job whose file went missing (and `oncefetch verify` finds them)"
                .into(),
        ),
        other => Err(format!("retry requeues FAILED or SKIPPED_DUPLICATE jobs, not {other}")),
    }
}

/// `Name: value`: a header name (an RFC 9110 token) and a value without
/// control characters; blanks around the value are dropped.
pub fn parse_header(s: &str) -> Result<(String, String), String> {
    let Some((name, value)) = s.split_once(':') else {
        return Err("expected `Name: value`".into());
    };
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        return Err(format!("{name:?} is not a header name (expected `Name: value`)"));
    }
    let value = value.trim_matches([' ', '\t']);
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err("the value holds a control character".into());
    }
    Ok((name.to_owned(), value.to_owned()))
}

/// `30s`, `5m`, `2h` (and anything `humantime` reads).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| format!("{e} (expected e.g. 30s, 5m, 2h)"))
}

/// A heartbeat interval: a duration longer than zero.
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        Duration::ZERO => Err("must be longer than zero".into()),
        interval => Ok(interval),
    }
}

/// A lease length: a duration of at least
/// [`MIN_LEASE_TTL`](oncefetch_core::pipeline::MIN_LEASE_TTL).
pub fn parse_lease_ttl(s: &str) -> Result<Duration, String> {
    let ttl = parse_duration(s)?;
    let min = oncefetch_core::pipeline::MIN_LEASE_TTL;
    if ttl < min {
        return Err(format!(
            "must be at least {} (a shorter lease expires before it can be renewed)",
            humantime::format_duration(min)
        ));
    }
    Ok(ttl)
}

/// A request rate, `COUNT/PERIOD`.
pub fn parse_rate(s: &str) -> Result<Rate, String> {
    s.parse()
        .map_err(|e: oncefetch_core::pipeline::rate::BadRate| e.to_string())
}

/// A bandwidth: a size per second, more than zero (`/s` optional).
pub fn parse_bandwidth(s: &str) -> Result<u64, String> {
    let trimmed = s.trim();
    let size = trimmed.strip_suffix("/s").unwrap_or(trimmed);
    match parse_size(size)? {
        0 => Err("must be more than zero bytes per second".into()),
        n => Ok(n),
    }
}

/// A hosts file (`--hosts`), read and parsed; the error names the file,
/// the line and the key.
pub fn parse_hosts_file(path: &str) -> Result<HostPolicies, String> {
    crate::hosts::load(std::path::Path::new(path)).map_err(|e| format!("{e:#}"))
}

/// A state name.
pub fn parse_state(s: &str) -> Result<JobState, String> {
    s.parse()
        .map_err(|e: oncefetch_core::state::UnknownState| e.to_string())
}

/// A media type for `--accept` ([`content::parse_expected`](oncefetch_core::content::parse_expected)).
pub fn parse_accept(s: &str) -> Result<String, String> {
    oncefetch_core::content::parse_expected(s).map_err(|e| e.replacen("content_type ", "", 1))
}

/// `--split-min`: a size (as [`parse_size`]) of at least 1 MiB.
fn parse_split_min(s: &str) -> Result<u64, String> {
    let size = parse_size(s)?;
    if size < 1 << 20 {
        return Err(format!("{s} is below 1MiB"));
    }
    Ok(size)
}

/// Bytes: a number with an optional unit (`B`, `KB`, `KiB`, `MB`, `MiB`, `GB`, `GiB`, `TB`, `TiB`).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a size (expected e.g. 4GiB, 500MB, 1048576)"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" | "k" => 1_000,
        "kib" => 1 << 10,
        "mb" | "m" => 1_000_000,
        "mib" => 1 << 20,
        "gb" | "g" => 1_000_000_000,
        "gib" => 1 << 30,
        "tb" | "t" => 1_000_000_000_000,
        "tib" => 1 << 40,
        other => {
            return Err(format!(
                "unknown size unit {other:?} (expected B, KB, KiB, MB, MiB, GB, GiB, TB, TiB)"
            ))
        }
    };
    n.checked_mul(factor).ok_or_else(|| format!("size {s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("4GiB"), Ok(4 << 30));
        assert_eq!(parse_size("500MB"), Ok(500_000_000));
        assert_eq!(parse_size("123"), Ok(123));
        assert!(parse_size("12XB").is_err());
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert!(parse_duration("soon").is_err());
        assert_eq!(parse_interval("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_header("X-Token:  a b "), Ok(("X-Token".into(), "a b".into())));
        assert_eq!(parse_header("Accept:"), Ok(("Accept".into(), String::new())));
        for bad in ["no colon", ": v", "Bad Name: v", "X: a\nb"] {
            assert!(parse_header(bad).is_err(), "{bad}");
        }
        assert!(parse_interval("0s").is_err());
        assert_eq!(parse_lease_ttl("1s"), Ok(Duration::from_secs(1)));
        for short in ["0s", "1ms", "999ms"] {
            let err = parse_lease_ttl(short).unwrap_err();
            assert!(err.contains("at least 1s"), "{short}: {err}");
        }
    }

    #[test]
    fn quiet_and_verbose_exclude_each_other() {
        assert!(Cli::try_parse_from(["oncefetch", "-q", "-v", "status"]).is_err());
        let quiet = Cli::try_parse_from(["oncefetch", "status", "-q", "--color", "never"]).unwrap();
        assert!(quiet.quiet);
        assert_eq!(quiet.color, ColorChoice::Never);
        assert!(Cli::try_parse_from(["oncefetch", "--color", "sometimes", "status"]).is_err());
    }

    #[test]
    fn db_goes_before_or_after_the_subcommand() {
        let before = Cli::try_parse_from(["oncefetch", "--db", "x.db", "status"]).unwrap();
        let after = Cli::try_parse_from(["oncefetch", "status", "--db", "x.db"]).unwrap();
        assert_eq!(before.db, "x.db");
        assert_eq!(after.db, "x.db");
    }
}
