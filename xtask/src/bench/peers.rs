//! The clients compared — oncefetch and its peers aria2c and curl — and one timed run of a client
//! under `/usr/bin/time`, with the server's CPU time over the same interval.

use std::ffi::OsString;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::corpus::Inputs;
use super::nginx::Nginx;
use crate::cmd;

/// The concurrency every client gets for the small files.
pub(crate) const CONCURRENCY: u32 = 16;

/// What every aria2c run gets: no preallocation, quiet output (and no `--checksum`: aria2c would
/// re-read the file to hash it).
const ARIA2C_FLAGS: [&str; 4] = [
    "--file-allocation=none",
    "--console-log-level=warn",
    "--summary-interval=0",
    "--download-result=hide",
];

/// A client under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Client {
    /// `oncefetch fetch` with its default durability (fsync each file and its folder) or `--no-fsync`.
    Oncefetch {
        /// Whether files are fsynced (the default).
        fsync: bool,
    },
    /// `aria2c -i LIST -j 16`.
    Aria2c,
    /// `curl -Z --parallel-max 16 -K CONFIG`.
    CurlParallel,
    /// `curl -o FILE URL`, for the one large file (and the split workload's rate-limited file).
    Curl,
    /// `oncefetch fetch … --split N`: the split workload's one file as N ranged connections.
    OncefetchSplit {
        /// N.
        connections: u32,
    },
    /// `aria2c -xN -sN URL`: the split workload's one file as N connections.
    Aria2cSplit {
        /// N.
        connections: u32,
    },
}

impl Client {
    /// A short name for tables and JSON.
    pub(crate) fn label(self) -> String {
        match self {
            Client::Oncefetch { fsync: true } => "oncefetch".to_owned(),
            Client::Oncefetch { fsync: false } => "oncefetch --no-fsync".to_owned(),
            Client::Aria2c => "aria2c -j16".to_owned(),
            Client::CurlParallel => "curl -Z".to_owned(),
            Client::Curl => "curl".to_owned(),
            Client::OncefetchSplit { connections } => format!("oncefetch --split {connections}"),
            Client::Aria2cSplit { connections } => format!("aria2c -x{connections} -s{connections}"),
        }
    }

    /// Whether this is oncefetch (whose ledger is checked after each run, and whose output folder
    /// holds `.oncefetch/`).
    pub(crate) fn is_oncefetch(self) -> bool {
        matches!(self, Client::Oncefetch { .. } | Client::OncefetchSplit { .. })
    }
}

/// Where the programs are.
#[derive(Debug)]
pub(crate) struct Tools {
    /// The release `oncefetch`.
    pub(crate) oncefetch: PathBuf,
    /// `aria2c`.
    pub(crate) aria2c: PathBuf,
    /// `curl`.
    pub(crate) curl: PathBuf,
    /// GNU time.
    pub(crate) time: PathBuf,
}

/// A command line to time: program, arguments and working folder.
#[derive(Debug, Clone)]
pub(crate) struct Invocation {
    program: PathBuf,
    args: Vec<OsString>,
    cwd: PathBuf,
}

impl Invocation {
    fn new(program: &Path, cwd: &Path) -> Invocation {
        Invocation {
            program: program.to_owned(),
            args: Vec::new(),
            cwd: cwd.to_owned(),
        }
    }

    fn arg(mut self, arg: impl Into<OsString>) -> Invocation {
        self.args.push(arg.into());
        self
    }

    fn args<I: IntoIterator<Item = S>, S: Into<OsString>>(mut self, args: I) -> Invocation {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// The command line, shell-quoted (the working folder is the output folder).
    pub(crate) fn display(&self) -> String {
        let mut command = Command::new(&self.program);
        command.args(&self.args);
        cmd::cmdline(&command)
    }

    /// The command to run it directly (not under GNU time), in its working folder.
    pub(crate) fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command.args(&self.args).current_dir(&self.cwd);
        command
    }
}

/// The ledger database of the oncefetch run writing to `out`: beside it, not inside it.
pub(crate) fn db_url(out: &Path) -> String {
    format!("sqlite:{}.db", out.display())
}

/// The command that makes `client` download what `inputs` lists into `out` (which exists and is
/// empty). `single` is the one file's URL and where it goes below `out`, for the clients that name
/// it on the command line ([`Client::Curl`], [`Client::Aria2cSplit`]).
pub(crate) fn invocation(
    client: Client,
    tools: &Tools,
    inputs: &Inputs,
    single: Option<(&str, &str)>,
    out: &Path,
) -> Invocation {
    let concurrency = CONCURRENCY.to_string();
    let fetch = || {
        Invocation::new(&tools.oncefetch, out)
            .arg("fetch")
            .arg(&inputs.manifest)
            .arg("--out")
            .arg(out)
            .arg("--db")
            .arg(db_url(out))
            .args(["--concurrency", &concurrency, "--per-host", &concurrency])
    };
    match client {
        Client::Oncefetch { fsync: true } => fetch(),
        Client::Oncefetch { fsync: false } => fetch().arg("--no-fsync"),
        Client::OncefetchSplit { connections } => fetch().arg("--split").arg(connections.to_string()),
        Client::Aria2c => Invocation::new(&tools.aria2c, out)
            .arg("-i")
            .arg(&inputs.aria2_list)
            .args(["-j", &concurrency])
            .args(ARIA2C_FLAGS)
            .arg("-d")
            .arg(out),
        Client::Aria2cSplit { connections } => {
            let (url, rel) = single.expect("aria2c -x -s downloads one file");
            Invocation::new(&tools.aria2c, out)
                .args([format!("-x{connections}"), format!("-s{connections}")])
                .args(ARIA2C_FLAGS)
                .arg("-d")
                .arg(out)
                .args(["-o", rel, url])
        }
        // Outputs in the config are relative: curl runs in `out`.
        Client::CurlParallel => Invocation::new(&tools.curl, out)
            .args([
                "-sS",
                "--fail",
                "--create-dirs",
                "-Z",
                "--parallel-max",
                &concurrency,
                "-K",
            ])
            .arg(&inputs.curl_config),
        Client::Curl => {
            let (url, rel) = single.expect("curl -o downloads one file");
            Invocation::new(&tools.curl, out).args(["-sS", "--fail", "--create-dirs", "-o", rel, url])
        }
    }
}

/// What one timed run measured.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    /// Wall-clock seconds.
    pub(crate) wall_s: f64,
    /// Peak resident set of the client in KiB (`%M` of GNU time).
    pub(crate) peak_rss_kib: u64,
    /// User CPU seconds of the client.
    pub(crate) user_s: f64,
    /// System CPU seconds of the client.
    pub(crate) sys_s: f64,
    /// CPU seconds of nginx (master and workers) over the same interval, when a server was used.
    pub(crate) server_cpu_s: Option<f64>,
    /// The machine's 1-minute load average just before the run: other work on the shared cores
    /// shows here.
    pub(crate) load_before: Option<f64>,
}

/// Runs `inv` under GNU time, its output going to `log`, after a `sync` so that dirty pages of
/// earlier runs are not written back on this run's time; fails (with the end of the log) unless
/// it exits 0.
pub(crate) fn timed(time: &Path, inv: &Invocation, log: &Path, nginx: Option<&Nginx>) -> Result<Sample> {
    cmd::quiet_ok(&mut Command::new("sync"))?;
    let time_file = log.with_extension("time");
    let out = File::create(log).with_context(|| format!("could not create {}", log.display()))?;
    let mut command = Command::new(time);
    command
        .args(["-f", "%M %U %S", "-o"])
        .arg(&time_file)
        .arg(&inv.program)
        .args(&inv.args)
        .current_dir(&inv.cwd)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out);
    let load_before = load_average();
    let server_before = nginx.map(Nginx::cpu_seconds);
    let start = Instant::now();
    let status = command
        .status()
        .with_context(|| format!("could not start `{}`", cmd::cmdline(&command)))?;
    let wall_s = start.elapsed().as_secs_f64();
    let server_cpu_s = nginx.zip(server_before).map(|(n, before)| n.cpu_seconds() - before);
    if !status.success() {
        bail!(
            "`{}` failed: {status}; end of {}:\n{}",
            inv.display(),
            log.display(),
            tail(log, 15)
        );
    }
    let measured = fs::read_to_string(&time_file).with_context(|| format!("could not read {}", time_file.display()))?;
    let (peak_rss_kib, user_s, sys_s) = parse_time(&measured)
        .with_context(|| format!("unexpected output of GNU time in {}: {measured:?}", time_file.display()))?;
    Ok(Sample {
        wall_s,
        peak_rss_kib,
        user_s,
        sys_s,
        server_cpu_s,
        load_before,
    })
}

/// The 1-minute load average (`/proc/loadavg`).
fn load_average() -> Option<f64> {
    fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `%M %U %S` from the last line GNU time wrote.
fn parse_time(text: &str) -> Option<(u64, f64, f64)> {
    let mut words = text.lines().last()?.split_whitespace();
    let rss = words.next()?.parse().ok()?;
    let user = words.next()?.parse().ok()?;
    let sys = words.next()?.parse().ok()?;
    Some((rss, user, sys))
}

/// `oncefetch plan MANIFEST` into the fresh ledger [`db_url`] of `out` (which need not exist).
pub(crate) fn plan_invocation(oncefetch: &Path, manifest: &Path, out: &Path) -> Invocation {
    let cwd = out.parent().expect("output folders have a parent");
    Invocation::new(oncefetch, cwd)
        .arg("plan")
        .arg(manifest)
        .arg("--db")
        .arg(db_url(out))
}

/// Whether `oncefetch fetch --help` lists `flag`: a flag being added elsewhere may not be in the
/// binary built from this tree yet.
pub(crate) fn fetch_lists_flag(oncefetch: &Path, flag: &str) -> Result<bool> {
    let help = cmd::quiet_ok(Command::new(oncefetch).args(["fetch", "--help"]))?;
    Ok(lists_flag(&help, flag))
}

/// Whether `help` holds `flag` as a word of its own (`--split <N>` holds `--split`, `--split-min`
/// does not).
fn lists_flag(help: &str, flag: &str) -> bool {
    help.split(|c: char| c.is_whitespace() || ",=[]<>`'\"".contains(c))
        .any(|word| word == flag)
}

/// Checks with `oncefetch status --json` that the ledger of the run into `out` holds `expected`
/// jobs, all in `state`.
pub(crate) fn check_ledger(oncefetch: &Path, out: &Path, expected: usize, state: &str) -> Result<()> {
    let status = ledger_status(oncefetch, out)?;
    let total = status["total"].as_u64();
    let in_state = status["states"][state].as_u64();
    if total != Some(expected as u64) || in_state != Some(expected as u64) {
        bail!(
            "the ledger of {} should hold {expected} jobs, all {state}: {status}",
            out.display()
        );
    }
    Ok(())
}

/// `oncefetch status --json` of the ledger of the run into `out`: `{"total": N, "states":
/// {"SUCCESS": N, …}, …}`.
pub(crate) fn ledger_status(oncefetch: &Path, out: &Path) -> Result<Value> {
    let text = cmd::quiet_ok(
        Command::new(oncefetch)
            .args(["status", "--json", "--db"])
            .arg(db_url(out)),
    )?;
    serde_json::from_str(text.trim()).with_context(|| format!("`oncefetch status --json` printed {text:?}"))
}

/// The last `lines` lines of `path`.
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    match fs::read_to_string(path) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(could not read it: {e})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gnu_time_output_parses_after_an_exit_status_line() {
        assert_eq!(parse_time("12345 1.50 0.25\n"), Some((12345, 1.5, 0.25)));
        assert_eq!(
            parse_time("Command exited with non-zero status 4\n99 0.00 0.01\n"),
            Some((99, 0.0, 0.01))
        );
        assert_eq!(parse_time(""), None);
    }

    #[test]
    fn commands_read_as_documented() {
        let tools = Tools {
            oncefetch: "/t/oncefetch".into(),
            aria2c: "aria2c".into(),
            curl: "curl".into(),
            time: "/usr/bin/time".into(),
        };
        let inputs = Inputs {
            manifest: "/b/small.jsonl".into(),
            aria2_list: "/b/small.aria2".into(),
            curl_config: "/b/small.curl".into(),
        };
        let out = Path::new("/b/out");
        let line = |c| invocation(c, &tools, &inputs, Some(("http://h/large/f", "large/f")), out).display();
        assert_eq!(
            line(Client::Oncefetch { fsync: true }),
            "/t/oncefetch fetch /b/small.jsonl --out /b/out --db sqlite:/b/out.db --concurrency 16 --per-host 16"
        );
        assert!(line(Client::Oncefetch { fsync: false }).ends_with(" --no-fsync"));
        assert!(line(Client::Aria2c).starts_with("aria2c -i /b/small.aria2 -j 16 --file-allocation=none"));
        assert!(line(Client::Aria2c).ends_with(" -d /b/out"));
        assert_eq!(
            line(Client::CurlParallel),
            "curl -sS --fail --create-dirs -Z --parallel-max 16 -K /b/small.curl"
        );
        assert_eq!(
            line(Client::Curl),
            "curl -sS --fail --create-dirs -o large/f http://h/large/f"
        );
        assert!(line(Client::OncefetchSplit { connections: 16 }).ends_with(" --per-host 16 --split 16"));
        assert_eq!(
            line(Client::Aria2cSplit { connections: 8 }),
            "aria2c -x8 -s8 --file-allocation=none --console-log-level=warn --summary-interval=0 \
             --download-result=hide -d /b/out -o large/f http://h/large/f"
        );
        assert_eq!(Client::Aria2cSplit { connections: 16 }.label(), "aria2c -x16 -s16");
        assert_eq!(
            Client::OncefetchSplit { connections: 16 }.label(),
            "oncefetch --split 16"
        );
        assert!(Client::OncefetchSplit { connections: 16 }.is_oncefetch());
    }

    #[test]
    fn a_flag_is_listed_only_as_a_word_of_its_own() {
        let help = "Options:\n  -j, --concurrency <N>\n      --split-min <SIZE>  per connection\n";
        assert!(lists_flag(help, "--concurrency"));
        assert!(!lists_flag(help, "--split"));
        assert!(lists_flag(
            &format!("{help}      --split <N>  ranged connections\n"),
            "--split"
        ));
        assert!(lists_flag("      --split=<N>", "--split"));
    }
}
