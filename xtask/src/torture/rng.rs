//! The torture driver's pseudo-random numbers: splitmix64, so a seed replays the same corpus and
//! schedule whatever dependency versions the workspace locks.

/// A splitmix64 stream.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    /// The stream of `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `low..=high`.
    pub(crate) fn range(&mut self, low: u64, high: u64) -> u64 {
        assert!(low <= high, "empty range {low}..={high}");
        match (high - low).checked_add(1) {
            Some(span) => low + self.next_u64() % span,
            None => self.next_u64(),
        }
    }

    /// An index below `len`.
    pub(crate) fn index(&mut self, len: usize) -> usize {
        assert!(len > 0, "index into nothing");
        usize::try_from(self.next_u64() % len as u64).expect("below len")
    }

    /// True with probability `percent` / 100.
    pub(crate) fn percent(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
}

/// The seed of episode `n` of a run seeded `seed`: episode 0 uses `seed` itself, so any episode
/// replays alone as episode 0 of `--seed EPISODE_SEED`.
pub(crate) fn episode_seed(seed: u64, n: u64) -> u64 {
    match n {
        0 => seed,
        n => Rng::new(seed ^ n.wrapping_mul(0xD1B5_4A32_D192_ED03)).next_u64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_replays_its_stream() {
        let a: Vec<u64> = (0..4).scan(Rng::new(7), |r, _| Some(r.next_u64())).collect();
        let b: Vec<u64> = (0..4).scan(Rng::new(7), |r, _| Some(r.next_u64())).collect();
        assert_eq!(a, b);
        assert_ne!(
            a,
            (0..4).scan(Rng::new(8), |r, _| Some(r.next_u64())).collect::<Vec<_>>()
        );
    }

    #[test]
    fn ranges_stay_inside() {
        let mut rng = Rng::new(1);
        for _ in 0..1000 {
            assert!((3..=9).contains(&rng.range(3, 9)));
            assert!(rng.index(5) < 5);
        }
        assert_eq!(rng.range(4, 4), 4);
    }

    #[test]
    fn episode_zero_is_the_seed() {
        assert_eq!(episode_seed(42, 0), 42);
        assert_ne!(episode_seed(42, 1), episode_seed(42, 2));
    }
}
