//! A circuit breaker per host: after [`THRESHOLD`] transient failures in a
//! row (connect errors, timeouts, 408, 429, 5xx) a host is paused for a
//! cool-down that doubles from [`FIRST_COOL_DOWN`] up to [`MAX_COOL_DOWN`]
//! while it keeps failing; once a pause is over one request at a time (the
//! probe) is let through, and any answer that is not a transient failure
//! closes the breaker again.
//!
//! A host down longer than the run's grace (`--max-retry-after`, counted
//! from the failure that paused it) is given up on for this run: its jobs
//! are put off for twice the grace, past what the run waits for.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Transient failures in a row that pause a host.
pub(crate) const THRESHOLD: u32 = 3;
/// The first pause.
pub(crate) const FIRST_COOL_DOWN: Duration = Duration::from_secs(1);
/// The longest pause.
pub(crate) const MAX_COOL_DOWN: Duration = Duration::from_secs(60);

/// Whether a request to a host may go now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    /// It may; `probe` says it is the one request let through after a
    /// pause (report its answer with `probe` set).
    Go {
        /// The request tries a paused host.
        probe: bool,
    },
    /// The host is paused (or its probe is out): try again after this.
    Wait(Duration),
}

/// What a transient failure did to its host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tripped {
    /// The host is still taking requests; the failure counts against its job.
    No,
    /// This failure paused the host for this long; it counts against its
    /// job (it is one of the [`THRESHOLD`] that showed the host is down).
    Now(Duration),
    /// The host was paused already (the request was sent before), or this
    /// was its probe: the job is not to blame, and waits this long.
    Already(Duration),
}

#[derive(Debug, Default)]
struct Host {
    /// Transient failures in a row.
    failures: u32,
    /// The current pause's length (zero while closed).
    cool_down: Duration,
    /// When the current pause ends.
    paused_until: Option<Instant>,
    /// A probe is out.
    probing: bool,
    /// When the failure that paused the host came.
    down_since: Option<Instant>,
}

impl Host {
    /// How long to put a job off that would wait `wait`: twice `grace`
    /// once the host has been down longer than `grace`.
    fn put_off(&self, now: Instant, wait: Duration, grace: Duration) -> Duration {
        match self.down_since {
            Some(since) if now.saturating_duration_since(since) > grace => wait.max(grace.saturating_mul(2)),
            _ => wait,
        }
    }
}

/// The breakers of every host of a run.
#[derive(Debug)]
pub(crate) struct Breakers {
    hosts: Mutex<HashMap<String, Host>>,
    /// How long a host may stay down before the run gives up on it.
    grace: Duration,
}

impl Breakers {
    /// Breakers that give up on a host down longer than `grace`.
    pub(crate) fn new(grace: Duration) -> Self {
        Self {
            hosts: Mutex::new(HashMap::new()),
            grace,
        }
    }

    fn with<T>(&self, host: &str, f: impl FnOnce(&mut Host, Instant) -> T) -> T {
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        f(hosts.entry(host.to_owned()).or_default(), Instant::now())
    }

    /// Whether a request to `host` may go now.
    pub(crate) fn admit(&self, host: &str) -> Admit {
        let grace = self.grace;
        self.with(host, |h, now| match h.paused_until {
            None => Admit::Go { probe: false },
            Some(until) if now < until => Admit::Wait(h.put_off(now, until - now, grace)),
            Some(_) if h.probing => Admit::Wait(h.put_off(now, h.cool_down, grace)),
            Some(_) => {
                h.probing = true;
                Admit::Go { probe: true }
            }
        })
    }

    /// The probe of `host` was not sent after all: another job may probe.
    pub(crate) fn give_up_probe(&self, host: &str) {
        self.with(host, |h, _| h.probing = false);
    }

    /// `host` answered (anything but a transient failure): it is up.
    pub(crate) fn succeeded(&self, host: &str) {
        self.with(host, |h, _| *h = Host::default());
    }

    /// `host` failed transiently; `asked` is how long the server asked to
    /// be left alone (`Retry-After`), which a pause lasts at least.
    pub(crate) fn failed(&self, host: &str, probe: bool, asked: Duration) -> Tripped {
        let grace = self.grace;
        self.with(host, |h, now| {
            let pause = |h: &mut Host, cool_down: Duration| {
                h.cool_down = cool_down;
                let wait = cool_down.max(asked);
                h.paused_until = Some(now + wait);
                wait
            };
            if probe {
                h.probing = false;
                let longer = (h.cool_down * 2).clamp(FIRST_COOL_DOWN, MAX_COOL_DOWN);
                let wait = pause(h, longer);
                return Tripped::Already(h.put_off(now, wait, grace));
            }
            if let Some(until) = h.paused_until {
                let wait = until.saturating_duration_since(now).max(h.cool_down);
                return Tripped::Already(h.put_off(now, wait, grace));
            }
            h.failures += 1;
            if h.failures < THRESHOLD {
                return Tripped::No;
            }
            h.down_since = Some(now);
            Tripped::Now(pause(h, FIRST_COOL_DOWN))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZERO: Duration = Duration::ZERO;
    const GRACE: Duration = Duration::from_secs(15 * 60);

    impl Default for Breakers {
        fn default() -> Self {
            Self::new(GRACE)
        }
    }

    fn trip(breakers: &Breakers, host: &str) {
        for _ in 1..THRESHOLD {
            assert_eq!(breakers.failed(host, false, ZERO), Tripped::No);
        }
        assert_eq!(breakers.failed(host, false, ZERO), Tripped::Now(FIRST_COOL_DOWN));
    }

    #[tokio::test(start_paused = true)]
    async fn consecutive_failures_pause_the_host_alone() {
        let breakers = Breakers::default();
        trip(&breakers, "a");
        assert_eq!(breakers.admit("a"), Admit::Wait(FIRST_COOL_DOWN));
        assert_eq!(breakers.admit("b"), Admit::Go { probe: false }, "other hosts go on");
        // A request sent before the pause that fails now is not its job's fault.
        assert_eq!(breakers.failed("a", false, ZERO), Tripped::Already(FIRST_COOL_DOWN));
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_resets_the_count() {
        let breakers = Breakers::default();
        for _ in 0..10 {
            assert_eq!(breakers.failed("a", false, ZERO), Tripped::No);
            assert_eq!(breakers.failed("a", false, ZERO), Tripped::No);
            breakers.succeeded("a");
        }
        assert_eq!(breakers.admit("a"), Admit::Go { probe: false });
    }

    #[tokio::test(start_paused = true)]
    async fn one_probe_at_a_time_and_failed_probes_double_the_pause() {
        let breakers = Breakers::default();
        trip(&breakers, "a");
        let mut pause = FIRST_COOL_DOWN;
        for _ in 0..10 {
            tokio::time::advance(pause).await;
            assert_eq!(breakers.admit("a"), Admit::Go { probe: true });
            assert_eq!(breakers.admit("a"), Admit::Wait(pause), "the probe is out");
            let next = (pause * 2).min(MAX_COOL_DOWN);
            assert_eq!(breakers.failed("a", true, ZERO), Tripped::Already(next));
            assert_eq!(breakers.admit("a"), Admit::Wait(next));
            pause = next;
        }
        assert_eq!(pause, MAX_COOL_DOWN, "capped");
        tokio::time::advance(pause).await;
        assert_eq!(breakers.admit("a"), Admit::Go { probe: true });
        breakers.succeeded("a");
        assert_eq!(breakers.admit("a"), Admit::Go { probe: false });
        trip(&breakers, "a");
        assert_eq!(
            breakers.admit("a"),
            Admit::Wait(FIRST_COOL_DOWN),
            "a new outage starts short"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_host_down_past_the_grace_is_given_up_on() {
        let breakers = Breakers::new(Duration::from_secs(100));
        trip(&breakers, "a");
        let start = Instant::now();
        loop {
            match breakers.admit("a") {
                Admit::Wait(wait) => {
                    assert!(wait <= MAX_COOL_DOWN, "within the grace: {wait:?}");
                    tokio::time::advance(wait).await;
                }
                Admit::Go { probe: true } if start.elapsed() > Duration::from_secs(100) => break,
                Admit::Go { probe: true } => assert!(matches!(breakers.failed("a", true, ZERO), Tripped::Already(_))),
                Admit::Go { probe: false } => panic!("the host is paused"),
            }
        }
        assert_eq!(
            breakers.failed("a", true, ZERO),
            Tripped::Already(Duration::from_secs(200))
        );
        assert_eq!(breakers.admit("a"), Admit::Wait(Duration::from_secs(200)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_lasts_what_the_server_asked() {
        let breakers = Breakers::default();
        let asked = Duration::from_secs(30);
        for _ in 1..THRESHOLD {
            breakers.failed("a", false, asked);
        }
        assert_eq!(breakers.failed("a", false, asked), Tripped::Now(asked));
        assert_eq!(breakers.admit("a"), Admit::Wait(asked));
    }
}
