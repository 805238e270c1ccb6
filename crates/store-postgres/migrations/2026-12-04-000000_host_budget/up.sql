-- Each host's request budget (SPEC §8, rates): one row per HOST:PORT with a
-- rate, holding the host's next free request time in milliseconds by the
-- store clock. Every worker on every host sharing the ledger claims its
-- slots from it (queries/claim_request_slots.sql), so `--rate-per-host`
-- holds across them. A new table: no existing row is touched.

CREATE TABLE host_budget (
    host       text PRIMARY KEY,
    next_at_ms bigint NOT NULL
);
