//! The store clock.
//!
//! Lease expiry is judged by one clock: the wall clock of the host that holds
//! the database file, read by SQLite itself (`unixepoch('subsec')`, see
//! `sql/queries/now.sql`) inside the transaction that uses it, after the
//! write lock is taken. Every process on that host reads the same clock, and
//! no worker's own notion of time is consulted. A single-host store is what
//! SQLite is for; a ledger on a network file system shared by hosts would
//! mix clocks (and SQLite's locking is not safe there anyway).

use oncefetch_core::Millis;
use rusqlite::Connection;

use crate::queries;

/// Milliseconds since the Unix epoch, by the store clock.
pub(crate) fn now(conn: &Connection) -> rusqlite::Result<Millis> {
    conn.prepare_cached(queries::NOW)?.query_row([], |row| row.get(0))
}
