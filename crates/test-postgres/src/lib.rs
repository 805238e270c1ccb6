//! A PostgreSQL server of a test's own, for tests that must restart their
//! server without disturbing the tests running beside them on the shared one.
//!
//! It is made with the shared test server's binaries: `cargo xtask postgres`
//! (and `test-all`) export `ONCEFETCH_TEST_PG_BINDIR`, and
//! `ONCEFETCH_TEST_PG_RUN_AS` when the server must run as another user
//! (`initdb` refuses root).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;

/// The `initdb` arguments of every throwaway cluster (this crate's and
/// `cargo xtask postgres`'s), before `-D DATA`: trust authentication for the
/// `postgres` superuser, no sync, UTF-8, no locale.
pub const INITDB_ARGS: &[&str] = &[
    "-A",
    "trust",
    "-U",
    "postgres",
    "--no-sync",
    "-E",
    "UTF8",
    "--no-locale",
];

/// A running server in a temporary folder, on a free loopback port; stopped
/// (immediate mode, or `kill -9` of its postmaster) and removed on drop.
#[derive(Debug)]
pub struct PrivateServer {
    bindir: PathBuf,
    dir: PathBuf,
    port: u16,
    run_as: Option<String>,
}

impl PrivateServer {
    /// Starts a server whose folder is named after `label` and this process.
    /// `None` (with a note) when `ONCEFETCH_TEST_PG_BINDIR` is not set,
    /// unless `ONCEFETCH_REQUIRE_POSTGRES=1`, which makes that a failure.
    pub fn start(label: &str) -> Option<Self> {
        let Some(bindir) = std::env::var_os("ONCEFETCH_TEST_PG_BINDIR") else {
            assert!(
                std::env::var("ONCEFETCH_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "ONCEFETCH_REQUIRE_POSTGRES=1 but ONCEFETCH_TEST_PG_BINDIR is not set"
            );
            eprintln!("note: ONCEFETCH_TEST_PG_BINDIR is not set; skipping the test ({label})");
            return None;
        };
        let run_as = std::env::var("ONCEFETCH_TEST_PG_RUN_AS").ok().filter(|u| !u.is_empty());
        let dir = std::env::temp_dir().join(format!("oncefetch-pg-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let server = Self {
            bindir: bindir.into(),
            dir,
            port,
            run_as,
        };
        if let Some(user) = &server.run_as {
            run_ok(Command::new("chown").arg(user).arg(&server.dir));
        }
        run_ok(server.command("initdb").args(INITDB_ARGS).arg("-D").arg(server.data()));
        run_ok(
            server
                .pg_ctl()
                .arg("start")
                .arg("-l")
                .arg(server.dir.join("log"))
                .arg("-o")
                .arg(format!(
                    "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
                    server.port,
                    server.dir.display()
                )),
        );
        Some(server)
    }

    /// The connection URL of its `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// `pg_ctl restart -m fast`: every connection is cut. (`-l`, or the new
    /// postmaster would hold the caller's output pipes open.)
    pub fn restart(&self) {
        run_ok(
            self.pg_ctl()
                .args(["restart", "-m", "fast", "-l"])
                .arg(self.dir.join("log")),
        );
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn command(&self, program: &str) -> Command {
        let program = self.bindir.join(program);
        match &self.run_as {
            Some(user) => {
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", user, "--"]).arg(program);
                cmd
            }
            None => Command::new(program),
        }
    }

    fn pg_ctl(&self) -> Command {
        let mut cmd = self.command("pg_ctl");
        cmd.arg("-D").arg(self.data()).args(["-w", "-t", "60"]);
        cmd
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        let stopped = self.pg_ctl().args(["stop", "-m", "immediate"]).output();
        if !stopped.is_ok_and(|o| o.status.success()) {
            if let Ok(pid) = std::fs::read_to_string(self.data().join("postmaster.pid")) {
                if let Some(pid) = pid.lines().next() {
                    let _ = Command::new("kill").args(["-9", pid.trim()]).status();
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `cmd`; panics with its output unless it succeeds.
fn run_ok(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("could not run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
