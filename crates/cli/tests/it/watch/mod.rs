//! Watching a fleet: `/metrics` scraped during a real run, the `serve`
//! pages and JSON API over a known ledger (SQLite and PostgreSQL), a real
//! browser on the status page of a running fetch, and the access rules.

mod browser;
mod http;
mod metrics;
mod prom;
mod serve;
