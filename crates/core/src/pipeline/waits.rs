//! Long waits, logged once: a host's Retry-After, backoff or cool-down that
//! lasts more than [`LONG_WAIT`] is logged with the host, the reason and
//! until when, once per host and wait (later jobs of the host that wait
//! about as long say nothing more).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Waits longer than this are logged.
pub(crate) const LONG_WAIT: Duration = Duration::from_secs(5);

/// The end of the last wait logged for each host.
#[derive(Debug, Default)]
pub(crate) struct Waits {
    logged: Mutex<HashMap<String, SystemTime>>,
}

impl Waits {
    /// Logs that `host` makes its jobs wait `delay` because of `reason`,
    /// unless it is short or a wait of `host` ending about then was logged
    /// already. `beyond` says the wait is past `--max-retry-after`: the run
    /// leaves the job for a later run.
    pub(crate) fn note(&self, host: &str, reason: &str, delay: Duration, beyond: bool) {
        if delay <= LONG_WAIT {
            return;
        }
        let until = SystemTime::now() + delay;
        {
            let mut logged = self.logged.lock().unwrap_or_else(|p| p.into_inner());
            let last = logged.entry(host.to_owned()).or_insert(UNIX_EPOCH);
            if until <= *last + LONG_WAIT {
                return;
            }
            *last = until;
        }
        let until = utc(until);
        if beyond {
            tracing::warn!(
                "{host}: next attempt not before {until} ({reason}), longer than --max-retry-after; its jobs are left \
                 FAILED, retryable, due then, and this run does not wait for them"
            );
        } else {
            tracing::warn!("{host}: waiting until {until} ({reason})");
        }
    }
}

/// `time` as `YYYY-MM-DDTHH:MM:SSZ`.
pub(crate) fn utc(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc() {
        assert_eq!(utc(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            utc(UNIX_EPOCH + Duration::from_secs(951_782_400 + 3_723)),
            "2000-02-29T01:02:03Z"
        );
        assert_eq!(
            utc(UNIX_EPOCH + Duration::from_secs(1_798_761_599)),
            "2026-12-31T23:59:59Z"
        );
    }

    #[test]
    fn a_hosts_wait_is_noted_once() {
        let waits = Waits::default();
        waits.note("h", "429", Duration::from_secs(60), false);
        let first = waits.logged.lock().unwrap()["h"];
        waits.note("h", "429", Duration::from_secs(61), false);
        assert_eq!(waits.logged.lock().unwrap()["h"], first, "about the same wait");
        waits.note("h", "429", Duration::from_secs(120), false);
        assert!(waits.logged.lock().unwrap()["h"] > first, "a longer one is noted");
        waits.note("short", "503", Duration::from_secs(1), false);
        assert!(!waits.logged.lock().unwrap().contains_key("short"));
    }
}
