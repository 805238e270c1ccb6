//! oncefetch store-postgres backend (not built yet).
