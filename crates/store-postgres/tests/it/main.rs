//! Integration tests of the PostgreSQL store. They need a server: set
//! `ONCEFETCH_TEST_POSTGRES_URL` (`cargo xtask test-all` starts one). Without
//! it each test prints a note and passes, unless `ONCEFETCH_REQUIRE_POSTGRES=1`.

// Shared setup: the server URL, a fresh schema per test, a private server.
mod support;

// The core conformance kit, run against two stores on one schema.
mod conformance;
// 4 claimers with their own pools: 20,000 jobs each granted once; one live
// lease per URL under contention.
mod concurrency;
// Store-specific behaviour: registry, schemas, migrations, atomic commits.
mod postgres;
// A server restart while workers acquire and commit.
mod restart;
// The rules kept in SQL pinned to core's kernel.
mod kernel;
// Ids and URLs holding NUL, kept verbatim.
mod text;
