//! Deterministic pseudo-random test content.

/// Deterministic pseudo-random content of `len` bytes for `seed`.
///
/// The same `(seed, len)` always gives the same bytes, and a shorter `len`
/// gives a prefix of a longer one. Uses splitmix64, eight bytes per step, so
/// a GiB takes well under a second in release builds.
pub fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    let mut state = seed;
    let mut words = out.chunks_exact_mut(8);
    for word in &mut words {
        word.copy_from_slice(&splitmix64(&mut state).to_le_bytes());
    }
    let rest = words.into_remainder();
    if !rest.is_empty() {
        let last = splitmix64(&mut state).to_le_bytes();
        rest.copy_from_slice(&last[..rest.len()]);
    }
    out
}

/// One step of splitmix64 (Steele, Lea and Flood).
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::content;

    #[test]
    fn deterministic_prefixes_and_seeds_differ() {
        let long = content(7, 1001);
        assert_eq!(long.len(), 1001);
        assert_eq!(content(7, 1001), long);
        assert_eq!(content(7, 13)[..], long[..13]);
        assert_ne!(content(8, 1001), long);
        assert!(content(7, 0).is_empty());
    }
}
