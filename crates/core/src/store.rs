//! [`Store`]: a ledger that also manages leases — what the CLI holds.

use crate::lease::LeaseManager;
use crate::ledger::LedgerStore;

/// A ledger store with leases; used as `Arc<dyn Store>`.
pub trait Store: LedgerStore + LeaseManager {}

impl<T: LedgerStore + LeaseManager + ?Sized> Store for T {}
