-- oncefetch ledger, schema version 6: each host's request budget (SPEC §8,
-- rates). One row per HOST:PORT with a rate, holding the host's next free
-- request time (milliseconds by the store clock); every process on the file
-- claims its slots from it (`host_budget_claim.sql`), so `--rate-per-host`
-- holds across them. A new table: no existing row is touched.

CREATE TABLE host_budget (
    host       TEXT PRIMARY KEY,
    next_at_ms INTEGER NOT NULL
) WITHOUT ROWID;
