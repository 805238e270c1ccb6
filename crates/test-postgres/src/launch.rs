//! Running the server's programs: the postmaster (spawned, its output in the
//! log) and the short ones (run to their end), and waiting, bounded, until a
//! postmaster accepts connections.

use std::fs::{self, File};
use std::io;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::process;

/// How long a postmaster may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Lines of the log shown when a start fails.
const LOG_LINES: usize = 20;

/// Runs `cmd` to its end, its output captured; fails with its stderr unless
/// it exits 0.
pub(crate) fn run(cmd: &mut Command) -> io::Result<()> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("could not run {cmd:?}: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    Err(io::Error::other(format!(
        "{cmd:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr).trim_end()
    )))
}

/// Spawns the postmaster `cmd`, its output appended to `log`, in a process
/// group of its own.
pub(crate) fn spawn(cmd: &mut Command, log: &Path) -> io::Result<Child> {
    let out = File::options().append(true).open(log)?;
    cmd.stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .process_group(0)
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("could not start {cmd:?}: {e}")))
}

/// Line `n` (from 0) of the server's `postmaster.pid`: 0 its pid, 7 its
/// status (`ready` once it accepts connections).
pub(crate) fn pid_file_line(data: &Path, n: usize) -> Option<String> {
    let text = fs::read_to_string(data.join("postmaster.pid")).ok()?;
    text.lines().nth(n).map(|line| line.trim().to_owned())
}

/// Waits until the postmaster on `data` says it is ready and answers
/// `pg_isready` on `port`, at most [`START_TIMEOUT`]; fails early once
/// `spawned_alive` says the process spawned for it has exited (with
/// [`io::ErrorKind::AddrInUse`] when the port was taken).
pub(crate) fn wait_ready(
    bindir: &Path,
    data: &Path,
    port: u16,
    log: &Path,
    spawned_alive: impl Fn() -> bool,
) -> io::Result<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let running = pid_file_line(data, 0)
            .and_then(|pid| pid.parse().ok())
            .is_some_and(process::is_postgres);
        if running && pid_file_line(data, 7).as_deref() == Some("ready") && answers(bindir, port)? {
            return Ok(());
        }
        // Looked at after the checks, so a server that came up and died is noticed.
        let exited = !spawned_alive();
        if exited || Instant::now() > deadline {
            let tail = log_tail(log);
            let (kind, why) = if exited {
                let kind = if tail.contains("Address already in use") {
                    io::ErrorKind::AddrInUse
                } else {
                    io::ErrorKind::Other
                };
                (kind, "exited during startup".to_owned())
            } else {
                (
                    io::ErrorKind::TimedOut,
                    format!("did not accept connections on 127.0.0.1:{port} within {START_TIMEOUT:?}"),
                )
            };
            return Err(io::Error::new(
                kind,
                format!("postgres {why}; last lines of {}:\n{tail}", log.display()),
            ));
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Whether a server accepts connections on 127.0.0.1:`port`.
fn answers(bindir: &Path, port: u16) -> io::Result<bool> {
    let status = Command::new(bindir.join("pg_isready"))
        .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    Ok(status.success())
}

/// The last [`LOG_LINES`] lines of `log`.
fn log_tail(log: &Path) -> String {
    match fs::read_to_string(log) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(LOG_LINES)..].join("\n")
        }
        Err(e) => format!("(could not read the log: {e})"),
    }
}
