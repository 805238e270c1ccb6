-- oncefetch ledger, schema version 4: reconcile frees expired leases by
-- moving a mark, not by rewriting their rows.
--
-- Until version 3, reconcile cleared the owner and expiry of every in-flight
-- job whose lease had expired: after a crash of many workers it rewrote every
-- such row and three index entries of each (1,000,000 leases took 11 s and
-- hundreds of MB of WAL). Nothing needs those rows changed: grants, fences,
-- renewals and the one-URL-in-flight check all judge a lease by
-- `lease_expires_at > now`, so an expired lease is runnable either way.
-- Reconcile now counts the leases that expired after the mark and at or
-- before its cutoff, then moves the mark to the cutoff; reads show a lease
-- that expired at or before the mark as freed (no owner, no expiry), as the
-- PostgreSQL store's `reconcile_mark` does.

CREATE TABLE reconcile_mark (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    -- Store-clock milliseconds; leases that expired at or before it are freed.
    freed_through INTEGER NOT NULL
);

-- Leases reconciled under version 3 were cleared already; every lease still
-- recorded is after the mark.
INSERT INTO reconcile_mark (id, freed_through) VALUES (1, -9223372036854775808);
