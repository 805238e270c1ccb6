-- Records a host's next free request time after a claim.
INSERT INTO host_budget (host, next_at_ms) VALUES (:host, :next_at_ms)
ON CONFLICT (host) DO UPDATE SET next_at_ms = excluded.next_at_ms
