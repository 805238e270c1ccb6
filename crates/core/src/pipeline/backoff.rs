//! Exponential backoff with full jitter.

use std::time::Duration;

/// Delay before attempt `attempts + 1`: uniform in `[0, min(cap, base·2^attempts)]`,
/// but never less than what the server asked for.
pub(crate) fn delay(attempts: u32, base: Duration, cap: Duration, server_asked: Option<Duration>) -> Duration {
    let exp = base.saturating_mul(1u32.checked_shl(attempts.min(20)).unwrap_or(u32::MAX));
    let ceiling = exp.min(cap);
    let jittered = ceiling.mul_f64(fastrand::f64());
    server_asked.map_or(jittered, |asked| jittered.max(asked))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_within_cap_and_honours_the_server() {
        let base = Duration::from_millis(100);
        let cap = Duration::from_secs(2);
        for attempts in 0..30 {
            let d = delay(attempts, base, cap, None);
            assert!(d <= cap);
            assert!(d <= base * 2u32.saturating_pow(attempts.min(20)));
        }
        let asked = Duration::from_secs(5);
        assert!(delay(1, base, cap, Some(asked)) >= asked);
    }
}
