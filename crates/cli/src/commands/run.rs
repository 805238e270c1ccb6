//! `run --out DIR`: recover, then process jobs until the ledger is settled,
//! showing progress as it goes and a summary at the end.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use oncefetch_core::destination::{open_destination, Destination, DestinationOptions};
use oncefetch_core::pipeline::recover::recover;
use oncefetch_core::pipeline::{OutDir, Pipeline, RunConfig, SplitConfig};
use oncefetch_core::{FetcherConfig, JobState, LowSpeed, StatusCounts, Store};

use crate::cli::RunArgs;
use crate::commands::plan::Planned;
use crate::exit;
use crate::progress::RunProgress;
use crate::serve::RunWatch;
use crate::signals::Signals;
use crate::summary::Summary;
use crate::terminal::Terminal;

/// The ledger records paths as text: an output folder whose path is not
/// UTF-8 is refused rather than recorded lossily.
fn utf8(path: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(
        path.to_str().is_some(),
        "output folder {} is not valid UTF-8: the ledger records file paths as text; choose a folder whose path is UTF-8",
        path.display()
    );
    Ok(())
}

/// The destination `--out` names: a bucket (`s3://…`, probed for
/// conditional writes) or the output folder, made and probed.
async fn open_out(args: &RunArgs) -> anyhow::Result<Arc<dyn Destination>> {
    let options = DestinationOptions {
        endpoint: args.s3_endpoint.clone(),
        path_style: args.s3_path_style,
    };
    let named = args.out.to_str().unwrap_or_default();
    if let Some(dest) = open_destination(named, options).await? {
        dest.probe()
            .await
            .with_context(|| format!("--out {}: the destination cannot take artifacts", dest.describe()))?;
        return Ok(dest);
    }
    let absolute = std::path::absolute(&args.out).with_context(|| format!("output folder {}", args.out.display()))?;
    utf8(&absolute)?;
    let out =
        OutDir::create(&args.out).with_context(|| format!("output folder {} is not writable", args.out.display()))?;
    // The real folder, once links are resolved, is the one recorded.
    utf8(out.root())?;
    // Fails at start when the folder cannot take new files (a read-only
    // mount, say), rather than failing every job.
    out.probe().with_context(|| {
        format!(
            "output folder {} is not writable (cannot create files in {})",
            out.root().display(),
            out.partial_dir().display()
        )
    })?;
    Ok(Arc::new(out))
}

/// Runs; 4 when jobs in the ledger ended FAILED, 130/143 when a signal
/// interrupted it (after its leases were given back). The summary names
/// `planned`, the counts of `fetch`'s plan, when given.
pub(crate) async fn run(
    store: Arc<dyn Store>,
    args: &RunArgs,
    terminal: &Terminal,
    signals: &Signals,
    planned: Option<Planned>,
) -> anyhow::Result<u8> {
    let out = open_out(args).await?;
    let fetcher_config = FetcherConfig {
        connect_timeout: args.connect_timeout,
        read_timeout: args.read_timeout,
        max_size: args.max_size,
        user_agent: args.user_agent.clone(),
        headers: args.headers.clone(),
        ca_certs: args.ca_cert.clone(),
        insecure: args.insecure,
        proxy: args.proxy.clone(),
        max_time: args.max_time,
        low_speed: args.low_speed.map(|bytes_per_sec| LowSpeed {
            bytes_per_sec,
            time: args.low_speed_time,
        }),
        ..FetcherConfig::default()
    };
    if args.insecure {
        tracing::warn!(
            "--insecure: TLS certificates are NOT checked; anyone on the way can read and change what is downloaded"
        );
    }
    let fetcher = oncefetch_core::open_fetcher("https", &fetcher_config)
        .map_err(|e| anyhow::anyhow!("cannot start the HTTP client: {e}"))?;
    // `--metrics-addr`: counted and served until this function returns.
    let (watch, store) = match args.metrics_addr {
        Some(addr) => {
            let source = format!("the ledger of run {}", std::process::id());
            RunWatch::start(addr, args.auth_token.clone(), store, args.max_attempts, source).await?
        }
        None => (RunWatch::off(), store),
    };
    let fetcher = watch.fetcher(fetcher);
    let report = recover(store.as_ref(), Some(out.as_ref()), std::time::Duration::ZERO)
        .await
        .context("recovery failed")?;
    watch.recovered(&report);
    if report != Default::default() {
        tracing::info!(?report, "recovery done");
    }
    let outstanding = store.outstanding(args.max_attempts, Some(args.max_retry_after)).await?;
    let progress = Arc::new(RunProgress::start(terminal, outstanding, args.progress_interval));
    let config = RunConfig {
        concurrency: args.concurrency as usize,
        per_host: args.per_host as usize,
        lease_ttl: args.lease_ttl,
        max_attempts: args.max_attempts,
        max_size: args.max_size,
        fsync: !args.no_fsync,
        backoff_base: args.backoff,
        accept: args.accept.clone(),
        max_retry_after: args.max_retry_after,
        rate_per_host: args.rate_per_host,
        limit_rate: args.limit_rate,
        split: SplitConfig {
            connections: args.split as usize,
            min_size: args.split_min,
        },
        hosts: args.hosts.clone().unwrap_or_default(),
        robots: args.robots.into(),
        ..RunConfig::default()
    };
    let pipeline = Pipeline::new(
        Arc::clone(&store),
        fetcher,
        out,
        config,
        watch.progress(progress.clone()),
    );
    let ran = {
        let _guard = signals.interrupting(pipeline.interrupter());
        pipeline.run().await
    };
    let tally = progress.finish();
    let ran = ran.context("run stopped")?;
    let summarize = |ledger: Option<&StatusCounts>, stopped: Option<&str>| {
        let summary = Summary::new(&tally, ledger, args.max_attempts, planned, stopped);
        eprint!("{}", summary.text());
        if args.json {
            println!("{}", summary.json());
        }
    };
    if let Some(resource) = pipeline.halted().filter(|_| signals.received().is_none()) {
        eprintln!(
            "run stopped: {resource}; {} jobs stopped and their leases given back, {} succeeded before",
            ran.interrupted, ran.succeeded
        );
        summarize(store.status().await.ok().as_ref(), Some(&resource.to_string()));
        return Ok(exit::FATAL);
    }
    if let Some(code) = signals.received() {
        eprintln!(
            "run interrupted: {} jobs stopped and their leases given back (partial files kept); {} succeeded before; run again to resume",
            ran.interrupted, ran.succeeded
        );
        summarize(store.status().await.ok().as_ref(), Some("interrupted"));
        return Ok(code);
    }
    let after = store.status().await?;
    let failed = after.get(JobState::Failed);
    // Jobs put off (their host paused, no attempt counted), when any were.
    let put_off = match ran.deferred {
        0 => String::new(),
        n => format!(", {n} put off while their host was paused"),
    };
    eprintln!(
        "run: {} succeeded, {} skipped as duplicates, {} failed attempts here{put_off}; ledger: {} SUCCESS, {} SKIPPED_DUPLICATE, {} FAILED of {}",
        ran.succeeded,
        ran.skipped,
        ran.failed,
        after.get(JobState::Success),
        after.get(JobState::SkippedDuplicate),
        failed,
        after.total()
    );
    summarize(Some(&after), None);
    Ok(if failed > 0 { exit::FAILED } else { exit::OK })
}
