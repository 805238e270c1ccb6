//! The classification of answers that carry no usable body (SPEC §8).
#![no_main]

#[allow(dead_code)]
#[path = "../../crates/fetch-http/tests/it/oracles.rs"]
mod oracles;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    oracles::classify(data);
});
