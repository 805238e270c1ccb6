//! xtask's throwaway PostgreSQL: an [`oncefetch_test_postgres::Server`] made with the binaries
//! found on this machine (as user `postgres` when we are root: `initdb` refuses root), holding the
//! `oncefetch_test` database, with the settings of a test run or of a torture run.
//!
//! `cargo xtask postgres` starts one for developers and prints the variables the tests read.

use std::fs;
use std::io::{self, Read};
use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result};
use oncefetch_test_postgres::{Options, Server, BINDIR_VAR, REQUIRE_VAR, RUN_AS_VAR};

use crate::cmd;

/// The database created for the tests.
const DATABASE: &str = "oncefetch_test";

/// The server settings of the test runs: no durability (nothing here outlives the machine).
const FAST_SETTINGS: &[&str] = &[
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    "max_connections=200",
];

/// The settings of a server that is killed with SIGKILL: a commit is acknowledged once its WAL is
/// written (`synchronous_commit=on`), so a killed postmaster loses no acknowledged transaction;
/// `fsync=off` still, since the kernel (which keeps written pages) survives.
const CRASH_SETTINGS: &[&str] = &["fsync=off", "synchronous_commit=on", "max_connections=200"];

/// A [`Server`] holding the test database; it derefs to the server (restart, kill, ...).
#[derive(Debug)]
pub(crate) struct TempPostgres {
    server: Server,
}

impl TempPostgres {
    /// Starts a server for test runs and creates the test database; fails with what to install
    /// when the server binaries are missing.
    pub(crate) fn start() -> Result<Self> {
        Self::start_with("xtask", FAST_SETTINGS)
    }

    /// Starts a server meant to be killed ([`Server::kill_postmaster`]): it loses no acknowledged
    /// commit when its postmaster gets SIGKILL.
    pub(crate) fn start_for_crashes() -> Result<Self> {
        Self::start_with("torture", CRASH_SETTINGS)
    }

    fn start_with(label: &str, settings: &[&str]) -> Result<Self> {
        let bindir = find_bindir()?;
        eprintln!("postgres: starting a server with {}", bindir.display());
        let mut options = Options::new(bindir).label(label);
        if is_root()? {
            options = options.run_as("postgres");
        }
        for setting in settings {
            options = options.setting(*setting);
        }
        let server = options.start().context("could not start PostgreSQL")?;
        server
            .create_database(DATABASE)
            .with_context(|| format!("could not create database {DATABASE}"))?;
        Ok(Self { server })
    }

    /// The variables the tests read, in the order they are printed.
    pub(crate) fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("ONCEFETCH_TEST_POSTGRES_URL", self.database_url(DATABASE)),
            (REQUIRE_VAR, "1".to_owned()),
            (BINDIR_VAR, self.bindir().display().to_string()),
            ("ONCEFETCH_TEST_PG_DATADIR", self.data_dir().display().to_string()),
            ("ONCEFETCH_TEST_PG_PORT", self.port().to_string()),
            (RUN_AS_VAR, self.run_as().unwrap_or("").to_owned()),
        ]
    }
}

impl Deref for TempPostgres {
    type Target = Server;

    fn deref(&self) -> &Server {
        &self.server
    }
}

impl DerefMut for TempPostgres {
    fn deref_mut(&mut self) -> &mut Server {
        &mut self.server
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
        server.port(),
        server
            .postmaster_pid()
            .map_or_else(|| "?".to_owned(), |p| p.to_string()),
        server.folder().display()
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
    server.server.stop().context("could not stop PostgreSQL")?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Skip where the server binaries are missing, unless `cargo xtask test-all` asked for them.
    fn have_server() -> bool {
        if find_bindir().is_ok() {
            return true;
        }
        assert!(
            std::env::var_os(REQUIRE_VAR).is_none(),
            "{REQUIRE_VAR} is set but the PostgreSQL server binaries are missing"
        );
        eprintln!("skipping: no PostgreSQL server binaries");
        false
    }

    #[test]
    fn the_env_names_the_test_database_of_a_running_server() {
        if !have_server() {
            return;
        }
        let server = TempPostgres::start().unwrap();
        let env: std::collections::HashMap<_, _> = server.env().into_iter().collect();
        let port = server.port().to_string();
        assert_eq!(
            env["ONCEFETCH_TEST_POSTGRES_URL"],
            format!("postgres://postgres@127.0.0.1:{port}/{DATABASE}")
        );
        assert_eq!(env["ONCEFETCH_TEST_PG_PORT"], port);
        assert_eq!(env[REQUIRE_VAR], "1");
        assert!(PathBuf::from(&env[BINDIR_VAR]).join("initdb").is_file());
        assert!(PathBuf::from(&env["ONCEFETCH_TEST_PG_DATADIR"])
            .join("PG_VERSION")
            .is_file());
        let root = is_root().unwrap();
        assert_eq!(env[RUN_AS_VAR], if root { "postgres" } else { "" });
        // The database exists: creating it again fails.
        assert!(server.create_database(DATABASE).is_err());
    }
}
