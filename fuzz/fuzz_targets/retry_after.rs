//! Retry-After parsing: any text, and delays written as seconds or dates.
#![no_main]

#[allow(dead_code)]
#[path = "../../crates/fetch-http/tests/it/oracles.rs"]
mod oracles;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    oracles::retry_after_any(data);
    oracles::retry_after_differential(data);
});
