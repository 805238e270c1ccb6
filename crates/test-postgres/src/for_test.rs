//! [`Server::for_test`]: the server of a test of its own, made as the
//! environment of `cargo xtask postgres` (and `test-all`) says.

use crate::{Options, Server};

/// The folder of the server binaries (`cargo xtask postgres` exports it).
pub const BINDIR_VAR: &str = "ONCEFETCH_TEST_PG_BINDIR";
/// The user the server must run as, when not the caller (`initdb` refuses
/// root); empty or unset otherwise.
pub const RUN_AS_VAR: &str = "ONCEFETCH_TEST_PG_RUN_AS";
/// `1`: a test missing its PostgreSQL fails instead of skipping.
pub const REQUIRE_VAR: &str = "ONCEFETCH_REQUIRE_POSTGRES";

impl Server {
    /// Starts a server for a test, in a folder named after `label`, with the
    /// binaries in [`BINDIR_VAR`], as [`RUN_AS_VAR`], without fsync. `None`
    /// (with a note) when [`BINDIR_VAR`] is not set, unless [`REQUIRE_VAR`]
    /// is `1`, which makes that a failure.
    ///
    /// # Panics
    ///
    /// When the server does not start (a test failure: its message says why).
    pub fn for_test(label: &str) -> Option<Self> {
        let Some(bindir) = std::env::var_os(BINDIR_VAR) else {
            assert!(
                std::env::var(REQUIRE_VAR).as_deref() != Ok("1"),
                "{REQUIRE_VAR}=1 but {BINDIR_VAR} is not set"
            );
            eprintln!("note: {BINDIR_VAR} is not set; skipping the test ({label})");
            return None;
        };
        let mut options = Options::new(bindir).label(label).setting("fsync=off");
        if let Some(user) = std::env::var(RUN_AS_VAR).ok().filter(|u| !u.is_empty()) {
            options = options.run_as(user);
        }
        match options.start() {
            Ok(server) => Some(server),
            Err(e) => panic!("could not start a PostgreSQL server ({label}): {e}"),
        }
    }
}
