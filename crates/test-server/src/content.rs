//! Deterministic pseudo-random test content.

/// The first MiB of content is the splitmix64 stream itself.
const POOL: usize = 1 << 20;

/// Past the first MiB, content is built from blocks of this size.
const BLOCK: usize = 4096;

/// Deterministic pseudo-random content of `len` bytes for `seed`.
///
/// The same `(seed, len)` always gives the same bytes, a shorter `len` gives
/// a prefix of a longer one, and different seeds give different bytes. The
/// first MiB is a splitmix64 stream; past it, each 4 KiB block is a window of
/// that first MiB at a pseudo-random offset whose first 8 bytes are replaced
/// by a pseudo-random tag, so no two blocks are alike and a resume at a
/// wrong offset shows. That is mostly `memcpy`, so a GiB takes about a
/// second even in a debug build.
pub fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    let (pool, rest) = out.split_at_mut(len.min(POOL));
    let mut state = seed;
    fill(pool, &mut state);
    let mut state = seed ^ 0xA076_1D64_78BD_642F;
    let windows = (POOL - BLOCK + 1) as u64;
    for block in rest.chunks_mut(BLOCK) {
        let tag = splitmix64(&mut state).to_le_bytes();
        let offset = (splitmix64(&mut state) % windows) as usize;
        block.copy_from_slice(&pool[offset..offset + block.len()]);
        let n = block.len().min(tag.len());
        block[..n].copy_from_slice(&tag[..n]);
    }
    out
}

/// Fills `out` with the splitmix64 stream from `state`.
fn fill(out: &mut [u8], state: &mut u64) {
    let mut words = out.chunks_exact_mut(8);
    for word in &mut words {
        word.copy_from_slice(&splitmix64(state).to_le_bytes());
    }
    let rest = words.into_remainder();
    if !rest.is_empty() {
        let last = splitmix64(state).to_le_bytes();
        rest.copy_from_slice(&last[..rest.len()]);
    }
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
    use std::collections::HashSet;

    use super::{content, BLOCK, POOL};

    #[test]
    fn deterministic_prefixes_and_seeds_differ() {
        let long = content(7, 1001);
        assert_eq!(long.len(), 1001);
        assert_eq!(content(7, 1001), long);
        assert_eq!(content(7, 13)[..], long[..13]);
        assert_ne!(content(8, 1001), long);
        assert!(content(7, 0).is_empty());
    }

    #[test]
    fn past_the_pool_blocks_are_distinct_and_prefixes_hold() {
        let len = POOL + 300 * BLOCK + 5;
        let long = content(9, len);
        assert_eq!(long.len(), len);
        assert_eq!(content(9, POOL + 7)[..], long[..POOL + 7]);
        assert_ne!(content(10, len)[POOL..], long[POOL..]);
        let blocks: HashSet<&[u8]> = long[POOL..].chunks(BLOCK).collect();
        assert_eq!(blocks.len(), 301);
        // Not a copy of the pool at block alignment either.
        assert_ne!(long[POOL..POOL + BLOCK], long[..BLOCK]);
    }
}
