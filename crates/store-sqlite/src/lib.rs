//! oncefetch store-sqlite backend (not built yet).
