//! The guard against a real PostgreSQL: the binaries in
//! `ONCEFETCH_TEST_PG_BINDIR` (`cargo xtask postgres` prints it); skipped
//! without them unless `ONCEFETCH_REQUIRE_POSTGRES=1`.

use std::panic::{self, AssertUnwindSafe};
use std::process::Command;

use crate::process::{alive, children_of};
use crate::{Options, Server, BINDIR_VAR, RUN_AS_VAR};

/// `sql` run by psql(1) from the server's binaries on database `db`: its
/// unaligned output, or its stderr as the error.
fn psql(server: &Server, db: &str, sql: &str) -> Result<String, String> {
    let out = Command::new(server.bindir().join("psql"))
        .args([
            "-X",
            "-q",
            "-tA",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
        ])
        .args(["-p", &server.port().to_string(), "-d", db, "-c", sql])
        .output()
        .expect("run psql");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn a_started_server_answers_on_loopback() {
    let Some(server) = Server::for_test("answers") else {
        return;
    };
    assert_eq!(psql(&server, "postgres", "SELECT 1").as_deref(), Ok("1"));
    assert_eq!(
        psql(&server, "postgres", "SHOW listen_addresses").as_deref(),
        Ok("127.0.0.1")
    );
    assert_eq!(
        server.url(),
        format!("postgres://postgres@127.0.0.1:{}/postgres", server.port())
    );
    assert!(server.data_dir().starts_with(server.folder()));
    let name = server.folder().file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with(&format!("oncefetch-pg-answers-{}-", std::process::id())),
        "{name}"
    );
}

#[test]
fn settings_apply_but_listening_stays_on_loopback() {
    let Some(bindir) = std::env::var_os(BINDIR_VAR) else {
        return;
    };
    let mut options = Options::new(bindir)
        .label("settings")
        .setting("work_mem=12345kB")
        .setting("listen_addresses=*");
    if let Some(user) = std::env::var(RUN_AS_VAR).ok().filter(|u| !u.is_empty()) {
        options = options.run_as(user);
    }
    let server = options.start().expect("start");
    assert_eq!(psql(&server, "postgres", "SHOW work_mem").as_deref(), Ok("12345kB"));
    assert_eq!(
        psql(&server, "postgres", "SHOW listen_addresses").as_deref(),
        Ok("127.0.0.1")
    );
}

#[test]
fn a_database_and_its_rows_outlive_a_restart() {
    let Some(mut server) = Server::for_test("restart") else {
        return;
    };
    let url = server.create_database("kept").expect("createdb");
    assert_eq!(url, server.database_url("kept"));
    psql(&server, "kept", "CREATE TABLE t (v int); INSERT INTO t VALUES (7)").unwrap();
    let before = server.postmaster_pid().expect("a postmaster");
    server.restart().expect("restart");
    let after = server.postmaster_pid().expect("a postmaster");
    assert_ne!(before, after, "a new postmaster");
    assert!(!alive(before), "the old postmaster {before} is gone");
    assert_eq!(psql(&server, "kept", "SELECT v FROM t").as_deref(), Ok("7"));
}

#[test]
fn a_killed_postmaster_recovers_on_restart() {
    let Some(mut server) = Server::for_test("kill") else {
        return;
    };
    psql(&server, "postgres", "CREATE TABLE t (v int); INSERT INTO t VALUES (9)").unwrap();
    let pid = server.postmaster_pid().expect("a postmaster");
    let backends = children_of(pid);
    assert!(!backends.is_empty(), "a postmaster has helper processes");
    assert_eq!(server.kill_postmaster().expect("kill"), pid);
    assert!(!alive(pid), "postmaster {pid} still runs");
    for backend in backends {
        assert!(!alive(backend), "process {backend} of the killed postmaster still runs");
    }
    assert_eq!(server.postmaster_pid(), None);
    assert!(psql(&server, "postgres", "SELECT 1").is_err(), "nobody answers");
    assert!(server.kill_postmaster().is_err(), "nothing to kill");

    server.restart().expect("restart after the kill");
    assert_eq!(psql(&server, "postgres", "SELECT v FROM t").as_deref(), Ok("9"));
    let log = std::fs::read_to_string(server.folder().join("postgres.log")).unwrap();
    assert!(log.contains("was interrupted"), "crash recovery ran:\n{log}");
}

/// Ends `server` with `end`; checks its postmaster and its folder are gone.
fn assert_ends_cleanly(server: Server, end: impl FnOnce(Server)) {
    let pid = server.postmaster_pid().expect("a postmaster");
    let folder = server.folder().to_owned();
    end(server);
    assert!(!alive(pid), "postmaster {pid} still runs");
    assert!(!folder.exists(), "{} still exists", folder.display());
}

#[test]
fn drop_stops_the_server_and_removes_its_folder() {
    if let Some(server) = Server::for_test("drop") {
        assert_ends_cleanly(server, drop);
    }
}

#[test]
fn stop_stops_the_server_and_removes_its_folder() {
    if let Some(server) = Server::for_test("stop") {
        assert_ends_cleanly(server, |server| server.stop().expect("stop"));
    }
}

#[test]
fn a_panic_stops_the_server_and_removes_its_folder() {
    if let Some(server) = Server::for_test("panic") {
        assert_ends_cleanly(server, |server| {
            let outcome = panic::catch_unwind(AssertUnwindSafe(move || {
                let _server = server;
                panic!("a failing step");
            }));
            assert!(outcome.is_err());
        });
    }
}

#[test]
fn drop_stops_a_server_restarted_behind_its_back_with_pg_ctl() {
    let Some(server) = Server::for_test("pgctl") else {
        return;
    };
    let first = server.postmaster_pid().expect("a postmaster");
    let status = server
        .options
        .command("pg_ctl")
        .arg("-D")
        .arg(server.data_dir())
        .args(["restart", "-m", "fast", "-w", "-t", "60", "-l"])
        .arg(server.folder().join("postgres.log"))
        .status()
        .expect("run pg_ctl");
    assert!(status.success(), "pg_ctl restart: {status}");
    assert_ne!(server.postmaster_pid(), Some(first), "a new postmaster");
    assert_ends_cleanly(server, drop);
}

#[test]
fn a_start_that_fails_is_an_error_and_leaves_no_folder() {
    let label = "fails";
    let err = Options::new("/nonexistent/bin").label(label).start().unwrap_err();
    assert!(err.to_string().contains("initdb"), "{err}");
    let prefix = format!("oncefetch-pg-{label}-{}-", std::process::id());
    let left: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
