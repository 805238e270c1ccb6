//! The manifest reader (JSON Lines, or CSV when the first byte is odd) on any bytes.
#![no_main]

#[allow(dead_code)]
#[path = "../../crates/core/tests/it/oracles.rs"]
mod oracles;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    oracles::manifest(data);
});
