//! Integration tests of oncefetch-core.

mod vectors;
