//! A throwaway PostgreSQL server: [`TempPostgres`] runs `initdb` into a temporary directory, starts a
//! postmaster on a free loopback port, creates the `oncefetch_test` database, and stops the server by
//! pid and removes the directory when it is dropped — also when a test step fails or panics.
//!
//! `cargo xtask postgres` starts one for developers and prints the variables the tests read.

use std::fs::{self, File};
use std::io::{self, Read};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::cmd;

/// The database created for the tests.
const DATABASE: &str = "oncefetch_test";
/// How long the server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a fast shutdown (SIGINT) may take before the postmaster gets SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Starts retried when the port picked turned out to be taken by someone else meanwhile.
const START_ATTEMPTS: u32 = 3;

/// The server settings of the test runs: no durability (nothing here outlives the machine).
const FAST_SETTINGS: &[&str] = &[
    "listen_addresses=127.0.0.1",
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    "max_connections=200",
];

/// The settings of a server that is killed with SIGKILL: a commit is acknowledged once its WAL is
/// written (`synchronous_commit=on`), so a killed postmaster loses no acknowledged transaction;
/// `fsync=off` still, since the kernel (which keeps written pages) survives.
const CRASH_SETTINGS: &[&str] = &[
    "listen_addresses=127.0.0.1",
    "fsync=off",
    "synchronous_commit=on",
    "max_connections=200",
];

/// A PostgreSQL server in a temporary directory, stopped and removed on drop.
#[derive(Debug)]
pub(crate) struct TempPostgres {
    bindir: PathBuf,
    data: PathBuf,
    log: PathBuf,
    port: u16,
    /// The user the server runs as: `postgres` when we are root (`initdb` refuses root), else ourselves.
    run_as: Option<&'static str>,
    /// The process spawned to run the postmaster (`runuser` when root, else the postmaster itself).
    child: Child,
    /// The `-c` settings it runs with.
    settings: &'static [&'static str],
    /// Dropped after [`TempPostgres::drop`] stopped the server: removes the directory.
    dir: TempDir,
}

impl TempPostgres {
    /// Initializes and starts a server, and creates the test database; fails with what to install
    /// when the server binaries are missing.
    pub(crate) fn start() -> Result<Self> {
        Self::start_with(FAST_SETTINGS)
    }

    /// Starts a server meant to be killed ([`TempPostgres::kill_postmaster`]): it loses no
    /// acknowledged commit when its postmaster gets SIGKILL.
    pub(crate) fn start_for_crashes() -> Result<Self> {
        Self::start_with(CRASH_SETTINGS)
    }

    fn start_with(settings: &'static [&'static str]) -> Result<Self> {
        let bindir = find_bindir()?;
        let run_as = if is_root()? { Some("postgres") } else { None };
        let mut attempt = 1;
        loop {
            match Self::start_once(&bindir, run_as, settings) {
                Err(e) if attempt < START_ATTEMPTS && format!("{e:#}").contains("Address already in use") => {
                    eprintln!("postgres: port taken meanwhile, trying another one");
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    fn start_once(bindir: &Path, run_as: Option<&'static str>, settings: &'static [&'static str]) -> Result<Self> {
        let dir = TempDir::new()?;
        let data = dir.path.join("data");
        let log = dir.path.join("postgres.log");
        File::create(&log).with_context(|| format!("could not create {}", log.display()))?;
        if let Some(user) = run_as {
            cmd::quiet_ok(
                Command::new("chown")
                    .arg("-R")
                    .arg(format!("{user}:{user}"))
                    .arg(&dir.path),
            )?;
        }

        let mut initdb = as_user(run_as, bindir.join("initdb"));
        initdb.args(oncefetch_test_postgres::INITDB_ARGS).arg("-D").arg(&data);
        eprintln!("$ {}", cmd::cmdline(&initdb));
        cmd::quiet_ok(&mut initdb)?;

        let port = free_port()?;
        let child = spawn_postmaster(bindir, run_as, &data, &dir.path, &log, port, settings)?;
        let server = TempPostgres {
            bindir: bindir.to_owned(),
            data,
            log,
            port,
            run_as,
            child,
            settings,
            dir,
        };
        server.wait_ready()?;
        let mut createdb = Command::new(server.bindir.join("createdb"));
        createdb.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres", DATABASE]);
        eprintln!("$ {}", cmd::cmdline(&createdb));
        cmd::quiet_ok(&mut createdb)?;
        Ok(server)
    }

    fn wait_ready(&self) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        let mut child_exited = false;
        loop {
            let mut isready = Command::new(self.bindir.join("pg_isready"));
            isready.args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()]);
            if cmd::quiet(&mut isready)?.status.success() {
                return Ok(());
            }
            // `runuser` waits for the postmaster, so its exit means the server is gone.
            if child_exited || Instant::now() > deadline {
                let why = if child_exited {
                    "exited during startup".to_owned()
                } else {
                    format!(
                        "did not accept connections on 127.0.0.1:{} within {START_TIMEOUT:?}",
                        self.port
                    )
                };
                bail!(
                    "postgres {why}; last lines of {}:\n{}",
                    self.log.display(),
                    log_tail(&self.log, 20)
                );
            }
            // Check the child after pg_isready so a server that came up and then died is noticed.
            child_exited = !process_alive(self.child.id());
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// The variables the tests read, in the order they are printed.
    pub(crate) fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "ONCEFETCH_TEST_POSTGRES_URL",
                format!("postgres://postgres@127.0.0.1:{}/{DATABASE}", self.port),
            ),
            ("ONCEFETCH_REQUIRE_POSTGRES", "1".to_owned()),
            ("ONCEFETCH_TEST_PG_BINDIR", self.bindir.display().to_string()),
            ("ONCEFETCH_TEST_PG_DATADIR", self.data.display().to_string()),
            ("ONCEFETCH_TEST_PG_PORT", self.port.to_string()),
            ("ONCEFETCH_TEST_PG_RUN_AS", self.run_as.unwrap_or("").to_owned()),
        ]
    }

    /// Creates database `name` and returns its connection URL.
    pub(crate) fn create_database(&self, name: &str) -> Result<String> {
        let mut createdb = Command::new(self.bindir.join("createdb"));
        createdb.args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres", name]);
        cmd::quiet_ok(&mut createdb)?;
        Ok(format!("postgres://postgres@127.0.0.1:{}/{name}", self.port))
    }

    /// SIGKILL of the postmaster (a crash of the database server): waits until it and the
    /// backends it had are gone (they exit once they notice; SIGKILL after 10 s). Returns its pid.
    pub(crate) fn kill_postmaster(&mut self) -> Result<u32> {
        let pid = self.postmaster_pid().context("no postmaster is running")?;
        let children = children_of(pid);
        signal("KILL", pid);
        if !wait_gone(pid, Duration::from_secs(10)) {
            bail!("postmaster {pid} survived SIGKILL");
        }
        for child in children {
            if !wait_gone(child, Duration::from_secs(10)) {
                signal("KILL", child);
                wait_gone(child, Duration::from_secs(5));
            }
        }
        // `runuser` exits with its postmaster: reap it.
        let _ = self.child.try_wait();
        Ok(pid)
    }

    /// Starts the postmaster again on the same data directory and port (after
    /// [`TempPostgres::kill_postmaster`]: crash recovery runs first) and waits until it accepts
    /// connections.
    pub(crate) fn restart(&mut self) -> Result<()> {
        let _ = self.child.wait();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            self.child = spawn_postmaster(
                &self.bindir,
                self.run_as,
                &self.data,
                &self.dir.path,
                &self.log,
                self.port,
                self.settings,
            )?;
            match self.wait_ready() {
                Ok(()) => return Ok(()),
                // A segment of the killed server still attached, say: try again.
                Err(e) if Instant::now() < deadline => {
                    eprintln!("postgres: restart failed, trying again: {e:#}");
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The pid of the postmaster now running on the data directory: a test may have restarted it.
    fn postmaster_pid(&self) -> Option<u32> {
        let text = fs::read_to_string(self.data.join("postmaster.pid")).ok()?;
        let pid = text.lines().next()?.trim().parse().ok()?;
        // A pid file left by a killed server may name a pid reused by something else.
        is_postgres(pid).then_some(pid)
    }

    fn stop(&mut self) {
        if let Some(pid) = self.postmaster_pid() {
            eprintln!("postgres: stopping pid {pid} (fast shutdown)");
            signal("INT", pid);
            if !wait_gone(pid, STOP_TIMEOUT) {
                eprintln!("postgres: pid {pid} still running after {STOP_TIMEOUT:?}, killing it");
                signal("KILL", pid);
                if !wait_gone(pid, Duration::from_secs(5)) {
                    eprintln!("warning: postgres pid {pid} survived SIGKILL");
                }
            }
        }
        // The process we spawned: `runuser` exits once its postmaster has; a postmaster started
        // directly is reaped here.
        let deadline = Instant::now() + Duration::from_secs(2);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(50));
        }
        if let Ok(None) = self.child.try_wait() {
            eprintln!("postgres: killing spawned process {}", self.child.id());
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A directory under the system temporary directory, removed (with its contents) on drop.
#[derive(Debug)]
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn new() -> Result<Self> {
        let base = std::env::temp_dir();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        for n in 0..100u32 {
            let path = base.join(format!(
                "oncefetch-pg-{}-{:x}",
                std::process::id(),
                nanos.wrapping_add(n)
            ));
            match fs::create_dir(&path) {
                Ok(()) => return Ok(TempDir { path }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e).with_context(|| format!("could not create {}", path.display())),
            }
        }
        bail!("could not create a temporary directory in {}", base.display())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_dir_all(&self.path) {
            eprintln!("warning: could not remove {}: {e}", self.path.display());
        }
    }
}

/// `cargo xtask postgres`: start a server, print `export K=V` lines, and keep it running until
/// Ctrl-C (or SIGTERM/SIGHUP) or end of standard input.
pub(crate) fn serve(interrupted: &Arc<AtomicBool>) -> Result<()> {
    let server = TempPostgres::start()?;
    for (key, value) in server.env() {
        println!("export {key}={}", cmd::quote(&value));
    }
    eprintln!(
        "postgres: running on 127.0.0.1:{} as pid {} in {}; Ctrl-C or end of input stops it",
        server.port,
        server
            .postmaster_pid()
            .map_or_else(|| "?".to_owned(), |p| p.to_string()),
        server.dir.path.display()
    );

    let stdin_closed = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stdin_closed);
    thread::spawn(move || {
        let mut sink = [0u8; 1024];
        let mut stdin = io::stdin().lock();
        while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
        flag.store(true, Ordering::SeqCst);
    });
    while !interrupted.load(Ordering::SeqCst) && !stdin_closed.load(Ordering::SeqCst) {
        thread::sleep(Duration::from_millis(100));
    }
    drop(server);
    eprintln!("postgres: stopped and removed");
    Ok(())
}

/// The directory holding `initdb`, `postgres`, `pg_isready` and `createdb`: `pg_config --bindir`,
/// else the newest `/usr/lib/postgresql/*/bin`.
fn find_bindir() -> Result<PathBuf> {
    let mut candidates = Vec::new();
    if let Ok(out) = cmd::quiet(Command::new("pg_config").arg("--bindir")) {
        if out.status.success() {
            candidates.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
        }
    }
    if let Ok(entries) = fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<(u32, PathBuf)> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
            .collect();
        versions.sort_by_key(|v| std::cmp::Reverse(v.0));
        candidates.extend(versions.into_iter().map(|(_, bin)| bin));
    }
    let needed = ["initdb", "postgres", "pg_isready", "createdb"];
    candidates
        .into_iter()
        .find(|dir| needed.iter().all(|b| dir.join(b).is_file()))
        .context("PostgreSQL server binaries not found: install them with `apt-get install -y postgresql-15` (Debian)")
}

fn is_root() -> Result<bool> {
    Ok(cmd::quiet_ok(Command::new("id").arg("-u"))?.trim() == "0")
}

/// `program` run as `user` through `runuser`, or directly when `user` is `None`.
fn as_user(user: Option<&str>, program: PathBuf) -> Command {
    match user {
        Some(user) => {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", user, "--"]).arg(program);
            cmd
        }
        None => Command::new(program),
    }
}

/// Spawns the postmaster (through `runuser` when `run_as`) on `data` and `port`, its socket in
/// `socket_dir`, its output appended to `log`, in a process group of its own.
fn spawn_postmaster(
    bindir: &Path,
    run_as: Option<&str>,
    data: &Path,
    socket_dir: &Path,
    log: &Path,
    port: u16,
    settings: &[&str],
) -> Result<Child> {
    let mut postgres = as_user(run_as, bindir.join("postgres"));
    postgres.arg("-D").arg(data).arg("-p").arg(port.to_string());
    postgres.arg("-k").arg(socket_dir);
    for setting in settings {
        postgres.args(["-c", setting]);
    }
    eprintln!("$ {} >{} 2>&1", cmd::cmdline(&postgres), log.display());
    let out = File::options().append(true).open(log)?;
    postgres
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        // Its own process group: a Ctrl-C meant for the tests must not stop the server under
        // them; the guard stops it.
        .process_group(0)
        .spawn()
        .with_context(|| format!("could not start `{}`", cmd::cmdline(&postgres)))
}

/// The pids whose parent is `pid` (Linux `/proc`).
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            fs::read_to_string(format!("/proc/{child}/stat")).is_ok_and(|stat| {
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                    .is_some_and(|ppid| ppid == pid.to_string())
            })
        })
        .collect()
}

/// A loopback port nobody listens on right now (bind port 0, read it, let it go).
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("could not bind a loopback port")?;
    Ok(listener.local_addr()?.port())
}

/// Sends `SIGname` to `pid` with kill(1); a process already gone is fine, a missing kill(1) is reported.
fn signal(name: &str, pid: u32) {
    if let Err(e) = cmd::quiet(Command::new("kill").arg(format!("-{name}")).arg(pid.to_string())) {
        eprintln!("warning: {e:#}");
    }
}

/// Whether `pid` runs and is not a zombie (Linux `/proc`).
fn process_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesized command name, which may itself hold spaces or ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

fn is_postgres(pid: u32) -> bool {
    process_alive(pid)
        && fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| matches!(c.trim(), "postgres" | "postmaster"))
}

fn wait_gone(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while process_alive(pid) {
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
    true
}

fn log_tail(log: &Path, lines: usize) -> String {
    match fs::read_to_string(log) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(could not read the log: {e})"),
    }
}

#[cfg(test)]
mod tests {
    use std::panic;
    use std::sync::Mutex;

    use super::*;

    /// Skip where the server binaries are missing, unless `cargo xtask test-all` asked for them.
    fn have_server() -> bool {
        if find_bindir().is_ok() {
            return true;
        }
        assert!(
            std::env::var_os("ONCEFETCH_REQUIRE_POSTGRES").is_none(),
            "ONCEFETCH_REQUIRE_POSTGRES is set but the PostgreSQL server binaries are missing"
        );
        eprintln!("skipping: no PostgreSQL server binaries");
        false
    }

    #[test]
    fn a_panic_stops_the_server_and_removes_its_directory() {
        if !have_server() {
            return;
        }
        let seen = Mutex::new(None);
        let outcome = panic::catch_unwind(|| {
            let server = TempPostgres::start().unwrap();
            let pid = server.postmaster_pid().expect("a running postmaster");
            *seen.lock().unwrap() = Some((pid, server.dir.path.clone()));
            panic!("a failing step");
        });
        assert!(outcome.is_err());
        let (pid, dir) = seen.into_inner().unwrap().expect("the server started");
        assert!(!process_alive(pid), "postmaster {pid} still runs");
        assert!(!dir.exists(), "{} still exists", dir.display());
    }

    #[test]
    fn drop_stops_a_server_restarted_with_pg_ctl() {
        if !have_server() {
            return;
        }
        let server = TempPostgres::start().unwrap();
        let first = server.postmaster_pid().unwrap();
        let mut restart = as_user(server.run_as, server.bindir.join("pg_ctl"));
        restart
            .arg("-D")
            .arg(&server.data)
            .args(["restart", "-m", "fast", "-w", "-l"]);
        restart.arg(&server.log);
        cmd::quiet_ok(&mut restart).unwrap();
        let second = server.postmaster_pid().unwrap();
        assert_ne!(first, second);
        let dir = server.dir.path.clone();
        drop(server);
        assert!(!process_alive(second), "restarted postmaster {second} still runs");
        assert!(!dir.exists(), "{} still exists", dir.display());
    }
}
