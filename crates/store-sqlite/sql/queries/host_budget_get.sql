-- A host's next free request time, if it has claimed any.
SELECT next_at_ms FROM host_budget WHERE host = :host
