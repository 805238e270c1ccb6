//! [`Server`]: a throwaway PostgreSQL server, its lifecycle (start, restart,
//! kill, stop) and what callers need to reach it.

use std::fs::File;
use std::io;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::thread;
use std::time::{Duration, Instant};

use crate::folder::{annotate, Folder};
use crate::launch::{self, run};
use crate::process;
use crate::Options;

/// The `initdb` arguments before `-D DATA`: trust authentication for the
/// `postgres` superuser, no sync, UTF-8, no locale.
const INITDB_ARGS: &[&str] = &[
    "-A",
    "trust",
    "-U",
    "postgres",
    "--no-sync",
    "-E",
    "UTF8",
    "--no-locale",
];
/// Starts tried when the port picked was taken by someone else meanwhile.
const START_ATTEMPTS: u32 = 3;
/// How long a restart may keep trying (a killed server's backends may still
/// hold its shared memory for a moment).
const RESTART_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a shutdown may take before the postmaster gets SIGKILL, and how
/// long SIGKILL may take.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the process spawned for the postmaster may take to exit after it.
const REAP_TIMEOUT: Duration = Duration::from_secs(2);

/// A PostgreSQL server of its own: a cluster in a temporary folder, served on
/// a free port of 127.0.0.1 by a postmaster in a process group of its own (a
/// Ctrl-C meant for the caller does not reach it). Dropping it stops the
/// server (immediate shutdown, SIGKILL if that fails) and removes the folder,
/// also when the caller panics.
#[derive(Debug)]
pub struct Server {
    options: Options,
    port: u16,
    data: PathBuf,
    log: PathBuf,
    /// The process spawned to run the postmaster (runuser(1), or the
    /// postmaster itself); `None` once it is reaped.
    child: Option<Child>,
    /// Last: removed after [`Server::drop`] stopped the server.
    folder: Folder,
}

impl Server {
    pub(crate) fn start(options: Options) -> io::Result<Self> {
        let folder = Folder::create(&options.label)?;
        let data = folder.path().join("data");
        let log = folder.path().join("postgres.log");
        File::create(&log).map_err(|e| annotate(e, &log))?;
        if let Some(user) = &options.run_as {
            run(Command::new("chown").arg("-R").arg(user).arg(folder.path()))?;
        }
        run(options.command("initdb").args(INITDB_ARGS).arg("-D").arg(&data))?;
        let mut server = Self {
            options,
            port: free_port()?,
            data,
            log,
            child: None,
            folder,
        };
        let mut attempt = 1;
        loop {
            match server.launch() {
                Err(e) if e.kind() == io::ErrorKind::AddrInUse && attempt < START_ATTEMPTS => {
                    eprintln!("postgres: port {} taken meanwhile, trying another one", server.port);
                    server.port = free_port()?;
                    attempt += 1;
                }
                result => return result.map(|()| server),
            }
        }
    }

    /// The port it listens on (at 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The connection URL of its `postgres` database.
    pub fn url(&self) -> String {
        self.database_url("postgres")
    }

    /// The connection URL of database `name` (as the `postgres` superuser,
    /// who needs no password).
    pub fn database_url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// The folder of its binaries.
    pub fn bindir(&self) -> &Path {
        &self.options.bindir
    }

    /// The user it runs as, when not the caller.
    pub fn run_as(&self) -> Option<&str> {
        self.options.run_as.as_deref()
    }

    /// Its data directory (`pg_ctl -D`).
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// Its temporary folder (data directory, socket and `postgres.log`).
    pub fn folder(&self) -> &Path {
        self.folder.path()
    }

    /// Creates database `name`; returns its connection URL.
    pub fn create_database(&self, name: &str) -> io::Result<String> {
        let port = self.port.to_string();
        run(Command::new(self.bindir().join("createdb")).args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "postgres",
            name,
        ]))?;
        Ok(self.database_url(name))
    }

    /// The pid of the postmaster now running on the data directory (also one
    /// restarted behind the guard's back, with `pg_ctl`).
    pub fn postmaster_pid(&self) -> Option<u32> {
        let pid = launch::pid_file_line(&self.data, 0)?.parse().ok()?;
        // A pid file left by a killed server may name a pid reused since.
        process::is_postgres(pid).then_some(pid)
    }

    /// SIGKILL of the postmaster (a crash of the database server); returns
    /// once it and the backends it had are gone (SIGKILL for those that
    /// linger). Returns its pid. [`Server::restart`] starts it again.
    pub fn kill_postmaster(&mut self) -> io::Result<u32> {
        let pid = self
            .postmaster_pid()
            .ok_or_else(|| io::Error::other("no postmaster is running"))?;
        process::end("KILL", pid, STOP_TIMEOUT).map_err(io::Error::other)?;
        self.reap();
        Ok(pid)
    }

    /// Stops the postmaster, if one runs (fast shutdown: every connection is
    /// cut), and starts it again on the same data directory and port (after
    /// [`Server::kill_postmaster`], crash recovery runs first); returns once
    /// it accepts connections, trying again for a while if it does not start.
    pub fn restart(&mut self) -> io::Result<()> {
        self.shut_down("INT")?;
        let deadline = Instant::now() + RESTART_TIMEOUT;
        loop {
            match self.launch() {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() < deadline => {
                    eprintln!("postgres: restart failed, trying again: {e}");
                    self.shut_down("KILL")?;
                    thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Stops the server (fast shutdown, SIGKILL if that takes too long) and
    /// removes its folder; fails when the postmaster survives SIGKILL.
    pub fn stop(mut self) -> io::Result<()> {
        self.shut_down("INT")
    }

    /// Spawns the postmaster and waits until it accepts connections.
    fn launch(&mut self) -> io::Result<()> {
        self.reap();
        let mut postgres = self.options.command("postgres");
        postgres
            .arg("-D")
            .arg(&self.data)
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(self.folder.path());
        for setting in &self.options.settings {
            postgres.args(["-c", setting]);
        }
        postgres.args(["-c", "listen_addresses=127.0.0.1"]);
        let child = launch::spawn(&mut postgres, &self.log)?;
        let child_pid = child.id();
        self.child = Some(child);
        launch::wait_ready(self.bindir(), &self.data, self.port, &self.log, || {
            process::alive(child_pid)
        })
    }

    /// Sends `SIGname` to the postmaster, if one runs, and waits until it and
    /// its backends are gone and the process spawned for it is reaped.
    fn shut_down(&mut self, name: &str) -> io::Result<()> {
        if let Some(pid) = self.postmaster_pid() {
            process::end(name, pid, STOP_TIMEOUT).map_err(io::Error::other)?;
        }
        self.reap();
        Ok(())
    }

    /// Reaps the process spawned for the postmaster (runuser(1) exits with
    /// its postmaster), killing it if it outlives [`REAP_TIMEOUT`].
    fn reap(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let deadline = Instant::now() + REAP_TIMEOUT;
        while matches!(child.try_wait(), Ok(None)) {
            if Instant::now() > deadline {
                eprintln!("postgres: killing spawned process {}", child.id());
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Err(e) = self.shut_down("QUIT") {
            eprintln!("warning: postgres in {}: {e}", self.folder.path().display());
        }
    }
}

/// A loopback port nobody listens on right now (bind port 0, read it, let it go).
fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

#[cfg(test)]
mod tests;
