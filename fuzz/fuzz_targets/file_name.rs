//! The file-name encoding of ids: one component inside DIR, round trip, no two ids alike.
#![no_main]

#[allow(dead_code)]
#[path = "../../crates/core/tests/it/oracles.rs"]
mod oracles;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    oracles::file_names(data);
});
