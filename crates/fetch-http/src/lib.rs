//! oncefetch fetch-http backend (not built yet).
