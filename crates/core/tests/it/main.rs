//! Integration tests of oncefetch-core.

/// The conformance kit against the reference in-memory store, and against
/// deliberately broken stores that it must catch.
mod conformance;
/// The oracles of the fuzz targets (`fuzz/`) on generated input.
mod differential;
/// Each op rule the kernel refuses has its own error variant.
mod op_conflicts;
/// Oracles of the parsers of outside input, shared with the fuzz targets.
mod oracles;
/// Parsers of outside input (manifest, URLs, file names) under arbitrary
/// input (property tests).
mod parsers;
/// `recover` and `--robots respect` through the real pipeline.
mod recovery;
/// The resume decision never yields a spliced file (a property test).
mod resume;
/// What the tests share.
mod support;
/// The worker's ledger rows and commits per job, pinned path by path.
mod trail;
/// Every vector in `docs/vectors/`.
mod vectors;
