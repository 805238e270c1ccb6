//! Content-Range parsing: any text, and differentially against RFC 9110's grammar.
#![no_main]

#[allow(dead_code)]
#[path = "../../crates/fetch-http/tests/it/oracles.rs"]
mod oracles;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    oracles::content_range_any(data);
    oracles::content_range_differential(data);
});
