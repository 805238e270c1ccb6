//! A SHA-256 whose state at a part boundary can be written down and taken
//! up again: the ledger records it with each finished part, so a later
//! epoch resuming the upload hashes only the bytes it adds, and the final
//! hash still covers the whole body.
//!
//! Parts are whole multiples of the 64-byte block, so at a boundary the
//! state is the eight chaining words and the byte count (no buffered tail).

use sha2::compress256;
use sha2::digest::generic_array::GenericArray;

/// SHA-256's initial chaining words (FIPS 180-4 §5.3.3).
const INITIAL: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// The running hash.
#[derive(Debug, Clone)]
pub(crate) struct Resumable {
    state: [u32; 8],
    /// Bytes hashed, the buffered ones included.
    len: u64,
    /// Bytes short of a whole block.
    tail: Vec<u8>,
}

impl Default for Resumable {
    fn default() -> Self {
        Self {
            state: INITIAL,
            len: 0,
            tail: Vec::with_capacity(64),
        }
    }
}

impl Resumable {
    /// Hashes `bytes`.
    pub(crate) fn update(&mut self, mut bytes: &[u8]) {
        self.len += bytes.len() as u64;
        if !self.tail.is_empty() {
            let take = (64 - self.tail.len()).min(bytes.len());
            self.tail.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.tail.len() < 64 {
                return;
            }
            let block = GenericArray::clone_from_slice(&self.tail);
            compress256(&mut self.state, &[block]);
            self.tail.clear();
        }
        let whole = bytes.len() / 64 * 64;
        let blocks: Vec<_> = bytes[..whole]
            .chunks_exact(64)
            .map(GenericArray::clone_from_slice)
            .collect();
        compress256(&mut self.state, &blocks);
        self.tail.extend_from_slice(&bytes[whole..]);
    }

    /// The state at a block boundary, as text (`len:hex words`); `None`
    /// when bytes short of a block are buffered.
    pub(crate) fn saved(&self) -> Option<String> {
        if !self.tail.is_empty() {
            return None;
        }
        let words: String = self.state.iter().map(|w| format!("{w:08x}")).collect();
        Some(format!("{}:{words}", self.len))
    }

    /// The hash a [`saved`](Self::saved) text describes; `None` for text it
    /// does not give.
    pub(crate) fn restore(saved: &str) -> Option<Self> {
        let (len, words) = saved.split_once(':')?;
        let len: u64 = len.parse().ok()?;
        if words.len() != 64 || !len.is_multiple_of(64) {
            return None;
        }
        let mut state = [0u32; 8];
        for (i, word) in state.iter_mut().enumerate() {
            *word = u32::from_str_radix(words.get(i * 8..i * 8 + 8)?, 16).ok()?;
        }
        Some(Self {
            state,
            len,
            tail: Vec::with_capacity(64),
        })
    }

    /// Bytes hashed.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// The hex digest of everything hashed.
    pub(crate) fn finish(mut self) -> String {
        let bits = self.len.wrapping_mul(8);
        let mut last = std::mem::take(&mut self.tail);
        last.push(0x80);
        while last.len() % 64 != 56 {
            last.push(0);
        }
        last.extend_from_slice(&bits.to_be_bytes());
        let blocks: Vec<_> = last.chunks_exact(64).map(GenericArray::clone_from_slice).collect();
        compress256(&mut self.state, &blocks);
        self.state.iter().map(|w| format!("{w:08x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;

    #[test]
    fn matches_sha256_whatever_the_chunks_and_across_a_restore() {
        let body: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for len in [0, 1, 55, 56, 63, 64, 65, 119, 128, 1000, 10_000] {
            let bytes = &body[..len];
            let expected = hex::encode(Sha256::digest(bytes));
            let mut hash = Resumable::default();
            for chunk in bytes.chunks(37) {
                hash.update(chunk);
            }
            assert_eq!(hash.len(), len as u64);
            assert_eq!(hash.finish(), expected, "{len} bytes");
        }
        let mut first = Resumable::default();
        first.update(&body[..4096]);
        let saved = first.saved().expect("a block boundary");
        let mut resumed = Resumable::restore(&saved).expect("restores");
        resumed.update(&body[4096..]);
        assert_eq!(resumed.finish(), hex::encode(Sha256::digest(&body)));
        let mut odd = Resumable::default();
        odd.update(&body[..100]);
        assert_eq!(odd.saved(), None, "not at a block boundary");
        assert!(Resumable::restore("65:00").is_none());
        assert!(Resumable::restore("junk").is_none());
    }
}
