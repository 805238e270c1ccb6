//! A throwaway PostgreSQL server: [`Server`] runs `initdb` into a temporary
//! folder, serves it on a free loopback port, restarts it or kills its
//! postmaster on request, and stops it and removes the folder when dropped.
//!
//! Tests that must restart their server without disturbing the tests beside
//! them on the shared one take [`Server::for_test`]; `cargo xtask postgres`,
//! `test-all` and the torture driver make theirs with [`Options`].

mod folder;
mod for_test;
mod launch;
mod options;
mod process;
mod server;

pub use for_test::{BINDIR_VAR, REQUIRE_VAR, RUN_AS_VAR};
pub use options::Options;
pub use server::Server;
