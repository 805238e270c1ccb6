//! The request-budget clause of [`LedgerStore`](crate::LedgerStore).

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::ledger::RequestSlots;
use crate::store::Store;

/// **request budget**: two handles claiming one host's request slots at
/// once never get overlapping slots, nor slots closer than the interval;
/// no slot is earlier than now by the store clock; another host has a
/// budget of its own.
pub async fn request_budget_is_shared(setup: Setup) {
    const INTERVAL: Duration = Duration::from_millis(250);
    let interval_ms = RequestSlots::interval_millis(INTERVAL);
    let before = setup.store.now().await.expect("now");
    let claims = |store: Arc<dyn Store>| {
        tokio::spawn(async move {
            let mut got = Vec::new();
            for round in 0..10u32 {
                let slots: RequestSlots = store
                    .claim_request_slots("budget.example:443", INTERVAL, 1 + round % 3)
                    .await
                    .expect("claim");
                assert_eq!(slots.count, 1 + round % 3, "the slots asked for");
                assert_eq!(slots.interval_ms, interval_ms, "at the interval asked for");
                got.extend(slots.times());
            }
            got
        })
    };
    let (a, b) = (claims(Arc::clone(&setup.store)), claims(Arc::clone(&setup.other)));
    let mut slots = a.await.expect("claims a");
    slots.extend(b.await.expect("claims b"));
    slots.sort_unstable();
    let asked: usize = (0..10).map(|round| 1 + round % 3).sum();
    assert_eq!(slots.len(), 2 * asked, "every slot claimed");
    assert!(slots[0] >= before, "a slot before now: {} < {before}", slots[0]);
    for pair in slots.windows(2) {
        assert!(
            pair[1] - pair[0] >= interval_ms,
            "slots {} and {} closer than the interval (or the same)",
            pair[0],
            pair[1]
        );
    }
    let other = setup
        .store
        .claim_request_slots("other.example:443", INTERVAL, 0)
        .await
        .expect("claim another host");
    let now = setup.store.now().await.expect("now");
    assert_eq!(other.count, 1, "a claim takes at least one slot");
    assert!(
        other.first <= now && other.first >= before,
        "another host's budget is its own: its slot is now, not after the first host's"
    );
    assert!(other.first < slots[slots.len() - 1], "another host waits for no one");
}
