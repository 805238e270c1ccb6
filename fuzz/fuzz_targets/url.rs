//! URL canonicalization: differentially against the SPEC §2 rules, and any text a fixed point or refused.
#![no_main]

#[allow(dead_code)]
#[path = "../../crates/core/tests/it/oracles.rs"]
mod oracles;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    oracles::url_differential(data);
    oracles::any_url(data);
});
