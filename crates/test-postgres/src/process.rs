//! The processes of a server, seen through Linux `/proc` and signalled with
//! kill(1): whether one runs, whose child it is, and waiting (bounded) until
//! it is gone.

use std::fs;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How often the waits here look again.
const POLL: Duration = Duration::from_millis(50);

/// Sends `SIGname` to `pid` with kill(1); a process already gone is fine.
pub(crate) fn signal(name: &str, pid: u32) {
    let sent = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if let Err(e) = sent {
        eprintln!("warning: could not run kill(1): {e}");
    }
}

/// Whether `pid` runs and is not a zombie.
pub(crate) fn alive(pid: u32) -> bool {
    stat_field(pid, 0).is_some_and(|state| state != "Z" && state != "X")
}

/// Whether `pid` runs a PostgreSQL server process (a postmaster or a backend).
pub(crate) fn is_postgres(pid: u32) -> bool {
    alive(pid)
        && fs::read_to_string(format!("/proc/{pid}/comm"))
            .is_ok_and(|comm| matches!(comm.trim(), "postgres" | "postmaster"))
}

/// The pids whose parent is `pid`.
pub(crate) fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let parent = pid.to_string();
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&child| stat_field(child, 1).as_ref() == Some(&parent))
        .collect()
}

/// Waits until `pid` is gone, at most `timeout`; whether it is.
pub(crate) fn wait_gone(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while alive(pid) {
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(POLL);
    }
    true
}

/// Sends `SIGname` to `pid` and waits until it and the children it had are
/// gone (they exit once they notice their postmaster died), sending SIGKILL
/// to whichever outlives `timeout`. Fails when the postmaster survives SIGKILL.
pub(crate) fn end(name: &str, pid: u32, timeout: Duration) -> Result<(), String> {
    let children = children_of(pid);
    signal(name, pid);
    if !wait_gone(pid, timeout) {
        eprintln!("postgres: pid {pid} still runs {timeout:?} after SIG{name}, killing it");
        signal("KILL", pid);
        if !wait_gone(pid, timeout) {
            return Err(format!("postmaster {pid} survived SIGKILL"));
        }
    }
    for child in children {
        if !wait_gone(child, timeout) {
            signal("KILL", child);
            wait_gone(child, timeout);
        }
    }
    Ok(())
}

/// Field `n` of `/proc/PID/stat` after the command name (0: the state, 1:
/// the parent): the name is parenthesized and may itself hold spaces or `)`.
fn stat_field(pid: u32, n: usize) -> Option<String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(n).map(str::to_owned)
}
