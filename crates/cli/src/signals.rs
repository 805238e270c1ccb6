//! SIGINT and SIGTERM (SPEC §7). While a run processes jobs, the first signal
//! interrupts it: the pipeline records the running ops, gives the leases
//! back, and the command exits 130 (SIGINT) or 143 (SIGTERM); a second
//! signal, or a run that has not stopped within [`GRACE`], exits at once.
//! Outside a run (planning, `verify`, …) a signal exits at once: every
//! ledger write is a transaction, so nothing done is lost.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use oncefetch_core::pipeline::Interrupt;
use tokio::signal::unix::{signal, SignalKind};

use crate::exit;
use crate::terminal::Terminal;

/// Longest wait for a run to give its leases back after the first signal.
const GRACE: Duration = Duration::from_millis(1800);

/// The process's signal handling; see the module docs.
#[derive(Debug, Clone, Default)]
pub(crate) struct Signals {
    shared: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    /// The run to interrupt, while one is going.
    run: Option<Interrupt>,
    /// Exit status of the first signal received.
    received: Option<u8>,
}

impl Signals {
    /// Installs the handlers (inside a tokio runtime); what they say goes
    /// to `terminal`, above any bars.
    pub(crate) fn install(terminal: &Terminal) -> std::io::Result<Self> {
        let signals = Self::default();
        let terminal = terminal.clone();
        let say = move |line: &str| {
            let _ = terminal.write_lines(&format!("{line}\n"));
        };
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        let shared = Arc::clone(&signals.shared);
        tokio::spawn(async move {
            let (code, name) = tokio::select! {
                _ = int.recv() => (exit::SIGINT, "SIGINT"),
                _ = term.recv() => (exit::SIGTERM, "SIGTERM"),
            };
            let run = {
                let mut state = shared.lock().unwrap_or_else(PoisonError::into_inner);
                state.received = Some(code);
                state.run.clone()
            };
            let Some(run) = run else {
                say(&format!("interrupted by {name}"));
                std::process::exit(i32::from(code));
            };
            say(&format!(
                "interrupted by {name}: stopping the downloads and giving their leases back (a second signal exits at once)"
            ));
            run.interrupt();
            tokio::select! {
                _ = int.recv() => say("interrupted again: exiting now; the leases expire after --lease-ttl"),
                _ = term.recv() => say("interrupted again: exiting now; the leases expire after --lease-ttl"),
                () = tokio::time::sleep(GRACE) => {
                    say(&format!("the run did not stop within {GRACE:?}: exiting; its leases expire after --lease-ttl"));
                }
            }
            std::process::exit(i32::from(code));
        });
        Ok(signals)
    }

    /// Routes signals to `run` until the guard drops.
    pub(crate) fn interrupting(&self, run: Interrupt) -> RunGuard<'_> {
        let mut state = self.lock();
        if state.received.is_some() {
            run.interrupt();
        }
        state.run = Some(run);
        RunGuard { signals: self }
    }

    /// The exit status of the signal received, if one was.
    pub(crate) fn received(&self) -> Option<u8> {
        self.lock().received
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// While alive, a signal interrupts the run (see [`Signals::interrupting`]).
pub(crate) struct RunGuard<'a> {
    signals: &'a Signals,
}

impl Drop for RunGuard<'_> {
    fn drop(&mut self) {
        self.signals.lock().run = None;
    }
}
